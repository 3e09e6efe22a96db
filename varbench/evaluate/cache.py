"""Sample features: extracted in batches (the next batch is read while one runs) and cached by content.

The cache key is the sha256 of the uint8 images (or of a folder's files), the extractor id and the feature dtype,
under ``$VARBENCH_HOME/features/``: scoring the same samples against another reference or with other metrics
reuses them; each extractor (Inception, DINOv2) has its own cache files.  An unreadable or mis-shaped cache file is
ignored (and recomputed), never trusted.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from varbench import env, files
from varbench.errors import VarbenchError
from varbench.evaluate.samples import SampleSet
from varbench.features.base import DINOV2, LOGITS, POOL3, SPATIAL
from varbench.progress import Progress, ProgressEvent, no_progress

log = logging.getLogger(__name__)


EXTRACTORS = ("inception", "dinov2")
_STAGE = {"inception": "Inception features", "dinov2": "DINOv2 features"}
_WEIGHTS_FLAG = {"inception": "--inception-weights", "dinov2": "--dinov2-weights"}


@dataclass
class SampleFeatures:
    arrays: dict  # feature name -> (N, dim) array, every feature of the extractor
    array_sha256: str  # sha256 of the uint8 (N, H, W, 3) array the features came from
    cached: bool  # loaded from the feature cache
    seconds: float  # extraction (or cache load) time
    cache_path: str | None

    @property
    def pool3(self) -> np.ndarray:
        return self.arrays[POOL3]

    @property
    def logits(self) -> np.ndarray:
        return self.arrays[LOGITS]

    @property
    def spatial(self) -> np.ndarray:
        return self.arrays[SPATIAL]


def load_extractor(weights_path=None, device: str = "cpu", dtype: str = "fp32", *, kind: str = "inception",
                   heads: int | None = None, resize: str = "torch"):
    """The feature extractor ``kind`` (inception | dinov2) from its weights (resolved as each documents)."""
    if kind == "dinov2":
        from varbench.features.dinov2 import DINOv2Extractor

        return DINOv2Extractor.from_file(weights_path, device=device, dtype=dtype, heads=heads, resize=resize)
    if kind != "inception":
        raise VarbenchError(f"unknown feature extractor {kind!r}; use one of {', '.join(EXTRACTORS)}")
    from varbench.features.inception import InceptionExtractor

    return InceptionExtractor.from_file(weights_path, device=device, dtype=dtype)


def kind_of(extractor) -> str:
    """inception | dinov2: which family an extractor object belongs to (from its feature names)."""
    return "dinov2" if DINOV2 in extractor.dims else "inception"


def iter_features(samples: SampleSet, extractor, batch_size: int,
                  progress: Progress = no_progress, description: str = "features") -> Iterator[tuple]:
    """(start index, uint8 batch, features) in order; the next batch is read while the current one runs."""
    progress(ProgressEvent(description, 0, samples.n))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        batches = samples.batches(batch_size)
        pending = pool.submit(next, batches, None)
        start = 0
        while (batch := pending.result()) is not None:
            pending = pool.submit(next, batches, None)
            feats = extractor.extract(batch)
            for name, arr in feats.items():
                finite = np.isfinite(arr).all(axis=1)
                if not finite.all():
                    raise VarbenchError(
                        f"the Inception extractor produced NaN/inf {name} features for image "
                        f"{start + int(np.argmin(finite))} of {samples.path}; check --inception-weights"
                    )
            yield start, batch, feats
            start += len(batch)
            progress(ProgressEvent(description, start, samples.n))


def _cache_path(content_key: str, extractor_id: str, dtype: str) -> Path:
    safe_id = re.sub(r"[^A-Za-z0-9_.-]", "_", extractor_id)
    return env.home() / "features" / f"{content_key[-40:]}-{safe_id}-{dtype}.npz"


def sample_features(samples: SampleSet, extractor, *, batch_size: int, dtype: str, use_cache: bool = True,
                    progress: Progress = no_progress) -> SampleFeatures:
    """All features of a sample set, from the cache when the same content was scored with the same extractor."""
    path = _cache_path(samples.content_key, extractor.id, dtype) if use_cache else None
    t0 = time.perf_counter()
    if path is not None and path.is_file():
        got = _load_cached(path, samples.n, extractor.dims)
        if got is not None:
            return SampleFeatures(*got, cached=True, seconds=time.perf_counter() - t0, cache_path=str(path))
    np_dtype = np.float64 if dtype == "fp64" else np.float32
    out = {name: np.empty((samples.n, dim), dtype=np_dtype) for name, dim in extractor.dims.items()}
    digest = hashlib.sha256()
    for start, batch, feats in iter_features(samples, extractor, batch_size, progress, _STAGE[kind_of(extractor)]):
        digest.update(batch.data)
        for name, arr in feats.items():
            out[name][start:start + len(batch)] = arr
    seconds = time.perf_counter() - t0
    if path is not None:
        files.save_npz(path, **out, array_sha256=np.array(digest.hexdigest()), n=np.array(samples.n))
    return SampleFeatures(out, digest.hexdigest(), cached=False, seconds=seconds, cache_path=str(path) if path else None)


def _load_cached(path: Path, n: int, dims: dict) -> tuple | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in dims}
            sha = str(z["array_sha256"])
    except (OSError, ValueError, KeyError, EOFError) as e:
        log.warning("ignoring unreadable feature cache %s (%s); recomputing", path, e)
        return None
    if any(a.shape != (n, dims[k]) for k, a in arrays.items()):
        log.warning("ignoring feature cache %s with unexpected shapes; recomputing", path)
        return None
    return arrays, sha
