"""Shared CLI pieces: the error guard and option parsers (no torch import here)."""

from __future__ import annotations

import functools

import typer

from varbench.errors import VarbenchError


def guard(fn):
    """``VarbenchError`` -> one red line and exit code 2; Ctrl-C -> one line (how to resume, for resumable work)
    and exit code 130.  Any other exception is a bug and keeps its traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from varbench.cli import render

        try:
            return fn(*args, **kwargs)
        except VarbenchError as e:
            render.error(str(e))
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            render.interrupted()
            raise typer.Exit(130) from None

    return wrapper


def _items(text: str | None, what: str) -> list[str] | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise VarbenchError(f"{what} is empty or has an empty item ({text!r}); give comma-separated values, "
                            "or leave the option out for its default")
    return items


def int_list(text: str | None, what: str) -> list[int] | None:
    """Parse "1,2,3" into ints; None when not given; an empty value or item is an error."""
    items = _items(text, what)
    if items is None:
        return None
    try:
        return [int(t) for t in items]
    except ValueError:
        raise VarbenchError(f"{what} must be comma-separated integers, got {text!r}") from None


def str_list(text: str | None, what: str) -> list[str] | None:
    """Parse "a,b" into strings; None when not given; an empty value or item is an error."""
    return _items(text, what)
