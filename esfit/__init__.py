"""esfit: the `esfit` command and the embedded default model/pipeline resolution."""

__version__ = "0.1.0"
