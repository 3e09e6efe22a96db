"""KID against torch-fidelity's implementation on the same features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from varbench.errors import VarbenchError
from varbench.metrics import kid

TF_KWARGS = dict(kid_subsets=20, kid_subset_size=100, rng_seed=2020, verbose=False, kid_kernel="poly",
                 kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1)


def features(n, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    return np.abs(rng.normal(shift, 1.0, size=(n, 64))).astype(np.float32)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_equals_torch_fidelity(dtype):
    from torch_fidelity.metric_kid import kid_features_to_metric

    fake, real = features(300, 1, shift=0.3), features(250, 2)
    got = kid.kernel_inception_distance(fake, real, subsets=20, subset_size=100, seed=2020, dtype=dtype)
    theirs = kid_features_to_metric(torch.from_numpy(fake.astype(dtype)), torch.from_numpy(real.astype(dtype)),
                                    **TF_KWARGS)
    assert got.mean == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-12, abs=1e-15)
    assert got.std == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-9)


def test_same_distribution_near_zero_shifted_positive():
    same = kid.kernel_inception_distance(features(400, 3), features(400, 4), subsets=10, subset_size=200)
    shifted = kid.kernel_inception_distance(features(400, 3, shift=1.0), features(400, 4), subsets=10,
                                            subset_size=200)
    assert abs(same.mean) < 3 * same.std + 1e-6
    assert shifted.mean > 10 * max(abs(same.mean), same.std)


def test_seeded():
    a = kid.kernel_inception_distance(features(300, 5), features(300, 6), subsets=5, subset_size=100, seed=1)
    b = kid.kernel_inception_distance(features(300, 5), features(300, 6), subsets=5, subset_size=100, seed=1)
    c = kid.kernel_inception_distance(features(300, 5), features(300, 6), subsets=5, subset_size=100, seed=2)
    assert a == b and a.mean != c.mean


def test_bad_input():
    with pytest.raises(VarbenchError, match="kid-subset-size"):
        kid.kernel_inception_distance(features(50, 1), features(500, 2), subset_size=100)
    bad = features(200, 1)
    bad[5, 5] = np.inf
    with pytest.raises(VarbenchError, match="NaN/inf"):
        kid.kernel_inception_distance(bad, features(200, 2), subset_size=100)
