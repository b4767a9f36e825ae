"""TensorFlow: deny-listed ops in the functions a SavedModel's signatures reach, and lambdas or
custom objects in a ``.keras`` file's ``config.json``.

The deny-list holds every op that takes a file name, pattern, directory or URL (found by listing
the attributes and inputs of every op in ``tf.raw_ops``, TF 2.21; see
https://www.tensorflow.org/api_docs/python/tf/raw_ops) and the ops that run Python
(``PyFunc``/``EagerPyFunc``: https://www.tensorflow.org/api_docs/python/tf/numpy_function).

Every SavedModel holds ``SaveV2``/``RestoreV2`` in its checkpoint functions (``saver_def``), which
loading does not run through the graph, so only what the signatures reach is scanned: the graph
nodes their input/output tensors depend on, then every node of each function they call (a call op's
own name, or a function-valued attribute such as ``f`` of ``StatefulPartitionedCall`` or the
branches of ``If``/``While``), recursively through the ``FunctionDefLibrary``.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from optkit.errors import SourceModelError
from optkit.scan.report import Finding

FILE_OPS = frozenset(
    {
        # read/write whole files, list files
        "ReadFile",
        "WriteFile",
        "MatchingFiles",
        "ImmutableConst",
        # checkpoints (tf.raw_ops.Save*, Restore*, MergeV2Checkpoints)
        "Save",
        "SaveV2",
        "SaveSlices",
        "Restore",
        "RestoreV2",
        "RestoreSlice",
        "MergeV2Checkpoints",
        "LoadAndRemapMatrix",
        "GenerateVocabRemapping",
        "FixedUnigramCandidateSampler",
        # summaries written to event files or a database
        "CreateSummaryFileWriter",
        "CreateSummaryDbWriter",
        "SummaryWriter",
        "WriteSummary",
        "WriteScalarSummary",
        "WriteHistogramSummary",
        "WriteImageSummary",
        "WriteAudioSummary",
        "WriteGraphSummary",
        "WriteRawProtoSummary",
        "ImportEvent",
        "FlushSummaryWriter",
        "CloseSummaryWriter",
        # tfdbg dumps (debug_urls may be file://)
        "DebugIdentity",
        "DebugIdentityV2",
        "DebugIdentityV3",
        "DebugNanCount",
        "DebugNumericSummary",
        "DebugNumericSummaryV2",
        # readers and file-backed datasets
        "WholeFileReader",
        "WholeFileReaderV2",
        "TextLineReader",
        "TextLineReaderV2",
        "TFRecordReader",
        "TFRecordReaderV2",
        "FixedLengthRecordReader",
        "FixedLengthRecordReaderV2",
        "LMDBReader",
        "IdentityReader",
        "IdentityReaderV2",
        "RecordInput",
        "TFRecordDataset",
        "TFRecordDatasetV2",
        "TextLineDataset",
        "TextLineDatasetV2",
        "FixedLengthRecordDataset",
        "FixedLengthRecordDatasetV2",
        "CSVDataset",
        "CSVDatasetV2",
        "ExperimentalCSVDataset",
        "LMDBDataset",
        "ExperimentalLMDBDataset",
        "SqlDataset",
        "ExperimentalSqlDataset",
        "MatchingFilesDataset",
        "ExperimentalMatchingFilesDataset",
        "DatasetToTFRecord",
        "ExperimentalDatasetToTFRecord",
        "SaveDataset",
        "SaveDatasetV2",
        "LoadDataset",
        "DistributedSave",
        "SnapshotDataset",
        "SnapshotDatasetV2",
        "SnapshotDatasetReader",
        "SnapshotChunkDataset",
        "ListSnapshotChunksDataset",
        "CacheDataset",
        "CacheDatasetV2",
    }
)
PYTHON_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
DENIED_OPS = FILE_OPS | PYTHON_OPS
# PrintV2 and Encode/DecodeProto are fine unless an attribute names a file.
PRINT_STREAMS = (b"stderr", b"stdout", b"log(info)", b"log(warning)", b"log(error)")
SAFE_KERAS_MODULES = ("keras",)
LAMBDA_LAYERS = frozenset({"Lambda", "TFOpLambda", "SlicingOpLambda"})
# --trust-model-code would not help: the loader keeps Keras' safe_mode on, which refuses them too.
LAMBDA_HINT = "optkit does not load Lambda layers (Keras safe_mode); rebuild the model without them"


def _denied(node, where: str, file: str) -> Finding | None:
    op = node.op
    if op in DENIED_OPS:
        return Finding("tf-op", op, file, where)
    if op == "PrintV2" and node.attr["output_stream"].s not in PRINT_STREAMS:
        return Finding("tf-op", op, file, f"{where}, output_stream {node.attr['output_stream'].s.decode()!r}")
    if op in ("DecodeProtoV2", "EncodeProto") and "descriptor_source" in node.attr:
        source = node.attr["descriptor_source"].s
        if source not in (b"", b"local://") and not source.startswith(b"bytes://"):
            return Finding("tf-op", op, file, f"{where}, descriptor_source {source.decode()!r}")
    return None


def _called(node, library: set[str]) -> list[str]:
    """Function names a node calls: its op (a library function) and function-valued attributes."""
    names = [node.op] if node.op in library else []
    for value in node.attr.values():
        if value.HasField("func"):
            names.append(value.func.name)
        names += [f.name for f in value.list.func]
    return names


def scan_savedmodel(folder: Path) -> tuple[list[str], list[Finding]]:
    """Scan ``folder/saved_model.pb`` (every meta graph, every signature, ``__saved_model_init_op`` too).

    Returns:
        (functions scanned, findings).

    Raises:
        SourceModelError: ``saved_model.pb`` is missing or not a SavedModel protobuf.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    file = str(folder / "saved_model.pb")
    model = saved_model_pb2.SavedModel()
    try:
        model.ParseFromString(Path(file).read_bytes())
    except Exception as exc:  # protobuf DecodeError, OSError
        raise SourceModelError(
            f"cannot read SavedModel {file}: {exc}", "the folder may be truncated or corrupt; export it again"
        ) from exc
    findings: list[Finding] = []
    seen_functions: list[str] = []
    for meta in model.meta_graphs:
        functions = {f.signature.name: f for f in meta.graph_def.library.function}
        nodes = {n.name: n for n in meta.graph_def.node}
        todo = [
            t.name.split(":")[0].lstrip("^")
            for sig in meta.signature_def.values()
            for t in [*sig.inputs.values(), *sig.outputs.values()]
        ]
        for key in ("saved_model_main_op", "legacy_init_op"):  # TF1 init ops run at load
            if key in meta.collection_def:
                todo += [n.split(":")[0].lstrip("^") for n in meta.collection_def[key].node_list.value]
        reached: set[str] = set()
        calls: list[str] = []
        while todo:  # graph nodes the signatures depend on
            name = todo.pop()
            if name in reached or name not in nodes:
                continue
            reached.add(name)
            node = nodes[name]
            if (hit := _denied(node, f"graph node {name}", file)) is not None:
                findings.append(hit)
            calls += _called(node, set(functions))
            todo += [i.split(":")[0].lstrip("^") for i in node.input]
        while calls:  # then every node of every function reached, recursively
            fname = calls.pop()
            if fname in seen_functions or fname not in functions:
                continue
            seen_functions.append(fname)
            for node in functions[fname].node_def:
                if (hit := _denied(node, f"function {fname}", file)) is not None:
                    findings.append(hit)
                calls += _called(node, set(functions))
    return seen_functions, findings


