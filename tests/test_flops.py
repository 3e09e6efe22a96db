"""Analytic FLOP and KV-cache formulas against shared/facts/baselines.md section 3 and brute-force sums."""

from __future__ import annotations

import itertools

import pytest

from varbench.speed import flops as F
from varbench.models.var import SCHEDULES
from varbench.models.var import patch_schedule as var_schedule

PATCH_NUMS_256, PATCH_NUMS_512 = SCHEDULES[16], SCHEDULES[32]

D16 = F.Arch(width=1024, depth=16, vocab=4096)  # VAR-d16 shape and a same-size raster AR, VAR's vocabulary
GFLOP = 1e9

# facts section 3 table, GFLOPs per image without CFG: (dense, attention, head, total); None = not in the table
FACTS = {
    ("var", 256, True): (273.8, 18.8, 5.7, 300.3),
    ("var", 256, False): (688.5, 30.3, 5.7, 726.6),
    ("var", 512, True): (901.9, 214.3, 18.8, 1137.1),
    ("var", 512, False): (1882.4, 302.0, 18.8, 2205.3),
    ("ideal", 256): (103.1, 2.2, 2.1, 107.4),
    ("static", 256): (103.1, 4.4, 2.1, 109.7),
    ("none", 256): (13245.7, 185.4, 2.1, 13433.2),
    ("ideal", 1024): (412.3, 34.4, 8.6, 455.3),
    ("static", 1024): (412.3, 69.3, 8.6, 490.2),
    ("none", 1024): (211312.4, 11762.5, 8.6, 223083.5),
}


def _close(got: float, want: float, rel: float = 0.005) -> bool:
    # the table rounds to 0.1 GFLOP: allow that rounding on small entries
    return abs(got - want) <= max(rel * want, 0.051)


@pytest.mark.parametrize("res,kv", [(256, True), (256, False), (512, True), (512, False)])
def test_var_matches_facts_table(res, kv):
    pn = PATCH_NUMS_256 if res == 256 else PATCH_NUMS_512
    f = F.var_flops(D16, pn, kv_cache=kv)
    dense, attn, head, total = FACTS[("var", res, kv)]
    assert _close(f.total / GFLOP, total)
    assert _close(f.dense / GFLOP, dense) and _close(f.attention / GFLOP, attn) and _close(f.head / GFLOP, head)
    # AdaLN: 10 steps x (12 d w^2 + 4 w^2)
    assert f.adaln == 10 * (12 * 16 * 1024**2 + 4 * 1024**2)


@pytest.mark.parametrize("cache,tokens", [(c, t) for c in F.RASTER_CACHES for t in (256, 1024)])
def test_raster_matches_facts_table(cache, tokens):
    f = F.raster_flops(D16, tokens, cache=cache)
    dense, attn, head, total = FACTS[(cache, tokens)]
    assert _close(f.total / GFLOP, total)
    assert _close(f.dense / GFLOP, dense) and _close(f.attention / GFLOP, attn) and _close(f.head / GFLOP, head)


def test_headline_numbers_and_ratios():
    # the acceptance numbers, within 0.5%
    want = {"var256": 300.3, "var512": 1137.1, "kv256": 107.4, "kv512": 455.3, "nokv256": 13433.2, "nokv512": 223083.5}
    got = {
        "var256": F.var_flops(D16, PATCH_NUMS_256).total, "var512": F.var_flops(D16, PATCH_NUMS_512).total,
        "kv256": F.raster_flops(D16, 256).total, "kv512": F.raster_flops(D16, 1024).total,
        "nokv256": F.raster_flops(D16, 256, cache="none").total,
        "nokv512": F.raster_flops(D16, 1024, cache="none").total,
    }
    for k, v in want.items():
        assert got[k] / GFLOP == pytest.approx(v, rel=0.005), k
    # facts ratios AR/VAR: KV 0.36x / 0.40x; no KV 44.7x / 196x; and the "2.5-2.8x fewer FLOPs with a KV cache"
    assert got["kv256"] / got["var256"] == pytest.approx(0.36, abs=0.005)
    assert got["kv512"] / got["var512"] == pytest.approx(0.40, abs=0.005)
    assert got["nokv256"] / got["var256"] == pytest.approx(44.7, rel=0.005)
    assert got["nokv512"] / got["var512"] == pytest.approx(196, rel=0.005)


def test_vocab_16384_variant():
    big_v = F.Arch(1024, 16, 16384)
    assert F.var_flops(big_v, PATCH_NUMS_256).total / GFLOP == pytest.approx(317.4, rel=0.005)
    assert F.raster_flops(big_v, 256).total / GFLOP == pytest.approx(113.8, rel=0.005)
    assert F.raster_flops(big_v, 1024).total / GFLOP == pytest.approx(481.1, rel=0.005)


def test_cfg_doubles_everything():
    one, two = F.var_flops(D16, PATCH_NUMS_256), F.var_flops(D16, PATCH_NUMS_256, cfg_rows=2)
    assert two.total == 2 * one.total and two.adaln == 2 * one.adaln
    assert F.raster_flops(D16, 256, cfg_rows=2).total == 2 * F.raster_flops(D16, 256).total


