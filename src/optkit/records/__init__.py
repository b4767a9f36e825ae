"""Typed records that optkit serialises to JSON: the search report (:mod:`.search`) and the
manifest with its sections (:mod:`.manifest`).

They import nothing from optkit (only pydantic), so that every layer can use them: a pass returns a
:class:`~optkit.records.search.SearchReport` in its :class:`~optkit.pass_context.PassOutcome`, the
result (:mod:`optkit.results`) holds the manifest, and :mod:`optkit.artifact` builds and writes it.
"""
