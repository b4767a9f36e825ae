"""Signed approvals: model.sig (model-signing) over the whole artifact; a re-sealed forgery fails."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import onnx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from typer.testing import CliRunner

from optkit.artifact.attestation import ATTESTATION, PREDICATE_TYPE, STATEMENT_TYPE, write_attestation
from optkit.artifact.manifest import Manifest, file_entries, seal
from optkit.artifact.signing import SIGNATURE, SigningError, check_sign_key, sign_artifact, verify_signature
from optkit.artifact.verify import verify_artifact
from optkit.cli.app import app

runner = CliRunner()
FAST_FLAGS = [
    "--batch-sizes",
    "1",
    "--sequence-lengths",
    "16",
    "--set",
    "benchmark.iterations=3",
    "--set",
    "benchmark.warmup=1",
    "--set",
    "benchmark.gates=[]",
]


def _write_pair(folder: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / f"{name}.pem", folder / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    private, public = _write_pair(folder, "signing")
    _, other_public = _write_pair(folder, "other")
    return {"private": private, "public": public, "other_public": other_public, "dir": folder}


@pytest.fixture(scope="module")
def signed(tiny, keys, tmp_path_factory):
    """The CLI end to end: optkit convert --sign-key."""
    out = tmp_path_factory.mktemp("signed") / "art"
    done = runner.invoke(
        app,
        [
            "convert",
            str(tiny["pt"]),
            "--recipe",
            "ner-int8",
            "--data",
            str(tiny["conll"]),
            "-o",
            str(out),
            "--sign-key",
            str(keys["private"]),
            *FAST_FLAGS,
        ],
    )
    assert done.exit_code == 0, done.output
    return out


@pytest.fixture
def copy(signed, tmp_path):
    target = tmp_path / "art"
    shutil.copytree(signed, target)
    return target


def forge(folder: Path, model_bytes: bytes) -> None:
    """What a forger does: replace model.onnx, put its hash in the manifest, rewrite the attestation
    to match and recompute the manifest's digest exactly as seal() does."""
    (folder / "model.onnx").write_bytes(model_bytes)
    data = json.loads((folder / "manifest.json").read_text())
    data["files"].update({k: v.model_dump() for k, v in file_entries(folder, ["model.onnx"]).items()})
    write_attestation(folder, Manifest.model_validate(data))
    data["files"].update({k: v.model_dump() for k, v in file_entries(folder, [ATTESTATION]).items()})
    (folder / "manifest.json").write_text(seal(Manifest.model_validate(data)))


def other_model(folder: Path) -> bytes:
    model = onnx.load(str(folder / "model.onnx"))
    model.doc_string = "forged"
    return model.SerializeToString()


def test_signed_artifact_is_valid_and_signs_every_file(copy, keys):
    manifest = json.loads((copy / "manifest.json").read_text())
    assert ATTESTATION in manifest["files"] and SIGNATURE not in manifest["files"]
    assert (copy / SIGNATURE).is_file()
    result = verify_artifact(copy, strict=True, public_key=keys["public"])
    assert result.ok, result.problems
    assert result.signature.status == "valid"
    statement = json.loads(base64.b64decode(json.loads((copy / SIGNATURE).read_text())["dsseEnvelope"]["payload"]))
    signed_names = {item["name"] for item in statement["predicate"]["resources"]}
    assert signed_names == {"model.onnx", "report.html", "report.md", "manifest.json", ATTESTATION}


def test_attestation_is_an_in_toto_statement_of_the_approval(copy):
    manifest = json.loads((copy / "manifest.json").read_text())
    statement = json.loads((copy / ATTESTATION).read_text())
    assert statement["_type"] == STATEMENT_TYPE and statement["predicateType"] == PREDICATE_TYPE
    assert statement["subject"] == [
        {"name": n, "digest": {"sha256": manifest["files"][n]["sha256"]}}
        for n in ("model.onnx", "report.html", "report.md")
    ]
    predicate = statement["predicate"]
    assert predicate["approved"] is True and predicate["source"]["sha256"] == manifest["source"]["sha256"]
    assert predicate["recipe"] == {"name": "ner-int8", "sha256": manifest["recipe"]["sha256"]}
    assert [g["name"] for g in predicate["gates"]] == [g["name"] for g in manifest["gates"]]
    assert all(g["status"] == "passed" and g["threshold"] is not None for g in predicate["gates"])


def test_forged_resealed_artifact_fails_with_the_key(copy, keys):
    forge(copy, other_model(copy))
    by_hash = verify_artifact(copy)
    assert by_hash.ok and by_hash.signature.status == "unchecked"  # a digest only catches accidents
    forged = verify_artifact(copy, public_key=keys["public"])
    assert not forged.ok and forged.signature.status == "invalid"
    assert any(p.startswith("signature invalid:") and "model.onnx" in p for p in forged.problems), forged.problems
    cli = runner.invoke(app, ["verify", str(copy), "--public-key", str(keys["public"])])
    assert cli.exit_code == 1 and "signature invalid" in cli.output


def test_forgery_without_the_signature_fails_with_the_key(copy, keys):
    forge(copy, other_model(copy))
    (copy / SIGNATURE).unlink()
    cli = runner.invoke(app, ["verify", str(copy)])
    assert cli.exit_code == 0 and "signature: unsigned" in cli.output
    for flags in (["--public-key", str(keys["public"])], ["--strict", "--public-key", str(keys["public"])]):
        cli = runner.invoke(app, ["verify", str(copy), *flags])
        assert cli.exit_code == 1 and "unsigned" in cli.output


