"""Source models: load one in its own framework and run it as the reference (inside the worker)."""
