"""``varbench edit``: not yet available (being written this round)."""

from __future__ import annotations


def register(app) -> None:  # registered once the command exists
    return None
