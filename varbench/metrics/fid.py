"""Fréchet distance (FID on pool3 features, sFID on mixed_6/conv features): pure functions over arrays.

ADM evaluator semantics: statistics are the feature mean and ``np.cov(rowvar=False)`` in float64; the distance is
``|mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrtm(S1 S2)``.  ADM takes ``sqrtm`` with SciPy; when it is not finite it adds
1e-6 * I to both covariances and retries; a complex result raises when a diagonal imaginary part exceeds 1e-3 and is
otherwise dropped.

``method="eig"`` (default) needs only the trace: S1 S2 has the nonzero eigenvalues of the symmetric positive
semi-definite ``F^T S2 F`` where S1 = F F^T (pivoted Cholesky, F of size d x rank), so the trace is the sum of square
roots of the eigenvalues of a symmetric rank x rank matrix: one factorisation, two matmuls, one ``eigvalsh``
(for N < d samples the problem shrinks to N x N).  Eigenvalues within rounding of zero (below d * eps * max) count as
zero: their square roots would otherwise add a positive bias.  A negative eigenvalue beyond that band is the eigenvalue
analogue of ADM's imaginary component: its square root is imaginary and, as in ADM, values up to 1e-3 are dropped
and larger ones raise.  (ADM inspects the diagonal of sqrtm instead; for covariances that are not PSD, e.g. a
product with eigenvalues +-i, SciPy can find a real square root where the eigenvalue path refuses.)
``method="sqrtm"`` is the literal SciPy computation (8-45 s at d=2048 on 2 cores, depending on load).
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from varbench.errors import VarbenchError

log = logging.getLogger(__name__)

ADM_EPS = 1e-6  # added to both diagonals when the first attempt is not finite
ADM_IMAG_TOL = 1e-3  # largest imaginary part that is silently dropped
METHODS = ("eig", "sqrtm")


def feature_statistics(features: np.ndarray, what: str = "features") -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (``np.cov(rowvar=False)``), both float64."""
    features = np.asarray(features)
    if features.ndim != 2:
        raise VarbenchError(f"{what} must be a 2-D (N, d) array, got shape {features.shape}")
    if len(features) < 2:
        raise VarbenchError(f"{what}: a covariance needs at least 2 samples, got {len(features)}")
    _require_finite(features, what)
    return features.mean(axis=0, dtype=np.float64), np.cov(features, rowvar=False)


class RunningMoments:
    """Mean and covariance accumulated batch by batch in float64 (for reference sets too large to hold).

    Sums are taken around the first batch's mean, so ``cov`` matches ``np.cov`` to float64 rounding.
    """

    def __init__(self, dim: int):
        self.dim = dim
        self.n = 0
        self._shift: np.ndarray | None = None
        self._sum = np.zeros(dim)
        self._outer = np.zeros((dim, dim))

    def update(self, batch: np.ndarray) -> None:
        x = np.asarray(batch, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected (N, {self.dim}) features, got {x.shape}")
        if not len(x):
            return
        if self._shift is None:
            self._shift = x.mean(axis=0)
        x = x - self._shift
        self.n += len(x)
        self._sum += x.sum(axis=0)
        self._outer += x.T @ x

    @property
    def mean(self) -> np.ndarray:
        return self._shift + self._sum / self.n

    @property
    def cov(self) -> np.ndarray:
        if self.n < 2:
            raise VarbenchError(f"a covariance needs at least 2 samples, got {self.n}")
        centred_sum = self._sum / self.n
        return (self._outer - self.n * np.outer(centred_sum, centred_sum)) / (self.n - 1)


def frechet_distance(mu1, sigma1, mu2, sigma2, *, method: str = "eig", eps: float = ADM_EPS) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) with ADM's retry and imaginary-part rules."""
    if method not in METHODS:
        raise ValueError(f"unknown Fréchet method {method!r}; use one of {METHODS}")
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, dtype=np.float64)), np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise VarbenchError(
            f"statistics do not match: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}"
        )
    for arr, what in ((mu1, "mu1"), (mu2, "mu2"), (sigma1, "sigma1"), (sigma2, "sigma2")):
        _require_finite(arr, what)
    trace_sqrt = _trace_sqrt_eig if method == "eig" else _trace_sqrt_scipy
    tr = trace_sqrt(sigma1, sigma2)
    if tr is None:
        log.warning("Fréchet distance: singular product; adding %g to the diagonal of both covariances", eps)
        offset = np.eye(d) * eps
        tr = trace_sqrt(sigma1 + offset, sigma2 + offset)
        if tr is None:
            raise VarbenchError("Fréchet distance is not finite even after adding 1e-6 * I (degenerate statistics)")
    diff = mu1 - mu2
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr)


