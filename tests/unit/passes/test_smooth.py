"""The ``smooth`` pass (SmoothQuant): exact in fp32, which producers absorb the scale and which
cannot, on ``onnx.helper`` graphs and on the fused tiny BERT (fused ops kept, QAttention still made)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from pydantic import ValidationError

from optkit.errors import PassError
from optkit.io_spec import ModelInfo
from optkit.onnx_io import op_counts
from optkit.pass_context import PassContext
from optkit.passes import smooth
from optkit.recipe import SmoothPass
from optkit.runners.ort_runner import OrtRunner

H = 8  # hidden size of the helper graphs


@dataclass
class Data:
    """``ctx.validation``: the pass reads ``feeds`` only."""

    feeds: dict[str, np.ndarray]


def _x(seed=0, outliers=(1, 5)):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(6, 4, H)).astype(np.float32)
    x[..., list(outliers)] *= 40.0  # activation outlier channels, as in the paper's Figure 4
    return x


def _const(rng, name, shape, spread=1.0):
    return numpy_helper.from_array((rng.normal(size=shape) * spread).astype(np.float32), name)


def _model(nodes, inits, outputs, inputs=("x",), ms=False):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(i, TensorProto.FLOAT, [None, None, H]) for i in inputs],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        inits,
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid("com.microsoft", 1)] if ms else [])
    return helper.make_model(graph, opset_imports=opsets)


def _ln_params(rng):
    return [_const(rng, "gamma", [H], 1.0), _const(rng, "beta", [H], 0.5)]


def pre_ln(residual=False):
    """x -> LayerNorm -> y -> MatMul(w1), MatMul(w2); with ``residual`` y also feeds Add(y, x)."""
    rng = np.random.default_rng(1)
    nodes = [
        helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["y"], name="ln", axis=-1),
        helper.make_node("MatMul", ["y", "w1"], ["o1"], name="mm1"),
        helper.make_node("MatMul", ["y", "w2"], ["o2"], name="mm2"),
    ]
    outputs = ["o1", "o2"]
    if residual:
        nodes.append(helper.make_node("Add", ["y", "x"], ["r"], name="residual"))
        outputs.append("r")
    inits = [*_ln_params(rng), _const(rng, "w1", [H, 6]), _const(rng, "w2", [H, 4])]
    return _model(nodes, inits, outputs)


def skip_ln():
    """A pre-LN fused block: SkipLayerNorm(x, skip) -> output 0 only into MatMul, output 3 (the sum) out."""
    rng = np.random.default_rng(2)
    nodes = [
        helper.make_node(
            "SkipLayerNormalization",
            ["x", "skip", "gamma", "beta"],
            ["y", "", "", "sum"],
            name="sln",
            domain="com.microsoft",
            epsilon=1e-5,
        ),
        helper.make_node("MatMul", ["y", "w1"], ["o1"], name="mm1"),
    ]
    inits = [*_ln_params(rng), _const(rng, "w1", [H, 6])]
    return _model(nodes, inits, ["o1", "sum"], inputs=("x", "skip"), ms=True)


def attention():
    """x -> LayerNorm -> Attention(packed QKV, 2 heads) -> MatMul(wo): both the LN (into the packed
    weight's rows) and the attention output (into V) can be smoothed."""
    rng = np.random.default_rng(3)
    nodes = [
        helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["y"], name="ln", axis=-1),
        helper.make_node(
            "Attention", ["y", "qkv", "qkv_bias"], ["a"], name="attn", domain="com.microsoft", num_heads=2
        ),
        helper.make_node("MatMul", ["a", "wo"], ["o"], name="out_proj"),
    ]
    inits = [
        *_ln_params(rng),
        _const(rng, "qkv", [H, 3 * H]),
        _const(rng, "qkv_bias", [3 * H]),
        _const(rng, "wo", [H, H]),
    ]
    return _model(nodes, inits, ["o"], ms=True)


def _run_pass(tmp_path, model, feeds, **config):
    path = tmp_path / "in.onnx"
    onnx.save(model, str(path))
    ctx = PassContext(tmp_path, ModelInfo(), 1, validation=Data(feeds))
    return path, smooth.run(path, SmoothPass(type="smooth", **config), ctx)


def _outputs(path, feeds):
    with OrtRunner(path, 1) as runner:
        return runner.infer(feeds)


