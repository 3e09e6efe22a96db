"""Architecture, parameter counts, KV cache vs teacher forcing, RNG modes, dtypes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from var_helpers import FIXTURES, models
from varbench.generators import zoo
from varbench.generate.plan import sample_seed
from varbench.generators.protocol import build
from varbench.models.sample import Steps, VarSampling, sample
from varbench.models.var import VAR
from varbench.models.vqvae import VQVAE, VQVAEConfig

KEYS = json.loads((FIXTURES / "var_keys.json").read_text())
EXACT = {"var_d16": 310_283_520, "var_d20": 600_917_136, "var_d24": 1_033_399_360, "var_d30": 2_010_020_356,
         "var_d36": 2_353_893_904}


@pytest.mark.parametrize("name", sorted(EXACT))
def test_official_keys_shapes_and_param_counts(name):
    spec = zoo.get(name)
    with torch.device("meta"):
        var = VAR(spec.config)
    ref = KEYS[name]
    got = {k: list(v.shape) for k, v in var.state_dict().items()}
    assert got == ref["key_to_shape"]
    assert list(got) == list(ref["key_to_shape"])  # same order too
    n = sum(p.numel() for p in var.parameters())
    assert n == ref["num_params"] == EXACT[name] == spec.params


def test_vae_keys_shapes_and_param_count():
    with torch.device("meta"):
        vae = VQVAE(VQVAEConfig())
    got = {k: list(v.shape) for k, v in vae.state_dict().items()}
    assert got == KEYS["vae"]["key_to_shape"]
    assert sum(p.numel() for p in vae.parameters()) == 108_948_355


def test_zoo_entries():
    assert zoo.get("var_d36").resolution == 512 and zoo.get("var_d36").config.shared_aln
    assert zoo.get("var_d16").tokens == 680 and zoo.get("var_d36").tokens == 2240
    assert zoo.get("var_d30").steps == 10
    with pytest.raises(Exception, match="var_d30"):
        zoo.get("var_d3")


@pytest.mark.parametrize("which", ["256", "512"])
def test_kv_cache_inference_matches_teacher_forcing(which):
    """Logits of the cached next-scale loop equal the block-causal teacher-forced forward on the sampled tokens."""
    var, vae = models(which)
    B = 2
    labels = torch.tensor([3, 980])
    raw = []
    with sdpa_kernel(SDPBackend.MATH):
        out = sample(var, vae, labels, B, VarSampling(cfg=0.0, top_k=0, top_p=0.0), torch.Generator().manual_seed(0),
                     hook=lambda kind, si, t: raw.append(t[:B].clone()) if kind == "raw_logits" else None)
        with torch.inference_mode():
            tf = var(labels, vae.quantize.teacher_forcing_input(out.tokens))
    for si, (b, e) in enumerate(var.cfg.begin_ends):
        diff = (tf[:, b:e] - raw[si]).abs().max().item()
        assert diff < 1e-4, f"scale {si}: {diff}"


def test_no_cache_decoding_gives_same_tokens():
    var, vae = models("256")
    sc = zoo.VAR_FID_SAMPLING
    a = sample(var, vae, torch.tensor([1, 2]), 2, sc, torch.Generator().manual_seed(3))
    b = sample(var, vae, torch.tensor([1, 2]), 2, sc, torch.Generator().manual_seed(3), steps=Steps(kv_cache=False))
    assert all(torch.equal(x, y) for x, y in zip(a.tokens, b.tokens))


@pytest.mark.parametrize("name", ["var_test", "var_test_512"])
def test_per_sample_rng_is_batch_invariant(name):
    g = build(zoo.get(name))
    labels = [1, 207, 980, 999, 5, 6, 7, 8]
    seeds = [sample_seed(0, i) for i in range(8)]
    full = g.generate(labels, seeds)
    for bs in (1, 3):
        parts = np.concatenate([g.generate(labels[i : i + bs], seeds[i : i + bs]) for i in range(0, 8, bs)])
        assert np.array_equal(parts, full), f"batch size {bs} changed the images"
    assert full.dtype == np.uint8 and full.shape == (8, g.resolution, g.resolution, 3)
    assert not np.array_equal(full[0], full[1])


def test_official_rng_mode_is_seeded():
    g = build(zoo.get("var_test"))
    a = g.generate_official([1, 2, 3], seed=5)
    assert np.array_equal(a, g.generate_official([1, 2, 3], seed=5))
    assert not np.array_equal(a, g.generate_official([1, 2, 3], seed=6))


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_reduced_precision_runs(dtype):
    g = build(zoo.get("var_test"), dtype=dtype)
    imgs = g.generate([1, 2], [sample_seed(0, 0), sample_seed(0, 1)])
    assert imgs.shape == (2, 64, 64, 3) and imgs.std() > 0


def test_top_k_top_p_more_smooth_options_reach_sampler():
    g = build(zoo.get("var_test"), cfg=4.0, top_k=10, top_p=0.5, more_smooth=True)
    assert g.describe()["sampling"] == {"cfg": 4.0, "top_k": 10, "top_p": 0.5, "more_smooth": True}
    assert g.generate([1], [7]).shape == (1, 64, 64, 3)


def _raw_logits(var, vae, labels, autocast_dtype=None):
    raw = []
    out = sample(var, vae, labels, len(labels), zoo.VAR_FID_SAMPLING, torch.Generator().manual_seed(11),
                 autocast_dtype=autocast_dtype,
                 hook=lambda kind, si, t: raw.append(t.clone()) if kind == "raw_logits" else None)
    return out, raw


@pytest.mark.parametrize("autocast_dtype", [None, torch.bfloat16])
def test_preallocated_kv_cache_gives_the_bits_of_concatenation(monkeypatch, autocast_dtype):
    """The default cache writes into buffers sized for the schedule; upstream concatenates.  Same logits, bit for bit,
    in fp32 and under autocast (where the in-place residual adds must keep torch's dtype promotion)."""
    from varbench.models.blocks import KVCache

    var, vae = models("256")
    labels = torch.tensor([1, 207, 980])
    ours, ours_raw = _raw_logits(var, vae, labels, autocast_dtype)
    monkeypatch.setattr(VAR, "new_cache", lambda self, capacity=None: [KVCache(None) for _ in self.blocks])
    cat, cat_raw = _raw_logits(var, vae, labels, autocast_dtype)
    assert all(torch.equal(a, b) for a, b in zip(ours_raw, cat_raw))
    assert all(torch.equal(a, b) for a, b in zip(ours.tokens, cat.tokens)) and torch.equal(ours.f_hat, cat.f_hat)


def test_kv_cache_refuses_more_tokens_than_its_capacity():
    from varbench.models.blocks import KVCache

    cache = KVCache(3)
    k = torch.zeros(1, 2, 2, 4)
    cache.extend(k, k)
    with pytest.raises(ValueError, match="holds 3 tokens; 4 were written"):
        cache.extend(k, k)


def test_in_place_block_arithmetic_keeps_values_and_promotion():
    from varbench.models.blocks import _mul, _residual

    g = torch.Generator().manual_seed(0)
    x, a, s = (torch.randn(2, 5, 8, generator=g) for _ in range(3))
    assert torch.equal(_residual(x, a.clone()), x + a) and torch.equal(_mul(a.clone(), s[:, :1]), a * s[:, :1])
    low = a.bfloat16()
    got = _residual(x, low.clone())  # an fp32 residual stream plus a bf16 branch stays fp32, as x + branch
    assert got.dtype == torch.float32 and torch.equal(got, x + low)
    got = _mul(low.clone(), s)
    assert got.dtype == torch.float32 and torch.equal(got, low * s)
    t = x.transpose(0, 1).contiguous().transpose(0, 1)  # other strides: the layout of x + branch follows x
    assert _residual(t, a.clone()).stride() == (t + a).stride()
