"""Where a feature extractor's weight file comes from, in one priority order:

  1. an explicit path (``--inception-weights PATH``, ``--dinov2-weights PATH``),
  2. the torch hub cache, ``$TORCH_HOME/hub/checkpoints/<file>`` (default ``~/.cache/torch``), where the official
     loaders keep it (torch-fidelity, ``torch.hub.load_state_dict_from_url``), then any other known place
     (EDM2's ``~/.cache/dnnlib/torch_hub/checkpoints``),
  3. a download from the official URL into the hub cache, unless ``VARBENCH_OFFLINE=1`` or the host cannot be
     reached (probed for a few seconds, so a machine without network fails fast).

Otherwise one error line names the file, its URL, the directory to put it in and the flag.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from varbench import env
from varbench.errors import VarbenchError

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class FeatureWeights:
    what: str  # for messages: "DINOv2 weights"
    filename: str  # the released file name, also its name in the hub cache
    url: str  # the official download
    flag: str  # the CLI option that passes a path: "--dinov2-weights"
    sha256_prefix: str | None = None  # torch.hub's hash-prefix check on download (the file name carries it)


def hub_path(weights: FeatureWeights) -> Path:
    """``$TORCH_HOME/hub/checkpoints/<file>``: torch.hub's own cache location."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / weights.filename


def resolve(weights: FeatureWeights, explicit: str | os.PathLike | None = None,
            also: Sequence[Path] = ()) -> Path:
    """The local weight file: ``explicit`` > the hub cache > ``also`` > a download into the hub cache."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise VarbenchError(f"{weights.what} not found: {path} (check the path given with {weights.flag})")
        return path
    cached = hub_path(weights)
    for path in (cached, *also):
        if path.is_file():
            return path
    hint = f"download {weights.url} to {cached} (or pass {weights.flag} PATH)"
    reason = env.why_no_download(urlparse(weights.url).hostname or weights.url)
    if reason:
        raise VarbenchError(f"{weights.filename} is not cached and {reason}: {hint}")
    return _download(weights, cached, hint)


def _download(weights: FeatureWeights, target: Path, hint: str) -> Path:
    import torch

    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s to %s", weights.url, target)
    try:  # torch.hub writes a temporary file and moves it into place: no partial file under the final name
        torch.hub.download_url_to_file(weights.url, str(target), hash_prefix=weights.sha256_prefix, progress=False)
    except Exception as e:  # URLError, HTTPError, hash mismatch (RuntimeError), OSError
        raise VarbenchError(f"could not download {weights.filename} ({type(e).__name__}: {e}); {hint}") from None
    return target
