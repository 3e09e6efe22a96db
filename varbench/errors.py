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
