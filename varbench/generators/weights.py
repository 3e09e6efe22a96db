"""Where a zoo model's weight files come from, in one priority order (like timm's ``_resolve_pretrained_source``):

  1. an explicit path (``--var-ckpt`` / ``--vae-ckpt`` / ...),
  2. ``$VARBENCH_HOME/weights/<filename>`` (default home: ``~/.cache/varbench``), sha256-verified when known,
  3. a download from the Hugging Face hub into that directory, unless ``VARBENCH_OFFLINE=1`` (or ``HF_HUB_OFFLINE=1``).

Every file of a model is resolved before any is downloaded, so a miss offline (or with no network) is one error line
naming every missing file, its URL and the directory to put it in, within seconds.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from varbench import env
from varbench.errors import VarbenchError
from varbench.files import sha256_file
from varbench.generators.spec import WeightFile

log = logging.getLogger(__name__)

HUB_HOST = "huggingface.co"


def weights_dir() -> Path:
    return env.home() / "weights"


def is_cached(wf: WeightFile) -> bool:
    """Whether ``wf`` is already in the cache directory (no hashing, no download)."""
    return (weights_dir() / wf.filename).is_file()


def resolve_all(files: Sequence[WeightFile], explicit: dict | None = None) -> dict[str, Path]:
    """role -> local path for every file; downloads what is missing (when allowed) after checking all of them."""
    explicit = explicit or {}
    paths: dict[str, Path] = {}
    missing: list[WeightFile] = []
    for wf in files:
        given = explicit.get(wf.role)
        if given is not None:
            path = Path(given).expanduser()
            if not path.is_file():
                raise VarbenchError(f"{wf.role} checkpoint not found: {path} (check the path given with --{wf.role}-ckpt)")
            paths[wf.role] = path
            continue
        cached = weights_dir() / wf.filename
        if cached.is_file():
            _verify(cached, wf)
            paths[wf.role] = cached
        else:
            missing.append(wf)
    if missing:
        reason = env.why_no_download(HUB_HOST)
        if reason:
            raise VarbenchError(_missing_message(missing, reason))
        for wf in missing:
            paths[wf.role] = _download(wf, weights_dir() / wf.filename)
    return paths


def resolve(wf: WeightFile, explicit: str | os.PathLike | None = None) -> Path:
    """One file (see ``resolve_all``)."""
    return resolve_all([wf], {wf.role: explicit} if explicit is not None else {})[wf.role]


def _missing_message(missing: Sequence[WeightFile], reason: str) -> str:
    names = ", ".join(wf.filename for wf in missing)
    urls = " ".join(wf.url for wf in missing)
    flags = " ".join(f"--{wf.role}-ckpt PATH" for wf in missing)
    return (f"{names} not in {weights_dir()}/ and {reason}: download {urls} into {weights_dir()}/ "
            f"or pass {flags}")


def _verify(path: Path, wf: WeightFile) -> None:
    if wf.sha256 is None:
        return
    got = sha256_file(path)
    if got != wf.sha256:
        raise VarbenchError(
            f"sha256 mismatch for {path}: expected {wf.sha256}, got {got}; delete the file and download it again from {wf.url}"
        )


@contextlib.contextmanager
def _quiet_hub():
    """The hub client's own retry and warning lines would repeat what our one error line says."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _download(wf: WeightFile, target: Path) -> Path:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:  # pragma: no cover - dependency of varbench
        raise VarbenchError("huggingface_hub is not installed; pip install huggingface_hub") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s to %s", wf.url, target.parent)
    try:
        with _quiet_hub():
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
