"""Validation at shapes other than the export's: a graph traced with its example's batch size or
sequence length baked in (a Python ``int`` taken from a tensor's shape, a reshape to fixed sizes)
runs, and even agrees with the source, at that one shape only. The export is run beside the source
at two other batch sizes (at the export's length) and two other sequence lengths (at the export's
batch size), a few samples each; an axis where ONNX Runtime refuses the shape or the outputs
diverge is named with the size the export baked. The final model (after the passes) is run at the
same shapes and must give the source's output shapes there.

Axes the model itself fixes are not varied: a batch size every input's spec gives as a number, a
sequence length the model fixes (:attr:`~optkit.validation.data.ValidationSet.fixed_length`);
lengths are clamped into the model's declared range (:meth:`~ValidationSet.model_length`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from optkit.errors import ExportError, OptkitError, PassError
from optkit.io_spec import ModelInfo
from optkit.records.figures import Figure
from optkit.runners.base import Feeds, Runner
from optkit.runners.ort_runner import OrtRunner
from optkit.validation.data import ValidationSet
from optkit.validation.outputs import check_close

#: batch sizes tried, in order, skipping the export's (two are checked)
BATCH_CANDIDATES = (1, 3, 4, 5)

HINT = (
    "the exporter traced the example's shape into the graph (a Python int taken from a tensor's shape, "
    "or a reshape/view to fixed sizes): compute sizes with tensor ops, or export a torch.export (.pt2) "
    "program with dynamic_shapes"
)


@dataclass(frozen=True)
class Probe:
    """One shape checked: which axis is varied, to what, and the source's outputs there.

    Attributes:
        axis: ``"batch"`` (axis 0 of every input) or ``"sequence"`` (axis 1 of the token inputs).
        size: the size tried on that axis.
        baked: the export's size on that axis.
        feeds: the inputs at this shape (real samples, cycled and padded or cut).
        reference: the source's outputs on ``feeds``.
    """

    axis: str
    size: int
    baked: int
    feeds: Feeds
    reference: Feeds

    def where(self, vset: ValidationSet) -> str:
        """``"batch size 3 (axis 0 of 'input_ids'; the export's: 2)"``."""
        first = next(iter(self.feeds))
        if self.axis == "batch":
            return f"batch size {self.size} (axis 0 of '{first}'; the export's: {self.baked})"
        token = vset.token_inputs[0]
        return f"sequence length {self.size} (axis 1 of '{token}'; the export's: {self.baked})"


@dataclass
class ShapeCheck:
    """What the shape check ran.

    Attributes:
        probes: each shape checked, with the source's outputs (reused for the final model).
        export_batch / export_length: the export's example shape (length None without token inputs).
        notes: axes not varied, and why (the model fixes them, or the source refused a size).
    """

    probes: list[Probe] = field(default_factory=list)
    export_batch: int = 0
    export_length: int | None = None
    notes: list[str] = field(default_factory=list)

    def details(self) -> dict[str, Figure]:
        """The manifest's record: ``{"export_shape", "batch_sizes", "sequence_lengths", "notes"}``."""
        return {
            "export_shape": {"batch_size": self.export_batch, "sequence_length": self.export_length},
            "batch_sizes": [p.size for p in self.probes if p.axis == "batch"],
            "sequence_lengths": [p.size for p in self.probes if p.axis == "sequence"],
            "samples_per_shape": max((len(next(iter(p.feeds.values()))) for p in self.probes), default=0),
            "notes": list(self.notes),
        }


