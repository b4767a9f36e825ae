"""Compatibility: the pass context moved to :mod:`optkit.pass_context` (below passes/ and search/)."""

from optkit.pass_context import PassContext, PassOutcome

__all__ = ["PassContext", "PassOutcome"]
