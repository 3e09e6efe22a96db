"""Zoo entries of the raster-scan baselines (LlamaGen and the raster twins of VAR).

Imported by ``varbench.zoo`` on first use; each entry calls ``varbench.zoo.register``.  Data only: no torch import.
Sources: ``shared/facts/baselines.md`` section 2.1 (checkpoints, FID-protocol settings, reported numbers).
"""

from __future__ import annotations

from varbench.zoo import GeneratorSpec, WeightFile, register

HUB_LLAMAGEN = "FoundationVision/LlamaGen"
VQ16 = WeightFile("vq", HUB_LLAMAGEN, "vq_ds16_c2i.pt")


def _gpt_params(dim: int, n_layer: int, vocab: int = 16384, classes: int = 1000) -> int:
    """Closed-form size of ``baselines.llamagen.GPT`` (as GPTConfig.num_params, without importing torch)."""
    ffn = -(-int(8 * dim / 3) // 256) * 256  # int(2/3 * 4 * dim) rounded up to a multiple of 256
    return 2 * vocab * dim + (classes + 1) * dim + n_layer * (4 * dim * dim + 3 * dim * ffn + 2 * dim) + dim


def _sampling(cfg: float) -> dict:
    # sample_c2i_ddp.py FID settings: constant-scale CFG (per-model value from GETTING_STARTED), no top-k/top-p.
    return {"cfg": cfg, "cfg_interval": -1, "temperature": 1.0, "top_k": 0, "top_p": 1.0}


_FID_SRC = "LlamaGen README (FID); RAR paper Table 4 (IS, precision, recall)"
_LLAMAGEN = (
    # name, GPT size, dim, layers, heads, image size, checkpoint, cfg, reported
    ("llamagen_b", "B", 768, 12, 12, 256, "c2i_B_256.pt", 2.0, {"fid": 5.46, "is": 193.6}),
    ("llamagen_l", "L", 1024, 24, 16, 256, "c2i_L_256.pt", 2.0, {"fid": 3.80, "is": 248.3, "precision": 0.83, "recall": 0.51}),
    ("llamagen_xl", "XL", 1280, 36, 20, 384, "c2i_XL_384.pt", 1.75, {"fid": 2.62, "is": 244.1, "precision": 0.80, "recall": 0.57}),
    ("llamagen_xxl", "XXL", 1536, 48, 24, 384, "c2i_XXL_384.pt", 1.75, {"fid": 2.34, "is": 253.9, "precision": 0.80, "recall": 0.59}),
    ("llamagen_3b", "3B", 3200, 24, 32, 384, "c2i_3B_384.pt", 1.65, {"fid": 2.18, "is": 263.3, "precision": 0.81, "recall": 0.58}),
)
for name, size, dim, layers, heads, image_size, filename, cfg, rep in _LLAMAGEN:
    resize = " generated at 384 px (24x24 tokens) and bicubic-resized to 256 for evaluation;" if image_size != 256 else ""
    register(GeneratorSpec(
        name=name,
        family="llamagen",
        builder="baselines.generator:build_llamagen",
        resolution=256,
        params=_gpt_params(dim, layers),
        arch={"size": size, "dim": dim, "depth": layers, "heads": heads, "grid": image_size // 16,
              "image_size": image_size, "tokenizer": "VQ-16"},
        weights=(WeightFile("gpt", HUB_LLAMAGEN, filename), VQ16),
        sampling=_sampling(cfg),
        reported=({**rep, "source": f"{_FID_SRC}; GPT-{size}-{image_size}"},),
        notes=f"LlamaGen GPT-{size};{resize} official sampler draws random labels",
    ))

# Tiny random-init LlamaGen: the fixtures' models (recipe seeds 1 and 3), so its output is checkable offline.
register(GeneratorSpec(
    name="llamagen_test",
    family="llamagen",
    builder="baselines.generator:build_llamagen",
    resolution=256,
    params=_gpt_params(64, 2),
    arch={"grid": 16, "image_size": 256, "gpt": {"dim": 64, "n_layer": 2, "n_head": 4}, "gpt_seed": 1,
          "vq": {"ch": 32, "z_channels": 64}, "vq_seed": 3},
    sampling=_sampling(2.0),
    random_init=True,
    notes="LlamaGen layout, width 64, depth 2, reduced VQ (base width 32), random weights: pipeline tests only",
))

# Raster twins of VAR: width 64*d, depth d, d heads, VAR's 4096 codes; 16x16 and 32x32 grids.  Random init only.
_TWIN_NOTE = "random weights only: no public weights exist for raster twins (speed study; images are noise)"
for depth in (16, 20, 24, 30):
    for resolution in (256, 512):
        register(GeneratorSpec(
            name=f"raster_d{depth}_{resolution}",
            family="raster",
            builder="baselines.generator:build_raster",
            resolution=resolution,
            params=_gpt_params(64 * depth, depth, vocab=4096),
            arch={"width": 64 * depth, "depth": depth, "heads": depth, "vocab_size": 4096, "grid": resolution // 16,
                  "twin_of": f"var_d{depth}", "gpt_seed": depth, "vq_ch": 160, "vq_seed": 1000 + depth},
            sampling=_sampling(1.5),
            random_init=True,
            notes=f"raster twin of var_d{depth}; {_TWIN_NOTE}",
        ))
register(GeneratorSpec(
    name="raster_test",
    family="raster",
    builder="baselines.generator:build_raster",
    resolution=64,
    params=_gpt_params(64, 2, vocab=4096),
    arch={"width": 64, "depth": 2, "heads": 4, "vocab_size": 4096, "grid": 4, "gpt_seed": 0, "vq_ch": 32,
          "vq_seed": 1},
    sampling=_sampling(1.5),
    random_init=True,
    notes=f"tiny raster model (width 64, depth 2, 4x4 tokens); {_TWIN_NOTE}",
))