def test_kv_cache_memory_matches_facts():
    mb = 1e6  # facts quote decimal MB, fp16/bf16, with CFG (two rows)
    assert F.kv_cache_bytes(1024, 16, 680, rows=2) / mb == pytest.approx(89, abs=0.5)
    assert F.kv_cache_bytes(1024, 16, 2240, rows=2) / mb == pytest.approx(294, abs=0.5)
    assert F.kv_cache_bytes(1024, 16, F.static_cache_length(256), rows=2) / mb == pytest.approx(35, abs=0.5)
    assert F.kv_cache_bytes(1024, 16, F.static_cache_length(1024), rows=2) / mb == pytest.approx(135, abs=0.5)
    assert F.kv_cache_bytes(1920, 30, 680, rows=2) / mb == pytest.approx(313, abs=0.5)
    assert F.kv_cache_bytes(3200, 24, F.static_cache_length(576), rows=2) / mb == pytest.approx(359, abs=0.5)
    assert F.static_cache_length(256) == 264 and F.static_cache_length(1024) == 1032


def test_crossover_where_n6_term_dominates():
    t = F.no_kv_crossover_tokens(D16)
    assert t == 18 * 1024 - 2  # T + 2 > 18 w
    assert round(t**0.5) == 136  # facts: about a 136 x 136 grid for w = 1024
    # just below the crossover dense wins, just above attention wins
    for T, attention_wins in ((int(t) - 50, False), (int(t) + 50, True)):
        f = F.raster_flops(D16, T, cache="none")
        assert (f.attention > f.dense) is attention_wins
    assert F.kv_attention_crossover_tokens(D16) == 12 * 1024 - 1


def _brute_var(arch: F.Arch, pn, kv: bool, attention: str):
    """Step by step: which queries run against how many keys (independent of the closed forms)."""
    dense = attn = head = 0
    seen = 0  # tokens before the current scale
    for p in pn:
        new = p * p
        if kv:
            dense += arch.dense_per_token * new
            attn += arch.attention_per_pair * new * (seen + new)
        else:
            total = seen + new
            dense += arch.dense_per_token * total
            if attention == "executed":
                attn += arch.attention_per_pair * total * total
            else:  # query in scale j sees every token up to the end of scale j
                start = 0
                for q in pn:
                    end = start + q * q
                    if end > total:
                        break
                    attn += arch.attention_per_pair * q * q * end
                    start = end
        head += arch.head_per_token * new
        seen += new
    return dense, attn, head


def _brute_raster(arch: F.Arch, T: int, cache: str, attention: str):
    dense = attn = head = 0
    for t in range(T):  # forward position t sees positions 0..t (class token + t tokens)
        if cache == "ideal":
            dense += arch.dense_per_token
            attn += arch.attention_per_pair * (t + 1)
        else:
            dense += arch.dense_per_token * (t + 1)
            pairs = (t + 1) * (t + 1) if attention == "executed" else sum(i + 1 for i in range(t + 1))
            attn += arch.attention_per_pair * pairs
        head += arch.head_per_token
    return dense, attn, head


@pytest.mark.parametrize("pn,kv,attention", list(itertools.product(
    [(1, 2, 4), (1, 2, 3, 4, 6, 8), PATCH_NUMS_256], [True, False], F.ATTENTION_COUNTS)))
def test_var_closed_form_equals_brute_force(pn, kv, attention):
    arch = F.Arch(192, 3, 500, mlp_flops=7 * 192 * 192)
    f = F.var_flops(arch, pn, kv_cache=kv, attention=attention)
    assert (f.dense, f.attention, f.head) == _brute_var(arch, pn, kv, attention)


@pytest.mark.parametrize("T,cache,attention", list(itertools.product([1, 7, 64], ["ideal", "none"],
                                                                       F.ATTENTION_COUNTS)))
def test_raster_closed_form_equals_brute_force(T, cache, attention):
    arch = F.Arch.swiglu(128, 2, 300, hidden=256)
    f = F.raster_flops(arch, T, cache=cache, attention=attention)
    assert (f.dense, f.attention, f.head) == _brute_raster(arch, T, cache, attention)


def test_exponents_tend_to_4_and_6():
    sides = [64, 128, 256, 512, 1024, 2048]
    var = [F.var_flops(D16, var_schedule(n)).total for n in sides]
    kv = [F.raster_flops(D16, n * n).total for n in sides]
    nokv = [F.raster_flops(D16, n * n, cache="none").total for n in sides]
    assert F.local_exponents(sides, var)[-1] == pytest.approx(4, abs=0.1)
    assert F.local_exponents(sides, kv)[-1] == pytest.approx(4, abs=0.1)
    assert F.local_exponents(sides, nokv)[-1] == pytest.approx(6, abs=0.1)
    # below the crossover (n ~ 136) cache-free raster decoding grows like its O(n^4) dense recompute
    small = [8, 16]
    assert F.local_exponents(small, [F.raster_flops(D16, n * n, cache="none").total for n in small])[-1] < 4.2


def test_bad_input():
    with pytest.raises(ValueError):
        F.Arch(0, 1, 1)
    with pytest.raises(ValueError):
        F.var_flops(D16, (1, 0, 2))
    with pytest.raises(ValueError):
        F.raster_flops(D16, 16, cache="paged")
    with pytest.raises(ValueError):
        F.raster_flops(D16, 16, attention="half")
