"""``model.sig``: a signature over the whole artifact folder, made and checked with the OpenSSF
``model-signing`` library (https://github.com/sigstore/model-transparency, PyPI ``model-signing``).

What is signed: every file of the folder (``model.onnx``, its external data, ``manifest.json``,
``report.md``, ``session.json`` when the artifact has a serving configuration,
``attestation.intoto.json``) except ``model.sig`` itself, each by path and sha256.
model-signing puts that list in an in-toto statement, signs it in a DSSE envelope and writes a
Sigstore bundle (https://sigstore.github.io/model-transparency/model_signing.html). Unlike the
manifest's digest, which anyone can recompute after editing a file, the signature can only be made
with the private key (or, keyless, by the Sigstore identity), so a re-sealed artifact fails.

Two ways to sign:

* key-based (offline): an elliptic-curve private key in PEM (P-256, P-384 or P-521); verify with
  its public key. An encrypted key's password is read from ``OPTKIT_SIGN_KEY_PASSWORD``.
* keyless (online): Sigstore's Fulcio certificate for an OIDC identity (ambient CI credentials
  where available, else a browser flow), logged in Rekor; verify with the identity and its issuer.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from optkit.errors import OptkitError

SIGNATURE = "model.sig"
PASSWORD_ENV = "OPTKIT_SIGN_KEY_PASSWORD"
SUPPORTED_CURVES = ("secp256r1", "secp384r1", "secp521r1")  # what model-signing accepts
KEYGEN_HINT = (
    "make one with: openssl ecparam -name prime256v1 -genkey -noout -out signing-key.pem && "
    "openssl ec -in signing-key.pem -pubout -out signing-key.pub"
)


class SigningError(OptkitError):
    """A signing or verification key is missing, unreadable or not an elliptic-curve PEM key, the
    signing options contradict each other, or keyless signing failed (exit 2)."""

    kind = "signing error"


@dataclass
class SignatureRecord:
    """What :func:`sign_artifact` signed.

    Attributes:
        path: the signature file (``<folder>/model.sig``).
        method: ``"key"`` or ``"keyless"``.
        files: the signed files, relative to the folder, sorted.
    """

    path: Path
    method: Literal["key", "keyless"]
    files: list[str]


@dataclass
class SignatureCheck:
    """Outcome of :func:`verify_signature`.

    Attributes:
        status: ``"valid"``; ``"invalid"`` (see ``reason``); ``"unsigned"`` (no ``model.sig``); or
            ``"unchecked"`` (signed, but neither a public key nor an identity was given).
        reason: why it is invalid or unchecked (one line), else ``""``.
    """

    status: Literal["valid", "invalid", "unsigned", "unchecked"]
    reason: str = ""


def _hashing_config():
    """model-signing's hashing: one sha256 per file, symlinks refused, nothing ignored but
    ``model.sig`` (not even ``.git*`` files, which model-signing skips by default)."""
    from model_signing import hashing

    return (
        hashing.Config()
        .use_file_serialization(hashing_algorithm="sha256")
        .set_ignored_paths(paths=[SIGNATURE], ignore_git_paths=False)
    )


def _key_bytes(key: Path, what: str) -> bytes:
    if not key.is_file():
        raise SigningError(f"{what} not found: {key}", KEYGEN_HINT)
    try:
        return key.read_bytes()
    except OSError as exc:
        raise SigningError(
            f"cannot read the {what} {key}: {exc.strerror or exc}", "check the file's permissions"
        ) from None


def _check_curve(public_key, key: Path, what: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    if not isinstance(public_key, ec.EllipticCurvePublicKey) or public_key.curve.name not in SUPPORTED_CURVES:
        raise SigningError(f"the {what} {key} is not an elliptic-curve P-256/P-384/P-521 key", KEYGEN_HINT)


def check_sign_key(key: str | Path | None, keyless: bool = False) -> None:
    """Fail fast, before a conversion runs, when the signing options cannot work.

    Raises:
        SigningError: both a key and ``keyless`` were given; the key file is missing or unreadable;
            it is not a PEM private key (or needs a password not in ``OPTKIT_SIGN_KEY_PASSWORD``);
            it is not an elliptic-curve key on a curve model-signing supports.
    """
    if key is not None and keyless:
        raise SigningError("--sign-key and --sign-keyless were both given", "choose one way to sign")
    if key is None:
        return
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    key = Path(key)
    data = _key_bytes(key, "signing key")
    password = os.environ.get(PASSWORD_ENV)
    try:
        private = serialization.load_pem_private_key(data, password.encode() if password else None)
    except TypeError:
        raise SigningError(
            f"the signing key {key} is encrypted and {PASSWORD_ENV} is not set (or is set for an unencrypted key)",
            f"export {PASSWORD_ENV} with the key's password",
        ) from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SigningError(
            f"the signing key {key} is not a PEM private key ({str(exc).splitlines()[0][:80]})", KEYGEN_HINT
        ) from None
    _check_curve(private.public_key(), key, "signing key")


def sign_artifact(folder: Path, key: Path | None = None, *, keyless: bool = False) -> SignatureRecord:
    """Sign every file of ``folder`` with model-signing and write ``folder/model.sig``.

    Args:
        folder: the artifact folder (in the pipeline: the staging folder, before it is published).
        key: a PEM elliptic-curve private key file (key-based, offline signing).
        keyless: sign with Sigstore instead (online, OIDC identity); ``key`` must then be None.

    Returns:
        The :class:`SignatureRecord`.

    Raises:
        SigningError: neither or both of ``key`` and ``keyless``; a bad key (see
            :func:`check_sign_key`); keyless signing failed (no network, no identity token).
        OSError: the signature cannot be written.

    Sources: ``model_signing.signing.Config.use_elliptic_key_signer`` /
    ``use_sigstore_signer`` and ``model_signing.hashing.Config`` (model-signing 1.1 API docs,
    https://sigstore.github.io/model-transparency/model_signing.html).
    """
    from model_signing import signing

    if key is None and not keyless:
        raise SigningError("nothing to sign with", "pass --sign-key KEY.pem or --sign-keyless")
    check_sign_key(key, keyless)
    folder = Path(folder)
    config = signing.Config().set_hashing_config(_hashing_config())
    if keyless:
        try:
            config.use_sigstore_signer(use_ambient_credentials=True).sign(folder, folder / SIGNATURE)
        except Exception as exc:  # sigstore: network (an OSError too), OIDC, Fulcio/Rekor errors of many types
            if isinstance(exc, OSError) and exc.filename:
                raise  # writing model.sig failed: the caller's staging block reports it
            raise SigningError(
                f"keyless signing with Sigstore failed: {type(exc).__name__}: "
                f"{(str(exc).splitlines() or [''])[0][:120]}",
                "keyless signing needs network access and an OIDC identity; or use --sign-key",
            ) from None
    else:
        assert key is not None  # not keyless: checked above
        password = os.environ.get(PASSWORD_ENV)
        # model-signing annotates the password as str but hands it to cryptography, which needs bytes
        config.use_elliptic_key_signer(
            private_key=Path(key),
            password=password.encode() if password else None,  # type: ignore[arg-type]
        ).sign(folder, folder / SIGNATURE)
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != SIGNATURE)
    return SignatureRecord(folder / SIGNATURE, "keyless" if keyless else "key", files)


def verify_signature(
    folder: Path, public_key: Path | None = None, identity: str | None = None, oidc_issuer: str | None = None
) -> SignatureCheck:
    """Check ``folder/model.sig`` against every file of ``folder``.

    With ``public_key`` (PEM) the signature must have been made by its private key; with
    ``identity`` and ``oidc_issuer`` it must be a Sigstore signature by that identity. Any file
    added, removed or changed since signing, a symlink, a tampered or truncated signature, or another
    signer gives ``"invalid"`` with the reason.

    Returns:
        A :class:`SignatureCheck`: ``"unsigned"`` when there is no ``model.sig``; ``"unchecked"``
        when there is one but nothing to check it with.

    Raises:
        SigningError: both ``public_key`` and ``identity``; ``identity`` without ``oidc_issuer`` (or
            the reverse); the public key file is missing, unreadable or not an EC PEM public key.

    Sources: ``model_signing.verifying.Config.use_elliptic_key_verifier`` /
    ``use_sigstore_verifier`` (model-signing 1.1 API docs).
    """
    public_key = _check_verify_options(public_key, identity, oidc_issuer)
    folder = Path(folder)
    signature = folder / SIGNATURE
    if not signature.exists() and not signature.is_symlink():
        return SignatureCheck("unsigned")
    if signature.is_symlink() or not signature.is_file():
        return SignatureCheck("invalid", f"{SIGNATURE} is not a regular file")
    if public_key is None and identity is None:
        return SignatureCheck("unchecked", "signed, but no --public-key or --identity to check it with")
    from model_signing import verifying

    config = verifying.Config().set_hashing_config(_hashing_config())
    try:
        if public_key is not None:
            config.use_elliptic_key_verifier(public_key=public_key)
        else:
            assert identity is not None and oidc_issuer is not None  # _check_verify_options: both or neither
            config.use_sigstore_verifier(identity=identity, oidc_issuer=oidc_issuer)
        config.verify(folder, signature)
    except Exception as exc:  # any failure to verify means not verified: bad bundle, key, digest, file
        return SignatureCheck("invalid", _reason(exc))
    return SignatureCheck("valid")


def _reason(exc: Exception) -> str:
    """One readable line from a model-signing failure (its digest mismatch lists ``Digest`` reprs)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    changed = re.findall(r"Hash mismatch for \\?'([^'\\]+)", text)
    others = re.findall(r"((?:Extra|Missing) files (?:found )?in model [^:]*: [^\"'\]]+)", text)
    if changed or others:
        parts = [f"changed since signing: {', '.join(changed)}"] if changed else []
        return "; ".join(parts + others)[:300]
    return text[:300]


def _check_verify_options(public_key: Path | None, identity: str | None, oidc_issuer: str | None) -> Path | None:
    if public_key is not None and (identity is not None or oidc_issuer is not None):
        raise SigningError(
            "--public-key and --identity/--oidc-issuer were both given",
            "check a key-based signature with --public-key, a keyless one with --identity",
        )
    if (identity is None) != (oidc_issuer is None):
        raise SigningError(
            "--identity and --oidc-issuer go together",
            "e.g. --identity you@example.com --oidc-issuer https://github.com/login/oauth",
        )
    if public_key is None:
        return None
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    public_key = Path(public_key)
    data = _key_bytes(public_key, "public key")
    try:
        loaded = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise SigningError(
            f"the public key {public_key} is not a PEM public key",
            "derive it from the signing key: openssl ec -in signing-key.pem -pubout -out signing-key.pub",
        ) from None
    _check_curve(loaded, public_key, "public key")
    return public_key
