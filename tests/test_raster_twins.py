"""Raster twins of VAR (random-init only): sizes, zoo entries, the Generator adapter, KV cache = no cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from varbench.baselines.llamagen import GPT
from varbench.baselines.raster import TWIN_DEPTHS, RasterConfig
from varbench.baselines.sample import RasterSampling, raster_generate
from varbench.recipe import fill_with_recipe
from varbench.generators import zoo
from varbench.errors import VarbenchError
from varbench.generate.plan import sample_seed
from varbench.generators.protocol import Generator, build

# Exact transformer sizes (tokenizer excluded); the same at 256 and 512 px (no learned position embedding).
TWIN_PARAMS = {16: 214_968_320, 20: 418_142_720, 24: 693_672_960, 30: 1_344_871_680}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("depth", TWIN_DEPTHS)
def test_twin_shapes_and_parameter_counts(depth):
    var = zoo.get(f"var_d{depth}")
    for resolution, grid in ((256, 16), (512, 32)):
        spec = zoo.get(f"raster_d{depth}_{resolution}")
        assert spec.family == "raster" and spec.random_init and spec.weights == ()
        assert "random weights" in spec.notes and "no public weights" in spec.notes
        assert spec.resolution == resolution and spec.steps == spec.tokens == grid * grid
        cfg = RasterConfig.twin(depth, grid)
        assert (cfg.width, cfg.depth, cfg.heads, cfg.vocab_size) == (64 * depth, depth, depth, 4096)
        with torch.device("meta"):
            model = GPT(cfg.gpt_config())
        n = sum(p.numel() for p in model.parameters())
        assert n == cfg.num_params == spec.params == TWIN_PARAMS[depth]
        assert model.output.weight.shape == (4096, 64 * depth) and len(model.layers) == depth
    # same width/depth as VAR; VAR has more parameters per block (AdaLN) for the same 24 w^2 FLOPs per token
    assert var.config.depth == depth and var.params > TWIN_PARAMS[depth]


def test_raster_test_generator():
    g = build(zoo.get("raster_test"))
    assert isinstance(g, Generator) and g.random_weights
    seeds = [sample_seed(3, i) for i in range(3)]
    images = g.generate([0, 500, 999], seeds)
    assert images.dtype == np.uint8 and images.shape == (3, 64, 64, 3)
    assert np.array_equal(g.generate([500], seeds[1:2])[0], images[1])  # per-sample: independent of the batch
    assert np.array_equal(build(zoo.get("raster_test")).generate([0], seeds[:1])[0], images[0])  # seeded weights
    d = g.describe()
    assert d["family"] == "raster" and d["random_weights"] is True and "random weights" in d["warning"]
    assert d["gpt"]["params"] == zoo.get("raster_test").params and d["gpt"]["vocab_size"] == 4096


def test_raster_has_no_weights_to_load(tmp_path):
    with pytest.raises(VarbenchError, match="random-init only"):
        build(zoo.get("raster_test"), {"gpt": tmp_path / "x.pt"})


@pytest.mark.parametrize("sampling", [RasterSampling(cfg=1.5), RasterSampling(),
                                      RasterSampling(cfg=3.0, cfg_interval=10, temperature=0.9, top_k=50,
                                                     top_p=0.9)])
def test_kv_cache_and_no_cache_give_identical_tokens(sampling):
    cfg = RasterConfig(width=64, depth=2, heads=4, grid=8)
    with torch.device("meta"):
        model = GPT(cfg.gpt_config())
    fill_with_recipe(model, 5).eval()
    labels = torch.tensor([1, 2, 3])
    kv = raster_generate(model, labels, sampling, use_kv_cache=True, rng=torch.Generator().manual_seed(1))
    plain = raster_generate(model, labels, sampling, use_kv_cache=False, rng=torch.Generator().manual_seed(1))
    assert kv.shape == (3, 64) and kv.dtype == torch.long
    assert torch.equal(kv, plain)
    rows = [torch.Generator().manual_seed(s) for s in (4, 5, 6)]
    kv = raster_generate(model, labels, sampling, use_kv_cache=True, rng=rows)
    rows = [torch.Generator().manual_seed(s) for s in (4, 5, 6)]
    assert torch.equal(kv, raster_generate(model, labels, sampling, use_kv_cache=False, rng=rows))


def test_speed_study_entry_point_counts_steps():
    """raster_generate runs the transformer only: one forward per token, progress after each."""
    cfg = RasterConfig(width=64, depth=1, heads=1, grid=4)
    with torch.device("meta"):
        model = GPT(cfg.gpt_config())
    fill_with_recipe(model, 0).eval()
    calls = []
    tokens = raster_generate(model, torch.tensor([7]), RasterSampling(greedy=True),
                             progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 16) for i in range(1, 17)] and tokens.shape == (1, 16)
    assert torch.equal(tokens[:, :5], raster_generate(model, torch.tensor([7]), RasterSampling(greedy=True),
                                                      num_tokens=5))
