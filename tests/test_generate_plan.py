"""The sampling plan: labels, seeds, chunks, packed order, rank assignment (no sampling here)."""

from __future__ import annotations

import numpy as np
import pytest

from varbench.dist import DistInfo
from varbench.errors import VarbenchError
from varbench.generate.plan import Plan, assign, chunk_seed, make_plan, sample_seed


def test_fid_protocol_plan_has_exactly_50_of_each_class():
    plan, batch = make_plan()  # the defaults are the VAR README protocol
    assert (plan.num_samples, plan.per_class, plan.rng) == (50_000, 50, "per-sample")
    labels = plan.labels_array()
    assert labels.dtype == np.int64 and labels.shape == (50_000,)
    counts = np.bincount(labels, minlength=1000)
    assert counts.shape == (1000,) and (counts == 50).all()
    assert plan.classes == tuple(range(1000))
    # every chunk mixes classes (label i % 1000), so partial runs stay balanced
    assert len(set(labels[:100].tolist())) == 100
    assert batch <= plan.chunk_size


def test_same_plan_from_num_samples_or_per_class():
    a, _ = make_plan(num_samples=50_000)
    b, _ = make_plan(per_class=50)
    c, _ = make_plan(num_samples=50_000, per_class=50)
    assert a == b == c


def test_small_balanced_plan_spreads_classes_evenly():
    plan, _ = make_plan(num_samples=12, per_class=3)
    assert plan.classes == (0, 250, 500, 750)
    assert np.bincount(plan.labels_array(), minlength=1000)[[0, 250, 500, 750]].tolist() == [3, 3, 3, 3]
    one_each, _ = make_plan(num_samples=8)
    assert one_each.per_class == 1 and len(set(one_each.labels_array().tolist())) == 8


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_samples": 13, "per_class": 2}, "not divisible by --per-class 2"),
        ({"num_samples": 3000, "per_class": 2}, "needs 1500 classes"),
        ({"num_samples": 1500}, "not a multiple of the 1000 classes"),
        ({"num_samples": 0}, "at least 1"),
        ({"per_class": 0}, "at least 1"),
        ({"labels": [1, 2], "num_samples": 2}, "do not combine"),
        ({"labels": []}, "empty"),
        ({"labels": [5, 1000]}, "0..999; got 1000"),
        ({"rng": "global"}, "unknown --rng"),
        ({"rng": "official", "batch_size": 4, "chunk_size": 8}, "must equal"),
        ({"batch_size": 0}, "--batch-size must be at least 1"),
        ({"seed": -1}, "--seed"),
    ],
)
def test_bad_plan_options_are_one_line_errors(kwargs, match):
    with pytest.raises(VarbenchError, match=match) as info:
        make_plan(**kwargs)
    assert "\n" not in str(info.value)


def test_explicit_labels_keep_their_order():
    plan, batch = make_plan(labels=[1, 207, 980, 999, 1])
    assert plan.explicit and plan.num_samples == 5 and plan.per_class is None
    assert plan.labels_array().tolist() == [1, 207, 980, 999, 1]
    assert plan.order().tolist() == [0, 1, 2, 3, 4]
    assert plan.num_chunks == 1 and batch == 5


def test_chunks_tile_the_indices_without_gaps_or_overlap():
    plan, _ = make_plan(num_samples=23, chunk_size=5, batch_size=2)
    chunks = plan.chunks()
    assert [c.size for c in chunks] == [5, 5, 5, 5, 3]
    covered = np.concatenate([np.arange(c.start, c.stop) for c in chunks])
    assert covered.tolist() == list(range(23))
    assert chunks[4].stem == "000004"
    with pytest.raises(IndexError):
        plan.chunk(5)


def test_official_mode_chunk_is_the_batch():
    plan, batch = make_plan(num_samples=20, rng="official", batch_size=4)
    assert plan.chunk_size == 4 and batch == 4
    plan2, batch2 = make_plan(num_samples=20, rng="official", chunk_size=6)
    assert plan2.chunk_size == 6 and batch2 == 6


