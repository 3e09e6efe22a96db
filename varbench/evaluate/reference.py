"""Reference statistics: load/save, the user cache, and the manifest of known references.

A reference is one npz in ``$VARBENCH_HOME/reference_stats/<name>.npz`` holding

- ``mu, sigma`` (pool3, float64) and ``mu_s, sigma_s`` (mixed_6/conv, float64): the FID and sFID statistics;
- ``features``: pool3 features (float32) of the reference images used for precision/recall and KID
  (ADM's 10,000 images for ImageNet-256, 1,000 for ImageNet-512);
- ``meta``: a JSON string with the extractor id, resolution, counts, the source file and its sha256.

Statistics made with one extractor id or resolution are never compared with another.  The known references and
where to get them are listed in ``reference_stats/known.json`` (package data of ``varbench.reference_stats``).
``build`` makes a reference from an ADM reference npz or from real images.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from varbench import env, files
from varbench.errors import VarbenchError, unknown_name
from varbench.evaluate import samples as sample_sets
from varbench.features.base import POOL3, SPATIAL
from varbench.metrics import fid as fid_metric
from varbench.progress import Progress, no_progress
from varbench.results.schema import ReferenceInfo

FORMAT = "varbench.reference_stats"
FORMAT_VERSION = 1
ORIGINS = ("adm-stored", "computed")  # mu/sigma taken from the ADM npz, or computed by varbench
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
ADM_KEYS = ("mu", "sigma", "mu_s", "sigma_s")


def known_file() -> Path:
    return Path(str(resources.files("varbench.reference_stats") / "known.json"))


@dataclass(frozen=True)
class ReferenceStats:
    name: str
    extractor_id: str
    height: int
    width: int
    n: int  # images behind mu/sigma (ADM: the whole dataset, unknown count -> 0)
    mu: np.ndarray  # (2048,) float64
    sigma: np.ndarray  # (2048, 2048) float64
    mu_s: np.ndarray  # (2023,) float64
    sigma_s: np.ndarray  # (2023, 2023) float64
    features: np.ndarray  # (M, 2048) float32 pool3 of the precision/recall/KID images
    source: str  # the file or folder it was built from
    source_sha256: str  # sha256 of the source npz file, or of a folder's sorted names and bytes
    origin: str  # "adm-stored" | "computed"
    extra: dict = field(default_factory=dict)  # built-by facts: varbench version, created, extractor description

    @property
    def resolution(self) -> list[int]:
        return [self.height, self.width]

    @property
    def batch(self) -> str | None:
        """The reference batch it came from, by file name, when its statistics are the batch's own (ADM)."""
        return Path(self.source).name if self.origin == "adm-stored" else None

    def info(self, stats_path: Path) -> ReferenceInfo:
        return ReferenceInfo(name=self.name, batch=self.batch, origin=self.origin, source_sha256=self.source_sha256,
                             stats_sha256=files.sha256_file(stats_path), extractor_id=self.extractor_id, n_stats=self.n,
                             n_features=int(len(self.features)), resolution=max(self.height, self.width))

    def meta(self) -> dict:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "extractor_id": self.extractor_id,
            "resolution": self.resolution,
            "n": self.n,
            "n_features": int(len(self.features)),
            "source": self.source,
            "source_sha256": self.source_sha256,
            "origin": self.origin,
            **self.extra,
        }


def cache_dir() -> Path:
    return env.home() / "reference_stats"


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise VarbenchError(f"invalid reference name {name!r}: use letters, digits, '_', '-', '.' (e.g. imagenet256)")
    return name


def path_for(name: str) -> Path:
    return cache_dir() / f"{check_name(name)}.npz"


def known() -> dict[str, dict]:
    """The manifest of known references (name -> file, url, resolution, ...)."""
    path = known_file()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise VarbenchError(f"{path} is not readable JSON ({e}); reinstall varbench") from None
    return data.get("references", {})


def built() -> list[str]:
    d = cache_dir()
    return sorted(p.stem for p in d.glob("*.npz")) if d.is_dir() else []