def plan_sizes(vset: ValidationSet, info: ModelInfo, export_batch: int) -> tuple[list[int], list[int], list[str]]:
    """``(batch sizes, sequence lengths, notes)`` to check besides the export's shape.

    Two batch sizes from :data:`BATCH_CANDIDATES` other than ``export_batch``, unless every input's
    spec fixes axis 0. Two lengths other than the export's T (T // 2, T - 1, T + 3, T + 8 in that
    order: shorter ones first, since a model's position table may end at T), clamped into the
    model's range, unless the model fixes its length or has no token inputs.
    """
    notes: list[str] = []
    specs = [info.input_specs.get(n) for n in vset.feeds]
    if specs and all(s is not None and s.shape and isinstance(s.shape[0], int) for s in specs):
        batches: list[int] = []
        notes.append(f"batch size not varied: the model fixes it at {specs[0].shape[0]}")  # type: ignore[union-attr]
    else:
        batches = [b for b in BATCH_CANDIDATES if b != export_batch][:2]
    full = vset.sequence_length
    lengths: list[int] = []
    if full is not None and vset.fixed_length:
        notes.append(f"sequence length not varied: the model fixes it at {vset.fixed_length}")
    elif full is not None:
        for want in (full // 2, full - 1, full + 3, full + 8):
            size = vset.model_length(want)
            if size >= 2 and size != full and size not in lengths:
                lengths.append(size)
        lengths = lengths[:2]
        if len(lengths) < 2:
            notes.append(f"only {len(lengths)} other sequence length(s) fit the model's range {vset.length_range}")
    return batches, lengths, notes


def probe_source(src_runner: Runner, vset: ValidationSet, info: ModelInfo, export_feeds: Feeds) -> ShapeCheck:
    """Run the source at each planned shape (:func:`plan_sizes`) and keep its outputs.

    Args:
        src_runner: the source model's runner.
        vset: the validation inputs (samples are cycled to fill a batch).
        info: the source's input specs (which axes it fixes).
        export_feeds: the example the export was traced with (its batch size and length; lengths
            are varied at its batch size: a few samples per shape).

    Returns:
        The :class:`ShapeCheck`; a shape the source itself refuses is left out and noted (the
        source model does not take it, so the artifact need not).
    """
    first = next(iter(export_feeds.values()))
    export_batch = int(first.shape[0])
    check = ShapeCheck(export_batch=export_batch, export_length=vset.sequence_length)
    batches, lengths, check.notes = plan_sizes(vset, info, export_batch)
    full = vset.sequence_length
    shapes = [("batch", b, export_batch, full) for b in batches]
    shapes += [("sequence", n, full or 0, n) for n in lengths]
    for axis, size, baked, length in shapes:
        batch = size if axis == "batch" else export_batch
        feeds = vset.shaped(batch, length if full is not None else None)
        try:
            reference = src_runner.infer(feeds)
        except OptkitError:
            raise  # the worker named it (a crash, a sandbox denial)
        except Exception as exc:  # each framework raises its own types for shapes it refuses
            first_line = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
            check.notes.append(f"the source model refuses {axis} {size}: {first_line}")
            continue
        check.probes.append(Probe(axis, size, baked, feeds, reference))
    return check


def check_export_shapes(
    model_path: Path, check: ShapeCheck, vset: ValidationSet, atol: float, rtol: float, threads: int
) -> None:
    """Run the export at every probed shape and compare it with the source there (the export
    check's ``atol`` / ``rtol``, padded positions ignored), collecting every failing shape.

    Raises:
        ExportError: ONNX Runtime refuses a shape, or the outputs differ there: the message names
            the axis, the size tried and the size the export baked.
    """
    failures: list[tuple[Probe, str]] = []
    with OrtRunner(model_path, threads) as runner:
        for probe in check.probes:
            try:
                outputs = runner.infer(probe.feeds)
            except Exception as exc:  # onnxruntime raises its own exception types
                failures.append((probe, f"ONNX Runtime fails: {_first_line(exc)}"))
                continue
            mask = probe.feeds.get("attention_mask")
            try:
                check_close(probe.reference, outputs, atol, rtol, ExportError, HINT, mask)
            except ExportError as exc:
                failures.append((probe, exc.message.removeprefix("the exported model ")))
    if failures:
        baked = sorted({f"{p.axis} {p.baked}" for p, _ in failures})
        raise ExportError(
            f"the export works only at the shape it was traced with ({' and '.join(baked)} baked into the graph): "
            + "; ".join(f"at {p.where(vset)} {why}" for p, why in failures),
            HINT,
        )


def check_final_shapes(runner: Runner, check: ShapeCheck, vset: ValidationSet) -> None:
    """Run the final model at every probed shape: it must run and give the source's output shapes.

    Raises:
        PassError: ONNX Runtime refuses a shape or an output has another shape there (a pass fixed
            a dimension); names the axis and the size.
    """
    failures = []
    for probe in check.probes:
        try:
            outputs = runner.infer(probe.feeds)
        except Exception as exc:  # onnxruntime raises its own exception types
            failures.append(f"at {probe.where(vset)} ONNX Runtime fails: {_first_line(exc)}")
            continue
        for name, ref in probe.reference.items():
            got = outputs.get(name)
            if got is not None and got.shape != ref.shape:
                failures.append(f"at {probe.where(vset)} '{name}' has shape {got.shape}, the source's {ref.shape}")
    if failures:
        raise PassError(
            "the final model does not work at shapes other than the export's: " + "; ".join(failures),
            "a pass fixed a dimension of the graph; remove it or change its settings",
        )


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:240]
