"""ONNX Runtime transformer fusions (``onnxruntime.transformers.optimizer.optimize_model``).

Model type, head count and hidden size come from the recipe or the source model's config (heads and
hidden size read per architecture, see :mod:`optkit.formats.hf_config`); the HF ``model_type`` is
mapped to the optimizer's own (:data:`ORT_MODEL_TYPES`, after Optimum's ``ORTConfigManager``). A model
with no attention heads in its config and no optimizer type of its own (a CNN: ResNet, ConvNeXt) is
skipped. Unmasked attention scaled by a ``Mul`` (transformers' eager attention in ViT, DeiT,
wav2vec2) is first rewritten into the ``Div`` form ORT matches (:mod:`optkit.passes.attention_scale`);
Swin's windowed attention with its relative position bias has no ORT fusion (0 Attention). Fusion
counts (``get_fused_operator_statistics``) are always recorded; a transformer with 0 Attention
fusions is a warning in the report (or an error with ``require_attention``), because that is the
fusion that brings most of the speed (e.g. exports with SDPA attention never match).
"""

from __future__ import annotations

from pathlib import Path

from optkit.errors import PassError
from optkit.onnx_io import load_onnx, save_onnx, weights_bytes
from optkit.pass_context import PassContext, PassOutcome
from optkit.passes.attention_scale import divide_attention_scale
from optkit.quiet_logs import quiet_logs
from optkit.recipe import FusePass
from optkit.records.figures import Figure

ATTENTION_OPS = ("Attention", "MultiHeadAttention", "GroupQueryAttention", "PackedAttention")
#: HF ``model_type`` -> ONNX Runtime optimizer ``model_type`` (optimum/onnxruntime/utils.py,
#: ``ORTConfigManager._conf``); a type of the optimizer's own (``MODEL_TYPES``) maps to itself, any
#: other transformer with attention heads to ``"bert"``
ORT_MODEL_TYPES = {
    "albert": "bert",
    "bart": "bart",
    "bert": "bert",
    "big_bird": "bert",
    "camembert": "bert",
    "deberta": "bert",
    "deberta-v2": "bert",
    "deit": "vit",
    "dinov2": "vit",
    "distilbert": "bert",
    "electra": "bert",
    "mbart": "bart",
    "marian": "bart",
    "modernbert": "bert",
    "mpnet": "bert",
    "roberta": "bert",
    "segformer": "vit",
    "vit": "vit",
    "xlm-roberta": "bert",
}

#: HF ``model_type`` -> why ORT's optimizer fuses no attention in it (for the 0-Attention warning)
NO_ATTENTION_FUSION = {
    "swin": "ONNX Runtime has no fusion for Swin's windowed attention with its relative position bias",
    "modernbert": "ONNX Runtime's BERT attention fusion matches separate Q/K/V projections, not ModernBERT's "
    "packed Wqkv with rotary embeddings",
    "funnel": "ONNX Runtime has no fusion for Funnel's relative attention with pooled queries",
}


def ort_model_type(model_type: str, heads: int, optimizer_types: set[str]) -> str | None:
    """The optimizer's ``model_type`` for HF ``model_type``: from :data:`ORT_MODEL_TYPES`, else the
    optimizer's own type of that name, else ``"bert"`` when the model has attention heads, else
    None (nothing to fuse)."""
    if model_type in ORT_MODEL_TYPES:
        return ORT_MODEL_TYPES[model_type]
    if model_type in optimizer_types:
        return model_type
    return "bert" if heads > 0 else None


def _unmasked_attention_as_div(model_path: Path, heads: int, hidden: int, ctx: PassContext) -> tuple[Path, int]:
    """The model the optimizer fuses: ``model_path`` itself, or a copy in the workdir in which
    unmasked attention scaled by ``Mul`` reads as the ``Div`` ORT matches
    (:func:`~optkit.passes.attention_scale.divide_attention_scale`; ViT, DeiT, wav2vec2), with the
    number of rewrites."""
    if heads <= 0 or hidden <= 0 or hidden % heads:
        return model_path, 0
    model = load_onnx(model_path)
    rewrites = divide_attention_scale(model, hidden // heads)
    if not rewrites:
        return model_path, 0
    path = ctx.output_path("fuse-input")
    save_onnx(model, path, ctx.external_threshold_mb)
    return path, rewrites


def run(model_path: Path, config: FusePass, ctx: PassContext) -> PassOutcome:
    """Fuse; returns the fused model with ``details["fusions"]`` = {fused op: count}.

    Raises:
        PassError: the optimizer fails, or ``require_attention`` and no Attention was fused.
    """
    from onnxruntime.transformers import optimizer

    info = ctx.info
    model_type = info.model_type if config.model_type == "auto" else config.model_type
    if not model_type:
        reason = "not a transformer (no model_type in the config and none in the recipe): nothing to fuse"
        return PassOutcome(model_path, {}, [], skipped=reason)
    heads = config.num_heads or info.num_heads
    hidden = config.hidden_size or info.hidden_size
    ort_type = (
        model_type if config.model_type != "auto" else ort_model_type(model_type, heads, set(optimizer.MODEL_TYPES))
    )
    if ort_type is None:
        reason = f"a {model_type} model without attention heads in its config: nothing to fuse"
        return PassOutcome(model_path, {}, [], skipped=reason)
    if ort_type not in optimizer.MODEL_TYPES:
        ort_type = "bert"
    fuse_input, rewrites = _unmasked_attention_as_div(model_path, heads, hidden, ctx)
    try:
        with quiet_logs("onnxruntime.transformers"):
            fused = optimizer.optimize_model(
                str(fuse_input),
                model_type=ort_type,
                num_heads=heads,
                hidden_size=hidden,
                opt_level=config.opt_level,
                use_gpu=False,
            )
    except Exception as exc:  # the optimizer raises assorted errors on unexpected graphs
        raise PassError(
            f"ORT transformer optimizer failed: {type(exc).__name__}: {str(exc).splitlines()[0]}",
            "remove the fuse pass, or set fuse.model_type/num_heads/hidden_size",
        ) from exc
    with quiet_logs("onnxruntime.transformers"):  # it logs the statistics at INFO
        stats = {k: int(v) for k, v in fused.get_fused_operator_statistics().items() if v}
    details: dict[str, Figure] = {"model_type": ort_type, "num_heads": heads, "hidden_size": hidden, "fusions": stats}
    if rewrites:
        details["scaled_attention_rewrites"] = rewrites
    warnings = []
    attention = sum(stats.get(op, 0) for op in ATTENTION_OPS)
    details["attention_fusions"] = attention
    if attention == 0:
        cause = NO_ATTENTION_FUSION.get(model_type, "export with eager attention")
        message = (
            f"0 Attention fusions on a {model_type} model: the attention pattern was not "
            f"recognised, so most of the fusion speed-up is lost ({cause})"
        )
        if config.require_attention:
            raise PassError(message, "load the model with attn_implementation='eager' before export")
        warnings.append(message)
    out = ctx.output_path("fuse")
    # save_model_to_file (not onnx.save) also adds the com.microsoft opset import the fused ops need
    with quiet_logs("onnxruntime.transformers"):
        fused.save_model_to_file(
            str(out), use_external_data_format=weights_bytes(fused.model) > ctx.external_threshold_mb * 1e6
        )
    return PassOutcome(out, details, warnings)