def _assert_exact(before, after, feeds):
    reference, smoothed = _outputs(before, feeds), _outputs(after, feeds)
    assert reference.keys() == smoothed.keys()
    for name in reference:
        np.testing.assert_allclose(smoothed[name], reference[name], atol=1e-5, rtol=1e-5)


def _inits(path):
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def _layers(outcome):
    return {layer["tensor"]: layer for layer in outcome.details["layers"]}


# ---------------------------------------------------------------------------- LayerNorm absorbs
def test_layernorm_feeding_only_matmuls_is_smoothed_exactly(tmp_path):
    feeds = {"x": _x()}
    path, out = _run_pass(tmp_path, pre_ln(), feeds)
    assert out.skipped is None and out.details["smoothed"] == 1 and out.details["skipped"] == 0
    assert _layers(out)["y"]["status"] == "smoothed" and _layers(out)["y"]["consumers"] == ["mm1", "mm2"]
    _assert_exact(path, out.model_path, feeds)
    before, after = _inits(path), _inits(out.model_path)
    assert not np.allclose(before["gamma"], after["gamma_smooth"])  # really rescaled
    assert op_counts(onnx.load(str(out.model_path))) == op_counts(onnx.load(str(path)))


def test_alpha_half_balances_activation_and_weight_ranges(tmp_path):
    """With alpha = 0.5, s = sqrt(max|X| / max|W|), so afterwards max|X_j| = max|W_j| per channel."""
    feeds = {"x": _x()}
    path, out = _run_pass(tmp_path, pre_ln(), feeds)
    probe = onnx.load(str(out.model_path))
    probe.graph.output.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, None))
    onnx.save(probe, str(tmp_path / "probe.onnx"))
    y = _outputs(tmp_path / "probe.onnx", feeds)["y"]
    x_max = np.abs(y).reshape(-1, H).max(axis=0)
    inits = _inits(out.model_path)
    w_max = np.abs(np.concatenate([inits["w1_smooth"], inits["w2_smooth"]], axis=1)).max(axis=1)
    np.testing.assert_allclose(x_max, w_max, rtol=1e-4)


def test_alpha_zero_and_one_are_exact_too(tmp_path):
    feeds = {"x": _x()}
    for alpha in (0.0, 1.0):
        folder = tmp_path / str(alpha)
        folder.mkdir()
        path, out = _run_pass(folder, pre_ln(), feeds, alpha=alpha)
        assert out.details["smoothed"] == 1 and out.details["alpha"] == alpha
        _assert_exact(path, out.model_path, feeds)


def test_skip_layernorm_output_zero_is_smoothed_and_its_sum_output_unchanged(tmp_path):
    feeds = {"x": _x(4), "skip": _x(5)}
    path, out = _run_pass(tmp_path, skip_ln(), feeds)
    assert out.details["smoothed"] == 1
    _assert_exact(path, out.model_path, feeds)


def test_attention_absorbs_into_its_packed_weight_rows_and_its_v_columns(tmp_path):
    feeds = {"x": _x(6)}
    path, out = _run_pass(tmp_path, attention(), feeds)
    layers = _layers(out)
    assert layers["y"]["status"] == "smoothed" and layers["y"]["consumers"] == ["attn"]
    assert layers["a"]["status"] == "smoothed" and layers["a"]["producer"] == "Attention"
    _assert_exact(path, out.model_path, feeds)
    before, after = _inits(path)["qkv"], _inits(out.model_path)["qkv_smooth_smooth"]
    ratio = after / before  # rows scaled by s_in, V columns divided by s_out, Q and K columns by nothing else
    np.testing.assert_allclose(ratio[:, :H], ratio[:, H : 2 * H], rtol=1e-5)
    assert not np.allclose(ratio[:, :H], ratio[:, 2 * H :])
    assert op_counts(onnx.load(str(out.model_path))) == {"Attention": 1, "LayerNormalization": 1, "MatMul": 1}


# ---------------------------------------------------------------------------- cannot absorb
def test_layernorm_that_also_feeds_a_residual_is_left_unsmoothed_with_the_reason(tmp_path):
    feeds = {"x": _x()}
    path, out = _run_pass(tmp_path, pre_ln(residual=True), feeds)
    layer = _layers(out)["y"]
    assert layer["status"] == "skipped" and "also feeds Add input 0" in layer["reason"]
    assert out.details["smoothed"] == 0 and out.skipped and "also feeds Add" in out.skipped
    assert out.model_path == path  # unchanged


