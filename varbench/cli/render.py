"""All terminal output of varbench: the only module that imports rich.

Progress: ``progress()`` renders ``varbench.progress`` events as a rich bar in a terminal and, when stderr is not a
terminal (slurm, nohup, CI, ``| tee``), as a plain line at most every ``PLAIN_INTERVAL`` seconds (count, rate, ETA),
so a log file shows where long work stands.  Only rank 0 prints under torchrun: the CLI calls ``set_quiet(True)`` on
the other ranks.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterable, Iterator, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

PLAIN_INTERVAL = 30.0  # seconds between plain progress lines
_WIDE = 250  # table width when output goes to a file or a pipe: one row per line, no wrapped cells

_quiet = False
_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)
_last_event = None


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def error(msg: str) -> None:
    """One red line on stderr (printed on every rank: errors must not vanish)."""
    _err.print(f"[bold red]error:[/] {_escape(msg)}", markup=True, highlight=False, emoji=False)


def warn(msg: str) -> None:
    if not _quiet:
        _err.print(f"[yellow]warning:[/] {_escape(msg)}")


def info(msg: str) -> None:
    if not _quiet:
        _out.print(_escape(msg))


def interrupted() -> None:
    """Ctrl-C: what was kept and how to go on."""
    resumable = _last_event is not None and _last_event.resumable
    hint = ("rerun the same command to resume: finished work is kept and verified" if resumable
            else "nothing was written")
    _err.print(f"[bold red]interrupted:[/] {hint}")


def raw(text: str) -> None:
    """Unformatted stdout (JSON output)."""
    if not _quiet:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence], caption: str | None = None) -> None:
    if _quiet:
        return
    console = _out if _out.is_terminal else Console(highlight=False, width=_WIDE, soft_wrap=False)
    t = Table(title=title, caption=caption)
    for c in columns:
        t.add_column(str(c), overflow="fold")
    for r in rows:
        t.add_row(*[_cell(v) for v in r])
    console.print(t)


class _Renderer:
    """Turns progress events into a bar per stage (terminal) or timed plain lines (files, pipes)."""

    def __init__(self, label_suffix: str = ""):
        self.suffix = label_suffix
        self.stack = contextlib.ExitStack()
        self.stage = None
        self.bar = self.task = None
        self.started = self.last_line = 0.0
        self.first_done = self.final = 0

    def __call__(self, event) -> None:
        global _last_event
        _last_event = event
        if _quiet:
            return
        if event.stage != self.stage:
            self.close()
            self.stage, self.started, self.first_done, self.final = event.stage, time.monotonic(), event.done, 0
            if _err.is_terminal:
                self.bar = self.stack.enter_context(Progress(
                    TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=_err, transient=False))
                self.task = self.bar.add_task(event.stage + self.suffix, total=event.total, rate="", detail="")
        rate = self._rate(event)
        if self.bar is not None:
            self.bar.update(self.task, completed=event.done, total=event.total, detail=event.detail,
                            rate=f"{rate:.2f} {event.unit}/s" if rate else "")
        elif time.monotonic() - self.last_line >= PLAIN_INTERVAL or self._final(event):
            self.last_line = time.monotonic()
            self.final = event.total if self._final(event) else self.final
            _err.print(_plain_line(event, self.suffix, rate, time.monotonic() - self.started), markup=False)

    def _final(self, event) -> bool:
        """The last event of a stage (for resumable work: once that work is on disk), not yet printed."""
        return event.done >= event.total > self.final and (event.saved or not event.resumable)

    def _rate(self, event) -> float:
        elapsed = time.monotonic() - self.started
        return (event.done - self.first_done) / elapsed if elapsed > 0 and event.done > self.first_done else 0.0

    def close(self) -> None:
        self.stack.close()
        self.stack = contextlib.ExitStack()
        self.stage = self.bar = self.task = None


def _plain_line(event, suffix: str, rate: float, elapsed: float) -> str:
    pct = f" ({100 * event.done / event.total:.1f}%)" if event.total else ""
    text = f"{event.stage}{suffix}: {event.done}/{event.total} {event.unit}{pct}"
    if rate:
        eta = (event.total - event.done) / rate
        text += f", {rate:.3g} {event.unit}/s, ETA {_clock(eta)}"
    text += f", elapsed {_clock(elapsed)}"
    return text + (f", {event.detail}" if event.detail else "")


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


@contextlib.contextmanager
def progress(label_suffix: str = "") -> Iterator:
    """A ``varbench.progress.Progress`` callback for the duration of the block."""
    renderer = _Renderer(label_suffix)
    try:
        yield renderer
    finally:
        renderer.close()


def _cell(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return _escape(str(v))


def _escape(s: str) -> str:
    from rich.markup import escape

    return escape(s)