def _trace_sqrt_eig(sigma1: np.ndarray, sigma2: np.ndarray) -> float | None:
    """tr sqrtm(sigma1 @ sigma2) from the eigenvalues of a symmetric matrix; None when not finite."""
    d = len(sigma1)
    factor = _psd_factor(sigma1)
    if factor is not None:  # sigma1 = F F^T, F (d, rank): eig(sigma1 sigma2) = eig(F^T sigma2 F), rank x rank
        m = factor.T @ sigma2 @ factor
    else:  # sigma1 is not PSD (damaged statistics): let the eigenvalues show it through a factor of sigma2
        try:
            lower = np.linalg.cholesky(sigma2)
        except np.linalg.LinAlgError:
            return _trace_sqrt_general(sigma1, sigma2)
        m = lower.T @ sigma1 @ lower
    try:
        ev = np.linalg.eigvalsh((m + m.T) * 0.5)
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(ev)):
        return None
    noise = d * np.finfo(np.float64).eps * max(float(ev.max()), 0.0)
    negative = ev[ev < -noise]
    if negative.size:
        _check_imaginary(float(np.sqrt(-negative.min())))
    return float(np.sqrt(ev[ev > noise]).sum())


def _psd_factor(sigma: np.ndarray) -> np.ndarray | None:
    """F (d, rank) with sigma = F F^T up to rounding, by pivoted Cholesky (rank-revealing: cheap when N < d);
    None when sigma is not positive semi-definite."""
    from scipy.linalg import lapack

    c, piv, rank, info = lapack.dpstrf(sigma, lower=1)
    if info < 0:
        return None
    lower = np.tril(c)[:, :rank]
    order = piv - 1  # sigma[order][:, order] = lower @ lower.T, exact on the first `rank` pivots
    d = len(sigma)
    if rank < d:  # stopped early: the Schur complement left over must be rounding noise, not a negative direction
        rest, tail = order[rank:], lower[rank:]
        schur = sigma[np.ix_(rest, rest)] - tail @ tail.T
        tol = 10 * d * np.finfo(np.float64).eps * max(float(np.abs(np.diagonal(sigma)).max()), 1e-300)
        if np.abs(schur).max() > tol:
            return None
    factor = np.empty_like(lower)
    factor[order] = lower
    return factor


def _trace_sqrt_general(sigma1: np.ndarray, sigma2: np.ndarray) -> float | None:
    """Neither covariance is PSD: eigenvalues of the non-symmetric product (torch-fidelity's formula)."""
    try:
        roots = np.sqrt(np.linalg.eigvals(sigma1 @ sigma2).astype(np.complex128))
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(roots)):
        return None
    _check_imaginary(float(np.abs(roots.imag).max()))
    return float(roots.real.sum())


def _check_imaginary(imag: float) -> None:
    if imag > ADM_IMAG_TOL:
        raise VarbenchError(f"Imaginary component {imag:.3g} in the Fréchet distance (covariances not PSD?)")


def _trace_sqrt_scipy(sigma1: np.ndarray, sigma2: np.ndarray) -> float | None:
    """ADM's literal path: ``scipy.linalg.sqrtm`` of the product, imaginary parts checked on the diagonal."""
    from scipy import linalg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SciPy >= 1.16 deprecates disp/blocksize and warns on singular input
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if isinstance(covmean, tuple):  # older SciPy with disp=False semantics
        covmean = covmean[0]
    if not np.isfinite(covmean).all():
        return None
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=ADM_IMAG_TOL):
            raise VarbenchError(f"Imaginary component {np.max(np.abs(covmean.imag)):.3g} in the Fréchet distance")
        covmean = covmean.real
    return float(np.trace(covmean))


def _require_finite(arr: np.ndarray, what: str) -> None:
    finite = np.isfinite(arr)
    if not finite.all():
        bad = int(finite.size - np.count_nonzero(finite))
        where = f" (first in row {int(np.argmin(finite.all(axis=1)))})" if arr.ndim == 2 else ""
        raise VarbenchError(f"{what} contain {bad} non-finite values (NaN/inf){where}; check the weights and the inputs")
