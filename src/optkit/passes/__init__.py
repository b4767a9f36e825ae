"""ONNX → ONNX passes. Each ``optkit.passes.<name>`` module holds one pass: its typed config (a
pydantic model whose ``type`` literal is the pass name) and ``run(model_path, config, context) ->
PassOutcome``. The pass modules (and ``optkit.onnx_io``) import onnx, onnxruntime and onnxsim inside
``run``, so importing this catalog stays cheap.

:data:`PASS_CLASSES` is the one list of passes: the recipe's ``passes`` union (:data:`PassConfig`),
the valid pass names (:data:`PASS_TYPES`, used in error messages and docs) and the registry's
``PASSES`` (name → ``"module:run"``) are all derived from it.
"""

from __future__ import annotations

from typing import Annotated, Union, get_args

from pydantic import Field

from optkit.passes.fp16 import Fp16Pass
from optkit.passes.fuse import FusePass
from optkit.passes.quantize_dynamic import Int8SearchSpace, QuantizeDynamicPass
from optkit.passes.quantize_static import QuantizeStaticPass
from optkit.passes.simplify import SimplifyPass
from optkit.strict import StrictModel

# In the order error messages, the schema and the docs list them.
PASS_CLASSES: tuple[type[StrictModel], ...] = (SimplifyPass, FusePass, QuantizeDynamicPass, QuantizeStaticPass,
                                               Fp16Pass)


def pass_name(config_class: type[StrictModel]) -> str:
    """The pass name of a config class: the value of its ``type: Literal["<name>"]`` field."""
    (name,) = get_args(config_class.model_fields["type"].annotation)
    return name


PASS_CONFIGS: dict[str, type[StrictModel]] = {pass_name(cls): cls for cls in PASS_CLASSES}
PASS_TYPES: tuple[str, ...] = tuple(PASS_CONFIGS)
PASS_RUNNERS: dict[str, str] = {name: f"{cls.__module__}:run" for name, cls in PASS_CONFIGS.items()}
PassConfig = Annotated[Union[PASS_CLASSES], Field(discriminator="type")]

__all__ = ["PASS_CLASSES", "PASS_CONFIGS", "PASS_RUNNERS", "PASS_TYPES", "PassConfig", "pass_name",
           "Fp16Pass", "FusePass", "Int8SearchSpace", "QuantizeDynamicPass", "QuantizeStaticPass", "SimplifyPass"]
