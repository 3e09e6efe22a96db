"""Checkpoint resolution and safe loading.

One priority order (like timm's ``_resolve_pretrained_source``):
  1. an explicit path (``--var-ckpt`` / ``--vae-ckpt`` / ...),
  2. ``$VARBENCH_HOME/weights/<filename>`` (default home: ``~/.cache/varbench``), sha256-verified when known,
  3. a download from the Hugging Face hub into that directory, unless ``VARBENCH_OFFLINE=1`` (or ``HF_HUB_OFFLINE=1``).
A miss offline is one error line naming the file, its URL and the directory to put it in.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import pickle
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

from varbench.errors import VarbenchError
from varbench.zoo import WeightFile

log = logging.getLogger(__name__)

_WRAPPER_KEYS = ("model", "module", "state_dict", "ema")


def home() -> Path:
    env = os.environ.get("VARBENCH_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache")
    return Path(base) / "varbench"


def weights_dir() -> Path:
    return home() / "weights"


def offline() -> bool:
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes") for k in ("VARBENCH_OFFLINE", "HF_HUB_OFFLINE"))


def is_cached(wf: WeightFile) -> bool:
    """Whether ``wf`` is already in the cache directory (no hashing, no download)."""
    return (weights_dir() / wf.filename).is_file()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def resolve(wf: WeightFile, explicit: str | os.PathLike | None = None, progress: Callable | None = None) -> Path:
    """Return a local path for ``wf``, downloading it if allowed.  Raises ``VarbenchError`` when it cannot."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise VarbenchError(f"{wf.role} checkpoint not found: {path} (check the path given with --{wf.role}-ckpt)")
        return path
    cached = weights_dir() / wf.filename
    if cached.is_file():
        _verify(cached, wf)
        return cached
    if offline():
        raise VarbenchError(
            f"{wf.filename} is not cached and downloads are off (VARBENCH_OFFLINE/HF_HUB_OFFLINE): "
            f"download {wf.url} into {weights_dir()}/ or pass --{wf.role}-ckpt PATH"
        )
    return _download(wf, cached)


def _verify(path: Path, wf: WeightFile) -> None:
    if wf.sha256 is None:
        return
    got = sha256_file(path)
    if got != wf.sha256:
        raise VarbenchError(
            f"sha256 mismatch for {path}: expected {wf.sha256}, got {got}; delete the file and download it again from {wf.url}"
        )


def _download(wf: WeightFile, target: Path) -> Path:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:  # pragma: no cover - dependency of varbench
        raise VarbenchError("huggingface_hub is not installed; pip install huggingface_hub") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s to %s", wf.url, target.parent)
    try:
        got = Path(hf_hub_download(repo_id=wf.repo, filename=wf.filename, local_dir=str(target.parent)))
    except Exception as e:  # network errors come in many types (requests, httpx, OSError)
        raise VarbenchError(
            f"could not download {wf.url} ({type(e).__name__}); download it by hand into {target.parent}/ "
            f"or pass --{wf.role}-ckpt PATH"
        ) from None
    if got != target and got.is_file():
        os.replace(got, target)
    _verify(target, wf)
    return target


def load_state_dict(path: str | os.PathLike, what: str = "checkpoint") -> dict:
    """``torch.load(weights_only=True)`` with every failure mode turned into one line.

    Unwraps ``{"model": sd}``, ``{"module": sd}``, ``{"state_dict": sd}`` (LlamaGen) and strips a ``module.`` prefix
    (DDP).  Returns a flat ``{key: tensor}`` dict.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise VarbenchError(f"{what} not found: {path}")
    if path.stat().st_size == 0:
        raise VarbenchError(f"{what} {path} is empty (0 bytes); download it again")
    try:
        # argparse.Namespace: the run arguments LlamaGen's training script saves beside ``model`` (plain data)
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=_can_mmap(path))
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise VarbenchError(
            f"{what} {path} was refused by the safe loader (weights_only=True): it holds objects other than tensors "
            f"({first[:160]}); only plain state dicts are accepted"
        ) from None
    except Exception as e:  # noqa: BLE001 - a user file: any failure (truncated zip, text, pickle KeyError) is bad input
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise VarbenchError(f"{what} {path} is unreadable (truncated or not a torch file?): {msg[:200]}") from None
    return unwrap_state_dict(obj, f"{what} {path}")


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


def check_keys_and_shapes(expected: Mapping, got: Mapping, what: str, limit: int = 5) -> None:
    """Raise one line listing missing/unexpected keys and shape mismatches (first ``limit`` of each)."""
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    shapes = [
        f"{k} {tuple(got[k].shape)} vs expected {tuple(expected[k].shape)}"
        for k in expected
        if k in got and tuple(got[k].shape) != tuple(expected[k].shape)
    ]
    if not (missing or unexpected or shapes):
        return
    parts = []
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:limit])}{more}")
    raise VarbenchError(f"{what} does not match the model: " + "; ".join(parts))