def test_wrong_public_key_is_invalid(copy, keys):
    check = verify_signature(copy, keys["other_public"])
    assert check.status == "invalid" and "key" in check.reason.lower()
    assert runner.invoke(app, ["verify", str(copy), "--public-key", str(keys["other_public"])]).exit_code == 1


def test_tampered_signature_is_invalid(copy, keys):
    bundle = json.loads((copy / SIGNATURE).read_text())
    raw = bytearray(base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"]))
    raw[-1] ^= 1
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()
    (copy / SIGNATURE).write_text(json.dumps(bundle))
    assert verify_signature(copy, keys["public"]).status == "invalid"
    (copy / SIGNATURE).write_text((copy / SIGNATURE).read_text()[:100])  # truncated
    assert verify_signature(copy, keys["public"]).status == "invalid"


def test_signature_over_other_files_is_invalid(copy, keys, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.onnx").write_bytes(b"another model")
    sign_artifact(other, keys["private"])
    shutil.copy(other / SIGNATURE, copy / SIGNATURE)
    check = verify_signature(copy, keys["public"])
    assert check.status == "invalid" and "model.onnx" in check.reason
    assert not verify_artifact(copy, public_key=keys["public"]).ok


def test_file_added_after_signing_is_invalid(copy, keys):
    (copy / "notes.txt").write_text("added")
    check = verify_signature(copy, keys["public"])
    assert check.status == "invalid" and "notes.txt" in check.reason


def test_unsigned_artifact_passes_by_hash_but_not_strict_with_a_key(copy, keys):
    (copy / SIGNATURE).unlink()
    result = verify_artifact(copy)
    assert result.ok and result.signature.status == "unsigned"
    cli = runner.invoke(app, ["verify", str(copy), "--json"])
    assert cli.exit_code == 0
    payload = json.loads(cli.stdout[cli.stdout.index("{") :])
    assert payload["signature"]["status"] == "unsigned"
    strict = runner.invoke(app, ["verify", str(copy), "--strict", "--public-key", str(keys["public"])])
    assert strict.exit_code == 1 and "unsigned" in strict.output


def test_json_reports_a_valid_signature(copy, keys):
    cli = runner.invoke(app, ["verify", str(copy), "--json", "--public-key", str(keys["public"])])
    assert cli.exit_code == 0, cli.output
    payload = json.loads(cli.stdout[cli.stdout.index("{") :])
    assert payload["ok"] and payload["signature"] == {"status": "valid", "reason": ""}
    assert "signature: valid" in cli.output


def _last_line_exit_2(done, *words):
    assert done.exit_code == 2, done.output
    lines = done.output.strip().splitlines()
    assert "Traceback" not in done.output and lines[-1].startswith("signing error:")
    assert all(w in lines[-1] for w in words), lines[-1]


def test_bad_signing_key_exit_2_one_line_before_converting(tiny, keys, tmp_path):
    rsa_key = tmp_path / "rsa.pem"
    rsa_key.write_bytes(
        rsa.generate_private_key(65537, 2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    for key, words in (
        (tmp_path / "missing.pem", ["missing.pem", "openssl"]),
        (keys["public"], ["signing.pub"]),
        (rsa_key, ["rsa.pem", "elliptic-curve"]),
    ):
        done = runner.invoke(
            app, ["convert", str(tiny["pt"]), "--recipe", "ner-int8", "-o", str(tmp_path / "o"), "--sign-key", str(key)]
        )
        _last_line_exit_2(done, *words)
        assert "load source" not in done.output and not (tmp_path / "o").exists()
    with pytest.raises(SigningError, match="both"):
        check_sign_key(keys["private"], keyless=True)


def test_encrypted_key_needs_its_password(tmp_path, monkeypatch):
    key = tmp_path / "enc.pem"
    key.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    monkeypatch.delenv("OPTKIT_SIGN_KEY_PASSWORD", raising=False)
    with pytest.raises(SigningError, match="OPTKIT_SIGN_KEY_PASSWORD"):
        check_sign_key(key)
    monkeypatch.setenv("OPTKIT_SIGN_KEY_PASSWORD", "s3cret")
    (tmp_path / "art").mkdir()
    (tmp_path / "art" / "model.onnx").write_bytes(b"m")
    assert sign_artifact(tmp_path / "art", key).files == ["model.onnx"]


def test_bad_verify_options_exit_2_one_line(copy, keys):
    _last_line_exit_2(runner.invoke(app, ["verify", str(copy), "--public-key", str(keys["private"])]), "signing.pem")
    _last_line_exit_2(
        runner.invoke(app, ["verify", str(copy), "--public-key", str(keys["dir"] / "nope.pub")]), "nope.pub"
    )
    _last_line_exit_2(runner.invoke(app, ["verify", str(copy), "--identity", "me@example.com"]), "--oidc-issuer")


def test_keyless_failure_is_one_line(tmp_path, monkeypatch):
    from model_signing import signing

    def offline(self, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(signing.Config, "use_sigstore_signer", offline)
    (tmp_path / "model.onnx").write_bytes(b"m")
    with pytest.raises(SigningError, match="keyless signing with Sigstore failed: ConnectionError"):
        sign_artifact(tmp_path, keyless=True)
    assert not (tmp_path / SIGNATURE).exists()
