"""Shared CLI pieces: the error guard and option parsers (no torch import here)."""

from __future__ import annotations

import contextlib
import functools
import signal
import threading

import typer

from varbench.errors import VarbenchError


class Terminated(KeyboardInterrupt):
    """SIGTERM (slurm, a CI timeout, kill): handled like Ctrl-C, so the same resume hint is printed."""


def _terminate(signum, frame):
    raise Terminated


@contextlib.contextmanager
def _sigterm_as_interrupt():
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def guard(fn):
    """``VarbenchError`` -> one red line and exit code 2; Ctrl-C or SIGTERM -> one line (how to resume, for
    resumable work) and exit code 130 (143 for SIGTERM).  Any other exception is a bug and keeps its traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from varbench.cli import render

        try:
            with _sigterm_as_interrupt():
                return fn(*args, **kwargs)
        except VarbenchError as e:
            render.error(str(e))
            raise typer.Exit(2) from None
        except KeyboardInterrupt as e:
            render.interrupted()
            raise typer.Exit(143 if isinstance(e, Terminated) else 130) from None

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
    return _typed_list(text, what, int, "integers")


def str_list(text: str | None, what: str) -> list[str] | None:
    """Parse "a,b" into strings; None when not given; an empty value or item is an error."""
    return _items(text, what)


def float_list(text: str | None, what: str) -> list[float] | None:
    """Parse "1,1.5,2" into floats; None when not given; an empty value or item is an error."""
    return _typed_list(text, what, float, "numbers")


def _typed_list(text: str | None, what: str, cast, kind: str) -> list | None:
    items = _items(text, what)
    if items is None:
        return None
    try:
        return [cast(t) for t in items]
    except ValueError:
        raise VarbenchError(f"{what} must be comma-separated {kind}, got {text!r}") from None


def sharded(options: dict, settings, launch, run) -> None:
    """The torchrun-aware body of a sharded command (generate, scaling): ``settings(info, options)`` on every rank
    (rank 0 alone prints an input error), ``--nproc K`` -> ``launch(settings, K)``, else ``run(info, settings)``; a
    peer's failure ends the other ranks with exit 2 and no second message."""
    from varbench.cli import render
    from varbench.dist import DistInfo, PeerError

    info = DistInfo.from_env()
    if not info.is_main:
        render.set_quiet(True)
    try:
        checked = settings(info, options)
    except VarbenchError:
        if info.is_main:
            raise
        raise typer.Exit(2) from None  # the same input error is printed once, by rank 0
    if options["nproc"] is not None:
        launch(checked, options["nproc"])
        return
    try:
        run(info, checked)
    except PeerError:
        raise typer.Exit(2) from None  # rank 0 printed it
    except VarbenchError as e:
        if info.is_main:
            raise
        raise VarbenchError(f"rank {info.rank}: {e}") from None