def save(stats: ReferenceStats, path: str | os.PathLike) -> None:
    validate(stats, str(path))
    files.save_npz(
        path,
        mu=stats.mu.astype(np.float64),
        sigma=stats.sigma.astype(np.float64),
        mu_s=stats.mu_s.astype(np.float64),
        sigma_s=stats.sigma_s.astype(np.float64),
        features=stats.features.astype(np.float32),
        meta=np.array(json.dumps(stats.meta())),
    )


def load(path: str | os.PathLike) -> ReferenceStats:
    path = Path(path)
    try:
        with sample_sets.load_npz(path, "reference-statistics npz") as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise VarbenchError(f"reference statistics not found: {path}") from None
    except (OSError, ValueError, EOFError) as e:
        raise VarbenchError(f"{path} is not a readable reference-statistics npz: {e}") from None
    missing = [k for k in ("mu", "sigma", "mu_s", "sigma_s", "features", "meta") if k not in arrays]
    if missing:
        raise VarbenchError(f"{path} is not a varbench reference (missing {', '.join(missing)}); build it with "
                            "varbench ref build")
    try:
        meta = json.loads(str(arrays["meta"]))
    except ValueError as e:
        raise VarbenchError(f"{path} has unreadable metadata: {e}") from None
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise VarbenchError(f"{path} is reference format {meta.get('format_version')!r}; this varbench reads "
                            f"{FORMAT_VERSION} (rebuild it with varbench ref build)")
    core = {"format", "format_version", "name", "extractor_id", "resolution", "n", "n_features", "source",
            "source_sha256", "origin"}
    stats = ReferenceStats(
        name=meta["name"], extractor_id=meta["extractor_id"], height=int(meta["resolution"][0]),
        width=int(meta["resolution"][1]), n=int(meta["n"]), mu=arrays["mu"], sigma=arrays["sigma"],
        mu_s=arrays["mu_s"], sigma_s=arrays["sigma_s"], features=arrays["features"], source=meta["source"],
        source_sha256=meta["source_sha256"], origin=meta["origin"],
        extra={k: v for k, v in meta.items() if k not in core},
    )
    validate(stats, str(path))
    return stats


def resolve(name_or_path: str) -> tuple[ReferenceStats, Path]:
    """A built reference by name, or a reference npz by path; a missing known reference says how to get it."""
    candidate = Path(name_or_path).expanduser()
    if name_or_path.endswith(".npz") or "/" in name_or_path:
        if not candidate.is_file():
            raise VarbenchError(f"reference file not found: {candidate} (give a built reference name or its .npz)")
        return load(candidate), candidate
    path = path_for(name_or_path)
    if path.is_file():
        return load(path), path
    entry = known().get(name_or_path)
    if entry is not None:
        raise VarbenchError(
            f"reference {name_or_path!r} is not built yet: download {entry['url']} and run "
            f"varbench ref build {name_or_path} --from {entry['file']}"
        )
    raise unknown_name("reference", name_or_path, set(built()) | set(known()),
                       hint="build one with varbench ref build NAME --from FILE_OR_DIR")


def require_compatible(ref: ReferenceStats, extractor_id: str, resolution: list[int]) -> None:
    """Refuse a comparison across extractor ids or image resolutions."""
    if ref.extractor_id != extractor_id:
        raise VarbenchError(
            f"reference {ref.name!r} was built with feature extractor {ref.extractor_id!r} but the samples are scored "
            f"with {extractor_id!r}; use the same --inception-weights or rebuild the reference"
        )
    if list(resolution) != ref.resolution:
        raise VarbenchError(
            f"samples are {resolution[0]}x{resolution[1]} but reference {ref.name!r} is "
            f"{ref.height}x{ref.width}; compare samples with a reference of their own resolution"
        )


def validate(stats: ReferenceStats, where: str) -> None:
    shapes = {"mu": (2048,), "sigma": (2048, 2048), "mu_s": (2023,), "sigma_s": (2023, 2023)}
    for key, shape in shapes.items():
        arr = getattr(stats, key)
        if arr.shape != shape:
            raise VarbenchError(f"{where}: {key} has shape {arr.shape}, expected {shape}")
        if not np.all(np.isfinite(arr)):
            raise VarbenchError(f"{where}: {key} contains NaN/inf")
    if stats.features.ndim != 2 or stats.features.shape[1] != 2048:
        raise VarbenchError(f"{where}: features have shape {stats.features.shape}, expected (M, 2048)")
    if not np.all(np.isfinite(stats.features)):
        raise VarbenchError(f"{where}: features contain NaN/inf")
    if stats.origin not in ORIGINS:
        raise VarbenchError(f"{where}: unknown origin {stats.origin!r}")


