"""Resume: an item whose artifact already exists, verifies, and was made from the same source bytes
with the same resolved recipe is skipped (``--force`` runs it again).

The two hashes are computed as the pipeline computes them: the source's sha256 by its framework's
hasher (:attr:`optkit.registry.Framework.hasher`, which reads the files without loading the model),
the recipe's by :meth:`optkit.recipe.Recipe.sha256` of the resolved recipe; the old ones are read
from the existing ``manifest.json`` (``source.sha256``, ``recipe.sha256``).
"""

from __future__ import annotations

from pathlib import Path

from optkit.errors import OptkitError
from optkit.registry import detect_framework, resolve
from optkit.request import ConvertRequest
from optkit.sources.hf_hub import resolve_source


def source_sha256(request: ConvertRequest) -> str:
    """The sha256 the pipeline records as ``source.sha256`` for ``request``'s source.

    Raises:
        OptkitError: the source is missing or of an unknown kind (as the pipeline would refuse it).
    """
    path = resolve_source(request.source)
    requested = request.framework if request.framework != "auto" else request.recipe.source.framework
    framework = detect_framework(path, requested)
    return str(resolve(framework.hasher)(path))


def up_to_date(request: ConvertRequest) -> str | None:
    """Why ``request``'s artifact need not be made again, or None when it must be.

    It need not when ``request.output_dir`` holds an approved optkit artifact that verifies
    (:func:`optkit.artifact.verify.verify_artifact`) and whose manifest names the same source sha256
    and recipe sha256 as the request gives now. Anything else (no folder, a changed source or recipe,
    an edited file, an unreadable manifest, a source that cannot be hashed) means run it.
    """
    from optkit.artifact.verify import read_manifest, verify_artifact

    folder = Path(request.output_dir)
    if not (folder / "manifest.json").is_file():
        return None
    try:
        manifest, _ = read_manifest(folder)
        if not manifest.approved:
            return None
        if manifest.recipe.sha256 != request.recipe.sha256():
            return None
        if manifest.source.sha256 != source_sha256(request):
            return None
        if not verify_artifact(folder, strict=request.strict).ok:
            return None
    except (OptkitError, OSError, ValueError):
        return None
    return f"up to date: {folder} (same source and recipe sha256)"
