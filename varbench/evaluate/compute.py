"""Metric values from features: the pure metric functions of ``varbench.metrics`` applied to a sample set's cached
features and a reference, for every requested ``--metrics`` name.

``metric_values`` returns the values by metric key, per-metric details (IS splits, seconds), warnings, and the
per-point values that the bootstrap resamples (``Items``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from varbench.evaluate.config import EvalConfig
from varbench.metrics import density_coverage, fid as fid_metric, inception_score, kid, prec_recall


@dataclass(frozen=True)
class FeatureSet:
    """One extractor's sample features and its reference: what the metrics of that extractor read."""

    features: dict  # feature name -> (N, d) array of the samples
    reference: object  # ReferenceStats: mu/sigma (+ mu_s/sigma_s for Inception) and features for the k-NN metrics


@dataclass
class Items:
    """Per-point values whose means are metrics (bootstrap resamples them): key -> (values, "samples"|"reference")."""

    values: dict = field(default_factory=dict)


FRECHET = {  # metric key -> (extractor, feature name, reference mean attribute, reference covariance attribute)
    "fid": ("inception", "pool3", "mu", "sigma"),
    "sfid": ("inception", "spatial", "mu_s", "sigma_s"),
    "fd_dinov2": ("dinov2", "dinov2", "mu", "sigma"),
}


def frechet(key: str, sets: dict, config: EvalConfig, features: np.ndarray | None = None) -> float:
    """The Fréchet distance of metric ``key`` (fid, sfid, fd_dinov2) of ``features`` (default: the sample set's)."""
    extractor, name, mu_attr, sigma_attr = FRECHET[key]
    fs = sets[extractor]
    x = fs.features[name] if features is None else features
    mu, sigma = fid_metric.feature_statistics(x, f"{key} sample features")
    return fid_metric.frechet_distance(mu, sigma, getattr(fs.reference, mu_attr), getattr(fs.reference, sigma_attr),
                                       method=config.fid_method)


def metric_values(sets: dict, config: EvalConfig, labels: np.ndarray | None = None) -> tuple[dict, dict, list, Items]:
    """(values by metric key, details, warnings, per-point items) of every requested metric.

    ``sets``: extractor name ("inception", "dinov2") -> FeatureSet, for the extractors the metrics need."""
    values, details, warnings, items = {}, {}, [], Items()
    seconds = {}
    for metric in config.metrics:
        t0 = time.perf_counter()
        if metric in FRECHET:
            values[metric] = frechet(metric, sets, config)
        elif metric == "is":
            values.update(_inception_score(sets["inception"].features["logits"], config, labels, details, warnings))
        elif metric == "pr":
            inc = sets["inception"]
            pr = prec_recall.precision_recall(inc.reference.features, inc.features["pool3"], k=config.pr_k,
                                              block=config.pr_block, distance=config.pr_distance)
            values.update(precision=pr.precision, recall=pr.recall)
            items.values.update(precision=(pr.fake_inside, "samples"), recall=(pr.real_inside, "reference"))
        elif metric in ("dc", "dc_dinov2"):
            extractor, name, suffix = ("inception", "pool3", "") if metric == "dc" else ("dinov2", "dinov2", "_dinov2")
            fs = sets[extractor]
            dc = density_coverage.density_coverage(fs.reference.features, fs.features[name], k=config.dc_k,
                                                   block=config.pr_block, distance=config.dc_distance)
            values.update({f"density{suffix}": dc.density, f"coverage{suffix}": dc.coverage})
            items.values.update({f"density{suffix}": (dc.sample_density, "samples"),
                                 f"coverage{suffix}": (dc.covered, "reference")})
        elif metric == "kid":
            inc = sets["inception"]
            res = kid.kernel_inception_distance(inc.features["pool3"], inc.reference.features,
                                                subsets=config.kid_subsets, subset_size=config.kid_subset_size,
                                                seed=config.kid_seed)
            values.update(kid_mean=res.mean, kid_std=res.std)
        seconds[metric] = time.perf_counter() - t0
    details["seconds"] = seconds
    return values, details, warnings, items


def _inception_score(logits: np.ndarray, config: EvalConfig, labels, details: dict, warnings: list) -> dict:
    score = inception_score.inception_score(logits, config.is_splits, labels=labels, seed=config.is_seed)
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
    return {"is_mean": score.mean, "is_std": score.std}
