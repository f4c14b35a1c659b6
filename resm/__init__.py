"""resm: protein language models (ESM-2) put to work on RNA."""

__version__ = "0.1.0"
