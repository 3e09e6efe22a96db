"""Shared CLI pieces: the error guard and option parsers (no torch import here)."""

from __future__ import annotations

import functools

import typer

from varbench.errors import VarbenchError


def guard(fn):
    """Turn ``VarbenchError`` into one red line and exit code 2 (any other exception is a bug: traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except VarbenchError as e:
            from varbench.cli import render

            render.error(str(e))
            raise typer.Exit(2) from None

    return wrapper


def int_list(text: str | None, what: str) -> list[int] | None:
    """Parse "1,2,3" into ints; one clear error otherwise."""
    if text is None or text == "":
        return None
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t != ""]
    except ValueError:
        raise VarbenchError(f"{what} must be comma-separated integers, got {text!r}") from None


def str_list(text: str | None) -> list[str] | None:
    if text is None or text == "":
        return None
    return [t.strip() for t in text.split(",") if t.strip()]
