"""A source model loaded in a :class:`~optkit.sandbox.client.SourceWorker`: what the pipeline
needs of it (its facts, the reference runner, the export), with everything the worker hands back
checked before optkit uses it (see :mod:`optkit.sandbox.arrays`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optkit.errors import DataError, SourceModelError
from optkit.io_spec import ModelInfo, info_from_dict
from optkit.pass_context import PassOutcome
from optkit.recipe import ExportConfig
from optkit.runners.base import Feeds, Runner
from optkit.sandbox.arrays import copy_worker_file, read_outputs
from optkit.sandbox.client import SourceWorker
from optkit.sandbox.protocol import WorkerCallError

#: where the worker writes the export, relative to its scratch folder (never a path it chooses)
EXPORT = "export/00-export.onnx"
#: the files optkit copies out of a tokenizer or processor folder the worker extracted: data only
#: (the tokenizer's, the image processor's or feature extractor's JSON), never code
TOKENIZER_FILES = frozenset(
    {
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "vocab.txt",
        "vocab.json",
        "merges.txt",
        "added_tokens.json",
        "spiece.model",
        "tokenizer.model",
        "sentencepiece.bpe.model",
        "config.json",
        "preprocessor_config.json",
    }
)
#: keys of the exporter's details that go into the manifest (anything else the worker sends is dropped)
EXPORT_DETAILS = frozenset(
    {
        "exporter",
        "opset",
        "source_kind",
        "dynamic_axes",
        "nodes",
        "exporter_warnings",
        "input_dtype",
        "estimator",
        "tree_model",
        "source_external_data",
        "external_data",
        "opset_note",
        "task",
        "string_normalizer_locale",
    }
)


@dataclass
class WorkerSource:
    """A source model loaded in a :class:`SourceWorker`.

    Attributes:
        path: the file or folder the user gave.
        framework / kind: registry key and on-disk format (from the worker's loader).
        info: the model's names, task and config (tokenizer files copied out of the worker).
        versions: framework package versions, for the manifest.
        load_seconds: the loader's wall time in the worker (s).
        scan: the static scan's report (see :mod:`optkit.scan`).
        hasher: ``(path) -> sha256 hex``, the framework's hasher (runs here, loads nothing).
    """

    worker: SourceWorker
    path: Path
    framework: str
    kind: str
    info: ModelInfo
    versions: dict[str, str]
    load_seconds: float
    scan: dict[str, Any]
    hasher: Callable[[Path], str]

    def framework_versions(self) -> dict[str, str]:
        """Versions of the framework packages the worker used."""
        return {str(k): str(v) for k, v in self.versions.items()}

    def sha256(self) -> str:
        """The source's sha256, computed here (without loading it) by the framework's hasher."""
        return self.hasher(self.path)

    def runner(self, threads: int, device: str = "cpu") -> WorkerRunner:
        """The reference runner, executing in the worker."""
        return WorkerRunner(self.worker, threads, device)

    def device_missing(self, device: str) -> str | None:
        """Why the source's framework cannot run on ``device`` here, or None."""
        reason = self.worker.call("device_missing", device=device).get("reason")
        return None if reason is None else str(reason)[:300]

    def traits(self) -> dict[str, Any]:
        """The loaded model's facts that explain an export mismatch (see
        :meth:`~optkit.sources.base.SourceModel.traits`), from the worker; only JSON scalars are kept."""
        traits = self.worker.field(self.worker.call("traits"), "traits", dict)
        return {str(k)[:40]: v for k, v in traits.items() if isinstance(v, (bool, int, float, str))}

    def export(self, example: Feeds, config: ExportConfig, out_path: Path, threshold_mb: float) -> PassOutcome:
        """Export to ONNX in the worker, then copy the model (and its one external data file) into
        ``out_path``, a file of optkit's own.

        Raises:
            ExportError: the exporter failed (raised in the worker).
            SourceModelError: the worker's model is not a regular file in its folder, or refers to
                external data other than its own ``.data`` file.
        """
        answer = self.worker.call(
            "export",
            example=self.worker.inputs.write(example),
            config=config.model_dump(mode="json"),
            threshold_mb=threshold_mb,
        )
        copy_worker_file(self.worker.scratch, EXPORT, out_path)
        locations = _external_locations(out_path)
        if locations - {Path(EXPORT).name + ".data"}:
            raise SourceModelError(
                f"the exported model refers to external data {sorted(locations)}, not its own {Path(EXPORT).name}.data",
                "a hostile or broken exporter; optkit does not follow it",
            )
        if locations:
            copy_worker_file(self.worker.scratch, EXPORT + ".data", out_path.with_name(out_path.name + ".data"))
        details = self.worker.field(answer, "details", dict)
        warnings = self.worker.field(answer, "warnings", list)
        kept = {k: v for k, v in details.items() if k in EXPORT_DETAILS}
        skipped = answer.get("skipped")
        return PassOutcome(out_path, kept, [str(w)[:300] for w in warnings], str(skipped) if skipped else None)


def _external_locations(model: Path) -> set[str]:
    """The ``location`` of every external-data tensor of ``model`` (read without loading the data).

    Raises:
        SourceModelError: the file is not an ONNX model.
    """
    import onnx
    from onnx.external_data_helper import _get_all_tensors

    try:
        proto = onnx.load(str(model), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise SourceModelError(
            f"the exporter wrote no readable ONNX model ({str(exc).splitlines()[0][:200]})", "try another --opset"
        ) from exc
    return {
        entry.value
        for tensor in _get_all_tensors(proto)
        if tensor.data_location == onnx.TensorProto.EXTERNAL
        for entry in tensor.external_data
        if entry.key == "location"
    }


def load_source(
    worker: SourceWorker,
    framework: Any,
    path: Path,
    threads: int,
    *,
    trust_pickle: bool = False,
    trust_remote_code: bool = False,
    trust_model_code: bool = False,
    trust_skops_types: tuple[str, ...] = (),
    model_code: dict[str, Any] | None = None,
) -> WorkerSource:
    """Scan and load ``path`` in ``worker`` with ``framework``'s loader.

    Args:
        framework: the :class:`~optkit.registry.Framework` (its hasher runs here, its loader in the worker).
        trust_skops_types: ``--trust-skops-type`` values (classes from outside scikit-learn a
            ``.skops`` file may hold); sent only when given (a UsageError for other frameworks).
        model_code: the user's model code for a PyTorch state dict
            (:meth:`~optkit.sources.torch_model_code.ModelCode.to_dict`); the worker must have been
            started with its read paths.

    Raises:
        UnsafeModelError: the static scan found code or file access in the model.
        SourceModelError / DependencyError: as the framework's loader raises them, or a malformed answer.
    """
    from optkit.registry import resolve

    answer = worker.call(
        "load",
        framework=framework.name,
        path=str(path.resolve()),
        threads=threads,
        trust_pickle=trust_pickle,
        trust_remote_code=trust_remote_code,
        trust_model_code=trust_model_code,
        **({"trust_skops_types": list(trust_skops_types)} if trust_skops_types else {}),
        **({"model_code": model_code} if model_code is not None else {}),
    )
    try:
        info = info_from_dict(worker.field(answer, "info", dict))
    except (KeyError, TypeError, ValueError):
        raise worker._malformed() from None
    info.hf_dir = _tokenizer_dir(worker, path, info.hf_dir)
    return WorkerSource(
        worker,
        path,
        framework.name,
        str(worker.field(answer, "kind", str)),
        info,
        worker.field(answer, "versions", dict),
        float(worker.field(answer, "load_seconds", (int, float))),
        worker.field(answer, "scan", dict),
        resolve(framework.hasher),
    )


def _tokenizer_dir(worker: SourceWorker, path: Path, named: str | None) -> str | None:
    """Where optkit reads the tokenizer: the user's own HF folder (the source), or a copy of the
    tokenizer data files the worker extracted into its folder; any other folder it names is not read."""
    if not named:
        return None
    if Path(named).resolve() == path.resolve() and path.is_dir():
        return str(path)
    relative = None
    for scratch in (worker.scratch, worker.scratch.resolve()):
        try:
            relative = Path(os.path.normpath(named)).relative_to(scratch)
            break
        except ValueError:
            continue
    if relative is None:
        return None
    copy = worker.workdir / "hf"
    copy.mkdir(exist_ok=True)
    folder = worker.scratch / relative
    names = (
        [n for n in os.listdir(folder) if n in TOKENIZER_FILES] if folder.is_dir() and not folder.is_symlink() else []
    )
    for name in names:
        copy_worker_file(worker.scratch, str(relative / name), copy / name)
    return str(copy)


class WorkerRunner(Runner):
    """The reference runner of a :class:`WorkerSource`: every call executes in the worker; timing
    loops run there too (:meth:`time_calls`), so no message passing is timed."""

    def __init__(self, worker: SourceWorker, threads: int, device: str = "cpu") -> None:
        super().__init__(threads, device)
        self.worker = worker
        self.name = str(worker.field(worker.call("runner", device=device, threads=threads), "name", str))[:120]

    def _activate(self) -> None:
        self.worker.call("activate", device=self.device, threads=self.threads)

    def _infer(self, feeds: Feeds) -> Feeds:
        return self.infer_many([feeds])[0]

    def infer_many(self, batches: list[Feeds]) -> list[Feeds]:
        """Run several batches in one request; outputs in order.

        Raises:
            DataError: the source model failed on these inputs (named with their shapes).
            SourceModelError: the worker's answer is not one array file list per batch.
        """
        self.activate()
        try:
            answer = self.worker.call(
                "infer",
                device=self.device,
                threads=self.threads,
                batches=[self.worker.inputs.write(b) for b in batches],
            )
        except WorkerCallError as exc:
            raise _rejected("validation", batches[0], exc) from None
        outputs = self.worker.field(answer, "outputs", list)
        if len(outputs) != len(batches) or not all(isinstance(o, list) for o in outputs):
            raise self.worker._malformed()
        return [read_outputs(self.worker.scratch, names) for names in outputs]

    def time_calls(self, feeds: Feeds, warmup: int, iterations: int) -> list[float]:
        """``warmup`` untimed then ``iterations`` timed calls inside the worker; seconds per call.

        Raises:
            DataError: the source model failed at this shape (e.g. a benchmark sequence length
                longer than the model's position embeddings).
        """
        self.activate()
        try:
            answer = self.worker.call(
                "time",
                device=self.device,
                threads=self.threads,
                feeds=self.worker.inputs.write(feeds),
                warmup=warmup,
                iterations=iterations,
            )
        except WorkerCallError as exc:
            raise _rejected("benchmark", feeds, exc) from None
        seconds = self.worker.field(answer, "seconds", list)
        if len(seconds) != iterations or not all(isinstance(s, (int, float)) and 0 < s < 1e6 for s in seconds):
            raise self.worker._malformed()
        return [float(s) for s in seconds]

    def time_pass(self, batches: list[Feeds], warm: bool) -> float:
        """One timed call per batch inside the worker, in one request (see :meth:`Runner.time_pass`).

        Raises:
            DataError: the source model failed on a batch.
        """
        self.activate()
        try:
            answer = self.worker.call(
                "time_pass",
                device=self.device,
                threads=self.threads,
                batches=[self.worker.inputs.write(b) for b in batches],
                warm=warm,
            )
        except WorkerCallError as exc:
            raise _rejected("benchmark", batches[0], exc) from None
        seconds = self.worker.field(answer, "seconds", (int, float))
        if isinstance(seconds, bool) or not 0 < seconds < 1e6:
            raise self.worker._malformed()
        return float(seconds)

    def process_id(self) -> int:
        """The worker process's id."""
        return self.worker.pid

    def process_rss_mb(self) -> float:
        """Resident set size of the worker process, MB (10^6 bytes)."""
        import psutil

        try:
            return psutil.Process(self.worker.pid).memory_info().rss / 1e6
        except psutil.Error:
            return 0.0


def _rejected(what: str, feeds: Feeds, exc: WorkerCallError) -> DataError:
    """The one-line error for ``what`` inputs (validation, benchmark) the source model failed on,
    naming their shapes."""
    shapes = ", ".join(f"{name} {tuple(array.shape)} {array.dtype}" for name, array in feeds.items())
    return DataError(
        f"the source model rejected the {what} inputs ({shapes}): {exc.type_name}: {exc.message[:200]}",
        "give inputs of the model's rank, dtype and sizes; benchmark shapes come from "
        "--batch-sizes and --sequence-lengths (e.g. --sequence-lengths 32 for a model with "
        "fewer positions)",
    )
