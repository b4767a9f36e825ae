"""Per-layer SmoothQuant alphas (optkit.search.smooth_alpha): each layer's alpha chosen by the int8
output error of its product, the choice applied exactly in fp32, and the error it predicts borne
out by ONNX Runtime's own dynamic quantization."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from optkit.runners.ort_runner import OrtRunner
from optkit.search.smooth_alpha import choose_alphas
from optkit.search.smoothquant import LEFT_ALONE, smooth, smoothable_maxima

K = 16


def _feeds(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(4, 8, K)).astype(np.float32)
    x[..., [2, 9]] *= 60.0  # two activation outlier channels (SmoothQuant's Figure 4)
    return {"x": x}


def two_layers() -> onnx.ModelProto:
    """x (outliers) -> MatMul "a" -> Relu -> MatMul "b": nothing absorbs either scale (a graph
    input, a Relu), so only ``mode="mul"`` smooths them."""
    rng = np.random.default_rng(1)
    inits = [
        numpy_helper.from_array(rng.normal(size=(K, K)).astype(np.float32), "w_a"),
        numpy_helper.from_array(rng.normal(size=(K, 8)).astype(np.float32), "w_b"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w_a"], ["h"], name="a"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("MatMul", ["r", "w_b"], ["y"], name="b"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, None, K])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _choice(tmp_path, min_gain=0.1, **settings):
    model = two_layers()
    batches = [_feeds(0), _feeds(1)]
    peaks = smoothable_maxima(model, batches, 1)
    setting = {"weight_type": "qint8", "per_channel": True, "reduce_range": False, **settings}
    return (
        model,
        batches,
        peaks,
        choose_alphas(model, batches, peaks, mode="mul", workdir=tmp_path, threads=1, min_gain=min_gain, **setting),
    )


def test_the_outlier_layer_gets_an_alpha_whose_error_is_lowest(tmp_path):
    _, _, _, choice = _choice(tmp_path, min_gain=0.0)
    assert set(choice.alphas) == {"x", "r"}
    errors = choice.errors["x"]
    assert choice.alphas["x"] is not None
    assert errors[f"{choice.alphas['x']:g}"] == min(errors.values())
    assert errors[f"{choice.alphas['x']:g}"] < 0.5 * errors["none"]  # outliers: smoothing pays
    assert not list(tmp_path.glob("alpha-probe*"))  # the probe model is removed


def test_an_inserted_mul_must_buy_the_minimum_gain(tmp_path):
    """min_gain 1.0 (error cut to zero) cannot be met: every layer that needs a Mul stays unsmoothed."""
    _, _, _, choice = _choice(tmp_path, min_gain=1.0)
    assert choice.alphas == {"x": None, "r": None}
    assert choice.summary() == "2 layers: α unsmoothed×2"


def test_the_choice_is_exact_in_fp32_and_recorded_per_layer(tmp_path):
    model, batches, peaks, choice = _choice(tmp_path, min_gain=0.0)
    choice.alphas["r"] = None  # one layer left as it is
    before = tmp_path / "before.onnx"
    onnx.save(model, str(before))
    layers = {layer.tensor: layer for layer in smooth(model, batches, choice.alphas, 1, peaks=peaks, mode="mul")}
    after = tmp_path / "after.onnx"
    onnx.save(model, str(after))
    assert layers["x"].status == "smoothed" and layers["x"].alpha == choice.alphas["x"]
    assert layers["r"].status == "skipped" and layers["r"].reason.startswith(LEFT_ALONE)
    assert "Relu" in layers["r"].reason  # why nothing could absorb it is kept
    with OrtRunner(before, 1) as a, OrtRunner(after, 1) as b:
        np.testing.assert_allclose(b.infer(batches[0])["y"], a.infer(batches[0])["y"], rtol=1e-4, atol=1e-3)


def test_onnx_runtimes_int8_agrees_that_the_chosen_alpha_is_better(tmp_path):
    """The local score is a proxy: ORT's own quantize_dynamic of the smoothed model must be closer to
    fp32 than of the unsmoothed one, on inputs the choice did not see."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model, batches, peaks, choice = _choice(tmp_path, min_gain=0.0)
    plain = tmp_path / "plain.onnx"
    onnx.save(model, str(plain))
    smooth(model, batches, choice.alphas, 1, peaks=peaks, mode="mul")
    smoothed = tmp_path / "smoothed.onnx"
    onnx.save(model, str(smoothed))
    unseen = _feeds(7)
    with OrtRunner(plain, 1) as runner:
        reference = runner.infer(unseen)["y"]
    errors = {}
    for name, path in (("plain", plain), ("smoothed", smoothed)):
        quantized = tmp_path / f"{name}-int8.onnx"
        quantize_dynamic(str(path), str(quantized), weight_type=QuantType.QInt8, per_channel=True)
        with OrtRunner(quantized, 1) as runner:
            errors[name] = float(np.linalg.norm(runner.infer(unseen)["y"] - reference))
    assert errors["smoothed"] < errors["plain"]


def test_a_grid_alpha_outside_zero_one_is_refused(tmp_path):
    model = two_layers()
    with pytest.raises(ValueError, match="alphas must be in"):
        choose_alphas(model, [_feeds()], {}, "qint8", True, False, "mul", tmp_path, grid=[0.5, 1.5])


def test_a_per_layer_alpha_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match="alpha must be in"):
        smooth(two_layers(), [_feeds()], {"x": 2.0}, 1, mode="mul")


def test_long_batches_are_scored_on_a_bounded_row_sample(tmp_path, monkeypatch):
    """More token rows than MAX_ROWS: the products are scored on an even subset (same choice here:
    the outlier channels are in every row)."""
    import optkit.search.smooth_alpha as smooth_alpha

    _, _, _, whole = _choice(tmp_path, min_gain=0.0)
    monkeypatch.setattr(smooth_alpha, "MAX_ROWS", 8)  # the batches have 4 × 8 = 32 rows
    _, _, _, sampled = _choice(tmp_path, min_gain=0.0)
    assert sampled.alphas["x"] is not None and sampled.errors["x"] != whole.errors["x"]
    assert sampled.errors["x"][f"{sampled.alphas['x']:g}"] < sampled.errors["x"]["none"]
