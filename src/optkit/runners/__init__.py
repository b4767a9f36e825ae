"""Runners execute a model: the source framework's runner (the reference) and ONNX Runtime's."""
