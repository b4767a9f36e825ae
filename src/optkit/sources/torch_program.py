"""What a ``torch.export`` program (``.pt2``) declares about its inputs: dtypes, which axes are
fixed and which are dynamic (with the range the program was exported for), read from the program's
placeholder nodes and ``range_constraints``; and the check that names the dimension a batch breaks,
instead of torch's ``Guard failed: input_ids.size()[1] == 32``.

A program exported with ``torch.export.Dim.AUTO`` (or ``dynamic_shapes`` the model's code could not
keep, as an LSTM's sequence axis) specializes those axes to the example's size; the program then
declares them fixed, and data of another size is refused here with the size the program wants.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from optkit.errors import DataError
from optkit.io_spec import Dim, TensorSpec

#: torch dtype name (``str(torch.int64)`` without ``torch.``) → numpy dtype name
NUMPY_DTYPES = {
    "float32": "float32",
    "float64": "float64",
    "float16": "float16",
    "int64": "int64",
    "int32": "int32",
    "int16": "int16",
    "int8": "int8",
    "uint8": "uint8",
    "bool": "bool",
}


@dataclass(frozen=True)
class ProgramInput:
    """One user input of a program.

    Attributes:
        spec: name, numpy dtype and shape; a dynamic axis is named ``batch`` (axis 0), ``sequence``
            (axis 1 of an integer input) or ``dim<i>``.
        ranges: ``{axis: (min, max)}`` for the dynamic axes (``max`` None when unbounded).
    """

    spec: TensorSpec
    ranges: dict[int, tuple[int, int | None]]


def program_inputs(program: Any) -> list[ProgramInput]:
    """The user inputs of ``program`` (a ``torch.export.ExportedProgram``), in call order.

    Raises nothing for a program whose placeholders carry no shape metadata: such inputs get an
    empty shape (unknown), and no check is made on them.
    """
    ranges = getattr(program, "range_constraints", {}) or {}
    user = {s.arg.name for s in program.graph_signature.input_specs if s.kind.name == "USER_INPUT"}
    found = []
    for node in program.graph.nodes:
        if node.op != "placeholder" or node.name not in user:
            continue
        value = node.meta.get("val")
        shape = getattr(value, "shape", None)
        if shape is None:
            found.append(ProgramInput(TensorSpec(node.name, "float32", ()), {}))
            continue
        dtype = NUMPY_DTYPES.get(str(value.dtype).removeprefix("torch."), "float32")
        dims: list[Dim] = []
        axis_ranges: dict[int, tuple[int, int | None]] = {}
        for axis, size in enumerate(shape):
            if isinstance(size, int):
                dims.append(int(size))
                continue
            dims.append(_axis_name(axis, dtype))
            axis_ranges[axis] = _range(ranges, size)
        found.append(ProgramInput(TensorSpec(node.name, dtype, tuple(dims)), axis_ranges))
    return found


def _axis_name(axis: int, dtype: str) -> str:
    if axis == 0:
        return "batch"
    if axis == 1 and dtype.startswith(("int", "uint", "bool")):
        return "sequence"
    return f"dim{axis}"


def _range(ranges: dict, size: Any) -> tuple[int, int | None]:
    """``(min, max)`` of a symbolic size from the program's ``range_constraints`` (``max`` None when
    unbounded); ``(0, None)`` when the program does not say."""
    node = getattr(size, "node", None)
    expr = getattr(node, "expr", None)
    bounds = ranges.get(expr)
    if bounds is None:
        return (0, None)
    low, high = bounds.lower, bounds.upper
    upper = int(high) if getattr(high, "is_Integer", False) or isinstance(high, int) else None  # int_oo: unbounded
    lower = int(low) if getattr(low, "is_Integer", False) or isinstance(low, int) else 0
    return (lower, upper)


def check_feeds(inputs: list[ProgramInput], feeds: dict[str, Any]) -> None:
    """Refuse a batch the program cannot take, naming the input, the axis and the sizes it accepts.

    Args:
        inputs: from :func:`program_inputs`.
        feeds: ``{input name: array}`` (numpy arrays or tensors: only ``.shape`` is read).

    Raises:
        DataError: a rank, a fixed size or a dynamic size outside the exported range differs.
    """
    for item in inputs:
        spec = item.spec
        if not spec.shape or spec.name not in feeds:
            continue
        shape = tuple(feeds[spec.name].shape)
        declared = "(" + ", ".join(str(d) for d in spec.shape) + ")"
        if len(shape) != len(spec.shape):
            raise DataError(
                f"input '{spec.name}' has shape {shape}, but the torch.export program takes rank "
                f"{len(spec.shape)} {declared}",
                "give arrays of the rank the model was exported with",
            )
        for axis, (size, want) in enumerate(zip(shape, spec.shape, strict=True)):
            if isinstance(want, int) and size != want:
                raise DataError(
                    f"input '{spec.name}' axis {axis} is {size}, but the torch.export program fixed it at {want} "
                    f"when it was exported (declared shape {declared})",
                    f"give data with {want} on axis {axis} (pad or truncate), or export again with that axis "
                    "in dynamic_shapes (torch.export.Dim) if the model allows it",
                )
            low, high = item.ranges.get(axis, (0, None))
            floor = 1 if low == 2 else low  # torch.export records ">= 2" for a plain dynamic size, yet runs at 1
            if not isinstance(want, int) and (size < floor or (high is not None and size > high)):
                span = f"{low}..{high}" if high is not None else f">= {low}"
                raise DataError(
                    f"input '{spec.name}' axis {axis} ({want}) is {size}, outside the range {span} the "
                    "torch.export program was exported for",
                    f"give data with {span} on axis {axis}, or export again with a wider torch.export.Dim",
                )
