"""Files varbench writes and reads back: atomic writes, sha256, and the one rule for output paths.

Writes go to a temp file in the target directory, are fsynced, then renamed: a crash leaves either the old file or
the new one, never a half-written file.  ``OSError`` (read-only directory, disk full) becomes a one-line
``VarbenchError`` and the temp file is removed.  ``check_output`` is how every command treats an output path that
exists already: refused unless ``--overwrite``.  ``DirLock`` keeps two processes out of one output directory.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from collections.abc import Iterator
from typing import Any, BinaryIO

from varbench.errors import VarbenchError


@contextlib.contextmanager
def open_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file whose content appears at ``path`` only when the block ends without error (streaming writes)."""
    path = Path(path)
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600 files; results are shared like any other file
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as e:
        raise VarbenchError(describe_os_error(path, e)) from None
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


@contextlib.contextmanager
def os_errors(path: str | os.PathLike) -> Iterator[None]:
    """Turn an ``OSError`` raised in the block into the one-line ``VarbenchError`` for ``path``."""
    try:
        yield
    except OSError as e:
        raise VarbenchError(describe_os_error(Path(path), e)) from None


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    """The process umask, read without changing it (os.umask would briefly set it for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_output(path: str | os.PathLike | None, flag: str, overwrite: bool) -> None:
    """Refuse an output file before any work: an existing file (unless ``overwrite``), a directory, or a place that
    cannot be written.  Missing parent directories are fine (they are created on write)."""
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise VarbenchError(f"{flag} {path} is a directory; give a file path")
    if path.exists() and not overwrite:
        raise VarbenchError(f"{flag} {path} already exists; give a new path or pass --overwrite to replace it")
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise VarbenchError(f"{flag} {path}: {parent} is not a writable directory")


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with open_write(path) as f:
        f.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=json_default) + "\n")


def save_npz(path: str | os.PathLike, **arrays: Any) -> None:
    """``np.savez`` through an in-memory buffer, then an atomic write (no pickled objects)."""
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes(path, buf.getvalue())


def as_json(obj: Any) -> Any:
    """``obj`` as it reads back from a JSON file (tuples as lists, paths as strings): for comparing with one."""
    return json.loads(json.dumps(obj, default=json_default))


def json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def describe_os_error(path: Path, e: OSError) -> str:
    if e.errno == errno.ENOSPC:
        return f"no space left on the device while writing {path}; free some space and rerun (finished work is kept)"
    if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {path}: {e.strerror}; choose a writable directory with --out"
    return f"cannot write {path}: {e.strerror or e}"


def is_temp(name: str) -> bool:
    """A temp file of an atomic write (``.name.XXXX.tmp``)."""
    return name.startswith(".") and name.endswith(".tmp")


def remove_temp_files(*folders: Path) -> None:
    """Temp files a killed run left in ``folders`` (only while holding the lock: nobody else is writing)."""
    for d in folders:
        if d.is_dir():
            for p in d.iterdir():
                if is_temp(p.name) and p.is_file():
                    with os_errors(p):
                        p.unlink()


class DirLock:
    """An exclusive flock on ``DIR/.lock`` (released by the kernel if the process dies); ``command`` names the
    varbench command in the refusal ("another varbench scaling is writing to ...")."""

    NAME = ".lock"

    def __init__(self, out: Path, command: str):
        with os_errors(out):
            out.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(out / self.NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(self.fd)
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise VarbenchError(f"another varbench {command} is writing to {out}; wait for it or use another "
                                    "--out") from None
            raise VarbenchError(describe_os_error(out / self.NAME, e)) from None

    def release(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
