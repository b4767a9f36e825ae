"""Local runs (no Ray): --jobs 2 then --jobs 1, resume skipping up-to-date items, --force."""

from __future__ import annotations

from conftest import write_plan
from optkit.artifact.verify import verify_artifact
from optkit.batch.plan import load_plan, resolve_items
from optkit.batch.run import run_plan
from optkit.batch.runner_local import LocalRunner


def test_jobs_2_then_resume_with_jobs_1(tiny_items, tmp_path):
    plan_file = write_plan(tmp_path, tiny_items, ["a", "b"])
    items = resolve_items(load_plan(plan_file), tmp_path)
    first = run_plan(items, LocalRunner(jobs=2))
    assert [o.status for o in first.items] == ["approved", "approved"], [o.error for o in first.items]
    for o in first.items:
        assert verify_artifact(tmp_path / "out" / o.name).ok
    again = run_plan(items, LocalRunner(jobs=1))
    assert [o.status for o in again.items] == ["skipped", "skipped"] and again.approved
    changed = write_plan(tmp_path, tiny_items, ["a", "b"], extra=None)  # b's recipe changes below
    text = changed.read_text().replace("name: b", "name: b\n  overrides: {validation.max_samples: 4}")
    changed.write_text(text)
    third = run_plan(resolve_items(load_plan(changed), tmp_path), LocalRunner(jobs=1))
    assert [o.status for o in third.items] == ["skipped", "approved"]
    forced = run_plan(items[:1], LocalRunner(jobs=1), force=True)
    assert forced.items[0].status == "approved"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a", "b"]  # no staging left over


def test_failure_stops_the_plan_unless_keep_going(tiny_items, tmp_path):
    plan_file = write_plan(tmp_path, tiny_items, ["bad", "good"])
    text = plan_file.read_text().replace("name: bad", "name: bad\n  data: /nonexistent/x.npz")
    plan_file.write_text(text)
    items = resolve_items(load_plan(plan_file), tmp_path)
    stopped = run_plan(items, LocalRunner(jobs=1))
    assert [o.status for o in stopped.items] == ["error", "cancelled"]
    assert "data error" in stopped.items[0].error and stopped.items[0].exit_code == 2


def test_a_recipe_target_not_placed_is_a_warning_and_placed_is_not(tiny_items, tmp_path):
    """``optkit convert`` of a recipe naming a target measures here and says so; a run placed on the
    target (``on_target``, set by the Ray runner) does not warn."""
    import dataclasses

    from conftest import FAST
    from optkit.pipeline import run_request
    from optkit.recipe import apply_overrides, load_recipe
    from optkit.request import ConvertRequest

    recipe = apply_overrides(
        load_recipe("fp32"),
        {**FAST, "validation.data": str(tiny_items / "x.npz"), "target": {"resources": {"avx512_vnni": 1}}},
    )
    request = ConvertRequest(source=tiny_items / "tiny0.onnx", recipe=recipe, output=tmp_path / "here")
    here = run_request(request)
    warned = [w for step in here.steps for w in step.warnings if "names a target" in w]
    assert warned and "avx512_vnni" in warned[0] and "optkit batch --ray" in warned[0]
    placed = run_request(dataclasses.replace(request, output=tmp_path / "placed", on_target=True))
    assert not [w for step in placed.steps for w in step.warnings if "names a target" in w]
    assert here.approved and placed.approved


def test_summaries_go_to_the_plan_output_not_beside_an_items_own_output(tiny_items, tmp_path):
    """An item writing to a folder of its own (``output: /elsewhere/a``) must not get the plan's
    summary.json written over a file of the same name in ``/elsewhere``."""
    from typer.testing import CliRunner

    from optkit.cli.app import app

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "summary.json").write_text("the user's own file")
    plan_file = write_plan(tmp_path, tiny_items, ["a"], output=str(elsewhere / "a"))
    result = CliRunner().invoke(app, ["batch", str(plan_file)])
    assert result.exit_code == 0, result.output
    assert (elsewhere / "summary.json").read_text() == "the user's own file"
    assert (tmp_path / "out" / "summary.json").exists() and (elsewhere / "a" / "manifest.json").exists()
