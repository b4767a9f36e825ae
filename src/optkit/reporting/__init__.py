"""Reports people look at, rendered from the typed manifest alone: ``report.html`` (Jinja2 +
Matplotlib SVG, :mod:`optkit.reporting.html`), its compact notebook form, and the CI job summary
(:mod:`optkit.reporting.summary`). Below :mod:`optkit.results` (which shows itself in notebooks)
and :mod:`optkit.artifact` (which writes the files)."""
