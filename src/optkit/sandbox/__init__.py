"""Confinement of the worker process that loads and runs untrusted model files (Linux Landlock)."""
