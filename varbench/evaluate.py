"""Scoring sample sets: features (cached by content), ADM-protocol metrics, other backends, reference building.

``evaluate()`` returns a ``varbench.results`` result of kind "fid"; ``build_reference()`` returns ``ReferenceStats``.
Metric math lives in ``varbench.metrics`` (pure functions); this module only wires data, cache and backends.

Backends:
- ``adm``: varbench's implementation of the ADM evaluator protocol (the numbers in ``results["metrics"]``).
- ``torch-fidelity``: ``torch_fidelity.calculate_metrics`` on the same images and Inception weights; the reference
  enters through its cache (pool3 features, bias-free logits and FID statistics written under its cache names).
  Its own defaults otherwise: IS over a seeded shuffle, float32 FID mean, Euclidean cdist precision/recall.
- ``clean-fid``: clean-fid's legacy_tensorflow pipeline (``get_model_features``, ``frechet_distance`` with SciPy
  sqrtm, ``kernel_distance``) on the same images.  Its TorchScript Inception is used when present at
  ``/tmp/inception-2015-12-05.pt`` and the weights are the official ones; otherwise varbench's network is passed as
  clean-fid's custom feature extractor (its TorchScript file cannot be built with other weights).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import io
import logging
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from varbench import images, stats
from varbench.errors import VarbenchError
from varbench.features.base import LOGITS, POOL3, SPATIAL
from varbench.metrics import fid as fid_metric
from varbench.metrics import inception_score, kid, prec_recall

log = logging.getLogger(__name__)

METRIC_KEYS = {
    "fid": ("fid",),
    "sfid": ("sfid",),
    "is": ("is_mean", "is_std"),
    "pr": ("precision", "recall"),
    "kid": ("kid_mean", "kid_std"),
}
BACKENDS = ("adm", "torch-fidelity", "clean-fid")
BACKEND_CHOICES = BACKENDS + ("all",)
FID_DIMS = {"fid": 2048, "sfid": 2023}
CLEANFID_TORCHSCRIPT = Path("/tmp/inception-2015-12-05.pt")  # where clean-fid keeps its model on Linux
Progress = Callable[[str, int], contextlib.AbstractContextManager]


@contextlib.contextmanager
def no_progress(description: str, total: int) -> Iterator[Callable]:
    yield lambda n=1, **fields: None


@dataclass(frozen=True)
class EvalConfig:
    metrics: tuple[str, ...] = ("fid", "sfid", "is", "pr", "kid")
    backend: str = "adm"  # adm | torch-fidelity | clean-fid | all
    batch_size: int = 32
    device: str = "cpu"
    dtype: str = "fp32"  # feature arithmetic: fp32 | fp64
    fid_method: str = "eig"  # eig (eigenvalue trace) | sqrtm (SciPy, ADM's literal code)
    is_splits: int = 10
    is_seed: int = inception_score.SHUFFLE_SEED  # permutation of the order-robust IS
    pr_k: int = prec_recall.K
    pr_distance: str = "fp32"  # fp32 | fp16 (ADM's float16 arithmetic, emulated) | fp64
    pr_block: int = prec_recall.BLOCK
    kid_subsets: int = kid.SUBSETS
    kid_subset_size: int = kid.SUBSET_SIZE
    kid_seed: int = kid.SEED
    feature_cache: bool = True  # reuse sample features computed before (keyed by content, extractor, dtype)

    def __post_init__(self):
        object.__setattr__(self, "metrics", tuple(self.metrics))
        bad = [m for m in self.metrics if m not in METRIC_KEYS]
        if bad or not self.metrics:
            raise VarbenchError(f"unknown metrics {', '.join(bad) or '(none)'}; choose from {', '.join(METRIC_KEYS)}")
        checks = [
            (self.backend in BACKEND_CHOICES, f"--backend must be one of {', '.join(BACKEND_CHOICES)}"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.dtype in ("fp32", "fp64"), "--dtype must be fp32 or fp64"),
            (self.fid_method in fid_metric.METHODS, f"--fid-method must be one of {', '.join(fid_metric.METHODS)}"),
            (self.is_splits >= 1, "--is-splits must be at least 1"),
            (self.pr_k >= 1, "--pr-k must be at least 1"),
            (self.pr_distance in prec_recall.DISTANCES, f"--pr-distance must be one of {prec_recall.DISTANCES}"),
            (self.pr_block >= 1, "the P&R block size must be at least 1"),
            (self.kid_subsets >= 1, "--kid-subsets must be at least 1"),
            (self.kid_subset_size >= 2, "--kid-subset-size must be at least 2"),
        ]
        for ok, msg in checks:
            if not ok:
                raise VarbenchError(msg)

    @property
    def backends(self) -> tuple[str, ...]:
        return BACKENDS if self.backend == "all" else (self.backend,)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["metrics"] = list(self.metrics)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> EvalConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise VarbenchError(f"unknown eval config keys: {', '.join(unknown)}")
        return cls(**d)


@dataclass
class SampleFeatures:
    pool3: np.ndarray
    logits: np.ndarray
    spatial: np.ndarray
    array_sha256: str  # sha256 of the uint8 (N, H, W, 3) array the features came from
    cached: bool  # loaded from the feature cache
    seconds: float  # extraction (or cache load) time
    cache_path: str | None


def load_extractor(weights_path=None, device: str = "cpu", dtype: str = "fp32"):
    from varbench.features.inception import InceptionExtractor

    return InceptionExtractor.from_file(weights_path, device=device, dtype=dtype)


def iter_features(samples: images.SampleSet, extractor, batch_size: int,
                  progress: Progress = no_progress, description: str = "features") -> Iterator[tuple]:
    """(start index, uint8 batch, features) in order; the next batch is read while the current one runs."""
    with progress(description, samples.n) as advance, concurrent.futures.ThreadPoolExecutor(1) as pool:
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
            advance(len(batch))


def _cache_path(content_key: str, extractor_id: str, dtype: str) -> Path:
    from varbench import weights

    safe_id = re.sub(r"[^A-Za-z0-9_.-]", "_", extractor_id)
    return weights.home() / "features" / f"{content_key[-40:]}-{safe_id}-{dtype}.npz"


def sample_features(samples: images.SampleSet, extractor, config: EvalConfig,
                    progress: Progress = no_progress) -> SampleFeatures:
    """All features of a sample set, from the cache when the same content was scored with the same extractor."""
    path = _cache_path(samples.content_key, extractor.id, config.dtype) if config.feature_cache else None
    t0 = time.perf_counter()
    if path is not None and path.is_file():
        got = _load_cached(path, samples.n, extractor.dims)
        if got is not None:
            return SampleFeatures(*got, cached=True, seconds=time.perf_counter() - t0, cache_path=str(path))
    dtype = np.float64 if config.dtype == "fp64" else np.float32
    out = {name: np.empty((samples.n, dim), dtype=dtype) for name, dim in extractor.dims.items()}
    digest = hashlib.sha256()
    for start, batch, feats in iter_features(samples, extractor, config.batch_size, progress, "Inception features"):
        digest.update(batch.data)
        for name, arr in feats.items():
            out[name][start:start + len(batch)] = arr
    seconds = time.perf_counter() - t0
    if path is not None:
        from varbench import atomic

        atomic.save_npz(path, **out, array_sha256=np.array(digest.hexdigest()), n=np.array(samples.n))
    return SampleFeatures(out[POOL3], out[LOGITS], out[SPATIAL], digest.hexdigest(), cached=False, seconds=seconds,
                          cache_path=str(path) if path else None)


def _load_cached(path: Path, n: int, dims: dict) -> tuple | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = [z[POOL3], z[LOGITS], z[SPATIAL]]
            sha = str(z["array_sha256"])
    except (OSError, ValueError, KeyError, EOFError) as e:
        log.warning("ignoring unreadable feature cache %s (%s); recomputing", path, e)
        return None
    if any(a.shape != (n, dims[k]) for a, k in zip(arrays, (POOL3, LOGITS, SPATIAL))):
        log.warning("ignoring feature cache %s with unexpected shapes; recomputing", path)
        return None
    return (*arrays, sha)


def required_counts(config: EvalConfig, n_samples: int, n_ref_features: int) -> list[str]:
    """Refuse metric requests the set sizes cannot support (before any feature work); return warnings."""
    warnings = []
    m = set(config.metrics)
    if m & {"fid", "sfid"} and n_samples < 2:
        raise VarbenchError(f"FID/sFID need at least 2 samples for a covariance, got {n_samples}")
    for key in sorted(m & {"fid", "sfid"}):
        if n_samples < FID_DIMS[key]:
            warnings.append(
                f"{key}: {n_samples} samples < {FID_DIMS[key]} feature dimensions: the covariance is rank-deficient "
                "and the value is strongly biased (the ADM protocol uses 50,000 samples)"
            )
    if "is" in m and n_samples < config.is_splits:
        raise VarbenchError(f"Inception Score with {config.is_splits} splits needs at least {config.is_splits} "
                            f"samples, got {n_samples} (lower --is-splits)")
    if "pr" in m:
        for n, what in ((n_samples, "samples"), (n_ref_features, "reference images")):
            if n <= config.pr_k:
                raise VarbenchError(f"precision/recall with k={config.pr_k} needs more than {config.pr_k} {what}, "
                                    f"got {n}")
    if "kid" in m and min(n_samples, n_ref_features) < config.kid_subset_size:
        raise VarbenchError(
            f"KID subset size {config.kid_subset_size} is larger than the sets ({n_samples} samples, "
            f"{n_ref_features} reference images); lower --kid-subset-size or drop kid from --metrics"
        )
    return warnings


def adm_metrics(feats: SampleFeatures, ref: stats.ReferenceStats, config: EvalConfig,
                labels: np.ndarray | None = None) -> tuple[dict, dict, list[str]]:
    """The ADM-protocol metrics: (values by metric key, details, warnings)."""
    values, details, warnings = {}, {}, []
    seconds = {}
    for metric in config.metrics:
        t0 = time.perf_counter()
        if metric in ("fid", "sfid"):
            feats_arr, mu, sigma = (feats.pool3, ref.mu, ref.sigma) if metric == "fid" else \
                (feats.spatial, ref.mu_s, ref.sigma_s)
            mu_s, sigma_s = fid_metric.feature_statistics(feats_arr, f"{metric} sample features")
            values[metric] = fid_metric.frechet_distance(mu_s, sigma_s, mu, sigma, method=config.fid_method)
        elif metric == "is":
            score = inception_score.inception_score(feats.logits, config.is_splits, labels=labels,
                                                    seed=config.is_seed)
            values.update(is_mean=score.mean, is_std=score.std)
            details["is"] = {"splits": list(score.splits), "shuffled_mean": score.shuffled_mean,
                             "shuffled_std": score.shuffled_std, "class_sorted": score.class_sorted,
                             "neighbour_agreement": score.neighbour_agreement,
                             "shuffled_neighbour_agreement": score.shuffled_neighbour_agreement}
            if score.class_sorted:
                warnings.append(
                    f"IS: the samples look class-sorted (consecutive splits see different classes), so the ADM value "
                    f"{score.mean:.4f} depends on the order; order-robust value over a seeded shuffle: "
                    f"{score.shuffled_mean:.4f} (in details.is.shuffled_mean)"
                )
        elif metric == "pr":
            pr = prec_recall.precision_recall(ref.features, feats.pool3, k=config.pr_k, block=config.pr_block,
                                              distance=config.pr_distance)
            values.update(precision=pr.precision, recall=pr.recall)
        elif metric == "kid":
            res = kid.kernel_inception_distance(feats.pool3, ref.features, subsets=config.kid_subsets,
                                                subset_size=config.kid_subset_size, seed=config.kid_seed)
            values.update(kid_mean=res.mean, kid_std=res.std)
        seconds[metric] = time.perf_counter() - t0
    details["seconds"] = seconds
    return values, details, warnings


def evaluate(samples_path, ref: str, config: EvalConfig, *, weights=None,
             progress: Progress = no_progress) -> dict:
    """Score a sample set against a built reference; returns a ``varbench.results`` result of kind "fid"."""
    from varbench import results, weights as weights_mod
    from varbench.features.inception import precision_settings, precise_float32

    samples = images.open_samples(samples_path)
    reference, ref_path = stats.resolve(ref)
    stats.require_compatible(reference, reference.extractor_id, samples.resolution)  # the resolution, early
    count_warnings = required_counts(config, samples.n, len(reference.features))  # before loading any weights
    extractor = load_extractor(weights, config.device, config.dtype)
    stats.require_compatible(reference, extractor.id, samples.resolution)
    warnings = list(samples.warnings)
    warnings += count_warnings
    if not extractor.official:
        warnings.append(f"Inception weights {extractor.weights_path} are not the official file "
                        f"({extractor.id}): numbers are not comparable with published ones")
    if samples.random_weights:
        warnings.append("the samples come from random-weight models (manifest.json random_weights: true)")

    t0 = time.perf_counter()
    feats = sample_features(samples, extractor, config, progress) if "adm" in config.backends else None
    with precise_float32():
        precision = precision_settings()

    metric_values, details, metric_warnings = {}, {}, []
    backend_values: dict[str, dict] = {}
    backend_info: dict[str, dict] = {}
    for backend in config.backends:
        if backend == "adm":
            metric_values, details, metric_warnings = adm_metrics(feats, reference, config, samples.labels)
            backend_values["adm"] = metric_values
        elif backend == "torch-fidelity":
            backend_values[backend], backend_info[backend] = _torch_fidelity(samples, reference, extractor, config)
        else:
            backend_values[backend], backend_info[backend] = _clean_fid(samples, reference, extractor, config)
    warnings += metric_warnings
    primary = "adm" if "adm" in backend_values else config.backends[0]
    res: dict = {
        "metrics": backend_values[primary],
        "backend": primary,
        "details": details,
        "reference": {
            "name": reference.name,
            "path": str(ref_path),
            "sha256": reference.source_sha256,
            "stats_sha256": weights_mod.sha256_file(ref_path),
            "extractor_id": reference.extractor_id,
            "n": reference.n,
            "n_features": int(len(reference.features)),
            "resolution": reference.resolution,
            "origin": reference.origin,
        },
        "samples": {**samples.describe(), "sha256": feats.array_sha256 if feats else images.decoded_sha256(samples)},
        "extractor": extractor.describe(),
        "float32_precision": precision,
        "features": None if feats is None else {
            "cached": feats.cached, "cache_path": feats.cache_path, "seconds": feats.seconds,
            "images_per_s": (samples.n / feats.seconds) if not feats.cached and feats.seconds else None},
        "seconds": time.perf_counter() - t0,
        "warnings": warnings,
    }
    if len(backend_values) > 1 or primary != "adm":
        res["backends"] = backend_values
        res["backend_settings"] = backend_info
        if "adm" in backend_values:
            res["differences"] = {
                name: {k: v - backend_values["adm"][k] for k, v in vals.items() if k in backend_values["adm"]}
                for name, vals in backend_values.items() if name != "adm"
            }
    random_weights = samples.random_weights or not extractor.official
    run_config = config.to_dict()
    if samples.generate:  # how the samples were made, so a report can match published numbers of that model
        run_config["generate"] = samples.generate
    return results.make("fid", run_config, res, device=config.device, random_weights=random_weights)


# ---- other backends ------------------------------------------------------------------------------------------------

_TF_KEYS = {
    "frechet_inception_distance": "fid",
    "inception_score_mean": "is_mean",
    "inception_score_std": "is_std",
    "kernel_inception_distance_mean": "kid_mean",
    "kernel_inception_distance_std": "kid_std",
    "precision": "precision",
    "recall": "recall",
}


def _torch_fidelity(samples: images.SampleSet, ref: stats.ReferenceStats, extractor, config: EvalConfig):
    """torch-fidelity's ``calculate_metrics`` on the same images; the reference enters through its cache."""
    import torch
    import torch_fidelity
    from torch.utils.data import Dataset

    from varbench.features.inception import precise_float32

    wanted = {"isc": "is" in config.metrics, "fid": "fid" in config.metrics, "kid": "kid" in config.metrics,
              "prc": "pr" in config.metrics}
    info = {"version": torch_fidelity.__version__, "computes": [k for k, v in wanted.items() if v]}
    if not any(wanted.values()):
        return {}, {**info, "note": "torch-fidelity has none of the requested metrics (no sFID)"}

    class Images(Dataset):
        def __len__(self):
            return samples.n

        def __getitem__(self, i):
            return torch.from_numpy(np.ascontiguousarray(samples.image(i).transpose(2, 0, 1)))

    with tempfile.TemporaryDirectory(prefix="varbench-tf-") as cache_root, precise_float32():
        settings = torch_fidelity_settings(ref, extractor, config, cache_root)
        settings.update(input1=Images(), **wanted)
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(io.StringIO()) as err:
            got = torch_fidelity.calculate_metrics(**settings)
        _log_captured("torch-fidelity", out, err)
    values = {_TF_KEYS[k]: float(v) for k, v in got.items() if k in _TF_KEYS}
    info.update(seconds=time.perf_counter() - t0, samples_shuffle=True, rng_seed=config.kid_seed,
                save_cpu_ram=True, reference="our reference features/statistics through its cache (mu as float32)")
    if config.dtype == "fp64":
        info["note"] = "torch-fidelity 0.4.0 maps feature_extractor_internal_dtype='float64' to float32"
    return values, info