def test_per_sample_seeds_do_not_depend_on_chunking():
    a, _ = make_plan(num_samples=40, chunk_size=7, seed=3)
    b, _ = make_plan(num_samples=40, chunk_size=16, seed=3)
    seeds_a = [s for c in a.chunks() for s in a.sample_seeds(c.start, c.stop)]
    seeds_b = [s for c in b.chunks() for s in b.sample_seeds(c.start, c.stop)]
    assert seeds_a == seeds_b == [sample_seed(3, i) for i in range(40)]
    assert len(set(seeds_a)) == 40


def test_seed_and_order_rules_are_pinned():
    # these values are written into manifests; changing the rule must be a deliberate, visible change
    # official mode: chunk c uses the official code's own seed S + c (g_seed / torch.manual_seed)
    assert [chunk_seed(2024, c) for c in range(3)] == [2024, 2025, 2026]
    plan, _ = make_plan(num_samples=10, seed=0)
    assert plan.order().tolist() == PINNED_ORDER_10
    assert sample_seed(0, 0) == PINNED_SAMPLE_SEED_0_0


def test_official_plan_lists_each_chunk_seed_and_bounds_the_last():
    plan, batch = make_plan(labels=[5, 500, 996, 1, 2], seed=2024, rng="official", batch_size=3)
    assert batch == 3 and plan.to_dict()["chunk_seeds"] == [2024, 2025]
    assert make_plan(num_samples=10, seed=1)[0].to_dict()["chunk_seeds"] is None  # per-sample: hashed per index
    make_plan(num_samples=1000, seed=2**63 - 20, rng="official", batch_size=50)  # last chunk 2**63 - 1
    with pytest.raises(VarbenchError, match="last chunk's seed .* exceeds 2\\*\\*63-1; use a --seed below"):
        make_plan(num_samples=1000, seed=2**63 - 19, rng="official", batch_size=50)


PINNED_ORDER_10 = [1, 3, 4, 5, 7, 2, 8, 0, 6, 9]
PINNED_SAMPLE_SEED_0_0 = 299669380033968380


def test_packed_order_is_a_seeded_shuffle_that_mixes_classes():
    plan, _ = make_plan(seed=0)
    order = plan.order()
    assert np.array_equal(np.sort(order), np.arange(50_000))
    assert not np.array_equal(order, np.arange(50_000))
    assert np.array_equal(order, plan.order())  # deterministic
    assert not np.array_equal(order, make_plan(seed=1)[0].order())
    # ADM's Inception Score uses 10 splits of 5000 rows: each must see (nearly) every class, not 100 of them
    labels = plan.labels_array()[order]
    for split in np.split(labels, 10):
        assert len(np.unique(split)) > 980


def test_rank_assignment_covers_the_same_chunks_for_any_world_size():
    pending = [0, 2, 3, 5, 6, 7, 9, 11]
    assert assign(pending, 0, 1) == pending
    parts = [assign(pending, r, 4) for r in range(4)]
    assert sorted(c for p in parts for c in p) == pending
    assert all(len(p) == 2 for p in parts)
    assert not set(parts[0]) & set(parts[1])


def test_plan_dict_is_self_describing():
    plan, _ = make_plan(num_samples=12, per_class=2, chunk_size=5)
    d = plan.to_dict()
    assert d["num_samples"] == 12 and d["num_chunks"] == 3 and d["planned_classes"] == 6 and d["labels"] is None
    assert {"label_rule", "seed_rule", "order_rule", "labels_sha256"} <= set(d)
    assert Plan(num_samples=12, per_class=2, chunk_size=5) == plan


def test_dist_info_from_torchrun_env():
    assert DistInfo.from_env({}) == DistInfo(0, 1, 0, 1)
    info = DistInfo.from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"})
    assert (info.rank, info.world_size, info.local_rank, info.distributed, info.is_main) == (3, 4, 1, True, False)
    with pytest.raises(VarbenchError, match="not an integer"):
        DistInfo.from_env({"RANK": "x"})
    with pytest.raises(VarbenchError, match="inconsistent"):
        DistInfo.from_env({"RANK": "2", "WORLD_SIZE": "2"})
