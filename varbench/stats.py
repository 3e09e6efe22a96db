"""Reference statistics: load/save, the user cache, and the manifest of known references.

A reference is one npz in ``$VARBENCH_HOME/reference_stats/<name>.npz`` holding

- ``mu, sigma`` (pool3, float64) and ``mu_s, sigma_s`` (mixed_6/conv, float64): the FID and sFID statistics;
- ``features``: pool3 features (float32) of the reference images used for precision/recall and KID
  (ADM's 10,000 images for ImageNet-256, 1,000 for ImageNet-512);
- ``meta``: a JSON string with the extractor id, resolution, counts, the source file and its sha256.

Statistics made with one extractor id or resolution are never compared with another.  The known references and
where to get them are listed in ``reference_stats/known.json`` at the repository root.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from varbench import atomic
from varbench.errors import VarbenchError, unknown_name

FORMAT = "varbench.reference_stats"
FORMAT_VERSION = 1
ORIGINS = ("adm-stored", "computed")  # mu/sigma taken from the ADM npz, or computed by varbench
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
KNOWN_FILE = Path(__file__).resolve().parent.parent / "reference_stats" / "known.json"


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
    from varbench import weights

    return weights.home() / "reference_stats"


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise VarbenchError(f"invalid reference name {name!r}: use letters, digits, '_', '-', '.' (e.g. imagenet256)")
    return name


def path_for(name: str) -> Path:
    return cache_dir() / f"{check_name(name)}.npz"


def known() -> dict[str, dict]:
    """The manifest of known references (name -> file, url, resolution, ...)."""
    try:
        data = json.loads(KNOWN_FILE.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise VarbenchError(f"{KNOWN_FILE} is not readable JSON: {e}") from None
    return data.get("references", {})


def built() -> list[str]:
    d = cache_dir()
    return sorted(p.stem for p in d.glob("*.npz")) if d.is_dir() else []


def save(stats: ReferenceStats, path: str | os.PathLike) -> None:
    validate(stats, str(path))
    atomic.save_npz(
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
        from varbench.images import load_npz

        with load_npz(path, "reference-statistics npz") as z:
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
