"""PaddlePaddle: deny-listed ops in a legacy ``.pdmodel`` (a ``ProgramDesc`` protobuf, parsed with
the ``paddle.base.proto.framework_pb2`` module Paddle ships) or a PIR ``.json`` program.

Every op of every block is checked (sub-blocks of ``conditional_block``/``while`` included; in a
PIR program, every op of every region). Op names are Paddle's operator types
(https://www.paddlepaddle.org.cn/documentation/docs/en/api/paddle/static/save_en.html lists the save
ops; PIR names them ``pd_op.<type>``, written ``"<dialect id>.<type>"`` in the JSON).
"""

from __future__ import annotations

import json
from pathlib import Path

from optkit.errors import SourceModelError
from optkit.scan.report import Finding

DENIED_OPS = frozenset(
    {
        # write tensors to files
        "save",
        "save_combine",
        "save_combine_tensor",
        "save_combine_vocab",
        "checkpoint_notify",
        "recv_save",
        "save_inference_model",
        "sparse_tensor_save",
        # read tensors or data from files
        "load",
        "load_combine",
        "load_combine_vocab",
        "read_file",
        "read",
        "read_from_array_file",
        "create_py_reader",
        "create_double_buffer_reader",
        "open_files",
        "create_custom_reader",
        "data_norm_load",
        "lookup_sparse_table_read",
        "lookup_sparse_table_load",
        "lookup_sparse_table_save",
        "print_file",
        "dequeue",
        "enqueue",
        # run Python
        "py_func",
        "py_layer",
        "pylayer",
        "run_program",
    }
)


def _op_type(name: str) -> str:
    """``"1.save_combine"`` or ``"pd_op.save_combine"`` -> ``"save_combine"``."""
    return name.rsplit(".", 1)[-1]


def scan_pdmodel(path: Path) -> list[Finding]:
    """Findings for the ops of a legacy ``.pdmodel`` ``ProgramDesc``.

    Raises:
        SourceModelError: the file is not a ProgramDesc protobuf.
    """
    from paddle.base.proto import framework_pb2

    program = framework_pb2.ProgramDesc()  # type: ignore[attr-defined, unused-ignore]  # generated protobuf
    try:
        program.ParseFromString(path.read_bytes())
    except Exception as exc:  # protobuf DecodeError, OSError
        raise SourceModelError(
            f"cannot read Paddle program {path}: {exc}",
            "the file may be truncated or corrupt; save it again with paddle.jit.save",
        ) from exc
    return [
        Finding("paddle-op", op.type, str(path), f"block {block.idx}")
        for block in program.blocks
        for op in block.ops
        if op.type in DENIED_OPS
    ]


def scan_pir_json(path: Path) -> list[Finding]:
    """Findings for the ops of a PIR ``.json`` program (every ``ops`` list at any depth).

    Raises:
        SourceModelError: the file is not JSON.
    """
    try:
        program = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SourceModelError(
            f"cannot read Paddle program {path}: {exc}",
            "the file may be truncated or corrupt; save it again with paddle.jit.save",
        ) from exc
    findings: list[Finding] = []
    stack: list = [program]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key == "ops" and isinstance(value, list):
                    findings += [
                        Finding("paddle-op", _op_type(op["#"]), str(path), f"op {op['#']}")
                        for op in value
                        if isinstance(op, dict) and isinstance(op.get("#"), str) and _op_type(op["#"]) in DENIED_OPS
                    ]
                stack.append(value)
        elif isinstance(item, list):
            stack += item
    return findings


def scan_paddle(program: Path) -> list[Finding]:
    """Dispatch on the program's suffix (``.json``: PIR; anything else: ``ProgramDesc``)."""
    return scan_pir_json(program) if program.suffix == ".json" else scan_pdmodel(program)
