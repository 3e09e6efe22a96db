"""Improved precision and recall (Kynkäänniemi et al. 2019) with the ADM evaluator's ManifoldEstimator semantics.

- Distances are *squared* Euclidean, ``max(|u|^2 - 2 u.v + |v|^2, 0)``, evaluated in that order.
- The radius of a point is its distance to the k-th nearest neighbour in its own set (k = 3; the point itself is
  the 0-th), i.e. index k of the partitioned distance row.
- A point is inside a manifold when ``distance <= radius`` for at least one of the manifold's points.
- Precision: fraction of generated points inside the real manifold; recall: fraction of real points inside the
  generated manifold.

Work is done in blocks of ``block`` x ``block`` distances (ADM: 10,000), and each row block keeps only its k+1
smallest distances, so memory stays near one block (400 MB at 10,000) whatever the set sizes.

``distance="fp16"`` emulates ADM's float16 arithmetic: inputs rounded to float16, squared norms summed in float32
and rounded, dot products accumulated in float32 and rounded (as a float16 GEMM does), then the subtraction,
addition and clamp in float16; a block that overflows is recomputed in float32, as ADM does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from varbench.errors import VarbenchError

K = 3
BLOCK = 10_000
DISTANCES = ("fp32", "fp16", "fp64")


@dataclass(frozen=True)
class PrecisionRecall:
    precision: float
    recall: float
    k: int
    distance: str  # arithmetic of the distances: fp32 | fp16 (ADM's, emulated) | fp64


def squared_distances(u: np.ndarray, v: np.ndarray, distance: str = "fp32") -> np.ndarray:
    """(len(u), len(v)) squared distances; float16 results are returned as (exactly equal) float32 values."""
    if distance == "fp16":
        d = _squared_distances_fp16(u, v)
        if np.all(np.isfinite(d)):
            return d
        distance = "fp32"  # overflow: ADM recomputes the block in float32
    dtype = np.float64 if distance == "fp64" else np.float32
    u, v = np.asarray(u, dtype=dtype), np.asarray(v, dtype=dtype)
    d = u @ v.T
    d *= -2
    d += np.einsum("ij,ij->i", u, u)[:, None]
    d += np.einsum("ij,ij->i", v, v)[None, :]
    return np.maximum(d, 0, out=d)


def _squared_distances_fp16(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is detected by the caller
        u16, v16 = np.asarray(u).astype(np.float16), np.asarray(v).astype(np.float16)
        norm_u = np.square(u16).sum(axis=1, dtype=np.float32).astype(np.float16)
        norm_v = np.square(v16).sum(axis=1, dtype=np.float32).astype(np.float16)
        dot = (u16.astype(np.float32) @ v16.astype(np.float32).T).astype(np.float16)
        d = norm_u[:, None] - np.float16(2) * dot
        d += norm_v[None, :]
        np.maximum(d, np.float16(0), out=d)
    return d.astype(np.float32)


def manifold_radii(features: np.ndarray, k: int = K, block: int = BLOCK, distance: str = "fp32") -> np.ndarray:
    """Squared distance from each point to its k-th nearest neighbour in the same set."""
    _check(features, k, "features", distance)
    n = len(features)
    radii = np.empty(n, dtype=np.float64 if distance == "fp64" else np.float32)
    for lo in range(0, n, block):
        rows = features[lo:lo + block]
        best = None  # (rows, k + 1) smallest distances seen so far, unordered
        for clo in range(0, n, block):
            d = _smallest(squared_distances(rows, features[clo:clo + block], distance), k + 1)
            best = d.copy() if best is None else _smallest(np.concatenate([best, d], axis=1), k + 1)
        radii[lo:lo + len(rows)] = best.max(axis=1)  # the (k+1)-th smallest: partition index k
    return radii


def _smallest(d: np.ndarray, m: int) -> np.ndarray:
    """The m smallest values of each row, in no particular order."""
    if d.shape[1] > m:
        d.partition(m - 1, axis=1)  # in place: no copy of the block
        return d[:, :m]
    return d


def fraction_inside(points: np.ndarray, centres: np.ndarray, radii: np.ndarray, block: int = BLOCK,
                    distance: str = "fp32") -> float:
    """Fraction of ``points`` within (<=) the radius of at least one centre."""
    inside = np.zeros(len(points), dtype=bool)
    for lo in range(0, len(points), block):
        rows = points[lo:lo + block]
        hit = np.zeros(len(rows), dtype=bool)
        for clo in range(0, len(centres), block):
            d = squared_distances(rows, centres[clo:clo + block], distance)
            hit |= (d <= radii[None, clo:clo + block]).any(axis=1)
        inside[lo:lo + len(rows)] = hit
    return float(inside.mean())


def precision_recall(real: np.ndarray, fake: np.ndarray, *, k: int = K, block: int = BLOCK,
                     distance: str = "fp32") -> PrecisionRecall:
    """ADM's precision and recall of ``fake`` (generated) features against ``real`` (reference) features."""
    _check(real, k, "reference features", distance)
    _check(fake, k, "sample features", distance)
    if real.shape[1] != fake.shape[1]:
        raise VarbenchError(f"feature dimensions differ: reference {real.shape[1]}, samples {fake.shape[1]}")
    real_radii = manifold_radii(real, k, block, distance)
    fake_radii = manifold_radii(fake, k, block, distance)
    return PrecisionRecall(
        precision=fraction_inside(fake, real, real_radii, block, distance),
        recall=fraction_inside(real, fake, fake_radii, block, distance),
        k=k,
        distance=distance,
    )


def _check(features: np.ndarray, k: int, what: str, distance: str) -> None:
    if distance not in DISTANCES:
        raise VarbenchError(f"unknown distance arithmetic {distance!r}; use one of {', '.join(DISTANCES)}")
    if features.ndim != 2:
        raise VarbenchError(f"{what} must be (N, d), got shape {features.shape}")
    if len(features) <= k:
        raise VarbenchError(f"precision/recall with k={k} needs more than {k} {what}, got {len(features)}")
    if not np.all(np.isfinite(features)):
        raise VarbenchError(f"{what} contain NaN/inf; check the weights and the inputs")