def torch_fidelity_settings(ref: stats.ReferenceStats, extractor, config: EvalConfig, cache_root) -> dict:
    """``calculate_metrics`` keyword arguments that score against ``ref``: its pool3 features, their bias-free
    logits and its FID statistics are written into ``cache_root`` under torch-fidelity's cache names for input2
    (which is then never read).  Metric switches and input1 are left to the caller."""
    import torch

    extractor_name = "inception-v3-compat"
    ref_name = "varbench-ref-" + ref.source_sha256[-16:]
    root = Path(cache_root)
    prefix = f"{ref_name}-{extractor_name}-features-"
    torch.save(torch.from_numpy(np.ascontiguousarray(ref.features, dtype=np.float32)), root / f"{prefix}2048.pt")
    torch.save(torch.from_numpy(extractor.logits_from_pool3(ref.features).astype(np.float32)),
               root / f"{prefix}logits_unbiased.pt")
    torch.save({"mu": ref.mu.astype(np.float32), "sigma": ref.sigma.astype(np.float64)},
               root / f"{ref_name}-{extractor_name}-stat-fid-2048.pt")
    return dict(
        input2=ref_name, input2_cache_name=ref_name, cache_root=str(cache_root), cache=True,
        cuda=str(config.device).startswith("cuda"), batch_size=config.batch_size,
        feature_extractor=extractor_name, feature_extractor_weights_path=extractor.weights_path,
        feature_extractor_internal_dtype="float64" if config.dtype == "fp64" else "float32",
        isc_splits=config.is_splits, kid_subsets=config.kid_subsets, kid_subset_size=config.kid_subset_size,
        prc_neighborhood=config.pr_k, prc_batch_size=config.pr_block, rng_seed=config.kid_seed,
        save_cpu_ram=True, verbose=False,
    )


