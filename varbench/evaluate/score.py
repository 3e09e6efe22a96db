"""``varbench fid``: score a sample set against a built reference in the ADM evaluator's protocol.

``evaluate()`` wires samples, cached features and a reference into the pure metric functions of
``varbench.metrics`` (and, on request, the cross-check backends) and returns a results-schema record of kind "fid".
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields

import numpy as np

from varbench.errors import VarbenchError
from varbench.evaluate import backends as backend_impl
from varbench.evaluate import reference as references
from varbench.evaluate import samples as sample_sets
from varbench.evaluate.backends import BACKENDS
from varbench.evaluate.cache import SampleFeatures, load_extractor, sample_features
from varbench.metrics import fid as fid_metric
from varbench.metrics import inception_score, kid, prec_recall, registry
from varbench.progress import Progress, no_progress
from varbench.results import schema

BACKEND_CHOICES = BACKENDS + ("all",)
FID_DIMS = {"fid": 2048, "sfid": 2023}


@dataclass(frozen=True)
class EvalConfig:
    metrics: tuple[str, ...] = tuple(registry.requestable())  # --metrics names (fid, sfid, is, pr, kid)
    backend: str = "adm"  # adm | torch-fidelity | clean-fid | all
    batch_size: int = 32
    device: str = "cpu"
    dtype: str = "fp32"  # feature arithmetic: fp32 | fp64
    fid_method: str = "eig"  # eig (eigenvalue trace) | sqrtm (SciPy, ADM's literal code)
    is_splits: int | None = None  # None: ADM's consecutive chunks of 5,000; K: torch-fidelity's K splits
    is_seed: int = inception_score.SHUFFLE_SEED  # permutation of the order-robust IS
    pr_k: int = prec_recall.K
    pr_distance: str = prec_recall.ADM_DISTANCE  # fp16 (ADM's float16 arithmetic) | fp32 | fp64
    pr_block: int = prec_recall.BLOCK
    kid_subsets: int = kid.SUBSETS
    kid_subset_size: int = kid.SUBSET_SIZE
    kid_seed: int = kid.SEED
    feature_cache: bool = True  # reuse sample features computed before (keyed by content, extractor, dtype)

    def __post_init__(self):
        object.__setattr__(self, "metrics", tuple(self.metrics))
        requestable = registry.requestable()
        bad = [m for m in self.metrics if m not in requestable]
        if bad or not self.metrics:
            raise VarbenchError(f"unknown metrics {', '.join(bad) or '(none)'}; choose from {', '.join(requestable)}")
        if len(set(self.metrics)) != len(self.metrics):
            raise VarbenchError(f"--metrics has duplicates: {', '.join(self.metrics)}")
        checks = [
            (self.backend in BACKEND_CHOICES, f"--backend must be one of {', '.join(BACKEND_CHOICES)}"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.dtype in ("fp32", "fp64"), "--dtype must be fp32 or fp64"),
            (self.fid_method in fid_metric.METHODS, f"--fid-method must be one of {', '.join(fid_metric.METHODS)}"),
            (self.is_splits is None or self.is_splits >= 1, "--is-splits must be at least 1"),
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
    if "is" in m and config.is_splits is not None and n_samples < config.is_splits:
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


def adm_metrics(feats: SampleFeatures, ref: references.ReferenceStats, config: EvalConfig,
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
            details["is"] = {"splits": list(score.splits), "rule": score.rule, "shuffled_mean": score.shuffled_mean,
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


def arithmetic(config: EvalConfig) -> dict:
    """metric key -> the arithmetic it is computed with (recorded in every fid result)."""
    out = {}
    requested = registry.requestable()
    for name in config.metrics:
        text = {
            "fid": f"float64 statistics (np.cov), Frechet trace by {config.fid_method}",
            "sfid": f"float64 statistics (np.cov), Frechet trace by {config.fid_method}",
            "is": inception_score.split_rule(config.is_splits) + "; float64 log-softmax",
            "pr": (f"{config.pr_distance} squared distances"
                   + (" (ADM's float16 arithmetic; GPU summation order not reproduced)"
                      if config.pr_distance == prec_recall.ADM_DISTANCE else " (not ADM's float16 arithmetic)")
                   + f", k={config.pr_k}, D(reference, samples) blocks of {config.pr_block}"),
            "kid": f"float64 cubic polynomial kernel, {config.kid_subsets} subsets of {config.kid_subset_size}, "
                   f"seed {config.kid_seed}",
        }[name]
        out.update({key: text for key in requested[name]})
    return out


def evaluate(samples_path, ref: str, config: EvalConfig, *, weights=None,
             progress: Progress = no_progress) -> schema.Result:
    """Score a sample set against a built reference; returns a result of kind "fid"."""
    from varbench.features.inception import precise_float32

    samples = sample_sets.open_samples(samples_path)
    reference, ref_path = references.resolve(ref)
    references.require_compatible(reference, reference.extractor_id, samples.resolution)  # the resolution, early
    warnings = list(samples.warnings) + required_counts(config, samples.n, len(reference.features))
    extractor = load_extractor(weights, config.device, config.dtype)  # only after every cheap check passed
    references.require_compatible(reference, extractor.id, samples.resolution)
    if not extractor.official:
        warnings.append(f"Inception weights {extractor.weights_path} are not the official file "
                        f"({extractor.id}): numbers are not comparable with published ones")
    if samples.random_weights:
        warnings.append("the samples come from a random-weight model (its generate result says so)")
    t0 = time.perf_counter()
    feats = sample_features(samples, extractor, batch_size=config.batch_size, dtype=config.dtype,
                            use_cache=config.feature_cache, progress=progress) if "adm" in config.backends else None
    values, details = {}, {}
    for backend in config.backends:
        if backend == "adm":
            values["adm"], details, metric_warnings = adm_metrics(feats, reference, config, samples.labels)
            warnings += metric_warnings
        elif backend == "torch-fidelity":
            values[backend], details[backend] = backend_impl.torch_fidelity(samples, reference, extractor, config)
        else:
            values[backend], details[backend] = backend_impl.clean_fid(samples, reference, extractor, config)
    primary = "adm" if "adm" in values else config.backends[0]
    differences = {name: {k: v - values["adm"][k] for k, v in vals.items() if k in values["adm"]}
                   for name, vals in values.items() if name != "adm" and "adm" in values}
    results = schema.FidResults(
        metrics=values[primary], backend=primary, backends=values, differences=differences, details=details,
        features=None if feats is None else {
            "cached": feats.cached, "cache_path": feats.cache_path, "seconds": feats.seconds,
            "images_per_s": (samples.n / feats.seconds) if not feats.cached and feats.seconds else None},
        seconds=time.perf_counter() - t0)
    protocol = _protocol(samples, feats, reference, ref_path, extractor, config)
    with precise_float32() as precision:
        protocol["arithmetic"]["float32"] = precision
    run_config = {**config.to_dict(), "samples": str(samples.path), "ref": ref,
                  "inception_weights": extractor.weights_path}
    return schema.make("fid", run_config, results, protocol, device=config.device,
                       random_weights=samples.random_weights or not extractor.official, warnings=warnings)


def _protocol(samples, feats, reference, ref_path, extractor, config: EvalConfig) -> schema.Protocol:
    protocol = schema.empty_protocol()
    for key in ("model", "sampling", "labels", "seeds"):  # how the samples were made, when a generate run says so
        protocol[key] = (samples.source or {}).get(key)
    protocol["samples"] = samples.info(feats.array_sha256 if feats else sample_sets.decoded_sha256(samples))
    protocol["reference"] = reference.info(ref_path)
    protocol["extractor"] = schema.ExtractorInfo(id=extractor.id, official_weights=extractor.official,
                                                 weights_sha256=extractor.weights_sha256, dtype=extractor.dtype,
                                                 device=str(extractor.device))
    protocol["arithmetic"] = arithmetic(config)
    return protocol
