"""Framework → ONNX exporters, one module per framework, registered in ``optkit.registry``."""
