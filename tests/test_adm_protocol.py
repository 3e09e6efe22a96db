"""The ADM evaluator's numbers by default (issue 11): its float16 precision/recall arithmetic bit for bit, its
5,000-row Inception Score chunks, and clean-fid's KID on the same subsets.  ADM's formulas are re-derived here from
guided-diffusion's ``evaluations/evaluator.py`` (DistanceBlock, ManifoldEstimator, compute_inception_score)."""

from __future__ import annotations

import numpy as np
import pytest

from test_metrics_is import adm_inception_score, class_logits, softmax
from varbench.evaluate.config import EvalConfig
from varbench.metrics import inception_score as isc
from varbench.metrics import kid
from varbench.metrics import prec_recall as pr


# ---------------------------------------------------------------------------------------- ADM's P&R, re-derived
def adm_block(U, V):
    """DistanceBlock.distance_block: the TF graph gets float32 and casts to float16; tf.square (float16), a float16
    reduce_sum (float32 accumulation, rounded once), a float16 matmul (float32 accumulation, rounded once),
    norm_u - 2 * M + norm_v in float16, maximum 0; a non-finite block is recomputed in float32."""
    U16, V16 = U.astype(np.float32).astype(np.float16), V.astype(np.float32).astype(np.float16)
    norm_u = np.sum(np.square(U16).astype(np.float32), axis=1).astype(np.float16).reshape(-1, 1)
    norm_v = np.sum(np.square(V16).astype(np.float32), axis=1).astype(np.float16).reshape(1, -1)
    matmul = np.matmul(U16.astype(np.float32), V16.astype(np.float32).T).astype(np.float16)
    with np.errstate(over="ignore", invalid="ignore"):
        D = np.maximum((norm_u - np.float16(2) * matmul) + norm_v, np.float16(0))
    if not np.isfinite(D).all():
        U32, V32 = U.astype(np.float32), V.astype(np.float32)
        D = np.maximum((U32 * U32).sum(1)[:, None] - 2 * U32 @ V32.T + (V32 * V32).sum(1)[None, :], 0)
    return D.astype(np.float32)


def adm_precision_recall(ref, sample, k=3, row=10_000, col=10_000):
    """ManifoldEstimator.manifold_radii + evaluate_pr, with every cross block D(ref, sample)."""
    def radii(features):
        out = np.zeros(len(features), np.float32)
        for b1 in range(0, len(features), row):
            batch = np.concatenate([adm_block(features[b1:b1 + row], features[b2:b2 + col])
                                    for b2 in range(0, len(features), col)], axis=1)
            out[b1:b1 + row] = np.partition(batch, k, axis=1)[:, k]
        return out

    r1, r2 = radii(ref), radii(sample)
    ref_in, sample_in = np.zeros(len(ref), bool), np.zeros(len(sample), bool)
    for b1 in range(0, len(ref), row):
        for b2 in range(0, len(sample), col):
            d = adm_block(ref[b1:b1 + row], sample[b2:b2 + col])[..., None]
            ref_in[b1:b1 + row] |= (d <= r2[b2:b2 + col, None][None]).any(axis=1)[:, 0]
            sample_in[b2:b2 + col] |= (d[..., 0] <= r1[b1:b1 + row, None]).any(axis=0)
    return float(sample_in.mean()), float(ref_in.mean())


def spread_features(n, d, seed, scale=1.0):
    """Norms spread over several powers of two (where the float16 rounding of |u|^2 - 2M + |v|^2 depends on the order
    of the operands)."""
    rng = np.random.default_rng(seed)
    x = np.abs(rng.normal(0, 1, size=(n, d)))
    return x * np.exp2(rng.uniform(-1.5, 1.5, size=(n, 1))) * scale


def test_fp16_distances_equal_adms_bit_for_bit():
    ref, sample = spread_features(300, 64, 1), spread_features(250, 64, 2, scale=1.1)
    got = pr.squared_distances(ref, sample, "fp16")
    np.testing.assert_array_equal(got, adm_block(ref, sample))
    # the orientation matters in float16: d(sample, ref) is not D(ref, sample) transposed everywhere
    assert (pr.squared_distances(sample, ref, "fp16").T != got).sum() > 100
    # float64 features go through float32 first, as the TF graph's float32 placeholders do
    np.testing.assert_array_equal(pr.squared_distances(ref, sample, "fp16"),
                                  pr.squared_distances(ref.astype(np.float32), sample, "fp16"))


