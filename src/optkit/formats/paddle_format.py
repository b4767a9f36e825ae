"""Find a PaddlePaddle program and its parameters on disk (no Paddle import).

``paddle.jit.save`` writes a program (the legacy ``.pdmodel`` or the newer PIR ``.json``) with a
``.pdiparams`` file beside it; the static scan and the Paddle source both start from this pair.
"""

from __future__ import annotations

from pathlib import Path

from optkit.errors import SourceModelError

PROGRAM_SUFFIXES = (".pdmodel", ".json")


def program_files(path: Path) -> tuple[Path, Path]:
    """(program file, params file) for a ``.pdmodel``/``.json`` path or a folder holding one pair.

    Raises:
        SourceModelError: no program, or no ``.pdiparams`` beside it.
    """
    if path.is_dir():
        programs = sorted(
            p for p in path.iterdir() if p.suffix in PROGRAM_SUFFIXES and p.with_suffix(".pdiparams").exists()
        )
        if len(programs) != 1:
            raise SourceModelError(
                f"{path} must hold exactly one Paddle program with its .pdiparams",
                "pass the .pdmodel or .json file itself",
            )
        path = programs[0]
    params = path.with_suffix(".pdiparams")
    if not params.is_file():
        raise SourceModelError(
            f"{path} has no parameters file {params.name} beside it", "keep the files paddle.jit.save wrote together"
        )
    return path, params
