"""Speed verdicts under load: the NER sample's conversions on a quiet machine and beside busy loops.

Usage (after building the sample with sample_models/build_ner_minilm.py)::

    python benchmarks/noisy_neighbour.py [--sample DIR] [--recipes ner-int8,fp32] [--busy 2]
        [--keep DIR] [--set KEY=VALUE ...]

For each recipe, runs the real CLI (``optkit convert MODEL --recipe R --data TEST --json``) twice:
``quiet`` (nothing else started by this script), then ``loaded``, with ``--busy`` processes
(default: one per core this process may use) that each pin themselves to one of those cores
(``os.sched_setaffinity``) and spin in a busy loop for the whole conversion. Reads each run's
manifest (the ``--json`` output) and prints one Markdown row per timed shape: recipe, condition,
shape, speed-up with its 95 % interval, the speed gates' verdicts, the load average and the CPU
share other processes used while the shape was timed (``speed.shapes[].noise``).

Then checks the Done-when of issue 12 for every recipe:

1. **verdicts**: every speed gate of the loaded run has the quiet run's verdict or ``inconclusive``;
2. **intervals**: every loaded shape's interval contains the quiet run's speed-up at that shape, or a
   gate read at that shape is ``inconclusive`` or the shape is ``contended`` (timed while other
   processes took the spare cores: its interval is marked inconclusive in the report);
3. **approvals**: when the loaded run is approved, no passing speed gate rests on a speed-up more
   than 25 % away from the quiet run's at the same shape.

Exit 0 when every check holds, 1 when one fails (each failure is printed), 2 on bad usage or a
conversion that produced no manifest, 130 on Ctrl-C (the finished runs' JSON stays under
``--keep``). Do not run it under ``nice``: it measures. It costs four conversions of the sample:
about 10 minutes on an otherwise idle 2-core machine, far more on a busy one (the first
``ner-int8`` run took 25 minutes at load average 8-10). The loaded runs start busy loops on every
core this process may use: on a machine shared with other jobs they slow those jobs too.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_models" / "ner-minilm"
#: the largest relative distance (|loaded - quiet| / quiet) a passing speed gate may rest on
APPROVAL_TOLERANCE = 0.25
CONDITIONS = ("quiet", "loaded")


# ---------------------------------------------------------------------------- running
def spin(core: int) -> None:
    """A busy loop pinned on ``core`` (the target of each neighbour process; never returns)."""
    os.sched_setaffinity(0, {core})
    while True:
        pass


class Neighbours:
    """``count`` busy-loop processes, the i-th pinned on ``cores[i % len(cores)]``, for a ``with``
    block; each is terminated (by its own handle) and joined on exit."""

    def __init__(self, count: int, cores: list[int]) -> None:
        self.count, self.cores = count, cores
        self.procs: list[multiprocessing.Process] = []

    def __enter__(self) -> Neighbours:
        context = multiprocessing.get_context("fork")  # the child needs nothing but spin()
        for i in range(self.count):
            proc = context.Process(target=spin, args=(self.cores[i % len(self.cores)],), daemon=True)
            proc.start()
            self.procs.append(proc)
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.join(timeout=10)


def convert(model: Path, data: Path, recipe: str, out: Path, extra: list[str]) -> dict[str, Any]:
    """One ``optkit convert ... --json`` in a child process (this worktree's optkit, via
    ``PYTHONPATH``); returns the parsed JSON (``approved``, ``output_dir`` and the manifest's keys).

    Raises:
        RuntimeError: the command printed no JSON manifest (a usage error, a crash).
    """
    command = [sys.executable, "-c", "import sys; from optkit.cli.app import main; main(sys.argv[1:])"]
    command += ["convert", str(model), "--recipe", recipe, "--data", str(data), "-o", str(out), "--json", "--overwrite"]
    command += extra
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    try:
        found = json.loads(done.stdout)
    except json.JSONDecodeError:
        found = None
    if not isinstance(found, dict) or "speed" not in found:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"{recipe}: exit {done.returncode}, no manifest on stdout: {' | '.join(tail)}")
    return found


# ---------------------------------------------------------------------------- reading manifests
@dataclass(frozen=True)
class ShapeRow:
    """One timed shape of one run, as the table shows it.

    Attributes:
        recipe / condition: which run; shape: ``B×S`` (``B`` alone without a token axis).
        ratio / ci_low / ci_high: the speed-up and its 95 % interval (×; None when not computed).
        verdicts: ``{gate threshold: verdict}`` of the speed gates read at this shape.
        load: 1-minute load average before the shape was timed; others_cores: CPU (cores) other
            processes used while it was timed; cores: logical cores of the machine.
    """

    recipe: str
    condition: str
    shape: str
    ratio: float | None
    ci_low: float | None
    ci_high: float | None
    verdicts: dict[float, str]
    load: float | None
    others_cores: float | None
    cores: int | None
    contended: bool = False

    @property
    def inconclusive(self) -> bool:
        """A gate read at this shape is inconclusive, or the shape is *contended* (fewer than 3 of
        its rounds free of other processes' load: its figure decides nothing and the terminal and
        report mark its interval inconclusive); its interval may then miss the quiet figure."""
        return self.contended or "inconclusive" in self.verdicts.values()


def shape_rows(recipe: str, condition: str, manifest: dict[str, Any]) -> list[ShapeRow]:
    """The :class:`ShapeRow` of every timed shape of ``manifest`` (an empty list when the run
    timed nothing)."""
    speed = manifest.get("speed") or {}
    cores = (manifest.get("environment") or {}).get("cpu", {}).get("logical_cores")
    rows = []
    for shape in speed.get("shapes", []):
        est = shape.get("estimate") or {}
        noise = shape.get("noise") or {}
        seq = shape.get("sequence_length")
        rows.append(
            ShapeRow(
                recipe,
                condition,
                f"{shape['batch_size']}×{seq}" if seq else str(shape["batch_size"]),
                est.get("ratio"),
                est.get("ci_low"),
                est.get("ci_high"),
                {float(v["threshold"]): v["verdict"] for v in shape.get("verdicts", [])},
                noise.get("load_before"),
                noise.get("others_cores"),
                cores,
                bool(shape.get("contended")),
            )
        )
    return rows


def speed_gates(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{gate name: gate record}`` of the manifest's speed gates."""
    return {g["name"]: g for g in manifest.get("gates", []) if g.get("kind") == "speed"}


def _gate_shape(name: str) -> str:
    """The shape a speed gate names (``speedup b1 s128 cpu >= 1.2`` → ``1×128``; ``b1`` alone →
    ``1``, matched to the first timed shape of that batch size)."""
    parts = name.split()
    batch = parts[1].removeprefix("b")
    seq = parts[2].removeprefix("s") if len(parts) > 2 and parts[2].startswith("s") else None
    return f"{batch}×{seq}" if seq else batch


def _find(rows: list[ShapeRow], shape: str) -> ShapeRow | None:
    for row in rows:
        if row.shape == shape or row.shape.split("×")[0] == shape:
            return row
    return None


# ---------------------------------------------------------------------------- the checks
def check(recipe: str, quiet: dict[str, Any], loaded: dict[str, Any]) -> list[str]:
    """The Done-when of issue 12 for one recipe (see the module docstring); returns one line per
    failure (empty: every check holds)."""
    failures = []
    quiet_rows, loaded_rows = shape_rows(recipe, "quiet", quiet), shape_rows(recipe, "loaded", loaded)
    quiet_gates, loaded_gates = speed_gates(quiet), speed_gates(loaded)
    for name, gate in loaded_gates.items():
        before = quiet_gates.get(name)
        if before is None:
            failures.append(f"{recipe}: speed gate {name!r} is in the loaded run only")
        elif gate["status"] not in (before["status"], "inconclusive"):
            failures.append(f"{recipe}: {name}: {gate['status']} under load, {before['status']} when quiet")
    for row in loaded_rows:
        base = _find(quiet_rows, row.shape)
        if base is None or base.ratio is None:
            failures.append(f"{recipe} {row.shape}: no quiet speed-up to compare with")
            continue
        if row.inconclusive:
            continue
        if row.ci_low is None or row.ci_high is None or not row.ci_low <= base.ratio <= row.ci_high:
            failures.append(
                f"{recipe} {row.shape}: loaded interval {_interval(row)} misses the quiet speed-up "
                f"{base.ratio:.2f}× and is not marked inconclusive"
            )
    if loaded.get("approved"):
        for name, gate in loaded_gates.items():
            if gate["status"] != "passed":
                continue
            row, base = _find(loaded_rows, _gate_shape(name)), _find(quiet_rows, _gate_shape(name))
            if row is None or base is None or row.ratio is None or base.ratio is None:
                failures.append(f"{recipe}: {name} passed under load without a quiet figure to compare")
                continue
            away = abs(row.ratio - base.ratio) / base.ratio
            if away > APPROVAL_TOLERANCE:
                failures.append(
                    f"{recipe}: approved under load on {name} at {row.ratio:.2f}×, {away:.0%} away from the "
                    f"quiet {base.ratio:.2f}× (more than {APPROVAL_TOLERANCE:.0%})"
                )
    return failures


# ---------------------------------------------------------------------------- the table
HEADER = ["recipe", "condition", "shape", "speed-up", "95 % interval", "verdict", "load (1 min)", "others' CPU"]


def _interval(row: ShapeRow) -> str:
    if row.ci_low is None or row.ci_high is None:
        return "—"
    return f"[{row.ci_low:.2f}, {row.ci_high:.2f}]"


def table_row(row: ShapeRow) -> list[str]:
    """The Markdown cells of one shape (see :data:`HEADER`)."""
    verdicts = ", ".join(f"≥ {t:g}: {v}" for t, v in sorted(row.verdicts.items())) or "no gate"
    if row.contended:
        verdicts += " (contended: inconclusive)"
    if row.others_cores is None:
        others = "—"
    elif row.cores:
        others = f"{row.others_cores:.2f} cores ({row.others_cores / row.cores:.0%})"
    else:
        others = f"{row.others_cores:.2f} cores"
    return [
        row.recipe,
        row.condition,
        row.shape,
        "—" if row.ratio is None else f"{row.ratio:.2f}×",
        _interval(row),
        verdicts,
        "—" if row.load is None else f"{row.load:.2f}",
        others,
    ]


def markdown(rows: Iterator[ShapeRow] | list[ShapeRow]) -> str:
    """The Markdown table of ``rows``."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(table_row(r)) + " |" for r in rows]
    return "\n".join(lines)


def report(runs: dict[str, dict[str, dict[str, Any]]]) -> tuple[str, list[str]]:
    """The table and the failures of ``{recipe: {condition: manifest}}`` (both conditions each)."""
    rows = [r for recipe, by in runs.items() for cond in CONDITIONS for r in shape_rows(recipe, cond, by[cond])]
    failures = [f for recipe, by in runs.items() for f in check(recipe, by["quiet"], by["loaded"])]
    return markdown(rows), failures


# ---------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=Path, default=SAMPLE, help="built NER sample folder (model.pt, data/)")
    parser.add_argument("--recipes", default="ner-int8,fp32", help="comma-separated built-in recipes")
    cores = sorted(os.sched_getaffinity(0))
    parser.add_argument("--busy", type=int, default=len(cores), help="busy-loop processes in the loaded run")
    parser.add_argument("--keep", type=Path, help="keep the artifacts and the JSON here (default: a temporary folder)")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="passed to optkit convert --set")
    args = parser.parse_args(argv)
    model, data = args.sample / "model.pt", args.sample / "data" / "test.conll"
    if not model.is_file() or not data.is_file():
        print(f"no built sample in {args.sample}: run sample_models/build_ner_minilm.py", file=sys.stderr)
        return 2
    extra = [item for value in args.sets for item in ("--set", value)]
    runs: dict[str, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        for recipe in args.recipes.split(","):
            runs[recipe] = {}
            for condition in CONDITIONS:
                out = root / f"{recipe}-{condition}"
                print(
                    f"{recipe}, {condition}{f' ({args.busy} busy loops)' if condition == 'loaded' else ''} …",
                    file=sys.stderr,
                    flush=True,
                )
                try:
                    if condition == "loaded":
                        with Neighbours(args.busy, cores):
                            found = convert(model, data, recipe, out, extra)
                    else:
                        found = convert(model, data, recipe, out, extra)
                except RuntimeError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 2
                except KeyboardInterrupt:  # the neighbours and the conversion are already stopped
                    print(f"interrupted during {recipe}, {condition}", file=sys.stderr)
                    return 130
                runs[recipe][condition] = found
                if args.keep:
                    (root / f"{recipe}-{condition}.json").write_text(json.dumps(found, indent=2), encoding="utf-8")
    table, failures = report(runs)
    print(table)
    print()
    for failure in failures:
        print(f"FAILED: {failure}")
    print("PASSED: every loaded verdict and interval holds" if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
