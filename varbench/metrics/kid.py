"""Kernel Inception Distance (Bińkowski et al. 2018): pure functions over arrays.

Unbiased MMD^2 with the polynomial kernel ``k(x, y) = (x.y / d + 1)^3``, averaged over ``subsets`` random subsets
of ``subset_size`` rows from each set.  Subsets are drawn exactly as torch-fidelity draws them
(``numpy.random.RandomState(seed)``, per subset ``choice(n_fake, m, replace=False)`` then
``choice(n_real, m, replace=False)``), so with the same seed (torch-fidelity's default is 2020) and features the two
agree.  Arithmetic runs in float64 by default; ``dtype=np.float32`` reproduces torch-fidelity on float32 features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from varbench.errors import VarbenchError

SUBSETS = 100
SUBSET_SIZE = 1000
SEED = 2020
DEGREE = 3
COEF0 = 1.0


@dataclass(frozen=True)
class KernelDistance:
    mean: float
    std: float  # over subsets
    subsets: int
    subset_size: int
    seed: int


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T * (1.0 / x.shape[1]) + COEF0) ** DEGREE


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between equal-sized sets x and y under the polynomial kernel."""
    m = len(x)
    k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within_x = (k_xx.sum(axis=1) - np.diagonal(k_xx)).sum()  # off-diagonal sums
    within_y = (k_yy.sum(axis=1) - np.diagonal(k_yy)).sum()
    across = k_xy.sum(axis=0).sum()
    return float((within_x + within_y) / (m * (m - 1)) - 2 * across / (m * m))


def kernel_inception_distance(fake: np.ndarray, real: np.ndarray, *, subsets: int = SUBSETS,
                              subset_size: int = SUBSET_SIZE, seed: int = SEED,
                              dtype=np.float64) -> KernelDistance:
    fake, real = np.asarray(fake), np.asarray(real)
    if fake.ndim != 2 or real.ndim != 2 or fake.shape[1] != real.shape[1]:
        raise VarbenchError(f"KID needs (N, d) features of one dimension, got {fake.shape} and {real.shape}")
    if subset_size < 2 or subsets < 1:
        raise VarbenchError(f"KID needs subset size >= 2 and at least one subset, got {subset_size} x {subsets}")
    if min(len(fake), len(real)) < subset_size:
        raise VarbenchError(
            f"KID subset size {subset_size} is larger than the sets ({len(fake)} samples, {len(real)} reference "
            "features); lower --kid-subset-size"
        )
    for arr, what in ((fake, "sample"), (real, "reference")):
        if not np.all(np.isfinite(arr)):
            raise VarbenchError(f"KID: the {what} features contain NaN/inf; check the weights and the inputs")
    fake, real = fake.astype(dtype, copy=False), real.astype(dtype, copy=False)
    rng = np.random.RandomState(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        f = fake[rng.choice(len(fake), subset_size, replace=False)]
        r = real[rng.choice(len(real), subset_size, replace=False)]
        values[i] = mmd2_unbiased(f, r)
    return KernelDistance(float(values.mean()), float(values.std()), subsets, subset_size, seed)
