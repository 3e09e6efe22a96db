"""Bootstrap intervals of every requested metric from the cached features (``varbench fid --bootstrap N``).

No feature is recomputed: a replicate reweights the sample rows (and, for recall/coverage, the reference points)
and recomputes each metric from the features already in memory.  Rules and interval methods are those of
``varbench.metrics.bootstrap``; what each metric resamples is recorded in the result (``RESAMPLES``).
"""

from __future__ import annotations

import numpy as np

from varbench.evaluate.compute import FRECHET, Items
from varbench.evaluate.config import EvalConfig
from varbench.metrics import bootstrap as boot
from varbench.metrics import fid as fid_metric
from varbench.metrics import inception_score, kid, registry
from varbench.progress import Progress, ProgressEvent, no_progress

RESAMPLES = {
    "frechet": "sample rows drawn with replacement; weighted float64 statistics; the reference statistics fixed",
    "is_mean": "sample rows drawn with replacement, in draw order, then the same split rule",
    "kid_mean": "sample rows drawn with replacement, then the same seeded subsets",
    "samples": "per-sample values (inside the full reference manifold / ball counts) resampled",
    "reference": "per-reference-point values (inside the full sample manifold / covered) resampled",
}


def intervals(values: dict, sets: dict, items: Items, config: EvalConfig,
              progress: Progress = no_progress) -> dict:
    """{metric key: interval dict} for every non-spread metric in ``values``, plus the rules used."""
    keys = [k for k in values if not registry.get(k).spread]
    n = _n_samples(sets)
    rng_samples = np.random.default_rng([config.bootstrap_seed, 0])
    rng_reference = np.random.default_rng([config.bootstrap_seed, 1])
    centres = {k: sets[FRECHET[k][0]].features[FRECHET[k][1]].mean(axis=0, dtype=np.float64)
               for k in keys if k in FRECHET}
    reps = {k: np.empty(config.bootstrap) for k in keys}
    progress(ProgressEvent("bootstrap", 0, config.bootstrap, unit="replicates"))
    for r in range(config.bootstrap):
        draws = rng_samples.integers(0, n, n)
        weights = np.bincount(draws, minlength=n)
        ref_weights = {}
        for key in keys:
            reps[key][r] = _replicate(key, sets, items, config, draws, weights, ref_weights, rng_reference,
                                      centres.get(key))
        progress(ProgressEvent("bootstrap", r + 1, config.bootstrap, unit="replicates"))
    out = {}
    for key in keys:
        method = "percentile" if key in items.values else "normal"
        out[key] = boot.interval(values[key], reps[key], method).to_dict()
        out[key]["resamples"] = _rule(key, items)
    return {"replicates": config.bootstrap, "seed": config.bootstrap_seed, "level": boot.LEVEL, "metrics": out}


def _n_samples(sets: dict) -> int:
    fs = next(iter(sets.values()))
    return len(next(iter(fs.features.values())))


def _rule(key: str, items: Items) -> str:
    if key in items.values:
        return RESAMPLES[items.values[key][1]]
    return RESAMPLES["frechet" if key in FRECHET else key]


def _replicate(key, sets, items: Items, config: EvalConfig, draws, weights, ref_weights: dict, rng_reference,
               centre) -> float:
    if key in items.values:
        per_point, side = items.values[key]
        if side == "samples":
            w = weights
        else:  # one reference draw per replicate, shared by every reference-side metric of the same size
            n_ref = len(per_point)
            if n_ref not in ref_weights:
                ref_weights[n_ref] = np.bincount(rng_reference.integers(0, n_ref, n_ref), minlength=n_ref)
            w = ref_weights[n_ref]
        return float(w @ np.asarray(per_point, dtype=np.float64) / w.sum())
    if key in FRECHET:
        extractor, name, mu_attr, sigma_attr = FRECHET[key]
        fs = sets[extractor]
        mu, sigma = boot.weighted_statistics(fs.features[name], weights, centre)
        return fid_metric.frechet_distance(mu, sigma, getattr(fs.reference, mu_attr),
                                           getattr(fs.reference, sigma_attr), method=config.fid_method)
    inc = sets["inception"]
    if key == "is_mean":
        return inception_score.inception_score(inc.features["logits"][draws], config.is_splits,
                                               seed=config.is_seed).mean
    if key == "kid_mean":
        return kid.kernel_inception_distance(inc.features["pool3"][draws], inc.reference.features,
                                             subsets=config.kid_subsets, subset_size=config.kid_subset_size,
                                             seed=config.kid_seed).mean
    raise ValueError(f"no bootstrap rule for metric {key!r}")
