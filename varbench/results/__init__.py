"""The results schema (``schema``: version 2, written and read at fixed paths; ``migrate``: version 1), the published
tables (``published``, package data) and ``load_frame``: results as a pandas DataFrame."""

from varbench.results.frame import load_frame

__all__ = ["load_frame"]