def test_a_graph_input_or_a_graph_output_cannot_absorb(tmp_path):
    rng = np.random.default_rng(7)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="first"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("MatMul", ["r", "w2"], ["o"], name="second"),
    ]
    model = _model(nodes, [_const(rng, "w1", [H, H]), _const(rng, "w2", [H, H])], ["o"])
    _, out = _run_pass(tmp_path, model, {"x": _x()})
    layers = _layers(out)
    assert "graph input" in layers["x"]["reason"]
    assert "produced by Relu" in layers["r"]["reason"]
    assert out.details["smoothed"] == 0


def test_a_shared_gamma_is_copied_so_the_unsmoothed_layernorm_keeps_it(tmp_path):
    rng = np.random.default_rng(8)
    nodes = [
        helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["y"], name="ln1", axis=-1),
        helper.make_node("MatMul", ["y", "w1"], ["o1"], name="mm1"),
        helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["z"], name="ln2", axis=-1),
        helper.make_node("MatMul", ["z", "w2"], ["o2"], name="mm2"),
    ]
    model = _model(nodes, [*_ln_params(rng), _const(rng, "w1", [H, H]), _const(rng, "w2", [H, H])], ["o1", "o2", "z"])
    feeds = {"x": _x()}
    path, out = _run_pass(tmp_path, model, feeds)
    assert _layers(out)["y"]["status"] == "smoothed" and "graph output" in _layers(out)["z"]["reason"]
    _assert_exact(path, out.model_path, feeds)
    ln2 = next(n for n in onnx.load(str(out.model_path)).graph.node if n.name == "ln2")
    assert list(ln2.input) == ["x", "gamma", "beta"]


def test_a_dead_channel_gets_scale_one_and_stays_finite(tmp_path):
    x = _x()
    feeds = {"x": x}
    model = pre_ln()
    for tensor in model.graph.initializer:  # gamma = beta = 0 on channel 3: the LN output there is always 0
        if tensor.name in ("gamma", "beta"):
            value = numpy_helper.to_array(tensor).copy()
            value[3] = 0
            tensor.CopyFrom(numpy_helper.from_array(value, tensor.name))
    path, out = _run_pass(tmp_path, model, feeds)
    assert out.details["smoothed"] == 1
    assert all(np.isfinite(v).all() for v in _inits(out.model_path).values())
    _assert_exact(path, out.model_path, feeds)


def test_no_data_is_a_pass_error(tmp_path):
    path = tmp_path / "in.onnx"
    onnx.save(pre_ln(), str(path))
    with pytest.raises(PassError, match="needs data"):
        smooth.run(path, SmoothPass(type="smooth"), PassContext(tmp_path, ModelInfo(), 1))


def test_a_model_ort_cannot_run_is_a_pass_error(tmp_path):
    with pytest.raises(PassError, match="could not measure activations"):
        _run_pass(tmp_path, pre_ln(), {"x": np.zeros((2, 4, H + 1), np.float32)})  # wrong channel count


@pytest.mark.parametrize("alpha", [-0.1, 1.5])
def test_alpha_outside_zero_one_is_refused_by_the_recipe(alpha):
    with pytest.raises(ValidationError):
        SmoothPass(type="smooth", alpha=alpha)


# ---------------------------------------------------------------------------- fused tiny BERT
FEEDS = {
    "input_ids": np.array([[2, 7, 8, 9, 3, 0], [2, 10, 11, 12, 13, 3], [2, 20, 21, 3, 0, 0]], np.int64),
    "attention_mask": np.array([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], np.int64),
    "token_type_ids": np.zeros((3, 6), np.int64),
}


@pytest.fixture(scope="module")
def fused(tiny, tmp_path_factory):
    from optkit.exporters.torch_exporter import export
    from optkit.passes import fuse
    from optkit.recipe import ExportConfig, FusePass
    from optkit.sources import torch_source

    work = tmp_path_factory.mktemp("smooth-bert")
    source = torch_source.load(tiny["pt"], work)
    exported = export(source, FEEDS, ExportConfig(), work / "export.onnx").model_path
    outcome = fuse.run(exported, FusePass(type="fuse"), PassContext(work, source.info, 1))
    assert outcome.details["attention_fusions"] == 2
    return source.info, outcome.model_path, work


