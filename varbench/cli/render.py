"""All terminal output of varbench: the only module that imports rich.

Only rank 0 prints under torchrun: the CLI calls ``set_quiet(True)`` on other ranks.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

_quiet = False
_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


def set_quiet(quiet: bool) -> None:
    global _quiet
    _quiet = quiet


def error(msg: str) -> None:
    """One red line on stderr (printed on every rank: errors must not vanish)."""
    _err.print(f"[bold red]error:[/] {msg}", markup=True, highlight=False, emoji=False)


def warn(msg: str) -> None:
    if not _quiet:
        _err.print(f"[yellow]warning:[/] {_escape(msg)}")


def info(msg: str) -> None:
    if not _quiet:
        _out.print(_escape(msg))


def raw(text: str) -> None:
    """Unformatted stdout (JSON output)."""
    if not _quiet:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence], caption: str | None = None) -> None:
    if _quiet:
        return
    t = Table(title=title, caption=caption)
    for c in columns:
        t.add_column(str(c), overflow="fold")
    for r in rows:
        t.add_row(*[_cell(v) for v in r])
    _out.print(t)


@contextlib.contextmanager
def progress(description: str, total: int, unit: str = "img") -> Iterator:
    """Yield ``advance(n, **fields)``; a rich bar with rate and ETA (a no-op when quiet)."""
    if _quiet:
        yield lambda n=1, **kw: None
        return
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[extra]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=_err,
        transient=False,
    )
    with bar:
        task = bar.add_task(description, total=total, rate="", extra="")

        def advance(n: int = 1, **fields) -> None:
            t = bar.tasks[task]
            done = t.completed + n
            rate = done / t.elapsed if t.elapsed else 0.0
            bar.update(task, advance=n, rate=f"{rate:.2f} {unit}/s", extra=fields.get("extra", ""))

        yield advance


def _cell(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return _escape(str(v))


def _escape(s: str) -> str:
    from rich.markup import escape

    return escape(s)
