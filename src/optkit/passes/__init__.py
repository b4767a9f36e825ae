"""ONNX → ONNX passes. Each pass is a typed config (``optkit.recipe``) plus one
``run(model_path, config, context) -> PassOutcome`` function, registered in ``optkit.registry``."""