def test_fused_bert_smoothing_is_exact_and_keeps_every_fused_op(fused):
    info, path, work = fused
    ctx = PassContext(work, info, 2, validation=Data(FEEDS))
    out = smooth.run(path, SmoothPass(type="smooth"), ctx)
    _assert_exact(path, out.model_path, FEEDS)
    assert op_counts(onnx.load(str(out.model_path))) == op_counts(onnx.load(str(path)))
    layers = out.details["layers"]
    smoothed = [(layer["producer"], layer["consumers"]) for layer in layers if layer["status"] == "smoothed"]
    # post-LN BERT: the attention output projections (via V) and the last LayerNorm (only the classifier reads it)
    assert [p for p, _ in smoothed] == ["Attention", "Attention", "SkipLayerNormalization"], layers
    skipped = [layer for layer in layers if layer["status"] == "skipped"]
    assert out.details["skipped"] == len(skipped) == 6
    residual = [s for s in skipped if s["producer"] in ("EmbedLayerNormalization", "SkipLayerNormalization")]
    assert len(residual) == 4 and all("SkipLayerNormalization input 1" in s["reason"] for s in residual)
    assert all(s["producer"] == "BiasGelu" for s in skipped if s not in residual)


def test_fused_bert_smoothed_then_quantized_keeps_qattention(fused):
    from optkit.passes import quantize_dynamic
    from optkit.recipe import QuantizeDynamicPass

    info, path, work = fused
    smoothed = smooth.run(path, SmoothPass(type="smooth"), PassContext(work, info, 3, validation=Data(FEEDS)))
    config = QuantizeDynamicPass(type="quantize-dynamic")
    plain = quantize_dynamic.run(path, config, PassContext(work, info, 4)).details["quantized_ops"]
    after = quantize_dynamic.run(smoothed.model_path, config, PassContext(work, info, 5)).details["quantized_ops"]
    assert after == plain and after["QAttention"] == 2


def test_one_activation_pass_serves_every_alpha(monkeypatch):
    """The search smooths copies of one model with several alphas: the activation maxima (which do
    not depend on alpha) are measured once and the result equals smoothing without the cache."""
    from optkit.search import smoothquant

    calls = []
    real = smoothquant.activation_max
    monkeypatch.setattr(smoothquant, "activation_max", lambda *a, **k: calls.append(1) or real(*a, **k))
    feeds = [{"x": _x()}]
    cache: dict = {}
    cached = [pre_ln() for _ in range(2)]
    smoothquant.smooth(cached[0], feeds, 0.5, peaks=cache)
    smoothquant.smooth(cached[1], feeds, 0.75, peaks=cache)
    assert len(calls) == 1 and set(cache) == {"y"}
    fresh = pre_ln()
    smoothquant.smooth(fresh, feeds, 0.75)
    assert len(calls) == 2
    assert cached[1].SerializeToString() == fresh.SerializeToString()


# ---------------------------------------------------------------------------- mode: mul
def _muls(path):
    return [n for n in onnx.load(str(path)).graph.node if n.op_type == "Mul"]


def test_mul_mode_smooths_a_residual_layernorm_exactly_and_the_residual_keeps_the_unscaled_input(tmp_path):
    feeds = {"x": _x()}
    path, out = _run_pass(tmp_path, pre_ln(residual=True), feeds, mode="mul")
    layer = _layers(out)["y"]
    assert layer["status"] == "smoothed" and layer["absorbed_by"] == "Mul"
    assert "also feeds Add" in layer["reason"]  # why the LayerNorm could not absorb it, kept for the record
    assert out.details["mode"] == "mul" and out.details["inserted_muls"] == 1 and out.details["smoothed"] == 1
    _assert_exact(path, out.model_path, feeds)
    model = onnx.load(str(out.model_path))
    (mul,) = _muls(out.model_path)
    nodes = {n.name: n for n in model.graph.node}
    assert list(nodes["residual"].input) == ["y", "x"]  # the residual reads the unscaled LayerNorm output
    assert nodes["mm1"].input[0] == nodes["mm2"].input[0] == mul.output[0]
    order = [n.name for n in model.graph.node]
    assert order.index(mul.name) < order.index("mm1")  # still topologically sorted
    assert _inits(path)["gamma"].tolist() == _inits(out.model_path)["gamma"].tolist()  # the LN is untouched


def test_mul_mode_reaches_a_graph_input_and_a_relu_output_exactly(tmp_path):
    rng = np.random.default_rng(7)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="first"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("MatMul", ["r", "w2"], ["o"], name="second"),
    ]
    model = _model(nodes, [_const(rng, "w1", [H, H]), _const(rng, "w2", [H, H])], ["o", "r"])
    feeds = {"x": _x()}
    path, out = _run_pass(tmp_path, model, feeds, mode="mul", alpha=0.75)
    layers = _layers(out)
    assert layers["x"]["absorbed_by"] == layers["r"]["absorbed_by"] == "Mul"
    assert out.details["inserted_muls"] == 2 and len(_muls(out.model_path)) == 2
    _assert_exact(path, out.model_path, feeds)  # "r" is a graph output too: still the unscaled value


