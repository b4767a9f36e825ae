"""Constants shared by tests."""

# Small benchmark settings so pipeline tests stay fast; gates are tested on their own figures.
FAST = {
    "benchmark.batch_sizes": [1],
    "benchmark.sequence_lengths": [16],
    "benchmark.iterations": 3,
    "benchmark.warmup": 1,
    "benchmark.gates": [],
}

# ner-int8 with its int8 search off (quantize-dynamic is pass 2): tests of the rest of the pipeline
# that must not depend on which of several equally fast int8 candidates the search picks.
NER_INT8_FIXED = {"passes.2.search": "off"}