def _clean_fid(samples: images.SampleSet, ref: stats.ReferenceStats, extractor, config: EvalConfig):
    """clean-fid's legacy_tensorflow feature pipeline and its FID/KID math on the same images."""
    import cleanfid
    import torch
    from cleanfid import fid as cfid

    from varbench.features.inception import precise_float32

    info: dict = {"version": getattr(cleanfid, "__version__", None) or _dist_version("clean-fid"),
                  "mode": "legacy_tensorflow"}
    wanted = [m for m in ("fid", "kid") if m in config.metrics]
    if not wanted:
        return {}, {**info, "note": "clean-fid computes only FID and KID"}
    device = torch.device(config.device)
    if CLEANFID_TORCHSCRIPT.is_file() and extractor.official:
        from cleanfid.features import build_feature_extractor

        model = build_feature_extractor("legacy_tensorflow", device=device, use_dataparallel=False)
        info["feature_model"] = f"clean-fid TorchScript {CLEANFID_TORCHSCRIPT}"
    else:
        def model(x):  # float NCHW in [0, 255] (uint8 values) -> pool3, through varbench's network
            arr = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            return torch.from_numpy(extractor.extract(arr)[POOL3].astype(np.float32))

        info["feature_model"] = (f"varbench Inception ({extractor.id}) as clean-fid's custom feature extractor: "
                                 f"its TorchScript model needs the official weights at {CLEANFID_TORCHSCRIPT}")
    batches = samples.batches(config.batch_size)

    def generator(z):  # clean-fid asks a generator for batches; hand it the samples in order
        batch = next(batches)
        return torch.from_numpy(batch).permute(0, 3, 1, 2).to(device=device, dtype=torch.float32)

    t0 = time.perf_counter()
    values = {}
    rng_devices = [device] if device.type == "cuda" else []
    with precise_float32(), torch.random.fork_rng(devices=rng_devices), \
            contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(io.StringIO()) as err:
        feats = cfid.get_model_features(generator, model, mode="legacy_tensorflow", z_dim=1, num_gen=samples.n,
                                         batch_size=config.batch_size, device=device, verbose=False)
        if "fid" in wanted:
            mu, sigma = np.mean(feats, axis=0), np.cov(feats, rowvar=False)
            values["fid"] = float(cfid.frechet_distance(mu, sigma, ref.mu, ref.sigma))
        if "kid" in wanted:
            state = np.random.get_state()  # clean-fid draws subsets from the global RNG: seed it, then restore
            try:
                np.random.seed(config.kid_seed)
                values["kid_mean"] = float(cfid.kernel_distance(
                    feats, ref.features, num_subsets=config.kid_subsets, max_subset_size=config.kid_subset_size))
            finally:
                np.random.set_state(state)
    _log_captured("clean-fid", out, err)
    info.update(seconds=time.perf_counter() - t0, kid_seed=config.kid_seed,
                note="no IS, sFID or precision/recall in clean-fid; KID without std")
    return values, info


