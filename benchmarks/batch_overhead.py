"""Plan wall time with ``--jobs 1`` vs Ray (a local cluster), and Ray's per-item overhead (task round
trip minus the item's own time, items run one at a time).

    PYTHONPATH=src python benchmarks/batch_overhead.py [--items 4]
    PYTHONPATH=src python benchmarks/batch_overhead.py --plan plans/samples.yaml --overhead-item ner-fp16

The first form times tiny ONNX items; the second a real plan: the named items one at a time on Ray
(the overhead), then every item forced to run on Ray and then with ``--jobs 1``.

Prints a markdown table (docs/benchmarks.md holds a run's figures).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit" / "batch"))

from conftest import build_tiny_onnx, write_plan  # noqa: E402
from optkit.batch.plan import load_plan, resolve_items  # noqa: E402
from optkit.batch.run import run_plan  # noqa: E402
from optkit.batch.runner_local import LocalRunner  # noqa: E402
from optkit.batch.runner_ray import RayRunner  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=4)
    parser.add_argument("--plan", type=Path, help="a real plan file instead of tiny items")
    parser.add_argument("--overhead-item", action="append", default=[], help="with --plan: items timed alone")
    args = parser.parse_args()
    if args.plan:
        real_plan(args.plan, args.overhead_item)
        return
    import ray

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for seed in (0, 1):
            build_tiny_onnx(root, seed)
        np.savez(root / "x.npz", x=np.random.RandomState(1).randn(8, 4).astype(np.float32))
        names = [f"item{i}" for i in range(args.items)]

        def items(tag: str):
            folder = root / tag
            folder.mkdir()
            return resolve_items(load_plan(write_plan(folder, root, names)), folder)

        start = time.perf_counter()
        local = run_plan(items("jobs1"), LocalRunner(1))
        jobs1_s = time.perf_counter() - start
        start = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        init_s = time.perf_counter() - start
        start = time.perf_counter()
        on_ray = run_plan(items("ray"), RayRunner("auto", retries=0))
        ray_s = time.perf_counter() - start
        overheads, item_times = [], []
        for item in items("serial"):  # one at a time: round trip minus the item's own time
            start = time.perf_counter()
            outcome = run_plan([item], RayRunner("auto", retries=0)).items[0]
            overheads.append(time.perf_counter() - start - outcome.seconds)
            item_times.append(outcome.seconds)
        ray.shutdown()
    assert local.approved and on_ray.approved
    item_s = float(np.mean(item_times))
    print(f"| {args.items} tiny items | seconds |")
    print("|---|---:|")
    print(f"| plan, --jobs 1 (in process) | {jobs1_s:.1f} |")
    print(f"| Ray local cluster start (ray.init, num_cpus=2) | {init_s:.1f} |")
    print(f"| plan, Ray (2 CPUs, cluster already up) | {ray_s:.1f} |")
    print(f"| item time inside a Ray task (mean) | {item_s:.2f} |")
    print(f"| Ray per-item overhead (round trip − item, mean of {len(overheads)}) | {np.mean(overheads):.2f} |")
    print(f"| overhead / item time | {100 * np.mean(overheads) / item_s:.1f} % |")


def real_plan(plan_file: Path, alone: list[str]) -> None:
    """Each item in ``alone`` by itself on a local Ray cluster (2 CPUs: Ray's per-item overhead),
    then the whole plan on Ray, then with ``--jobs 1``, every item forced; prints markdown rows as
    each phase ends (a long run stopped midway keeps what it measured)."""
    import ray

    items = resolve_items(load_plan(plan_file), plan_file.parent)
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    print(f"| Ray local cluster start (ray.init, num_cpus=2) | {time.perf_counter() - start:.1f} s |", flush=True)
    for item in (i for i in items if i.name in alone):
        start = time.perf_counter()
        outcome = run_plan([item], RayRunner("auto", retries=0), force=True).items[0]
        over = time.perf_counter() - start - outcome.seconds
        if outcome.error:
            print(f"<!-- {item.name}: {outcome.error} -->", flush=True)
        print(
            f"| {item.name} alone on Ray | item {outcome.seconds:.1f} s ({outcome.status}), round trip − item "
            f"{over:.2f} s = {100 * over / outcome.seconds:.1f} % |",
            flush=True,
        )
    for label, runner in (("Ray (2 CPUs)", RayRunner("auto", retries=0)), ("--jobs 1", LocalRunner(1))):
        start = time.perf_counter()
        result = run_plan(items, runner, force=True, keep_going=True)
        wall = time.perf_counter() - start
        rows = ", ".join(f"{o.name} {o.status} {o.seconds:.0f} s" for o in result.items)
        for o in result.items:
            if o.error:
                print(f"<!-- {o.name}: {o.error} -->", flush=True)
        print(f"| plan on {label} | wall {wall:.1f} s; {rows} |", flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