def _feature_pass(batches, keep: np.ndarray, with_moments: bool):
    """pool3 of the ``keep`` rows, and the running moments of pool3 and the sFID features of every row."""
    features = np.empty((len(keep), 2048), dtype=np.float32)
    moments = {POOL3: fid_metric.RunningMoments(2048), SPATIAL: fid_metric.RunningMoments(2023)}
    for start, batch, feats in batches:
        if with_moments:
            for key, acc in moments.items():
                acc.update(feats[key])
        rows = np.arange(start, start + len(batch))
        pos = np.searchsorted(keep, rows)
        hit = (pos < len(keep)) & (keep[np.minimum(pos, len(keep) - 1)] == rows)
        features[pos[hit]] = feats[POOL3][hit]
    return features, moments


def build(name: str, source, *, weights=None, device: str = "cpu", dtype: str = "fp32", batch_size: int = 32,
          recompute: bool = False, pr_images: int = 10_000, seed: int = 0,
          progress: Progress = no_progress) -> ReferenceStats:
    """Reference statistics from an ADM reference npz (its stored mu/sigma/mu_s/sigma_s + pool3 of its images) or
    from real images (npz or folder: everything computed; pool3 of at most ``pr_images`` images kept, a seeded
    random subset when there are more)."""
    from varbench import __version__
    from varbench.evaluate.cache import iter_features, load_extractor
    from varbench.features.inception import precision_settings, precise_float32
    from varbench.results.schema import now_utc

    check_name(name)
    source = Path(source).expanduser()
    samples = sample_sets.open_samples(source)
    stored = source.is_file() and all(k in sample_sets.npz_keys(source) for k in ADM_KEYS) and not recompute
    extractor = load_extractor(weights, device, dtype)
    if stored and not extractor.official:
        raise VarbenchError(
            f"{source.name} stores ADM statistics made with the official TF Inception, but the given weights are "
            f"not the official file ({extractor.id}); pass --recompute to compute every statistic from its images "
            "with these weights"
        )
    if pr_images < 1:
        raise VarbenchError(f"--pr-images must be at least 1, got {pr_images}")
    keep = np.arange(samples.n)
    if samples.n > pr_images:
        keep = np.sort(np.random.RandomState(seed).choice(samples.n, pr_images, replace=False))
    t0 = time.perf_counter()
    features, moments = _feature_pass(iter_features(samples, extractor, batch_size, progress, f"reference {name}"),
                                      keep, with_moments=not stored)
    with precise_float32():
        precision = precision_settings()
    extra = {"varbench_version": __version__, "created": now_utc(), "extractor": extractor.describe(),
             "float32_precision": precision, "seconds": time.perf_counter() - t0, "pr_seed": seed,
             "warnings": list(samples.warnings)}
    if stored:
        with np.load(source, allow_pickle=False) as z:
            mu, sigma, mu_s, sigma_s = (np.asarray(z[k], dtype=np.float64) for k in ADM_KEYS)
        n, origin, source_sha = 0, "adm-stored", files.sha256_file(source)
        extra["n_note"] = "mu/sigma stored by the ADM reference batch (whole dataset; count not recorded)"
    else:
        if samples.n < 2:
            raise VarbenchError(f"a reference needs at least 2 images, got {samples.n}")
        mu, sigma = moments[POOL3].mean, moments[POOL3].cov
        mu_s, sigma_s = moments[SPATIAL].mean, moments[SPATIAL].cov
        n, origin = samples.n, "computed"
        source_sha = files.sha256_file(source) if source.is_file() else samples.content_key
    ref = ReferenceStats(
        name=name, extractor_id=extractor.id, height=samples.height, width=samples.width, n=n, mu=mu, sigma=sigma,
        mu_s=mu_s, sigma_s=sigma_s, features=features, source=str(source), source_sha256=source_sha, origin=origin,
        extra=extra,
    )
    validate(ref, str(source))
    return ref
