"""Reference statistics: load/save, the user cache, and the manifest of known references.

A reference is one npz in ``$VARBENCH_HOME/reference_stats/<name>.npz`` made with one feature extractor:

- Inception (``feature`` pool3): ``mu, sigma`` (pool3, float64) and ``mu_s, sigma_s`` (mixed_6/conv, float64), the
  FID and sFID statistics; DINOv2 (``feature`` dinov2): ``mu, sigma`` of the CLS features (FD_DINOv2);
- ``features``: that feature (float32) of the images used for the k-NN metrics and KID (ADM's 10,000 images for
  ImageNet-256, 1,000 for ImageNet-512);
- ``meta``: a JSON string with the extractor id, the feature, resolution, counts, the source file and its sha256.

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
from varbench.features.base import DINOV2, POOL3, SPATIAL
from varbench.metrics import fid as fid_metric
from varbench.progress import Progress, no_progress
from varbench.results.schema import ReferenceInfo

FORMAT = "varbench.reference_stats"
FORMAT_VERSION = 2  # 2 added "feature" (1: Inception pool3 only)
FEATURES = (POOL3, DINOV2)  # the feature whose mu/sigma a reference holds
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
    mu: np.ndarray  # (d,) float64: (2048,) pool3 | (1024,) DINOv2 ViT-L/14
    sigma: np.ndarray  # (d, d) float64
    mu_s: np.ndarray | None  # (2023,) float64 sFID statistics (Inception references only)
    sigma_s: np.ndarray | None  # (2023, 2023) float64
    features: np.ndarray  # (M, d) float32 of the precision/recall/density/KID images
    source: str  # the file or folder it was built from
    source_sha256: str  # sha256 of the source npz file, or of a folder's sorted names and bytes
    origin: str  # "adm-stored" | "computed"
    extra: dict = field(default_factory=dict)  # built-by facts: varbench version, created, extractor description
    feature: str = POOL3  # pool3 (Inception) | dinov2

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
            "feature": self.feature,
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
    sfid = {} if stats.mu_s is None else {"mu_s": stats.mu_s.astype(np.float64),
                                          "sigma_s": stats.sigma_s.astype(np.float64)}
    files.save_npz(path, mu=stats.mu.astype(np.float64), sigma=stats.sigma.astype(np.float64), **sfid,
                   features=stats.features.astype(np.float32), meta=np.array(json.dumps(stats.meta())))


def load(path: str | os.PathLike) -> ReferenceStats:
    path = Path(path)
    try:
        with sample_sets.load_npz(path, "reference-statistics npz") as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise VarbenchError(f"reference statistics not found: {path}") from None
    except (OSError, ValueError, EOFError) as e:
        raise VarbenchError(f"{path} is not a readable reference-statistics npz: {e}") from None
    meta = _meta(arrays, path)
    feature = meta.get("feature", POOL3)  # format 1: Inception only
    needed = ("mu", "sigma", "features") + (("mu_s", "sigma_s") if feature == POOL3 else ())
    missing = [k for k in needed if k not in arrays]
    if missing:
        raise VarbenchError(f"{path} is not a varbench reference (missing {', '.join(missing)}); build it with "
                            "varbench ref build")
    core = {"format", "format_version", "name", "extractor_id", "feature", "resolution", "n", "n_features",
            "source", "source_sha256", "origin"}
    stats = ReferenceStats(
        name=meta["name"], extractor_id=meta["extractor_id"], height=int(meta["resolution"][0]),
        width=int(meta["resolution"][1]), n=int(meta["n"]), mu=arrays["mu"], sigma=arrays["sigma"],
        mu_s=arrays.get("mu_s"), sigma_s=arrays.get("sigma_s"), features=arrays["features"], source=meta["source"],
        source_sha256=meta["source_sha256"], origin=meta["origin"],
        extra={k: v for k, v in meta.items() if k not in core}, feature=feature,
    )
    validate(stats, str(path))
    return stats


def _meta(arrays: dict, path: Path) -> dict:
    if "meta" not in arrays:
        raise VarbenchError(f"{path} is not a varbench reference (missing meta); build it with varbench ref build")
    try:
        meta = json.loads(str(arrays["meta"]))
    except ValueError as e:
        raise VarbenchError(f"{path} has unreadable metadata: {e}") from None
    if meta.get("format") != FORMAT or meta.get("format_version") not in (1, FORMAT_VERSION):
        raise VarbenchError(f"{path} is reference format {meta.get('format_version')!r}; this varbench reads 1 and "
                            f"{FORMAT_VERSION} (rebuild it with varbench ref build)")
    return meta


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
        flag = "--dinov2-weights/--dinov2-resize" if ref.feature == DINOV2 else "--inception-weights"
        raise VarbenchError(
            f"reference {ref.name!r} was built with feature extractor {ref.extractor_id!r} but the samples are scored "
            f"with {extractor_id!r}; use the same {flag} or rebuild the reference"
        )
    if list(resolution) != ref.resolution:
        raise VarbenchError(
            f"samples are {resolution[0]}x{resolution[1]} but reference {ref.name!r} is "
            f"{ref.height}x{ref.width}; compare samples with a reference of their own resolution"
        )


def validate(stats: ReferenceStats, where: str) -> None:
    if stats.feature not in FEATURES:
        raise VarbenchError(f"{where}: unknown reference feature {stats.feature!r}; expected one of {FEATURES}")
    d = 2048 if stats.feature == POOL3 else int(np.shape(stats.mu)[0])  # DINOv2: the ViT's width
    shapes = {"mu": (d,), "sigma": (d, d)}
    if stats.feature == POOL3:
        shapes.update(mu_s=(2023,), sigma_s=(2023, 2023))
    elif stats.mu_s is not None or stats.sigma_s is not None:
        raise VarbenchError(f"{where}: a {stats.feature} reference has no sFID statistics")
    for key, shape in shapes.items():
        arr = getattr(stats, key)
        if arr is None or arr.shape != shape:
            raise VarbenchError(f"{where}: {key} has shape {getattr(arr, 'shape', None)}, expected {shape}")
        if not np.all(np.isfinite(arr)):
            raise VarbenchError(f"{where}: {key} contains NaN/inf")
    if stats.features.ndim != 2 or stats.features.shape[1] != d:
        raise VarbenchError(f"{where}: features have shape {stats.features.shape}, expected (M, {d})")
    if not np.all(np.isfinite(stats.features)):
        raise VarbenchError(f"{where}: features contain NaN/inf")
    if stats.origin not in ORIGINS:
        raise VarbenchError(f"{where}: unknown origin {stats.origin!r}")


def _feature_pass(batches, keep: np.ndarray, with_moments: bool, dims: dict, feature: str):
    """``feature`` of the ``keep`` rows, and the running moments of it (and of the sFID features) of every row."""
    features = np.empty((len(keep), dims[feature]), dtype=np.float32)
    moments = {key: fid_metric.RunningMoments(dims[key]) for key in (feature, SPATIAL) if key in dims}
    for start, batch, feats in batches:
        if with_moments:
            for key, acc in moments.items():
                acc.update(feats[key])
        rows = np.arange(start, start + len(batch))
        pos = np.searchsorted(keep, rows)
        hit = (pos < len(keep)) & (keep[np.minimum(pos, len(keep) - 1)] == rows)
        features[pos[hit]] = feats[feature][hit]
    return features, moments


def build(name: str, source, *, weights=None, device: str = "cpu", dtype: str = "fp32", batch_size: int = 32,
          recompute: bool = False, pr_images: int = 10_000, seed: int = 0, extractor: str = "inception",
          dinov2_heads: int | None = None, dinov2_resize: str = "torch", center_crop: int | None = None,
          progress: Progress = no_progress) -> ReferenceStats:
    """Reference statistics from an ADM reference npz (its stored mu/sigma/mu_s/sigma_s + pool3 of its images) or
    from real images (npz or folder: everything computed; features of at most ``pr_images`` images kept, a seeded
    random subset when there are more).  ``extractor="dinov2"`` computes DINOv2 statistics from the images (an ADM
    npz's stored statistics are Inception's and are not used)."""
    from varbench import __version__
    from varbench.evaluate.cache import iter_features, load_extractor
    from varbench.features.inception import precision_settings, precise_float32
    from varbench.results.schema import now_utc

    check_name(name)
    if pr_images < 1:
        raise VarbenchError(f"--pr-images must be at least 1, got {pr_images}")
    source = Path(source).expanduser()
    samples = sample_sets.open_samples(source, center_crop=center_crop)
    adm_npz = source.is_file() and all(k in sample_sets.npz_keys(source) for k in ADM_KEYS)
    stored = adm_npz and not recompute and extractor == "inception"
    ex = load_extractor(weights, device, dtype, kind=extractor, heads=dinov2_heads, resize=dinov2_resize)
    if stored and not ex.official:
        raise VarbenchError(
            f"{source.name} stores ADM statistics made with the official TF Inception, but the given weights are "
            f"not the official file ({ex.id}); pass --recompute to compute every statistic from its images "
            "with these weights"
        )
    feature = DINOV2 if extractor == "dinov2" else POOL3
    keep = np.arange(samples.n)
    if samples.n > pr_images:
        keep = np.sort(np.random.RandomState(seed).choice(samples.n, pr_images, replace=False))
    t0 = time.perf_counter()
    features, moments = _feature_pass(iter_features(samples, ex, batch_size, progress, f"reference {name}"),
                                      keep, not stored, ex.dims, feature)
    with precise_float32():
        precision = precision_settings()
    warnings = list(samples.warnings)
    if adm_npz and extractor == "dinov2":
        warnings.append(f"{source.name} stores ADM's Inception statistics; the DINOv2 statistics are computed from "
                        "its images")
    extra = {"varbench_version": __version__, "created": now_utc(), "extractor": ex.describe(),
             "float32_precision": precision, "seconds": time.perf_counter() - t0, "pr_seed": seed,
             "warnings": warnings, "center_crop": None if center_crop is None else
             f"guided-diffusion center_crop_arr to {center_crop} (BOX halving, BICUBIC, centre crop)"}
    if stored:
        with np.load(source, allow_pickle=False) as z:
            mu, sigma, mu_s, sigma_s = (np.asarray(z[k], dtype=np.float64) for k in ADM_KEYS)
        n, origin, source_sha = 0, "adm-stored", files.sha256_file(source)
        extra["n_note"] = "mu/sigma stored by the ADM reference batch (whole dataset; count not recorded)"
    else:
        if samples.n < 2:
            raise VarbenchError(f"a reference needs at least 2 images, got {samples.n}")
        mu, sigma = moments[feature].mean, moments[feature].cov
        mu_s, sigma_s = (moments[SPATIAL].mean, moments[SPATIAL].cov) if SPATIAL in moments else (None, None)
        n, origin = samples.n, "computed"
        source_sha = files.sha256_file(source) if source.is_file() else samples.content_key
    ref = ReferenceStats(
        name=name, extractor_id=ex.id, height=samples.height, width=samples.width, n=n, mu=mu, sigma=sigma,
        mu_s=mu_s, sigma_s=sigma_s, features=features, source=str(source), source_sha256=source_sha, origin=origin,
        extra=extra, feature=feature,
    )
    validate(ref, str(source))
    return ref
