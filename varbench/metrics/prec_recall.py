"""Improved precision and recall (Kynkäänniemi et al. 2019) with the ADM evaluator's ManifoldEstimator semantics.

- Distances are *squared* Euclidean, ``max(|u|^2 - 2 u.v + |v|^2, 0)``, evaluated in that order.
- The radius of a point is its distance to the k-th nearest neighbour in its own set (k = 3; the point itself is
  the 0-th), i.e. index k of the partitioned distance row; radius blocks are D(set rows, set columns).
- Every block between the sets is D(reference, samples), used for both tests at once (ADM's ``evaluate_pr``):
  a sample is inside the reference manifold when ``distance <= radius`` for some reference point (precision), a
  reference point inside the sample manifold likewise (recall).
- Work is done in blocks of ``block`` x ``block`` distances (ADM: 10,000), keeping only each row's k+1 smallest
  distances, so memory stays near one block (400 MB at 10,000) whatever the set sizes.

``distance="fp16"`` (the ADM protocol's default) is ADM's TensorFlow float16 arithmetic: features rounded to float32
and then to float16; squares rounded to float16, each row's sum of squares accumulated in float32 and rounded once;
dot products accumulated in float32 and rounded to float16 (a float16 GEMM); ``(|u|^2 - 2M) + |v|^2`` with each
operation rounded to float16; clamped at 0; a block with any non-finite value (float16 overflow) recomputed in
float32, as ADM does.  What cannot be reproduced off the GPU: the order in which cuBLAS and TF's reductions add up
the float32 partial sums, which can move a distance by one float16 step in rare cases.
``fp32`` and ``fp64`` compute the same formula in that precision.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from varbench.errors import VarbenchError

K = 3
BLOCK = 10_000
DISTANCES = ("fp16", "fp32", "fp64")
ADM_DISTANCE = "fp16"


@dataclass(frozen=True)
class PrecisionRecall:
    precision: float
    recall: float
    k: int
    distance: str  # arithmetic of the distances: fp16 (ADM's) | fp32 | fp64
    # per point: reference points inside the sample manifold (recall's items), samples inside the reference manifold
    real_inside: np.ndarray | None = field(default=None, compare=False, repr=False)
    fake_inside: np.ndarray | None = field(default=None, compare=False, repr=False)


def squared_distances(u: np.ndarray, v: np.ndarray, distance: str = ADM_DISTANCE) -> np.ndarray:
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


def to_fp16(x: np.ndarray) -> np.ndarray:
    """ADM's cast: the TF graph receives float32 activations and casts them to float16."""
    return np.asarray(x).astype(np.float32, copy=False).astype(np.float16)


def _squared_distances_fp16(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The float16 steps run in torch's CPU float16 arithmetic: like numpy's, each operation is computed in float32
    and rounded once to float16 (the same bits); those steps run about ten times faster than in numpy's float16
    loops (a whole 10k x 10k block, GEMM included, 2.3x: benchmarks/bench_pr_arithmetic.py)."""
    import torch

    with np.errstate(over="ignore", invalid="ignore"):  # overflow is detected by the caller
        u16, v16 = to_fp16(u), to_fp16(v)
        norm_u = np.square(u16).sum(axis=1, dtype=np.float32).astype(np.float16)
        norm_v = np.square(v16).sum(axis=1, dtype=np.float32).astype(np.float16)
        dot = u16.astype(np.float32) @ v16.astype(np.float32).T  # float32 accumulation, as a float16 GEMM
    d = torch.from_numpy(dot).half()  # the GEMM's rounding to float16
    del dot
    d.mul_(-2).add_(torch.from_numpy(norm_u)[:, None])  # |u|^2 - 2 u.v: (-2M) + |u|^2 is the same rounding
    d.add_(torch.from_numpy(norm_v)[None, :]).clamp_(min=0)  # NaN stays NaN (as np.maximum) for the caller's check
    return d.float().numpy()


def manifold_radii(features: np.ndarray, k: int = K, block: int = BLOCK, distance: str = ADM_DISTANCE) -> np.ndarray:
    """Squared distance from each point to its k-th nearest neighbour in the same set."""
    check_features(features, k, "features", distance)
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


def inside_both_ways(real: np.ndarray, real_radii: np.ndarray, fake: np.ndarray, fake_radii: np.ndarray,
                     block: int = BLOCK, distance: str = ADM_DISTANCE) -> tuple[np.ndarray, np.ndarray]:
    """(real points inside the fake manifold, fake points inside the real manifold), from D(real, fake) blocks."""
    real_in = np.zeros(len(real), dtype=bool)
    fake_in = np.zeros(len(fake), dtype=bool)
    for lo in range(0, len(real), block):
        for clo in range(0, len(fake), block):
            d = squared_distances(real[lo:lo + block], fake[clo:clo + block], distance)
            real_in[lo:lo + block] |= (d <= fake_radii[None, clo:clo + block]).any(axis=1)
            fake_in[clo:clo + block] |= (d <= real_radii[lo:lo + block, None]).any(axis=0)
    return real_in, fake_in


def precision_recall(real: np.ndarray, fake: np.ndarray, *, k: int = K, block: int = BLOCK,
                     distance: str = ADM_DISTANCE) -> PrecisionRecall:
    """ADM's precision and recall of ``fake`` (generated) features against ``real`` (reference) features."""
    check_features(real, k, "reference features", distance)
    check_features(fake, k, "sample features", distance)
    if real.shape[1] != fake.shape[1]:
        raise VarbenchError(f"feature dimensions differ: reference {real.shape[1]}, samples {fake.shape[1]}")
    real_radii = manifold_radii(real, k, block, distance)
    fake_radii = manifold_radii(fake, k, block, distance)
    real_in, fake_in = inside_both_ways(real, real_radii, fake, fake_radii, block, distance)
    return PrecisionRecall(precision=float(fake_in.mean()), recall=float(real_in.mean()), k=k, distance=distance,
                           real_inside=real_in, fake_inside=fake_in)


def check_features(features: np.ndarray, k: int, what: str, distance: str, metric: str = "precision/recall") -> None:
    if distance not in DISTANCES:
        raise VarbenchError(f"unknown distance arithmetic {distance!r}; use one of {', '.join(DISTANCES)}")
    if features.ndim != 2:
        raise VarbenchError(f"{what} must be (N, d), got shape {features.shape}")
    if len(features) <= k:
        raise VarbenchError(f"{metric} with k={k} needs more than {k} {what}, got {len(features)}")
    if not np.all(np.isfinite(features)):
        raise VarbenchError(f"{what} contain NaN/inf; check the weights and the inputs")
