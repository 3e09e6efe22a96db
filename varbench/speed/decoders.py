"""What the speed study times: one decode call of a built model, through the models' own sampling loops.

``VarDecoder`` drives ``varbench.models.sample.sample`` (its ``Steps`` hooks swap in compiled transformer calls,
wrap them in a FLOP counter and, without guidance, skip the unconditional rows); ``RasterDecoder`` drives
``varbench.baselines.sample.raster_generate``.  Random weights are enough for timing (every decoder runs a fixed
number of steps); released weights are used when they are already cached and fit the job (nothing is downloaded).
"""

from __future__ import annotations

import dataclasses

from varbench.speed.plan import Job, SpeedConfig

VAR_RECIPE_SEEDS = (1, 2)  # recipe seeds of random VAR / VQVAE weights (also the benchmarks' random VAR-d16)


class VarDecoder:
    """Times VAR (one built model serves var_kv and var_nokv)."""

    def __init__(self, var, vae, *, random_weights: bool, autocast_dtype, compile: bool):
        import torch

        self.var, self.vae = var.eval(), vae.eval()
        self.random_weights = random_weights
        self.autocast_dtype = autocast_dtype
        self.device = var.class_emb.weight.device
        self.step = torch.compile(var.step, dynamic=True) if compile else None
        self.step_no_cache = torch.compile(var.step_no_cache, dynamic=True) if compile else None

    def run(self, job: Job, batch: int, cfg: bool, seed: int, flops=None):
        import torch

        from varbench.models.sample import Steps, sample

        sampling = job.sampling if cfg else dataclasses.replace(job.sampling, cfg=0.0)
        steps = Steps(step=self.step, step_no_cache=self.step_no_cache, uncond_rows=cfg, kv_cache=job.kv,
                      region=flops.region if flops is not None else None)
        rng = torch.Generator(device=self.device).manual_seed(seed)
        return sample(self.var, self.vae, _labels(batch, self.device), batch, sampling, rng, self.autocast_dtype,
                      steps=steps)

    @property
    def decode_dtype(self) -> str:
        """The dtype the VQ decode computes in: the fast modes run it under the transformer's autocast, as
        ``VarGenerator.decode`` does."""
        return _dtype_name(self.autocast_dtype)

    def vq_decode(self, job: Job, out):
        import torch

        from varbench.models.sample import decode_images

        dtype = self.autocast_dtype
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            return decode_images(self.vae, out.f_hat)

    def decode_flops(self, job: Job, batch: int) -> int:
        from varbench.speed.efficiency import var_decode_flops

        return var_decode_flops(self.vae.cfg, batch)


class RasterDecoder:
    """Times a raster-scan GPT (one built model serves its KV and no-KV modes)."""

    def __init__(self, gpt, vq, *, random_weights: bool, compile: bool):
        import torch

        self.gpt, self.vq = gpt.eval(), vq.eval()
        self.random_weights = random_weights
        self.device = gpt.tok_embeddings.weight.device
        if compile:  # an instance attribute: step() and forward() both run through hidden()
            self.gpt.hidden = torch.compile(self.gpt.hidden, dynamic=True)

    def run(self, job: Job, batch: int, cfg: bool, seed: int, flops=None):
        import torch

        from varbench.baselines.sample import raster_generate

        sampling = job.sampling if cfg else dataclasses.replace(job.sampling, cfg=1.0)
        rng = torch.Generator(device=self.device).manual_seed(seed)
        return raster_generate(self.gpt, _labels(batch, self.device), sampling, use_kv_cache=job.kv, rng=rng,
                               region=flops.region if flops is not None else None)

    @property
    def decode_dtype(self) -> str:
        return _dtype_name(next(self.vq.parameters()).dtype)

    def vq_decode(self, job: Job, out):
        import torch

        with torch.inference_mode():
            return self.vq.decode_code(out, job.grid)

    def decode_flops(self, job: Job, batch: int) -> int:
        from varbench.speed.efficiency import vq16_decode_flops

        return vq16_decode_flops(self.vq.config, batch, job.grid)


def _dtype_name(dtype) -> str:
    """torch dtype (None: float32) -> "fp32" | "bf16" | "fp16"."""
    import torch

    return {None: "fp32", torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def _labels(batch: int, device):
    import torch

    return (torch.arange(batch, device=device) * 7919 + 207) % 1000


def _cached_spec(name: str | None):
    """The zoo entry ``name`` when all its weight files are in the cache (nothing is downloaded), else None."""
    from varbench.generators import weights, zoo

    if name is None:
        return None
    spec = zoo.get(name)
    return spec if spec.weights and all(weights.is_cached(w) for w in spec.weights) else None


def build_decoder(job: Job, config: SpeedConfig, device: str, dtype: str):
    """The decoder for ``job.build_key``: cached released weights when they fit, else seeded random weights."""
    from varbench.generators.protocol import build, torch_dtype
    from varbench.generators.raster import random_module

    precision = torch_dtype(dtype)
    spec = _cached_spec(job.spec_name)
    if job.family == "var":
        autocast = None if dtype == "fp32" else precision
        if spec is not None and spec.tokenizer.patch_nums == job.patch_nums and config.vae_ch is None:
            gen = build(spec, device=device, dtype=dtype)
            return VarDecoder(gen.var, gen.vae, random_weights=False, autocast_dtype=autocast, compile=config.compile)
        var, vae = _random_var(job, config, device)
        return VarDecoder(var, vae, random_weights=True, autocast_dtype=autocast, compile=config.compile)
    from varbench.baselines.llamagen import GPT, GPTConfig
    from varbench.baselines.raster import twin_tokenizer_config
    from varbench.baselines.vq16 import VQConfig, VQModel

    if job.family == "llamagen":
        if spec is not None:
            gen = build(spec, device=device, dtype=dtype, image_size=job.resolution)
            return RasterDecoder(gen.gpt, gen.vq, random_weights=False, compile=config.compile)
        gcfg = GPTConfig(dim=job.arch.width, n_layer=job.arch.depth, n_head=job.heads, grid=job.grid)
        vq_cfg, seed = (VQConfig() if config.vae_ch is None else VQConfig(ch=config.vae_ch)), 0
    else:
        gcfg = GPTConfig(dim=job.arch.width, n_layer=job.arch.depth, n_head=job.heads, vocab_size=job.arch.vocab,
                         grid=job.grid)
        vq_cfg, seed = twin_tokenizer_config(job.arch.vocab, config.vae_ch or 160), job.arch.depth
    gpt = random_module(GPT, gcfg, seed, device).to(precision).requires_grad_(False)
    vq = random_module(VQModel, vq_cfg, 1000 + seed, device).requires_grad_(False)
    return RasterDecoder(gpt, vq, random_weights=True, compile=config.compile)


def _random_var(job: Job, config: SpeedConfig, device: str):
    import torch

    from varbench.models.var import VAR, VARConfig
    from varbench.models.vqvae import VQVAE, VQVAEConfig
    from varbench.recipe import fill_with_recipe

    vcfg = VARConfig(depth=job.arch.depth, patch_nums=job.patch_nums, width=job.arch.width, num_heads=job.heads,
                     shared_aln=job.shared_adaln)
    with torch.device(device):
        var, vae = VAR(vcfg), VQVAE(VQVAEConfig(patch_nums=job.patch_nums, ch=config.vae_ch or 160))
    fill_with_recipe(var, VAR_RECIPE_SEEDS[0], device)
    fill_with_recipe(vae, VAR_RECIPE_SEEDS[1], device)
    return var.requires_grad_(False), vae.requires_grad_(False)