def _dist_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _log_captured(who: str, out: io.StringIO, err: io.StringIO) -> None:
    for line in (out.getvalue() + err.getvalue()).splitlines():
        if line.strip():
            log.info("%s: %s", who, line.strip())


# ---- reference building ----------------------------------------------------------------------------------------------

ADM_KEYS = ("mu", "sigma", "mu_s", "sigma_s")


def build_reference(name: str, source, *, weights=None, device: str = "cpu", dtype: str = "fp32",
                    batch_size: int = 32, recompute: bool = False, pr_images: int = 10_000, seed: int = 0,
                    progress: Progress = no_progress) -> stats.ReferenceStats:
    """Reference statistics from an ADM reference npz (its stored mu/sigma/mu_s/sigma_s + pool3 of its images) or
    from real images (npz or folder: everything computed; pool3 of at most ``pr_images`` images kept, a seeded
    random subset when there are more)."""
    from varbench import __version__, results, weights as weights_mod
    from varbench.features.inception import precision_settings, precise_float32

    stats.check_name(name)
    source = Path(source).expanduser()
    samples = images.open_samples(source)
    stored = source.is_file() and all(k in images.npz_keys(source) for k in ADM_KEYS) and not recompute
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
    features = np.empty((len(keep), 2048), dtype=np.float32)
    moments = {POOL3: fid_metric.RunningMoments(2048), SPATIAL: fid_metric.RunningMoments(2023)}
    t0 = time.perf_counter()
    for start, batch, feats in iter_features(samples, extractor, batch_size, progress, f"reference {name}"):
        if not stored:
            for key, acc in moments.items():
                acc.update(feats[key])
        rows = np.arange(start, start + len(batch))
        pos = np.searchsorted(keep, rows)
        hit = (pos < len(keep)) & (keep[np.minimum(pos, len(keep) - 1)] == rows)
        features[pos[hit]] = feats[POOL3][hit]
    with precise_float32():
        precision = precision_settings()
    extra = {"varbench_version": __version__, "created": results.now_utc(), "extractor": extractor.describe(),
             "float32_precision": precision, "seconds": time.perf_counter() - t0, "pr_seed": seed,
             "warnings": list(samples.warnings)}
    if stored:
        with np.load(source, allow_pickle=False) as z:
            mu, sigma, mu_s, sigma_s = (np.asarray(z[k], dtype=np.float64) for k in ADM_KEYS)
        n, origin, source_sha = 0, "adm-stored", weights_mod.sha256_file(source)
        extra["n_note"] = "mu/sigma stored by the ADM reference batch (whole dataset; count not recorded)"
    else:
        if samples.n < 2:
            raise VarbenchError(f"a reference needs at least 2 images, got {samples.n}")
        mu, sigma = moments[POOL3].mean, moments[POOL3].cov
        mu_s, sigma_s = moments[SPATIAL].mean, moments[SPATIAL].cov
        n, origin = samples.n, "computed"
        source_sha = weights_mod.sha256_file(source) if source.is_file() else samples.content_key
    ref = stats.ReferenceStats(
        name=name, extractor_id=extractor.id, height=samples.height, width=samples.width, n=n, mu=mu, sigma=sigma,
        mu_s=mu_s, sigma_s=sigma_s, features=features, source=str(source), source_sha256=source_sha, origin=origin,
        extra=extra,
    )
    stats.validate(ref, str(source))
    return ref
