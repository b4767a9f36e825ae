"""Constants shared by tests."""

# Small benchmark settings so pipeline tests stay fast; gates are tested on their own figures.
FAST = {"benchmark.batch_sizes": [1], "benchmark.sequence_lengths": [16], "benchmark.iterations": 3,
        "benchmark.warmup": 1, "benchmark.gates": []}