def test_mul_mode_keeps_folding_where_a_producer_can_absorb(tmp_path):
    feeds = {"x": _x(6)}
    path, out = _run_pass(tmp_path, attention(), feeds, mode="mul")
    assert {k: v["absorbed_by"] for k, v in _layers(out).items()} == {"y": "LayerNormalization", "a": "Attention"}
    assert out.details["inserted_muls"] == 0 and not _muls(out.model_path)
    _assert_exact(path, out.model_path, feeds)


def test_mul_mode_on_unnamed_nodes_rewires_only_the_consumers(tmp_path):
    """Nodes are matched by their (unique) outputs, not by names, which exported graphs may leave empty."""
    model = pre_ln(residual=True)
    for node in model.graph.node:
        node.name = ""
    feeds = {"x": _x()}
    path, out = _run_pass(tmp_path, model, feeds, mode="mul")
    assert out.details["inserted_muls"] == 1
    _assert_exact(path, out.model_path, feeds)
    adds = [n for n in onnx.load(str(out.model_path)).graph.node if n.op_type == "Add"]
    assert [list(a.input) for a in adds] == [["y", "x"]]


def test_fused_bert_mul_mode_smooths_every_layer_exactly_and_quantizes_to_qattention(fused):
    from optkit.passes import quantize_dynamic
    from optkit.recipe import QuantizeDynamicPass

    info, path, work = fused
    out = smooth.run(path, SmoothPass(type="smooth", mode="mul"), PassContext(work, info, 6, validation=Data(FEEDS)))
    _assert_exact(path, out.model_path, FEEDS)
    assert out.details["smoothed"] == 9 and out.details["skipped"] == 0 and out.details["inserted_muls"] == 6
    before, after = op_counts(onnx.load(str(path))), op_counts(onnx.load(str(out.model_path)))
    assert after == {**before, "Mul": before.get("Mul", 0) + 6}  # only the inserted Muls are new
    config = QuantizeDynamicPass(type="quantize-dynamic")
    quantized = quantize_dynamic.run(out.model_path, config, PassContext(work, info, 7)).details["quantized_ops"]
    assert quantized["QAttention"] == 2


def test_an_unknown_mode_is_refused():
    from optkit.search import smoothquant

    with pytest.raises(ValueError, match="mode must be"):
        smoothquant.smooth(pre_ln(), [{"x": _x()}], 0.5, mode="insert")
    with pytest.raises(ValidationError):
        SmoothPass(type="smooth", mode="insert")


def test_one_activation_pass_serves_both_modes(monkeypatch):
    """The fold call fills the cache with every tensor either mode may smooth, so the mul call after
    it measures nothing, and gives the same model as a mul call without the cache."""
    from optkit.search import smoothquant

    def ln_relu():
        rng = np.random.default_rng(9)
        nodes = [
            helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["y"], name="ln", axis=-1),
            helper.make_node("MatMul", ["y", "w1"], ["h"], name="mm1"),
            helper.make_node("Relu", ["h"], ["r"], name="relu"),
            helper.make_node("MatMul", ["r", "w2"], ["o"], name="mm2"),
        ]
        return _model(nodes, [*_ln_params(rng), _const(rng, "w1", [H, H]), _const(rng, "w2", [H, H])], ["o"])

    calls = []
    real = smoothquant.activation_max
    monkeypatch.setattr(smoothquant, "activation_max", lambda *a, **k: calls.append(1) or real(*a, **k))
    feeds = [{"x": _x()}]
    cache: dict = {}
    folded = smoothquant.smooth(ln_relu(), feeds, 0.5, peaks=cache)
    assert [(la.tensor, la.status) for la in folded] == [("y", "smoothed"), ("r", "skipped")]
    assert set(cache) == {"y", "r"} and len(calls) == 1
    cached = ln_relu()
    smoothquant.smooth(cached, feeds, 0.5, peaks=cache, mode="mul")
    assert len(calls) == 1
    fresh = ln_relu()
    smoothquant.smooth(fresh, feeds, 0.5, mode="mul")
    assert len(calls) == 2 and cached.SerializeToString() == fresh.SerializeToString()
