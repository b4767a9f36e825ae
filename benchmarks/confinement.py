"""Cost of confining the source model: the main job end to end, with the Landlock sandbox on and off.

Usage (after building the sample with sample_models/build_ner_minilm.py)::

    python benchmarks/confinement.py [--rounds 2] [--recipe ner-int8] [--model PT --data CONLL]

Each round runs ``optkit convert`` (the real CLI, a fresh process) twice on the same model, data
and recipe: once confined (the default) and once with ``OPTKIT_SANDBOX=off`` (the same worker
process, no Landlock rules), in alternating order so that a machine that gets busier or quieter
during the run weighs on both. Both runs use the worker process; "off" removes only the
confinement. Prints a Markdown table of wall times (s) per round, the medians and their ratio;
writes nothing else (artifacts go to a temporary folder).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from runs import print_table

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_models" / "ner-minilm"


def run_once(model: Path, data: Path, recipe: str, out: Path, confined: bool) -> float:
    """Wall time (s) of one ``optkit convert``; exits if it fails."""
    env = {**os.environ}
    if confined:
        env.pop("OPTKIT_SANDBOX", None)
    else:
        env["OPTKIT_SANDBOX"] = "off"
    command = [
        sys.executable,
        "-m",
        "optkit.cli.app",
        "convert",
        str(model),
        "--recipe",
        recipe,
        "--data",
        str(data),
        "-o",
        str(out),
        "--overwrite",
        "--json",
    ]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode not in (0, 1):
        sys.exit(f"optkit convert failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--recipe", default="ner-int8")
    parser.add_argument("--model", type=Path, default=SAMPLE / "model.pt")
    parser.add_argument("--data", type=Path, default=SAMPLE / "data" / "test.conll")
    args = parser.parse_args()
    times: dict[bool, list[float]] = {True: [], False: []}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.rounds):
            order = (True, False) if index % 2 == 0 else (False, True)
            for confined in order:
                wall = run_once(args.model, args.data, args.recipe, Path(tmp) / "out", confined)
                times[confined].append(wall)
                print(f"round {index + 1}: {'confined' if confined else 'off'} {wall:.1f} s", flush=True)
            rows.append(
                [
                    str(index + 1),
                    f"{times[True][-1]:.1f}",
                    f"{times[False][-1]:.1f}",
                    f"{times[True][-1] / times[False][-1]:.3f}",
                ]
            )
    on, off = statistics.median(times[True]), statistics.median(times[False])
    rows.append(["median", f"{on:.1f}", f"{off:.1f}", f"{on / off:.3f}"])
    print_table(["round", f"confined {args.recipe} (s)", "sandbox off (s)", "confined / off"], rows)


if __name__ == "__main__":
    main()
