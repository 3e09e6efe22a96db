"""Process-group facts from the torchrun environment, and the few collectives the sampler needs.

``DistInfo.from_env()`` reads ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``LOCAL_WORLD_SIZE`` (set by torchrun; a plain
``python`` run is rank 0 of 1).  ``init`` opens the process group — gloo on CPU, nccl on CUDA — only when there is
more than one process; every helper is a no-op for a single process.  Nothing here prints.
"""

from __future__ import annotations

import datetime
import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from varbench.errors import VarbenchError

T = TypeVar("T")


class PeerError(VarbenchError):
    """A failure another rank already reported (raised on the other ranks so they stop without repeating it)."""


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DistInfo:
        env = os.environ if environ is None else environ

        def read(key: str, default: int) -> int:
            text = env.get(key)
            if text is None or text == "":
                return default
            try:
                return int(text)
            except ValueError:
                raise VarbenchError(
                    f"environment variable {key}={text!r} is not an integer (set by torchrun)"
                ) from None

        world = read("WORLD_SIZE", 1)
        rank = read("RANK", 0)
        local_world = read("LOCAL_WORLD_SIZE", world)
        local_rank = read("LOCAL_RANK", rank)
        if world < 1 or not 0 <= rank < world or not 0 <= local_rank < max(local_world, 1):
            raise VarbenchError(
                f"inconsistent torchrun environment: RANK={rank} WORLD_SIZE={world} LOCAL_RANK={local_rank} "
                f"LOCAL_WORLD_SIZE={local_world}"
            )
        return cls(rank=rank, world_size=world, local_rank=local_rank, local_world_size=local_world)


def resolve_device(device: str | None, info: DistInfo) -> str:
    """``check_device`` for this process: a bare "cuda" under torchrun becomes "cuda:LOCAL_RANK"."""
    return check_device(device, info.local_rank if info.distributed else 0)


def check_device(device: str | None, local_rank: int = 0) -> str:
    """``None``/"auto" -> "cuda" when available else "cpu"; "cuda" -> "cuda:<local_rank>"; only cpu and cuda[:N].

    One-line ``VarbenchError`` for unknown devices, CUDA without a GPU and a cuda:N beyond the visible GPUs.
    """
    import torch

    name = (device or "auto").strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise VarbenchError(f"unknown --device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise VarbenchError(f"--device {device} was asked for but CUDA is not available here; use --device cpu")
        if dev.index is None:
            dev = torch.device("cuda", local_rank)
        if dev.index >= torch.cuda.device_count():
            raise VarbenchError(
                f"device {dev} does not exist ({torch.cuda.device_count()} visible GPUs); "
                "use at most one process per GPU"
            )
    elif dev.type != "cpu":
        raise VarbenchError(f"unsupported --device {device!r}; use cpu, cuda or cuda:N")
    return str(dev)


def init(info: DistInfo, device: str) -> str | None:
    """Open the default process group for ``info`` (gloo on CPU, nccl on CUDA); return the backend or None."""
    if not info.distributed:
        return None
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return dist.get_backend()
    dev = torch.device(device)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
    if missing:
        raise VarbenchError(f"WORLD_SIZE={info.world_size} but {', '.join(missing)} unset: launch with torchrun")
    # generous timeout: rank 0 hashes every finished chunk (tens of GB for 50k at 512 px) while the others wait
    kwargs: dict[str, Any] = {"backend": backend, "rank": info.rank, "world_size": info.world_size,
                              "timeout": datetime.timedelta(minutes=60)}
    if dev.type == "cuda" and "device_id" in inspect.signature(dist.init_process_group).parameters:
        kwargs["device_id"] = dev  # torch >= 2.3: binds the group to this GPU (no barrier device guessing)
    dist.init_process_group(**kwargs)
    return backend


def destroy() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        import torch.distributed as dist

        dist.barrier()


def broadcast(obj: T, info: DistInfo) -> T:
    """Rank 0's ``obj`` on every rank (picklable objects)."""
    if not info.distributed:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def from_main(info: DistInfo, fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only and return its result on every rank.

    A ``VarbenchError`` on rank 0 is raised there and as a ``PeerError`` (same message) on the other ranks.
    """
    if not info.distributed:
        return fn()
    outcome: tuple[str | None, Any] = (None, None)
    failure = None
    if info.is_main:
        try:
            outcome = (None, fn())
        except VarbenchError as e:
            failure, outcome = e, (str(e), None)
    error, result = broadcast(outcome, info)
    if failure is not None:
        raise failure
    if error is not None:
        raise PeerError(error)
    return result


def main_first(info: DistInfo, fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0, then (if it succeeded) on the other ranks: downloads and checks happen once."""
    result = from_main(info, fn)
    return result if info.is_main else fn()