def test_float64_is_rounded_through_float32():
    # a float64 value just above a float16 midpoint: straight to float16 it rounds up, through float32 it lands on
    # the midpoint and rounds to even (down)
    a = np.float16(1.0)
    b = np.nextafter(a, np.float16(2))
    mid = (np.float64(a) + np.float64(b)) / 2
    x = np.array([mid + 1e-12])
    assert np.float16(x[0]) == b and pr.to_fp16(x)[0] == a


@pytest.mark.parametrize("block", [10_000, 64])
def test_precision_recall_equal_adms(block):
    ref, sample = spread_features(400, 32, 3), spread_features(350, 32, 4, scale=1.05)
    got = pr.precision_recall(ref, sample, block=block)  # the default: ADM's float16
    assert got.distance == "fp16"
    assert (got.precision, got.recall) == adm_precision_recall(ref, sample, row=block, col=block)
    assert 0 < got.precision < 1 and 0 < got.recall < 1


def test_the_default_protocol_is_adms():
    config = EvalConfig()
    assert config.pr_distance == "fp16" and config.is_splits is None
    from varbench.evaluate.config import arithmetic

    text = arithmetic(config)
    assert "ADM's float16 arithmetic" in text["precision"] and "chunks of 5000" in text["is_mean"]
    assert "not ADM's" in arithmetic(EvalConfig(pr_distance="fp32"))["recall"]


# --------------------------------------------------------------------------------------------- Inception Score
@pytest.mark.parametrize("n", [10_000, 12_345])
def test_inception_score_uses_adms_5000_row_chunks(n):
    logits = class_logits(np.random.default_rng(5).integers(0, 1000, size=n), peak=4.0)
    got = isc.inception_score(logits)
    assert len(got.splits) == -(-n // 5000)
    assert got.mean == pytest.approx(adm_inception_score(softmax(logits), 5000), rel=1e-10)
    assert got.mean == pytest.approx(adm_inception_score(softmax(logits, np.float32), 5000), rel=1e-4)
    assert "chunks of 5000" in got.rule
    # K equal splits (torch-fidelity's convention) is another number at these sizes
    assert isc.inception_score(logits, splits=10).mean != pytest.approx(got.mean, rel=1e-3)


def test_k_splits_follow_torch_fidelity_when_n_is_not_divisible():
    import torch
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = class_logits(np.random.default_rng(6).integers(0, 1000, size=1234), peak=4.0)
    theirs = isc_features_to_metric(torch.from_numpy(logits), splits=10, shuffle=False)
    got = isc.inception_score(logits, splits=10)
    assert got.mean == pytest.approx(theirs["inception_score_mean"], rel=1e-12)
    assert "torch-fidelity" in got.rule


# ------------------------------------------------------------------------------------------------ KID, clean-fid
def test_clean_fids_kid_draws_the_same_subsets():
    from cleanfid.fid import kernel_distance

    rng = np.random.default_rng(7)
    fake, real = np.abs(rng.normal(0.2, 1, size=(300, 64))), np.abs(rng.normal(0, 1, size=(250, 64)))
    ours = kid.kernel_inception_distance(fake, real, subsets=20, subset_size=100, seed=2020)
    state = np.random.get_state()
    try:
        np.random.seed(2020)
        theirs = kernel_distance(real, fake, num_subsets=20, max_subset_size=100)  # clean-fid: (reference, samples)
        np.random.seed(2020)
        swapped = kernel_distance(fake, real, num_subsets=20, max_subset_size=100)
    finally:
        np.random.set_state(state)
    assert ours.mean == pytest.approx(theirs, rel=1e-10)
    assert abs(swapped - ours.mean) > 1e-3 * abs(ours.mean)  # the other order draws other subsets
