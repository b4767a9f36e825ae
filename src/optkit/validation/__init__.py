"""Validation of the artifact against the source framework: data, accuracy, gates and speed."""
