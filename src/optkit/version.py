"""optkit's version (a core module, so that the pipeline and the CLI need not import the package root)."""

__version__ = "0.1.0"
