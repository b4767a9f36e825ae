"""ONNX → ONNX passes. Each ``optkit.passes.<name>`` module holds one pass's
``run(model_path, config, context) -> PassOutcome``; its typed config is
``optkit.pass_configs.<name>`` (re-exported by ``optkit.recipe``), and ``optkit.registry`` derives
``PASSES`` from the catalog in :mod:`optkit.pass_configs`."""
