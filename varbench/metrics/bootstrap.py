"""Bootstrap confidence intervals over cached features: pure functions over arrays.

A replicate draws N rows with replacement (``numpy.random.default_rng(seed)``, replicate after replicate) and
recomputes a metric.  Two interval rules, recorded with every interval:

- ``percentile``: the 2.5 and 97.5 percentiles of the replicates, for metrics that are means of per-point values
  (precision, recall, density, coverage: the manifolds stay those of the full sets, only the points averaged are
  resampled; precision and density resample the samples, recall and coverage the reference points);
- ``normal``: full-set value +- 1.96 bootstrap standard deviations, for plug-in statistics (FID, sFID, FD_DINOv2,
  IS, KID).  Resampling duplicates rows, which shifts these statistics (FID up: fewer distinct points); a percentile
  interval would then sit beside the full-set value.  The shift is reported as ``bias`` (replicate mean - value).

The weighted statistics of a replicate are float64 sums over centred features in chunks (the replicate's Gram
matrix dominates the cost; float32 products were tried and break the rank-revealing factorisation of small sets).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

Z95 = 1.959963984540054  # the 97.5% standard normal quantile
LEVEL = 0.95
METHODS = ("percentile", "normal")
_CHUNK = 4096


@dataclass(frozen=True)
class Interval:
    value: float  # the full-set value
    low: float
    high: float
    std: float  # over replicates
    bias: float  # mean of the replicates - value
    method: str  # percentile | normal
    replicates: int

    def to_dict(self) -> dict:
        return asdict(self)


def interval(value: float, replicates: np.ndarray, method: str) -> Interval:
    reps = np.asarray(replicates, dtype=np.float64)
    if method not in METHODS or reps.ndim != 1 or len(reps) < 2:
        raise ValueError(f"interval needs a method in {METHODS} and at least 2 replicates, got {method!r}, {reps.shape}")
    std = float(reps.std(ddof=1))
    if method == "percentile":
        low, high = np.percentile(reps, [100 * (1 - LEVEL) / 2, 100 * (1 + LEVEL) / 2])
    else:
        low, high = value - Z95 * std, value + Z95 * std
    return Interval(value=float(value), low=float(low), high=float(high), std=std, bias=float(reps.mean() - value),
                    method=method, replicates=len(reps))


def counts(rng: np.random.Generator, n: int) -> np.ndarray:
    """How often each of n rows is drawn in one replicate (n draws with replacement)."""
    return np.bincount(rng.integers(0, n, n), minlength=n)


def weighted_statistics(features: np.ndarray, weights: np.ndarray,
                        centre: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (ddof 1) of the rows of ``features`` repeated ``weights`` times, in float64.

    ``centre`` (the full-set mean, float64) keeps the sums well conditioned; pass it when calling repeatedly."""
    x = np.asarray(features)
    w = np.asarray(weights, dtype=np.float64)
    n = float(w.sum())
    centre = x.mean(axis=0, dtype=np.float64) if centre is None else centre
    d = x.shape[1]
    gram = np.zeros((d, d))
    first = np.zeros(d)
    for lo in range(0, len(x), _CHUNK):
        wc = w[lo:lo + _CHUNK]
        keep = wc > 0
        xc = x[lo:lo + _CHUNK][keep] - centre  # float64
        wk = wc[keep]
        gram += (xc.T * wk) @ xc
        first += wk @ xc
    delta = first / n
    return centre + delta, (gram - n * np.outer(delta, delta)) / (n - 1)
