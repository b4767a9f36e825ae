"""SmoothQuant (Xiao et al. 2023, "SmoothQuant: Accurate and Efficient Post-Training Quantization for
Large Language Models", arXiv:2211.10438, eq. 4): an exact fp32 rewrite that moves activation outliers
into the weights so that int8 quantization of the activations loses less.

For an activation ``X`` (``(..., K)``) feeding MatMuls ``Y_i = X @ W_i`` (``W_i``: ``(K, N_i)``), the
per-channel scale ``s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)`` (``max|W_j|`` over row ``j`` of
every ``W_i``) gives ``Y_i = (X / s) @ (diag(s) W_i)``: the producer of ``X`` is divided by ``s``
and the rows of every ``W_i`` multiplied by it. A producer can absorb the division when it is

* a LayerNormalization / SkipLayerNormalization / (Skip)SimplifiedLayerNormalization /
  EmbedLayerNormalization (its normalised output 0): gamma and beta (when present) are divided;
* a fused ``Attention`` (com.microsoft), whose output is ``softmax(Q K^T) V`` per head, linear in
  ``V = X W_v + b_v``: the V columns of its packed weight and bias are divided (the attention output
  projection is smoothed this way, exactly).

Consumers are ``MatMul`` (weight = input 1, an initializer ``(K, N)``) and the fused ``Attention``
(its packed QKV weight, input 1, ``(K, Q+K+V)``: rows scaled), so ORT's fused operators stay as they
are and ``quantize-dynamic`` still makes QAttention of them. When ``X`` also feeds anything else (a
residual Add, the next SkipLayerNormalization's skip input, a graph output) nothing can absorb the
scale for that consumer and the layer is left unsmoothed, with the reason recorded. In a post-LN
BERT every LayerNorm output feeds the residual, so only the attention output projections are
smoothed there; a pre-LN graph (LN output only into QKV and FC1) gets its LayerNorms smoothed too.

``mode="mul"`` smooths those layers as well: an explicit ``Mul(X, 1/s)`` is inserted before their
consumers (the other readers of ``X``, e.g. the residual, keep the unscaled ``X``) and their weight
rows are multiplied by ``s`` as usual. Still exact in fp32; the cost is one elementwise Mul over
``X`` per such layer at run time, next to a MatMul over the same ``X`` (for a ``(1, 128, 384)``
activation feeding a ``(384, 1536)`` weight: 49 k multiplies beside 75 M multiply-adds). This is
the form SmoothQuant takes where the scale cannot be fused (the paper's Fig. 5 folds it into the
previous op; Intel Neural Compressor's SmoothQuant inserts a ``Mul`` when no op can absorb it,
``neural_compressor/adaptor/ox_utils/smooth_quant.py``). In a post-LN BERT it reaches the FFN's
second MatMul (after GELU) and the LayerNorm outputs that also feed residuals: on the MiniLM
embedding sample, with per-channel weights, the difference between cosine 0.978 and 0.991
(docs/benchmarks.md).

Per-channel ``max|X_j|`` is measured by running the fp32 model with ONNX Runtime on real inputs,
with every smoothable ``X`` added as a graph output.

Used by the ``smooth`` pass (:mod:`optkit.passes.smooth`) and meant for the int8 search (``alpha`` as
a search dimension), so it lives in search/ and imports no pass.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import onnx
from onnx import numpy_helper

from optkit.runners.base import Feeds

#: producer op type -> (gamma input index, beta input index or None); output 0 is the normalised one
NORM_PARAMS: dict[str, tuple[int, int | None]] = {
    "LayerNormalization": (1, 2),
    "SkipLayerNormalization": (2, 3),
    "SimplifiedLayerNormalization": (1, None),
    "SkipSimplifiedLayerNormalization": (2, None),
    "EmbedLayerNormalization": (5, 6),
}
#: the reason recorded for a layer a per-layer alpha choice left as it is
LEFT_ALONE = "left unsmoothed by the per-layer choice"
#: consumers whose input 1 is a MatMul-like ``(K, N)`` weight applied to input 0
CONSUMERS = ("MatMul", "Attention")


@dataclass
class Layer:
    """One activation considered for smoothing.

    Attributes:
        tensor: the activation ``X``'s name; producer / producer_op: the node writing it.
        consumers: names of the MatMul / Attention nodes reading it as input 0.
        status: ``"smoothed"`` or ``"skipped"``; reason: why it was skipped (None when smoothed),
            or, for a layer smoothed through an inserted Mul, why the producer could not absorb it.
        max_scale / min_scale: the largest and smallest ``s_j`` applied (None when skipped).
        absorbed_by: what divides ``X`` by ``s``: the producer's op type, or ``"Mul"`` (an inserted
            node, ``mode="mul"``); None when skipped.
        alpha: the migration strength applied to this layer (None when skipped).
    """

    tensor: str
    producer: str | None
    producer_op: str | None
    consumers: list[str]
    status: str = "skipped"
    reason: str | None = None
    max_scale: float | None = None
    min_scale: float | None = None
    absorbed_by: str | None = None
    alpha: float | None = None

    def record(self) -> dict[str, str | float | list[str] | None]:
        """The layer as JSON values, for the step details."""
        return {
            "tensor": self.tensor,
            "producer": self.producer_op,
            "consumers": self.consumers,
            "status": self.status,
            "reason": self.reason,
            "absorbed_by": self.absorbed_by,
            "alpha": self.alpha,
            "max_scale": None if self.max_scale is None else round(self.max_scale, 4),
            "min_scale": None if self.min_scale is None else round(self.min_scale, 4),
        }


@dataclass
class _Plan:
    layer: Layer
    producer: onnx.NodeProto | None = None
    consumers: list[onnx.NodeProto] = field(default_factory=list)


def plan(model: onnx.ModelProto) -> list[_Plan]:
    """Every activation read (as input 0) by a MatMul/Attention with a constant weight, in graph
    order, each either smoothable (``reason`` None) or with the reason it is not."""
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output if out}
    readers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in graph.node:
        for index, name in enumerate(node.input):
            readers.setdefault(name, []).append((node, index))
    outputs = {o.name for o in graph.output}
    plans: dict[str, _Plan] = {}
    for node in graph.node:
        if node.domain not in ("", "ai.onnx", "com.microsoft") or node.op_type not in CONSUMERS:
            continue
        if len(node.input) < 2 or node.input[1] not in inits or len(inits[node.input[1]].dims) != 2:
            continue
        x = node.input[0]
        if x not in plans:
            producer = producers.get(x)
            layer = Layer(x, producer.name if producer else None, producer.op_type if producer else None, [])
            plans[x] = _Plan(layer, producer)
        plans[x].consumers.append(node)
        plans[x].layer.consumers.append(node.name)
    for x, item in plans.items():
        item.layer.reason = _why_not(x, item, readers.get(x, []), outputs, inits)
    return list(plans.values())


def _why_not(
    x: str,
    item: _Plan,
    readers: list[tuple[onnx.NodeProto, int]],
    outputs: set[str],
    inits: dict[str, onnx.TensorProto],
) -> str | None:
    producer = item.producer
    if producer is None:
        return "a graph input or initializer: no node can absorb the scale"
    if x in outputs:
        return "also a graph output: dividing it would change the model's output"
    others = sorted({f"{n.op_type} input {i}" for n, i in readers if n not in item.consumers or i != 0})
    if others:
        return f"also feeds {', '.join(others)} (e.g. a residual): nothing can absorb the scale there"
    if list(producer.output).index(x) != 0:
        return f"output {list(producer.output).index(x)} of {producer.op_type}, not its normalised output"
    width = {int(inits[c.input[1]].dims[0]) for c in item.consumers}
    if len(width) != 1:
        return f"consumers disagree on the channel count ({sorted(width)})"
    (channels,) = width
    if producer.op_type in NORM_PARAMS:
        gamma, beta = NORM_PARAMS[producer.op_type]
        params = [gamma] + ([beta] if beta is not None and len(producer.input) > beta and producer.input[beta] else [])
        for index in params:
            name = producer.input[index] if len(producer.input) > index else ""
            if name not in inits:
                return f"{producer.op_type} input {index} is not a constant"
            if int(np.prod(inits[name].dims)) != channels:
                return f"{producer.op_type} gamma/beta size {list(inits[name].dims)} is not the {channels} channels"
        if producer.op_type == "LayerNormalization" and _attr(producer, "axis", -1) != -1:
            return "LayerNormalization over an axis other than the last (axis != -1)"
        return None
    if producer.op_type == "Attention" and producer.domain == "com.microsoft":
        if any(out for out in list(producer.output)[1:]):
            return "Attention with a present (key/value cache) output: V is reused elsewhere"
        if len(producer.input) < 2 or producer.input[1] not in inits:
            return "Attention weight is not a constant"
        v = _v_size(producer, inits)
        if v != channels:
            return f"Attention V size {v} is not the consumers' {channels} channels"
        if len(producer.input) > 2 and producer.input[2] and producer.input[2] not in inits:
            return "Attention bias is not a constant"
        return None
    return f"produced by {producer.op_type}, which cannot absorb a per-channel scale"


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    for attribute in node.attribute:
        if attribute.name == name:
            return int(onnx.helper.get_attribute_value(attribute))
    return default


def _v_size(node: onnx.NodeProto, inits: dict[str, onnx.TensorProto]) -> int:
    """The V width of a fused Attention: the last of ``qkv_hidden_sizes``, else a third of the packed weight."""
    for attribute in node.attribute:
        if attribute.name == "qkv_hidden_sizes":
            return int(list(attribute.ints)[-1])
    return int(inits[node.input[1]].dims[1]) // 3


def activation_max(
    model: onnx.ModelProto, tensors: list[str], batches: Iterable[Feeds], threads: int
) -> dict[str, np.ndarray]:
    """Per-channel ``max |X_j|`` of each tensor over every element of every batch.

    Args:
        model: the fp32 model (not modified; a copy gets the tensors as extra graph outputs).
        tensors: activation names, each ``(..., K)`` float32.
        batches: model inputs (cast to the graph's input dtypes; inputs the graph lacks are dropped).
        threads: ONNX Runtime intra-op threads.

    Returns:
        ``{tensor: (K,) float64}``.

    Raises:
        onnxruntime errors propagate (the pass turns them into a PassError).
    """
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for name in tensors:
        probe.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    dtypes = {i.name: onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type) for i in model.graph.input}
    found: dict[str, np.ndarray] = {}
    for batch in batches:
        feeds = {k: np.ascontiguousarray(v, dtype=dtypes[k]) for k, v in batch.items() if k in dtypes}
        values = session.run(tensors, feeds)
        for name, value in zip(tensors, values, strict=True):
            peak = np.abs(np.asarray(value, np.float64)).reshape(-1, value.shape[-1]).max(axis=0)
            found[name] = np.maximum(found[name], peak) if name in found else peak
    return found


def smooth(
    model: onnx.ModelProto,
    batches: Iterable[Feeds],
    alpha: float | Mapping[str, float | None],
    threads: int = 2,
    min_scale: float = 1e-4,
    peaks: dict[str, np.ndarray] | None = None,
    mode: Literal["fold", "mul"] = "fold",
) -> list[Layer]:
    """Smooth ``model`` in place; returns every considered layer, smoothed or skipped (with why).

    Args:
        model: an fp32 ONNX model, ideally fused (``fuse`` pass) so LayerNorms and Attention are ops.
        batches: real inputs for the activation ranges (``{input: (B, S) array}`` per batch).
        alpha: migration strength in [0, 1] (0.5 in the paper for most models), one for every
            layer; or ``{activation name: alpha or None}`` per layer (:func:`choose_alphas`), where
            None or a missing name leaves that layer unsmoothed (reason ``"left unsmoothed by the
            per-layer choice"``).
        threads: ONNX Runtime intra-op threads for the activation run.
        min_scale: scales are clipped to ``[min_scale, 1 / min_scale]``; a channel whose activation
            or weight maximum is 0 gets scale 1.
        peaks: a cache of :func:`activation_max` for this (unsmoothed) model: filled on the first
            call when empty, reused as is after, so smoothing copies of one model with several
            alphas runs the activation pass once (the maxima do not depend on alpha); None = no cache.
            The cache holds every tensor either mode may smooth, so one cache serves both modes.
        mode: ``"fold"``: only layers whose producer absorbs the scale (no run-time cost);
            ``"mul"``: also every other layer, through an inserted ``Mul(X, 1/s)`` (module docs).

    Raises:
        ValueError: ``alpha`` outside [0, 1] or an unknown ``mode``. ONNX Runtime errors of the
            activation run propagate.
    """
    alphas = alpha if isinstance(alpha, Mapping) else None
    values: Iterable[float | None] = alphas.values() if alphas is not None else [float(alpha)]  # type: ignore[arg-type]
    for value in values:
        if value is not None and not 0 <= value <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {value}")
    if mode not in ("fold", "mul"):
        raise ValueError(f"mode must be 'fold' or 'mul', got {mode!r}")
    plans = plan(model)
    usable = [p for p in plans if smoothable(p, mode)]
    if alphas is not None:
        for item in usable:
            if alphas.get(item.layer.tensor) is None:
                before = item.layer.reason
                item.layer.reason = LEFT_ALONE + (f" (and {before})" if before else "")
        usable = [p for p in usable if alphas.get(p.layer.tensor) is not None]
    if not usable:
        return [p.layer for p in plans]
    if peaks is None:
        peaks = activation_max(model, [p.layer.tensor for p in usable], batches, threads)
    elif not peaks:
        peaks.update(smoothable_maxima(model, batches, threads))
    inits = {t.name: t for t in model.graph.initializer}
    node_names = {n.name for n in model.graph.node}
    muls: list[tuple[_Plan, np.ndarray]] = []
    for item in usable:
        weights = [numpy_helper.to_array(inits[c.input[1]]).astype(np.float64) for c in item.consumers]
        w_max = np.abs(np.concatenate(weights, axis=1)).max(axis=1)
        x_max = peaks[item.layer.tensor]
        layer_alpha = alphas[item.layer.tensor] if alphas is not None else alpha
        assert isinstance(layer_alpha, numbers.Real)  # None was filtered out above
        scale = smoothing_scale(x_max, w_max, float(layer_alpha), min_scale)
        item.layer.alpha = float(layer_alpha)
        if item.layer.reason is None:
            _divide_producer(model, inits, item.producer, scale)
            assert item.producer is not None  # a foldable layer has a producer
            item.layer.absorbed_by = item.producer.op_type
        else:
            muls.append((item, scale))
            item.layer.absorbed_by = "Mul"
        for consumer in item.consumers:
            _replace(model, inits, consumer, 1, lambda w, s=scale: w * s[:, None])
        item.layer.status = "smoothed"
        item.layer.max_scale, item.layer.min_scale = float(scale.max()), float(scale.min())
    for item, scale in muls:  # last: every weight above is changed through the plan's node references
        _insert_mul(model, inits, node_names, item, scale)
    _drop_unused(model)
    return [p.layer for p in plans]


def smoothable_maxima(model: onnx.ModelProto, batches: Iterable[Feeds], threads: int = 2) -> dict[str, np.ndarray]:
    """:func:`activation_max` of every activation either mode may smooth (the cache ``smooth`` and
    :func:`~optkit.search.smooth_alpha.choose_alphas` share): ``{name: (K,) float64}``."""
    wanted = [p.layer.tensor for p in plan(model) if smoothable(p, "mul")]
    return activation_max(model, wanted, batches, threads) if wanted else {}


def smoothing_scale(x_max: np.ndarray, w_max: np.ndarray, alpha: float, min_scale: float = 1e-4) -> np.ndarray:
    """SmoothQuant's ``s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)`` (paper eq. 4), ``(K,)`` float32;
    1 for a channel whose activation or weight maximum is 0, clipped to ``[min_scale, 1 / min_scale]``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.power(x_max, alpha) / np.power(w_max, 1 - alpha)
    scale = np.where((x_max > 0) & (w_max > 0) & np.isfinite(scale), scale, 1.0)
    return np.clip(scale, min_scale, 1 / min_scale).astype(np.float32)


def smoothable(item: _Plan, mode: str) -> bool:
    """Fold: the producer can absorb the scale (no reason recorded against it). Mul: also any other
    layer whose consumers agree on the channel count (a Mul by a ``(K,)`` vector needs one ``K``)."""
    if item.layer.reason is None:
        return True
    return mode == "mul" and not item.layer.reason.startswith("consumers disagree")


def _insert_mul(
    model: onnx.ModelProto,
    inits: dict[str, onnx.TensorProto],
    node_names: set[str],
    item: _Plan,
    scale: np.ndarray,
) -> None:
    """``X_s = Mul(X, 1/s)`` placed right before the first consumer (graph order stays topological:
    ``X`` is written before any of its readers); every consumer reads ``X_s``, other readers keep ``X``."""
    x = item.layer.tensor
    inverse, name, number = f"{x}_smooth_inv", f"{x}_smooth_mul", 0
    while inverse in inits or name in node_names:
        number += 1
        inverse, name = f"{x}_smooth_inv{number}", f"{x}_smooth_mul{number}"
    tensor = numpy_helper.from_array((1.0 / scale).astype(np.float32), inverse)
    model.graph.initializer.append(tensor)
    inits[inverse] = tensor
    node_names.add(name)
    node = onnx.helper.make_node("Mul", [x, inverse], [f"{name}_out"], name=name)
    consumers = {c.output[0] for c in item.consumers}  # outputs are unique in a valid graph; names may not be
    first = min(i for i, n in enumerate(model.graph.node) if n.output and n.output[0] in consumers)
    for consumer in model.graph.node:
        if consumer.output and consumer.output[0] in consumers and consumer.input[0] == x:
            consumer.input[0] = node.output[0]
    model.graph.node.insert(first, node)


def _divide_producer(
    model: onnx.ModelProto, inits: dict[str, onnx.TensorProto], producer: onnx.NodeProto | None, scale: np.ndarray
) -> None:
    assert producer is not None  # only smoothable plans get here
    if producer.op_type in NORM_PARAMS:
        gamma, beta = NORM_PARAMS[producer.op_type]
        for index in (gamma, beta):
            if index is not None and len(producer.input) > index and producer.input[index]:
                _replace(model, inits, producer, index, lambda p: p / scale.reshape(p.shape))
        return
    v = scale.shape[0]  # Attention: the last v columns of the packed weight and bias are V
    _replace(model, inits, producer, 1, lambda w: np.concatenate([w[:, :-v], w[:, -v:] / scale], axis=1))
    if len(producer.input) > 2 and producer.input[2]:
        _replace(model, inits, producer, 2, lambda b: np.concatenate([b[:-v], b[-v:] / scale]))


def _replace(
    model: onnx.ModelProto, inits: dict[str, onnx.TensorProto], node: onnx.NodeProto, index: int, change
) -> None:
    """Give ``node`` input ``index`` a changed copy of its initializer under a fresh name (the old
    one may be shared with nodes that must not change)."""
    old = node.input[index]
    value = numpy_helper.to_array(inits[old])
    new = change(value).astype(value.dtype)
    name, number = f"{old}_smooth", 0
    while name in inits:
        number += 1
        name = f"{old}_smooth{number}"
    tensor = numpy_helper.from_array(new, name)
    model.graph.initializer.append(tensor)
    inits[name] = tensor
    node.input[index] = name


def _drop_unused(model: onnx.ModelProto) -> None:
    used = {name for node in model.graph.node for name in node.input} | {o.name for o in model.graph.output}
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


__all__ = ["CONSUMERS", "NORM_PARAMS", "Layer", "activation_max", "plan", "smooth"]
