"""Constants shared by tests."""

# Small benchmark settings so pipeline tests stay fast; gates are tested on their own figures.
FAST = {
    "benchmark.batch_sizes": [1],
    "benchmark.sequence_lengths": [16],
    "benchmark.iterations": 3,
    "benchmark.warmup": 1,
    "benchmark.gates": [],
}

# The end-to-end tests' untimed variants (no speed gate: their timings decide nothing): every part of
# the benchmark still runs at the recipe's shapes (fixed shapes, real lengths, batch scan, peak
# memory), each fixed-shape block with 3 calls instead of 20, so that CI does not spend minutes on
# figures no assertion reads. The ``speed`` variants keep the recipe's full protocol.
UNTIMED_ARGS = ["--set", "benchmark.gates=[]", "--set", "benchmark.iterations=3", "--set", "benchmark.warmup=1"]

# ner-int8 with its int8 search off (quantize-dynamic is pass 2): tests of the rest of the pipeline
# that must not depend on which of several equally fast int8 candidates the search picks.
NER_INT8_FIXED = {"passes.2.search": "off"}


def blank_sections() -> dict:
    """The required manifest sections, filled with placeholders: for tests that build a
    :class:`~optkit.artifact.manifest.Manifest` by hand (an artifact folder, not a conversion)."""
    from optkit.records.manifest import (
        AccuracyRecord,
        ArtifactRecord,
        CpuRecord,
        DataRecord,
        EnvironmentRecord,
        RecipeRecord,
        SourceRecord,
    )

    return {
        "recipe": RecipeRecord(name="blank", sha256="0" * 64, resolved={}),
        "source": SourceRecord(
            path="model.pt", framework="torch", kind="torchscript", sha256="0" * 64, task=None, versions={}
        ),
        "artifact": ArtifactRecord(
            opset={"ai.onnx": 17}, execution_provider="CPUExecutionProvider", optkit_version="0", ir_version=8, nodes=0
        ),
        "environment": EnvironmentRecord(
            python="3", platform="test", packages={}, cpu=CpuRecord(model="", logical_cores=1, flags={})
        ),
        "data": DataRecord(kind="random", origin="generated", sha256=None, samples=0, real=False, truncated_words=0),
        "accuracy": AccuracyRecord(metrics={}, unavailable={}, outputs=[], samples=0, disagreements=[]),
    }
