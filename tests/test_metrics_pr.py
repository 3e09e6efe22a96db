"""Precision/recall: exact agreement with a brute-force ManifoldEstimator, direction, blocks, fp16 emulation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from varbench.errors import VarbenchError
from varbench.metrics import prec_recall as pr


def brute_force(real, fake, k=3):
    """Full squared-distance matrices in float64, radius = k-th neighbour (sorted index k), `<=` membership."""
    d_rr, d_ff, d_fr = (cdist(a, b, "sqeuclidean") for a, b in ((real, real), (fake, fake), (fake, real)))
    r_real, r_fake = np.sort(d_rr, axis=1)[:, k], np.sort(d_ff, axis=1)[:, k]
    precision = np.mean([(d_fr[i] <= r_real).any() for i in range(len(fake))])
    recall = np.mean([(d_fr[:, j] <= r_fake).any() for j in range(len(real))])
    return float(precision), float(recall)


def integer_features(n, d, seed, high=4):
    # small integers: every distance is exact in float32 and ties are common, so `<=` vs `<` matters
    return np.random.default_rng(seed).integers(0, high, size=(n, d)).astype(np.float32)


@pytest.mark.parametrize("block", [10_000, 7, 2])
def test_equals_brute_force_exactly(block):
    real, fake = integer_features(120, 6, 1), integer_features(150, 6, 2, high=5)
    got = pr.precision_recall(real, fake, block=block)
    assert (got.precision, got.recall) == brute_force(real, fake)
    assert 0 < got.precision < 1 and 0 < got.recall < 1  # a case that discriminates


def test_equals_brute_force_on_continuous_features():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(200, 16)).astype(np.float32)
    fake = (rng.normal(size=(180, 16)) * 1.3 + 0.4).astype(np.float32)
    got = pr.precision_recall(real, fake, block=64, distance="fp64")
    assert (got.precision, got.recall) == brute_force(real.astype(np.float64), fake.astype(np.float64))


def test_ties_count_as_inside():
    # duplicates: every radius is 0 and points on it must count (ADM uses <=)
    real = np.repeat(np.eye(3, dtype=np.float32), 4, axis=0)
    got = pr.precision_recall(real, real.copy())
    assert (got.precision, got.recall) == (1.0, 1.0)


def test_direction_tight_versus_wide_cluster():
    rng = np.random.default_rng(4)
    wide = rng.normal(0, 1.0, size=(300, 8)).astype(np.float32)
    tight = rng.normal(0, 0.05, size=(300, 8)).astype(np.float32)
    # generated = tight cluster inside the real spread: precise, poor recall
    tight_fake = pr.precision_recall(real=wide, fake=tight)
    assert tight_fake.precision > 0.95 and tight_fake.recall < 0.2
    wide_fake = pr.precision_recall(real=tight, fake=wide)
    assert wide_fake.precision < 0.2 and wide_fake.recall > 0.95


def test_radii_are_kth_neighbour():
    x = np.array([[0.0], [1.0], [3.0], [6.0], [10.0]], np.float32)
    # from 0: 0, 1, 9, 36, 100 -> third neighbour 36; from 3: 0, 4, 9, 9, 49 -> 9 (a tie)
    np.testing.assert_array_equal(pr.manifold_radii(x, k=3, block=2), [36, 25, 9, 25, 81])


def test_fp16_emulation():
    rng = np.random.default_rng(5)
    u, v = rng.uniform(0, 2, size=(30, 64)), rng.uniform(0, 2, size=(40, 64))
    d16, d32 = pr.squared_distances(u, v, "fp16"), pr.squared_distances(u, v, "fp32")
    np.testing.assert_array_equal(d16.astype(np.float16).astype(np.float32), d16)  # float16 values
    assert not np.array_equal(d16, d32)
    np.testing.assert_allclose(d16, d32, rtol=2e-2, atol=0.1)
    # float16 overflow (|u|^2 > 65504): ADM recomputes the block in float32
    big = np.full((3, 64), 40.0)
    np.testing.assert_array_equal(pr.squared_distances(big, big * 0.5, "fp16"), pr.squared_distances(big, big * 0.5))
    # with integer features the float16 arithmetic is exact, so both give the same answer
    real, fake = integer_features(80, 5, 6), integer_features(90, 5, 7)
    a, b = pr.precision_recall(real, fake, distance="fp16"), pr.precision_recall(real, fake)
    assert (a.precision, a.recall) == (b.precision, b.recall)


def test_too_few_points_and_nan():
    with pytest.raises(VarbenchError, match="more than 3"):
        pr.precision_recall(np.zeros((3, 4), np.float32), np.zeros((10, 4), np.float32))
    bad = np.zeros((10, 4), np.float32)
    bad[0, 0] = np.nan
    with pytest.raises(VarbenchError, match="NaN"):
        pr.precision_recall(np.zeros((10, 4), np.float32), bad)
