"""A real local Ray cluster (``ray.init(num_cpus=2)``, one per module): two tiny items, a worker killed
mid-plan then a re-run that makes exactly the missing item, and an unschedulable target (exit 2)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
from typer.testing import CliRunner

from conftest import write_plan
from optkit.artifact.verify import verify_artifact
from optkit.batch.plan import load_plan, resolve_items
from optkit.batch.run import run_plan
from optkit.batch.runner_ray import RayRunner

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _kill_first_task_worker(stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL the first Ray worker process seen running an item (its title is ``ray::run_item_task``)."""
    import psutil

    while not stop.is_set() and not killed:
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmdline = " ".join(proc.info.get("cmdline") or [])
            if cmdline.startswith("ray::run_item_task"):
                time.sleep(1.0)  # mid-task: the item is loading, converting or validating
                os.kill(proc.info["pid"], signal.SIGKILL)
                killed.append(proc.info["pid"])
                return
        time.sleep(0.1)


def test_killed_worker_then_rerun_yields_every_artifact_once(cluster, tiny_items, tmp_path):
    plan_file = write_plan(tmp_path, tiny_items, ["a", "b"])
    items = resolve_items(load_plan(plan_file), tmp_path)
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_first_task_worker, args=(stop, killed), daemon=True)
    killer.start()
    try:
        first = run_plan(items, RayRunner("auto", retries=0), keep_going=True)
    finally:
        stop.set()
        killer.join()
    assert killed, "no Ray worker ran an item"
    statuses = sorted(o.status for o in first.items)
    assert statuses == ["approved", "error"], [o.error for o in first.items]
    dead = next(o for o in first.items if o.status == "error")
    assert "worker error" in dead.error
    assert not (tmp_path / "out" / dead.name).exists()  # no partial artifact
    second = run_plan(items, RayRunner("auto", retries=0))
    by_name = {o.name: o.status for o in second.items}
    assert by_name[dead.name] == "approved"
    assert sorted(by_name.values()) == ["approved", "skipped"]  # exactly the missing item ran
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a", "b"]  # each once, no staging left
    for name in ("a", "b"):
        assert verify_artifact(tmp_path / "out" / name).ok
    host = second.items[[o.name for o in second.items].index(dead.name)]
    assert host.node_id == ray.get_runtime_context().get_node_id()
    measured = json.loads((tmp_path / "out" / dead.name / "manifest.json").read_text())["environment"]["host"]
    assert measured["ray_node_id"] == host.node_id and "CPUExecutionProvider" in measured["ort_providers"]


def test_unschedulable_target_exits_2_before_any_work(cluster, tiny_items, tmp_path):
    from optkit.cli.app import app

    plan_file = write_plan(tmp_path, tiny_items, ["a"], target={"resources": {"avx512_vnni": 1}})
    result = CliRunner().invoke(app, ["batch", str(plan_file), "--ray", "auto"])
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "out").exists()
