"""Density and coverage (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics"), as the ``prdc`` package and
dgm-eval compute them, on the k-NN machinery of ``prec_recall`` (blocked distances, k-th neighbour radii).

- The radius of a reference point is its distance to its k-th nearest reference neighbour (k = 5; the point itself
  is the 0-th), as ``prdc``'s ``get_kth_value(distances, k + 1)``.
- density = (1 / k) * mean over samples of the number of reference points whose ball strictly contains the sample;
- coverage = fraction of reference points whose nearest sample lies strictly inside their ball.
- Comparisons are strict (``<``), as in ``prdc``.  Squared distances are compared with squared radii (the same test);
  the default arithmetic is float64 (``prdc`` takes scikit-learn's Euclidean distances, computed in float64 and
  rounded to float32), so the two agree except for distances within float32 rounding of a radius.

Unlike ADM's precision/recall (k = 3, float16), these numbers have no reference implementation on the GPU evaluator;
the protocol records k and the arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from varbench.errors import VarbenchError
from varbench.metrics.prec_recall import BLOCK, check_features, manifold_radii, squared_distances

K = 5  # prdc / dgm-eval default
DISTANCE = "fp64"


@dataclass(frozen=True)
class DensityCoverage:
    density: float
    coverage: float
    k: int
    distance: str
    # per point: reference balls containing each sample / 5 (density's items), reference points covered (coverage's)
    sample_density: np.ndarray | None = field(default=None, compare=False, repr=False)
    covered: np.ndarray | None = field(default=None, compare=False, repr=False)


def density_coverage(real: np.ndarray, fake: np.ndarray, *, k: int = K, block: int = BLOCK,
                     distance: str = DISTANCE) -> DensityCoverage:
    """Density and coverage of ``fake`` (generated) features against ``real`` (reference) features."""
    check_features(real, k, "reference features", distance, "density/coverage")
    check_features(fake, k, "sample features", distance, "density/coverage")
    if real.shape[1] != fake.shape[1]:
        raise VarbenchError(f"feature dimensions differ: reference {real.shape[1]}, samples {fake.shape[1]}")
    radii = manifold_radii(real, k, block, distance)
    inside_count = np.zeros(len(fake), dtype=np.int64)  # reference balls containing each sample
    nearest = np.full(len(real), np.inf)  # squared distance of each reference point to its nearest sample
    for lo in range(0, len(real), block):
        r = radii[lo:lo + block, None]
        for clo in range(0, len(fake), block):
            d = squared_distances(real[lo:lo + block], fake[clo:clo + block], distance)
            inside_count[clo:clo + block] += (d < r).sum(axis=0)
            np.minimum(nearest[lo:lo + block], d.min(axis=1), out=nearest[lo:lo + block])
    covered = nearest < radii
    return DensityCoverage(density=float(inside_count.mean() / k), coverage=float(covered.mean()), k=k,
                           distance=distance, sample_density=inside_count / k, covered=covered)
