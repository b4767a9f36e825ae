"""The pass catalog: one module per pass holds its typed recipe config (a pydantic model whose
``type`` literal is the pass name); the pass itself, ``run(model_path, config, context) ->
PassOutcome``, is the module of the same name in :mod:`optkit.passes`. Configs and runs are apart so
that the recipe (a low layer) needs no pass code, onnx or onnxruntime.

:data:`PASS_CLASSES` is the one list of passes: the recipe's ``passes`` union (:data:`PassConfig`),
the valid pass names (:data:`PASS_TYPES`, used in error messages and docs) and the registry's
``PASSES`` (name → ``"optkit.passes.<module>:run"``) are all derived from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Union, get_args

from pydantic import Field

from optkit.pass_configs.fp16 import Fp16Pass
from optkit.pass_configs.fuse import FusePass
from optkit.pass_configs.quantize_dynamic import Int8SearchSpace, QuantizeDynamicPass
from optkit.pass_configs.quantize_static import QuantizeStaticPass
from optkit.pass_configs.simplify import SimplifyPass
from optkit.pass_configs.smooth import SmoothPass
from optkit.pass_configs.tune_session import TuneSessionPass
from optkit.strict import StrictModel

# In the order error messages, the schema and the docs list them.
PASS_CLASSES: tuple[type[StrictModel], ...] = (
    SimplifyPass,
    FusePass,
    SmoothPass,
    QuantizeDynamicPass,
    QuantizeStaticPass,
    Fp16Pass,
    TuneSessionPass,
)


def pass_name(config_class: type[StrictModel]) -> str:
    """The pass name of a config class: the value of its ``type: Literal["<name>"]`` field."""
    (name,) = get_args(config_class.model_fields["type"].annotation)
    return name


PASS_CONFIGS: dict[str, type[StrictModel]] = {pass_name(cls): cls for cls in PASS_CLASSES}
PASS_TYPES: tuple[str, ...] = tuple(PASS_CONFIGS)
PASS_RUNNERS: dict[str, str] = {
    name: f"optkit.passes.{cls.__module__.rsplit('.', 1)[-1]}:run" for name, cls in PASS_CONFIGS.items()
}
if TYPE_CHECKING:  # mypy cannot unpack a runtime tuple: the same classes as PASS_CLASSES, spelled out
    PassConfig = Annotated[
        SimplifyPass | FusePass | SmoothPass | QuantizeDynamicPass | QuantizeStaticPass | Fp16Pass | TuneSessionPass,
        Field(discriminator="type"),
    ]
else:
    PassConfig = Annotated[Union[PASS_CLASSES], Field(discriminator="type")]  # noqa: UP007 (Union of a runtime tuple)

__all__ = [
    "PASS_CLASSES",
    "PASS_CONFIGS",
    "PASS_RUNNERS",
    "PASS_TYPES",
    "PassConfig",
    "pass_name",
    "Fp16Pass",
    "FusePass",
    "Int8SearchSpace",
    "QuantizeDynamicPass",
    "QuantizeStaticPass",
    "SimplifyPass",
    "SmoothPass",
    "TuneSessionPass",
]
