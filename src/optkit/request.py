"""What one conversion is asked to do: :class:`ConvertRequest`, built once by the CLI (or by
:func:`optkit.pipeline.convert` from its keyword arguments) and read by the pipeline.

Its own module, beside :mod:`optkit.results` (what a conversion returns) and below the pipeline, so
that the CLI builds the request without the pipeline's imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from optkit.recipe import Recipe
from optkit.sandbox.client import SandboxMode


@dataclass(frozen=True)
class ConvertRequest:
    """One conversion, every choice made.

    Attributes:
        source: the model file or folder (not yet checked: the pipeline refuses FIFOs, devices and
            missing paths before any work).
        recipe: the resolved recipe, every override (``--set``, flags, ``--data``) already
            applied: it is loaded once, by whoever builds the request.
        output: artifact folder; None = ``optkit-out/<source stem>-<recipe name>``.
        framework: ``"auto"`` (the recipe's ``source.framework``, then detection) or a registry name.
        trust_pickle / trust_remote_code / trust_model_code: see :func:`optkit.pipeline.convert`.
        trust_skops_types: classes from outside scikit-learn (exact names or package prefixes such
            as ``lightgbm``) that a ``.skops`` source may hold (``--trust-skops-type``).
        sandbox: ``"auto"``, ``"require"`` or ``"off"``; ``strict`` implies ``"require"``
            (:attr:`sandbox_mode`).
        overwrite: replace an existing output folder (only an optkit artifact or an empty folder).
        strict: a skipped gate fails the run, so do random-input validation and an unconfined source.
        sign_key: PEM EC private key that signs the artifact, or None.
        sign_keyless: sign with Sigstore (online) instead.
        model_code: ``module:factory`` that builds the ``nn.Module`` a PyTorch state dict loads into
            (``--model-code``; see :mod:`optkit.sources.torch_model_code`), or None.
        on_target: the run was placed on a node that has the recipe's ``target`` (``optkit batch
            --ray`` sets it); without it a recipe that names a target warns that this machine measured.
    """

    source: Path
    recipe: Recipe
    output: Path | None = None
    framework: str = "auto"
    trust_pickle: bool = False
    trust_remote_code: bool = False
    trust_model_code: bool = False
    trust_skops_types: tuple[str, ...] = ()
    sandbox: SandboxMode = "auto"
    overwrite: bool = False
    strict: bool = False
    sign_key: Path | None = None
    sign_keyless: bool = False
    model_code: str | None = None
    on_target: bool = False

    @property
    def sandbox_mode(self) -> SandboxMode:
        """The confinement the worker must get: ``"require"`` under ``strict``, else :attr:`sandbox`."""
        return "require" if self.strict else self.sandbox

    @property
    def output_dir(self) -> Path:
        """:attr:`output`, or the default ``optkit-out/<source stem>-<recipe name>``."""
        return self.output if self.output is not None else Path("optkit-out") / f"{self.source.stem}-{self.recipe.name}"
