"""The one progress protocol of long work (generate, fid, ref, speed): the library reports, the CLI renders.

A pipeline takes ``progress: Progress`` (default ``no_progress``) and calls it with a ``ProgressEvent`` whenever work
advances: ``done`` of ``total`` units of ``stage``.  Events carry absolute counts, so a renderer can start at any
event (a resumed run starts part-way).  Nothing here prints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressEvent:
    stage: str  # what is being done: "sampling", "writing PNGs", "Inception features", "reference NAME", "speed"
    done: int  # units finished so far in this stage (this process)
    total: int  # units this process will do in this stage
    unit: str = "img"  # "img", "rows", ...
    detail: str = ""  # a short status text ("chunks 3/10", "256px batch 64")
    resumable: bool = False  # an interrupted run continues where it stopped when rerun
    saved: bool = False  # everything done so far is on disk: an interruption now loses no work


Progress = Callable[[ProgressEvent], None]


def no_progress(event: ProgressEvent) -> None:
    """The default: report nothing."""
