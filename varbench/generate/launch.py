"""``--nproc K``: run the same command again under torchrun (``--standalone``, K local processes), in-process.

The workers get the user's own arguments minus ``--nproc``, so every option reaches them without extra wiring.
A worker that fails with a ``VarbenchError`` has printed its one line (exit code 2); any other failure is one line
naming the rank.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import uuid
from collections.abc import Sequence

from varbench.errors import VarbenchError


class WorkerFailed(VarbenchError):
    """A worker exited with code 2: it printed its own error line already."""


def without_nproc(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--nproc K`` / ``--nproc=K``."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


@contextlib.contextmanager
def _worker_environment(nproc: int):
    """The workers inherit this process's environment: one CPU share each, and torch.distributed kept quiet."""
    quiet = logging.getLogger("torch.distributed")
    level, threads = quiet.level, os.environ.get("OMP_NUM_THREADS")
    quiet.setLevel(logging.CRITICAL)
    if threads is None:
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    try:
        yield
    finally:
        quiet.setLevel(level)
        if threads is None:
            os.environ.pop("OMP_NUM_THREADS", None)


def relaunch(argv: Sequence[str], nproc: int) -> None:
    """Run ``python -m varbench <argv minus --nproc>`` in ``nproc`` processes and wait for them."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0)
    with _worker_environment(nproc):
        try:
            elastic_launch(config, sys.executable)("-m", "varbench", *without_nproc(argv))
        except ChildFailedError as e:
            rank, failure = e.get_first_failure()
            if failure.exitcode == 2:
                raise WorkerFailed(f"worker rank {rank} stopped on an input error (above)") from None
            raise VarbenchError(
                f"worker rank {rank} of {nproc} failed (exit code {failure.exitcode}); see its output above"
            ) from None
