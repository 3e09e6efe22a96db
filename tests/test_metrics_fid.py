"""Fréchet distance against a direct numpy/SciPy transcription of the ADM evaluator's formulas."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import linalg

from varbench.errors import VarbenchError
from varbench.metrics import fid


def adm_statistics(acts):
    """ADM: mean of the float32 activations, np.cov(rowvar=False)."""
    return np.mean(acts, axis=0), np.cov(acts, rowvar=False)


def adm_frechet(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """ADM's frechet distance: scipy sqrtm, retry with eps * I when not finite, imaginary check on the diagonal."""
    diff = mu1 - mu2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
        if not np.isfinite(covmean).all():
            offset = np.eye(sigma1.shape[0]) * eps
            covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError("Imaginary component")
        covmean = covmean.real
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


def features(n, d, seed, scale=1.0, shift=0.0):
    """Correlated, non-negative-ish float32 features (like pool3 activations)."""
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((d, d)) / np.sqrt(d)
    return np.abs(rng.standard_normal((n, d)) @ mix * scale + shift).astype(np.float32)


CASES = {
    "full rank": (600, 500, 64),
    "samples rank-deficient (N < d)": (60, 900, 128),
    "both rank-deficient": (50, 70, 96),
    "sFID-like": (400, 300, 160),
}


@pytest.mark.parametrize("n1,n2,d", list(CASES.values()), ids=list(CASES))
def test_eig_method_equals_adm_transcription(n1, n2, d):
    x, y = features(n1, d, 1), features(n2, d, 2, scale=1.2, shift=0.3)
    mu1, s1 = fid.feature_statistics(x)
    mu2, s2 = fid.feature_statistics(y)
    expected = adm_frechet(*adm_statistics(x), *adm_statistics(y))
    got = fid.frechet_distance(mu1, s1, mu2, s2)
    assert got == pytest.approx(expected, rel=1e-6)
    assert fid.frechet_distance(mu1, s1, mu2, s2, method="sqrtm") == pytest.approx(expected, rel=1e-6)
    # symmetric in its two arguments
    assert fid.frechet_distance(mu2, s2, mu1, s1) == pytest.approx(got, rel=1e-9)


def test_statistics_are_float64_mean_and_np_cov():
    x = features(300, 32, 3)
    mu, sigma = fid.feature_statistics(x)
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    np.testing.assert_allclose(mu, x.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_array_equal(sigma, np.cov(x, rowvar=False))


def test_known_answer_one_dimensional():
    # N(0, 1) vs N(1, 4): (0 - 1)^2 + 1 + 4 - 2 * sqrt(1 * 4) = 2
    for method in fid.METHODS:
        assert fid.frechet_distance([0.0], [[1.0]], [1.0], [[4.0]], method=method) == pytest.approx(2.0, rel=1e-12)


def test_identical_sets_give_zero():
    x = features(500, 48, 4)
    mu, sigma = fid.feature_statistics(x)
    assert abs(fid.frechet_distance(mu, sigma, mu, sigma)) < 1e-9 * np.trace(sigma)


def test_retry_adds_eps_to_both_diagonals(monkeypatch):
    x, y = features(200, 24, 5), features(300, 24, 6)
    (mu1, s1), (mu2, s2) = fid.feature_statistics(x), fid.feature_statistics(y)
    real = fid._trace_sqrt_eig
    calls = []

    def first_fails(a, b):
        calls.append((a, b))
        return None if len(calls) == 1 else real(a, b)

    monkeypatch.setattr(fid, "_trace_sqrt_eig", first_fails)
    got = fid.frechet_distance(mu1, s1, mu2, s2)
    assert len(calls) == 2
    np.testing.assert_array_equal(calls[1][0], s1 + np.eye(24) * 1e-6)
    eps_i = np.eye(24) * 1e-6
    expected = (mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * real(s1 + eps_i, s2 + eps_i)
    assert got == pytest.approx(expected, rel=1e-12)


def test_imaginary_component_raises_like_adm():
    indefinite, swap = np.diag([1.0, -1.0]), np.array([[0.0, 1.0], [1.0, 0.0]])
    # sqrtm of each product has an imaginary diagonal well above ADM's 1e-3
    for sigma1, sigma2 in ((indefinite, np.eye(2)), (np.eye(2), indefinite)):
        for method in fid.METHODS:
            with pytest.raises(VarbenchError, match="Imaginary component"):
                fid.frechet_distance(np.zeros(2), sigma1, np.zeros(2), sigma2, method=method)
    # both indefinite, product a rotation with eigenvalues +-i: SciPy finds a real square root (ADM passes), the
    # eigenvalue path sees sqrt(+-i) and refuses
    with pytest.raises(VarbenchError, match="Imaginary component 0.707"):
        fid.frechet_distance(np.zeros(2), indefinite, np.zeros(2), swap)


def test_bad_statistics_are_one_line_errors():
    with pytest.raises(VarbenchError, match="non-finite"):
        fid.frechet_distance([0.0, np.nan], np.eye(2), [0.0, 0.0], np.eye(2))
    with pytest.raises(VarbenchError, match="do not match"):
        fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(VarbenchError, match="at least 2 samples"):
        fid.feature_statistics(np.ones((1, 4), np.float32))
    bad = np.ones((5, 4), np.float32)
    bad[3, 1] = np.nan
    with pytest.raises(VarbenchError, match="row 3"):
        fid.feature_statistics(bad)


def test_running_moments_match_np_cov():
    x = features(1000, 40, 7, shift=1000.0)  # a large offset: naive sums of squares would lose digits
    acc = fid.RunningMoments(40)
    for lo in range(0, 1000, 128):
        acc.update(x[lo:lo + 128])
    np.testing.assert_allclose(acc.mean, x.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(acc.cov, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-9 * np.abs(np.cov(x.T)).max())


def test_rank_deficient_trace_has_no_rounding_bias():
    # with S1 = Xc^T Xc / (n - 1) of rank n - 1 < d, tr sqrt(S1 S2) = sum sqrt(eig(Xc S2 Xc^T / (n - 1))): an n x n
    # problem without the d - n + 1 zero eigenvalues whose rounding noise would bias sqrt upwards
    x, y = features(40, 200, 8), features(900, 200, 9, scale=1.1)
    (mu1, s1), (mu2, s2) = fid.feature_statistics(x), fid.feature_statistics(y)
    xc = x.astype(np.float64) - mu1
    small = xc @ s2 @ xc.T / (len(x) - 1)
    exact_trace = np.sqrt(np.clip(np.linalg.eigvalsh((small + small.T) / 2), 0, None)).sum()
    expected = (mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * exact_trace
    # rounding moves the value by ~5e-10 relative (BLAS-dependent); the bias this guards against (square roots of the
    # ~160 noise eigenvalues) would add ~1e-4
    assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)
