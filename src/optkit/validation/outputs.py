"""Pair the source's outputs with the artifact's by name (after optimum's ``validate_model_outputs``
and Polygraphy's ``run_comparison``, which match outputs by name, never by position)."""

from __future__ import annotations

import numpy as np

from optkit.errors import OptkitError

Feeds = dict[str, np.ndarray]


def match_outputs(source: Feeds, artifact: Feeds, error: type[OptkitError]) -> list[tuple[str, str]]:
    """``[(source name, artifact name), ...]`` for every output, in the source's order.

    Outputs are matched by name. When names differ for some outputs only (a framework that names
    extra outputs ``output_1`` where the exporter wrote ``18``), the remaining ones are paired in
    order, provided both sides have the same number of them.

    Args:
        source / artifact: ``{output name: array}``.
        error: the :class:`~optkit.errors.OptkitError` kind to raise (ExportError for the export
            check, PassError after the passes).

    Raises:
        error: no output name is shared, or the unmatched outputs cannot be paired (different
            counts); the message names both sides' outputs.
    """
    shared = [name for name in source if name in artifact]
    if not shared:
        raise error(
            f"no output name is shared: the source gives {sorted(source)}, the ONNX model {sorted(artifact)}",
            "name the exported outputs after the source's (export output_names)",
        )
    rest_s = [n for n in source if n not in artifact]
    rest_a = [n for n in artifact if n not in source]
    if len(rest_s) != len(rest_a):
        raise error(
            f"outputs differ: the source gives {rest_s or 'no more'} besides {shared}, the ONNX model "
            f"{rest_a or 'no more'}",
            "export every output the source model returns",
        )
    pairs = dict(zip(rest_s, rest_a, strict=True))
    return [(name, name if name in artifact else pairs[name]) for name in source]


def check_close(
    source: Feeds,
    artifact: Feeds,
    atol: float,
    rtol: float,
    error: type[OptkitError],
    hint: str,
    mask: np.ndarray | None = None,
) -> float:
    """Check every float output pair with ``|artifact - source| <= atol + rtol * |source|``, collecting
    every failing output before raising (so one message names them all).

    ``mask``: the inputs' ``attention_mask`` (N, T), if any; in outputs whose first two axes are
    (N, T), padded positions are not compared (a model may write anything there, NaN included).

    Returns:
        The largest absolute difference over all float outputs.

    Raises:
        error: an output's shape differs, or at least one output is not close (each named with
            its largest difference).
    """
    worst, failures = 0.0, []
    for src_name, art_name in match_outputs(source, artifact, error):
        s, a = source[src_name], artifact[art_name]
        if s.shape != a.shape:
            failures.append(f"'{src_name}' has shape {a.shape} in ONNX, {s.shape} in the source")
            continue
        if not np.issubdtype(s.dtype, np.floating):
            continue  # labels are compared by validation (label agreement), not by tolerance
        if a.dtype.kind not in "fiub":
            failures.append(f"'{src_name}' is {a.dtype} in ONNX, {s.dtype} in the source")
            continue
        if mask is not None and s.ndim >= 2 and s.shape[:2] == mask.shape:
            real = mask.astype(bool)
            s, a = s[real], a[real]
        with np.errstate(invalid="ignore", over="ignore"):
            err = np.abs(a.astype(np.float64) - s)
        largest = float(err.max()) if err.size else 0.0  # NaN when either side has one
        worst = max(worst, largest) if np.isfinite(largest) else worst
        if not np.all(err <= atol + rtol * np.abs(s)):
            failures.append(f"'{src_name}' max |onnx - source| = {largest:.3g}")
    if failures:
        raise error(
            f"the exported model computes different outputs: {'; '.join(failures)} (atol {atol:g}, rtol {rtol:g})", hint
        )
    return worst
