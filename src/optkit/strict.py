"""The base class of every recipe section (kept apart from :mod:`optkit.recipe` so that the pass
modules can define their configs without importing the recipe, which imports them)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Base for every recipe section: unknown keys are errors, values are not coerced silently."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
