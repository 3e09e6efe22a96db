"""The one exception type users see.

A ``VarbenchError`` message says what failed, the offending value and how to fix it.  The CLI turns it into one red
line and exit code 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class VarbenchError(Exception):
    """A user-facing error: bad input, missing weights, refused overwrite, ..."""


def unknown_name(kind: str, name: str, known: Iterable[str], hint: str = "") -> VarbenchError:
    """Build the error for an unknown registry name, listing close matches."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    msg = f"unknown {kind} {name!r}"
    if close:
        msg += f"; did you mean {', '.join(close)}?"
    else:
        msg += f"; known: {', '.join(known)}"
    if hint:
        msg += f" ({hint})"
    return VarbenchError(msg)


def check_state_dict(expected, got, what: str, limit: int = 5) -> None:
    """Raise one line listing the missing and unexpected keys and the shape mismatches (the first ``limit`` of
    each) of state dict ``got`` against ``expected`` (both map keys to tensors or anything with ``.shape``)."""
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    shapes = [
        f"{k} {tuple(got[k].shape)} vs expected {tuple(expected[k].shape)}"
        for k in expected
        if k in got and tuple(got[k].shape) != tuple(expected[k].shape)
    ]
    if not (missing or unexpected or shapes):
        return
    parts = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:limit])}{more}")
    raise VarbenchError(f"{what} does not match the model: " + "; ".join(parts))
