"""Inception Score over bias-free logits: pure functions over arrays.

ADM semantics (the default): softmax of the logits, then ``exp(mean_x KL(p(y|x) || p_chunk(y)))`` per chunk of
``ADM_CHUNK`` = 5,000 *consecutive* samples in the given order (the last chunk shorter: 10,000 samples give 2 chunks,
12,345 give 3), reported as the mean over chunks (ADM prints no std; ``std`` is over the chunks).
``splits=K`` is torch-fidelity's convention instead: K splits, rows ``[i N // K, (i + 1) N // K)``.  Logs come from
a float64 log-softmax, so a probability that underflows to 0 contributes 0 instead of ADM's NaN.

Order matters: a class-sorted set (50 per class in label order, as VAR's sampler writes it) gives splits that each
see 100 classes, and the score changes.  ``inception_score`` therefore also returns the score over a seeded
permutation (``numpy.random.RandomState(seed).permutation``; seed 2020 is torch-fidelity's default order) and flags
class-sorted input: by its labels when given, otherwise when neighbouring samples share their top-1 class far more
often than after the permutation (samples grouped by class; the grouping, not the class order, is what moves IS).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from varbench.errors import VarbenchError

ADM_CHUNK = 5000  # guided-diffusion evaluator.py compute_inception_score(split_size=5000)
SHUFFLE_SEED = 2020


@dataclass(frozen=True)
class InceptionScore:
    mean: float  # the value: mean over consecutive chunks (ADM) or splits (torch-fidelity's K)
    std: float  # std over those chunks
    splits: tuple[float, ...]  # per-chunk scores
    rule: str  # how the rows were split
    shuffled_mean: float  # the order-robust value: same splits after a seeded permutation
    shuffled_std: float
    class_sorted: bool  # True: the ADM value depends on the sample order; prefer shuffled_mean
    neighbour_agreement: float  # fraction of consecutive samples with the same top-1 class
    shuffled_neighbour_agreement: float  # the same after the permutation


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def split_bounds(n: int, splits: int | None = None, chunk: int = ADM_CHUNK) -> list[tuple[int, int]]:
    """Rows of each part: ADM's consecutive chunks of ``chunk`` (``splits`` None), or torch-fidelity's K splits."""
    if splits is None:
        return [(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)]
    return [(i * n // splits, (i + 1) * n // splits) for i in range(splits)]


def split_rule(splits: int | None, chunk: int = ADM_CHUNK) -> str:
    if splits is None:
        return f"ADM: consecutive chunks of {chunk} rows (the last one shorter), mean over chunks"
    return f"torch-fidelity: {splits} splits, rows [i N // {splits}, (i + 1) N // {splits})"


def split_scores(log_p: np.ndarray, splits: int | None = None, chunk: int = ADM_CHUNK) -> np.ndarray:
    """exp(mean KL(p(y|x) || p_part(y))) for each part of consecutive rows of log-probabilities."""
    scores = []
    for lo, hi in split_bounds(len(log_p), splits, chunk):
        lp = log_p[lo:hi]
        p = np.exp(lp)
        marginal = p.mean(axis=0)
        with np.errstate(divide="ignore"):
            log_marginal = np.log(marginal)  # -inf only where every p is 0, and those terms are 0 * finite
        kl = np.where(p > 0, p * (lp - np.where(marginal > 0, log_marginal, 0.0)), 0.0).sum(axis=1)
        scores.append(float(np.exp(kl.mean())))
    return np.asarray(scores)


def neighbour_agreement(top1: np.ndarray) -> float:
    """Fraction of consecutive pairs with the same top-1 class (high when samples are grouped by class)."""
    return float(np.mean(top1[1:] == top1[:-1])) if len(top1) > 1 else 0.0


def inception_score(logits: np.ndarray, splits: int | None = None, *, chunk: int = ADM_CHUNK,
                    labels: np.ndarray | None = None, seed: int = SHUFFLE_SEED) -> InceptionScore:
    logits = np.asarray(logits)
    if logits.ndim != 2:
        raise VarbenchError(f"Inception Score needs (N, classes) logits, got shape {logits.shape}")
    if len(logits) < 1:
        raise VarbenchError("Inception Score needs at least one sample")
    if splits is not None and (splits < 1 or len(logits) < splits):
        raise VarbenchError(f"Inception Score with {splits} splits needs at least {splits} samples, got {len(logits)}")
    if not np.all(np.isfinite(logits)):
        raise VarbenchError("Inception Score: the logits contain NaN/inf; check the weights and the inputs")
    log_p = log_softmax(logits)
    perm = np.random.RandomState(seed).permutation(len(log_p))
    scores, shuffled = split_scores(log_p, splits, chunk), split_scores(log_p[perm], splits, chunk)
    top1 = log_p.argmax(axis=1)
    agree, agree_shuffled = neighbour_agreement(top1), neighbour_agreement(top1[perm])
    if labels is not None and len(labels) == len(logits):
        labels = np.asarray(labels)
        class_sorted = bool(len(np.unique(labels)) > 1 and np.all(np.diff(labels) >= 0))
    else:
        class_sorted = agree > 3.0 * agree_shuffled + 0.05
    return InceptionScore(
        mean=float(scores.mean()),
        std=float(scores.std()),
        splits=tuple(float(s) for s in scores),
        rule=split_rule(splits, chunk),
        shuffled_mean=float(shuffled.mean()),
        shuffled_std=float(shuffled.std()),
        class_sorted=class_sorted,
        neighbour_agreement=agree,
        shuffled_neighbour_agreement=agree_shuffled,
    )