def scan_keras(path: Path) -> tuple[list[str], list[Finding]]:
    """Scan a Keras 3 ``.keras`` zip's ``config.json`` for lambda layers and objects whose ``module``
    is outside Keras (custom classes or functions, which Keras would import). Keras' own
    ``safe_mode`` refuses lambdas at load (https://keras.io/api/models/model_saving_apis/); this
    refuses them, and custom modules, before Keras is imported.

    Returns:
        (entries read, findings).

    Raises:
        SourceModelError: not a zip, or no valid ``config.json`` inside.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise SourceModelError(
            f"cannot read config.json in Keras file {path}: {exc}",
            "the file may be truncated or corrupt; save it again with model.save",
        ) from exc
    findings: list[Finding] = []
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack += item
        elif isinstance(item, dict):
            cls, module = item.get("class_name"), item.get("module")
            if cls in LAMBDA_LAYERS:
                findings.append(Finding("keras-layer", str(cls), str(path), "config.json", LAMBDA_HINT))
            elif isinstance(module, str) and module.split(".")[0] not in SAFE_KERAS_MODULES:
                findings.append(
                    Finding("keras-layer", f"{module}.{cls}", str(path), "config.json (custom object outside keras)")
                )
            stack += list(item.values())
    return [f"{path}!config.json"], findings
