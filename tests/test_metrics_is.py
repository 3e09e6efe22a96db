"""Inception Score: ADM's split formula, torch-fidelity agreement, and the class-sorted warning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from varbench.errors import VarbenchError
from varbench.metrics import inception_score as isc


def adm_inception_score(preds, split_size):
    """ADM evaluator: consecutive chunks of split_size, exp(mean KL(p || p_chunk)), mean over chunks."""
    scores = []
    for i in range(0, len(preds), split_size):
        part = preds[i:i + split_size]
        kl = part * (np.log(part) - np.log(np.expand_dims(np.mean(part, 0), 0)))
        kl = np.mean(np.sum(kl, 1))
        scores.append(np.exp(kl))
    return float(np.mean(scores))


def softmax(logits, dtype=np.float64):
    x = logits.astype(dtype)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def class_logits(labels, classes=1008, seed=0, peak=6.0):
    """Logits peaked at each sample's class, plus noise."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.0, size=(len(labels), classes)).astype(np.float32)
    logits[np.arange(len(labels)), labels] += peak
    return logits


@pytest.fixture(scope="module")
def shuffled_logits():
    labels = np.random.default_rng(1).integers(0, 1000, size=2000)
    return class_logits(labels)


def test_equals_adm_split_formula(shuffled_logits):
    got = isc.inception_score(shuffled_logits, splits=10)
    # N = 2000, 10 splits = ADM's loop with split_size 200 (ADM: 5000 for N = 50,000)
    assert got.mean == pytest.approx(adm_inception_score(softmax(shuffled_logits), 200), rel=1e-10)
    # ADM takes the softmax in float32 (TF); the difference is float32 rounding
    assert got.mean == pytest.approx(adm_inception_score(softmax(shuffled_logits, np.float32), 200), rel=1e-5)
    assert len(got.splits) == 10 and got.std == pytest.approx(np.std(got.splits))


def test_equals_torch_fidelity_both_orders(shuffled_logits):
    from torch_fidelity.metric_isc import isc_features_to_metric

    got = isc.inception_score(shuffled_logits, splits=10, seed=2020)
    t = torch.from_numpy(shuffled_logits)
    ordered = isc_features_to_metric(t, splits=10, shuffle=False)
    shuffled = isc_features_to_metric(t, splits=10, shuffle=True, rng_seed=2020)
    assert got.mean == pytest.approx(ordered["inception_score_mean"], rel=1e-12)
    assert got.std == pytest.approx(ordered["inception_score_std"], rel=1e-9)
    assert got.shuffled_mean == pytest.approx(shuffled["inception_score_mean"], rel=1e-12)
    assert got.shuffled_std == pytest.approx(shuffled["inception_score_std"], rel=1e-9)


def test_known_answers():
    assert isc.inception_score(np.zeros((50, 10), np.float32), splits=5).mean == pytest.approx(1.0)
    # every split holds 10 confident, distinct classes: IS close to 10
    labels = np.tile(np.arange(10), 10)
    score = isc.inception_score(class_logits(labels, classes=10, peak=40.0), splits=10)
    assert score.mean == pytest.approx(10.0, rel=1e-6)


def test_class_sorted_input_is_flagged_with_an_order_robust_value():
    labels = np.repeat(np.arange(1000), 2)  # 2 per class in label order, as a sampler writes 50 per class
    logits = class_logits(labels, peak=10.0)  # confident predictions, like a good generator's samples
    sorted_score = isc.inception_score(logits, splits=10)
    assert sorted_score.class_sorted
    assert sorted_score.neighbour_agreement > 3 * sorted_score.shuffled_neighbour_agreement
    perm = np.random.default_rng(3).permutation(len(labels))
    shuffled_score = isc.inception_score(logits[perm], splits=10)
    assert not shuffled_score.class_sorted
    # the order-robust value does not care about the input order; the ADM value does
    assert sorted_score.shuffled_mean == pytest.approx(shuffled_score.shuffled_mean, rel=0.02)
    assert abs(sorted_score.mean - shuffled_score.mean) > 0.05 * shuffled_score.mean
    # labels decide when given
    assert isc.inception_score(logits, splits=10, labels=labels).class_sorted
    assert not isc.inception_score(logits[perm], splits=10, labels=labels[perm]).class_sorted


def test_no_nan_when_probabilities_underflow():
    logits = np.zeros((20, 5), np.float32)
    logits[:, 0] = 200.0  # float32 softmax gives exact zeros elsewhere: ADM's np.log would make NaN
    assert isc.inception_score(logits, splits=2).mean == pytest.approx(1.0)


def test_bad_input():
    with pytest.raises(VarbenchError, match="at least 10 samples"):
        isc.inception_score(np.zeros((5, 8), np.float32), splits=10)
    with pytest.raises(VarbenchError, match="at least one sample"):
        isc.inception_score(np.zeros((0, 8), np.float32))
    assert isc.inception_score(np.zeros((5, 8), np.float32)).mean == pytest.approx(1.0)  # ADM: one short chunk
    bad = np.zeros((20, 8), np.float32)
    bad[2, 3] = np.nan
    with pytest.raises(VarbenchError, match="NaN"):
        isc.inception_score(bad)
