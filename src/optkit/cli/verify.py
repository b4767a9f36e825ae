"""``optkit verify``."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import typer

from optkit.cli.errors import guarded
from optkit.cli.options import (
    JsonOpt,
    RequireSandboxOpt,
    TrustModelCodeOpt,
    TrustPickleOpt,
    TrustRemoteCodeOpt,
    TrustSkopsTypeOpt,
    stderr_console,
)
from optkit.errors import EXIT_APPROVED, EXIT_GATE_FAILED


def verify_command(
    artifact: Path = typer.Argument(..., help="artifact folder written by optkit convert"),
    data: str | None = typer.Option(
        None,
        "--data",
        "-d",
        help="re-run the accuracy gates against the source model on this data (.conll, .txt or .npz)",
    ),
    source: Path | None = typer.Option(
        None, "--source", help="the source model, if not at the manifest's source.path (its sha256 must still match)"
    ),
    trust_pickle: bool = TrustPickleOpt,  # these four apply with --data (the source model is run again)
    trust_remote_code: bool = TrustRemoteCodeOpt,
    trust_model_code: bool = TrustModelCodeOpt,
    trust_skops_types: list[str] = TrustSkopsTypeOpt,
    require_sandbox: bool = RequireSandboxOpt,
    public_key: Path | None = typer.Option(
        None, "--public-key", help="PEM EC public key: model.sig must be a valid signature by its private key"
    ),
    identity: str | None = typer.Option(
        None,
        "--identity",
        help="keyless: the Sigstore identity (e.g. an e-mail or workflow URL) that must have signed model.sig",
    ),
    oidc_issuer: str | None = typer.Option(None, "--oidc-issuer", help="keyless: the OIDC issuer of --identity"),
    strict: bool = typer.Option(
        False, "--strict", help="a skipped gate fails; so do random-input evidence and no accuracy gate evaluated"
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Re-hash every artifact file against manifest.json and check that it was approved; with
    --public-key (or --identity/--oidc-issuer) check that model.sig signs every file; with --data,
    also validate model.onnx against its source model again and evaluate the recipe's accuracy gates.
    An artifact with a serving configuration (session.json, from the tune-session pass) is loaded
    with those ONNX Runtime settings, and revalidated with them.

    Exit codes: 0 verified, 1 a file or gate does not check out, 2 bad input, 3 internal error, 130/143/129 stopped by
    SIGINT/SIGTERM/SIGHUP.
    """
    console = stderr_console()

    def run() -> int:
        from optkit.artifact.verify import verify_artifact

        result = verify_artifact(
            artifact, strict=strict, public_key=public_key, identity=identity, oidc_issuer=oidc_issuer
        )
        problems = list(result.problems)
        sig = result.signature
        console.print(
            f"signature: {sig.status}" + (f" ({sig.reason})" if sig.status == "unchecked" else ""), highlight=False
        )
        if result.serving is not None:
            from optkit.reporting.serving import serving_summary

            console.print(
                f"session: model.onnx loaded with its serving settings ({serving_summary(result.serving)})",
                highlight=False,
            )
        payload: dict = {
            "checked_files": result.checked_files,
            "signature": {"status": sig.status, "reason": sig.reason},
            "serving": result.serving.settings.model_dump() if result.serving is not None else None,
        }
        if data is not None:
            from optkit.artifact.revalidate import revalidate

            console.print(f"… validating {artifact} against its source model on {data}", highlight=False)
            again = revalidate(
                artifact,
                data,
                source=source,
                trust_pickle=trust_pickle,
                trust_remote_code=trust_remote_code,
                trust_model_code=trust_model_code,
                trust_skops_types=tuple(trust_skops_types),
                sandbox="require" if require_sandbox else "auto",
                strict=strict,
            )
            problems += again.problems
            payload["revalidation"] = {
                "ok": again.ok,
                "data": again.data,
                "samples": again.samples,
                "metrics": again.accuracy.metrics if again.accuracy else {},
                "by_padding": again.by_padding,
                "gates": [dataclasses.asdict(g) for g in again.gates],
            }
        for problem in problems:
            console.print(f"[red]✗[/red] {problem}", highlight=False)
        if as_json:
            sys.stdout.write(json.dumps({"ok": not problems, "problems": problems, **payload}, indent=2) + "\n")
        if not problems:
            checked = f" and its accuracy gates hold on {data}" if data is not None else ""
            signed = ", unsigned" if sig.status == "unsigned" else f", signature {sig.status}"
            console.print(
                f"[bold green]PASSED[/bold green] {artifact}: {len(result.checked_files)} files match "
                f"the manifest, approved{signed}{checked}",
                highlight=False,
            )
            return EXIT_APPROVED
        console.print(f"[bold red]FAILED[/bold red] {artifact}: {len(problems)} problem(s)", highlight=False)
        return EXIT_GATE_FAILED

    raise typer.Exit(guarded(run))
