"""``optkit convert``."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from optkit.cli.errors import guarded
from optkit.cli.options import (
    JsonOpt,
    RecipeOpt,
    RequireSandboxOpt,
    StrictOpt,
    TrustModelCodeOpt,
    TrustPickleOpt,
    TrustRemoteCodeOpt,
    TrustSkopsTypeOpt,
    parse_int_list,
    parse_sets,
    stderr_console,
)
from optkit.cli.render import Progress, render_result
from optkit.errors import EXIT_APPROVED, EXIT_GATE_FAILED


@contextmanager
def stdout_to_stderr(enabled: bool) -> Iterator[None]:
    """Send file descriptor 1 to stderr while the pipeline runs, so that native libraries that print
    (Paddle, TensorFlow) cannot corrupt the JSON written to stdout afterwards."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def convert_command(
    source: Path = typer.Argument(
        ...,
        help="model file or folder: .pt/.pt2/HF folder or a Hugging Face model id org/name (PyTorch), "
        ".keras/SavedModel, .skops, Paddle .json/.pdmodel, .onnx",
    ),
    recipe: str = RecipeOpt,
    output: Path | None = typer.Option(
        None, "--output", "-o", help="artifact folder [default: optkit-out/<model>-<recipe>]"
    ),
    data: str | None = typer.Option(
        None, "--data", "-d", help="validation data: .conll, .txt, .npz, or a folder of images or sound files"
    ),
    opset: int | None = typer.Option(None, "--opset", min=9, max=21, help="override export.opset (9-21)"),
    batch_sizes: str | None = typer.Option(None, "--batch-sizes", help="override benchmark.batch_sizes, e.g. 1,8"),
    sequence_lengths: str | None = typer.Option(None, "--sequence-lengths", help="override benchmark.sequence_lengths"),
    threads: int | None = typer.Option(None, "--threads", min=1, help="override runtime.threads (all runners)"),
    max_samples: int | None = typer.Option(None, "--max-samples", min=1, help="override validation.max_samples"),
    calibration_data: str | None = typer.Option(
        None, "--calibration-data", help="calibration data for quantize-static passes (.npz)"
    ),
    search_budget: float | None = typer.Option(
        None,
        "--search-budget",
        min=0.001,
        help="seconds for accuracy-aware int8 searches and the fp16 "
        "overflow check (sets search_budget_s on those passes)",
    ),
    sets: list[str] = typer.Option([], "--set", help="override any recipe field: KEY=VALUE (repeatable)"),
    framework: str = typer.Option("auto", "--framework", help="source framework; auto-detected by default"),
    model_code: str | None = typer.Option(
        None,
        "--model-code",
        help="for a PyTorch state dict: module:factory, your code that builds the nn.Module "
        "(a .py path or a dotted module from the current folder; weights load with weights_only=True)",
    ),
    trust_pickle: bool = TrustPickleOpt,
    trust_remote_code: bool = TrustRemoteCodeOpt,
    trust_model_code: bool = TrustModelCodeOpt,
    trust_skops_types: list[str] = TrustSkopsTypeOpt,
    require_sandbox: bool = RequireSandboxOpt,
    overwrite: bool = typer.Option(
        False, "--overwrite", help="replace an existing output folder (only an optkit artifact or an empty folder)"
    ),
    strict: bool = StrictOpt,
    as_json: bool = JsonOpt,
    junit_xml: Path | None = typer.Option(None, "--junit-xml", help="write one JUnit test case per gate"),
    report_dir: Path | None = typer.Option(
        None, "--report-dir", help="also write report.html and report.md here, approved or not (created if missing)"
    ),
    summary_md: Path | None = typer.Option(
        None, "--summary-md", help="write a short Markdown summary (e.g. to $GITHUB_STEP_SUMMARY)"
    ),
    sign_key: Path | None = typer.Option(None, "--sign-key", help="PEM EC private key: sign the artifact (model.sig)"),
    sign_keyless: bool = typer.Option(False, "--sign-keyless", help="sign with Sigstore (online, OIDC identity)"),
) -> None:
    """Convert a model with a recipe, validate it against its source framework, emit the approved artifact.

    Exit codes: 0 approved, 1 a gate failed, 2 bad input or usage, 3 internal error, 130/143/129 stopped by
    SIGINT/SIGTERM/SIGHUP.
    """
    console = stderr_console()

    def run() -> int:
        from optkit.pipeline import run_request
        from optkit.recipe import apply_overrides, flag_overrides, load_recipe, pass_override_keys, searches
        from optkit.request import ConvertRequest

        if junit_xml is not None:  # before any work: a report that cannot be written fails now
            from optkit.artifact.junit import check_junit_path

            check_junit_path(junit_xml)
        if report_dir is not None or summary_md is not None:
            from optkit.artifact.report_files import check_report_dir, check_summary_path

            if report_dir is not None:
                check_report_dir(report_dir)
            if summary_md is not None:
                check_summary_path(summary_md)
        overrides = parse_sets(sets)
        for key, value in (  # the flags win over a --set of the same field
            ("export.opset", opset),
            ("runtime.threads", threads),
            ("validation.max_samples", max_samples),
            ("benchmark.batch_sizes", parse_int_list(batch_sizes, "--batch-sizes")),
            ("benchmark.sequence_lengths", parse_int_list(sequence_lengths, "--sequence-lengths")),
            ("validation.data", data),
        ):
            if value is not None:
                overrides[key] = value
        chosen = load_recipe(recipe, overrides)  # the one load: --set and the flags above applied
        flags = {}
        if calibration_data is not None:
            flags.update(
                flag_overrides(
                    chosen,
                    "--calibration-data",
                    "calibration_data",
                    calibration_data,
                    lambda c: c.type == "quantize-static",
                    "quantize-static pass",
                )
            )
        if search_budget is not None:
            flags.update(
                flag_overrides(
                    chosen,
                    "--search-budget",
                    "search_budget_s",
                    search_budget,
                    searches,
                    "pass that searches (quantize-dynamic with search: accuracy-aware, quantize-static with "
                    "search: true, or fp16 with auto_block)",
                )
            )
        named = pass_override_keys(chosen, overrides)  # a --set of the same pass field wins over these flags
        pass_flags = {key: value for key, value in flags.items() if key not in named}
        if pass_flags:
            chosen = apply_overrides(chosen, pass_flags)  # the Recipe object again, no second file read
        console.print(f"[bold]optkit convert[/bold] {source} --recipe {recipe}", highlight=False)

        def write_outputs(result) -> None:  # before the artifact is published: a failure publishes nothing
            if junit_xml is not None:
                from optkit.artifact.junit import write_junit

                write_junit(junit_xml, result.recipe.name, result.gates, result.strict)
            if report_dir is not None or summary_md is not None:
                from optkit.artifact.report_files import write_report_dir, write_summary

                page = write_report_dir(report_dir, result) if report_dir is not None else None
                if summary_md is not None:
                    assert result.manifest is not None  # set before the artifact is published
                    folder = request.output_dir if result.approved else None
                    if page is None and folder is not None:
                        page = folder / "report.html"
                    write_summary(summary_md, result.manifest, folder, page)

        request = ConvertRequest(
            source=source,
            recipe=chosen,
            output=output,
            framework=framework,
            trust_pickle=trust_pickle,
            trust_remote_code=trust_remote_code,
            trust_model_code=trust_model_code,
            trust_skops_types=tuple(trust_skops_types),
            sandbox="require" if require_sandbox else "auto",
            overwrite=overwrite,
            strict=strict,
            sign_key=sign_key,
            sign_keyless=sign_keyless,
            model_code=model_code,
        )
        with stdout_to_stderr(as_json):
            result = run_request(request, progress=Progress(console), before_publish=write_outputs)
        render_result(console, result)
        if as_json:
            sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        return EXIT_APPROVED if result.approved else EXIT_GATE_FAILED

    raise typer.Exit(guarded(run))
