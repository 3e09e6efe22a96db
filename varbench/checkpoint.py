"""Reading weight files safely: ``torch.load(weights_only=True)`` with every failure mode turned into one line.

Shared by the generators' checkpoints and the feature extractors' weights.  torch is imported inside functions.
"""

from __future__ import annotations

import argparse
import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

from varbench.errors import VarbenchError

_WRAPPER_KEYS = ("model", "module", "state_dict", "ema")


def load_state_dict(path: str | os.PathLike, what: str = "checkpoint") -> dict:
    """A flat ``{key: tensor}`` dict from a torch file, unwrapping ``{"model": sd}``, ``{"module": sd}``,
    ``{"state_dict": sd}`` (LlamaGen) and a DDP ``module.`` prefix."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise VarbenchError(f"{what} not found: {path}")
    if path.stat().st_size == 0:
        raise VarbenchError(f"{what} {path} is empty (0 bytes); download it again")
    _check_container(path, what)
    try:
        # argparse.Namespace: the run arguments LlamaGen's training script saves beside ``model`` (plain data)
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=_can_mmap(path))
    except pickle.UnpicklingError as e:
        first = _first_line(e)
        raise VarbenchError(
            f"{what} {path} was refused by the safe loader (weights_only=True): it holds objects other than tensors "
            f"({first[:160]}); only plain state dicts are accepted"
        ) from None
    except Exception as e:  # noqa: BLE001 - a user file: any failure (damaged zip member, pickle KeyError) is bad input
        raise VarbenchError(f"{what} {path} is unreadable ({_first_sentence(e)}); download it again") from None
    return unwrap_state_dict(obj, f"{what} {path}")


def _check_container(path: Path, what: str) -> None:
    """A torch file is a zip archive (torch >= 1.6) or a pickle (older files); say which check fails."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"PK":
        if not zipfile.is_zipfile(path):
            raise VarbenchError(f"{what} {path} is truncated (its zip archive has no central directory); "
                                "download it again")
    elif head[:1] != b"\x80":
        raise VarbenchError(f"{what} {path} is not a torch file (neither a zip archive nor a pickle); pass the "
                            "released .pth/.pt file")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _first_sentence(e: BaseException) -> str:
    """The first sentence of an error message (library messages can run on), at most 160 characters."""
    text = _first_line(e).split(". ")[0].rstrip(".")
    return (text if len(text) <= 160 else text[:157] + "...") or type(e).__name__


def _can_mmap(path: Path) -> bool:
    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


def unwrap_state_dict(obj, what: str) -> dict:
    for _ in range(3):
        if isinstance(obj, Mapping) and not _is_tensor_dict(obj):
            inner = next((obj[k] for k in _WRAPPER_KEYS if k in obj and isinstance(obj[k], Mapping)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping) or not _is_tensor_dict(obj):
        kind = type(obj).__name__
        raise VarbenchError(f"{what} is not a state dict of tensors (got {kind}); pass the released weight file")
    sd = {str(k): v for k, v in obj.items()}
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _is_tensor_dict(obj: Mapping) -> bool:
    import torch

    return len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())
