"""Raster-scan models behind the Generator protocol: LlamaGen (released or custom checkpoints) and the raster twins
of VAR (random init only).

Builders follow the zoo signature ``fn(spec, weight_paths, *, device, dtype, sampling, **options)``.  Options:
``image_size`` (generation size; the output is resized to ``spec.resolution`` when they differ, bicubic as
LlamaGen's sampler does for its 384 px models), ``use_kv_cache`` (default True) and, for custom files,
``num_heads`` (shapes cannot tell the head count; default: the released sizes', else width / 64).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from varbench.baselines.convert import gpt_from_state_dict, infer_gpt_config, infer_vq_config, vq_from_state_dict
from varbench.baselines.llamagen import GPT, GPTConfig
from varbench.baselines.sample import RasterSampling, raster_generate
from varbench.baselines.vq16 import VQModel
from varbench.errors import VarbenchError
from varbench.generators.protocol import check_labels, torch_dtype

log = logging.getLogger(__name__)

PIXEL_RULE = "uint8 = trunc(clamp(127.5 * x + 128, 0, 255)) (LlamaGen sample_c2i_ddp.py)"
LABELS_NOTE = ("LlamaGen's sample_c2i_ddp.py draws labels at random (torch.randint per batch); "
               "varbench generate uses a fixed number per class")


class RasterScanGenerator:
    """Class-conditional raster-scan AR model + VQ decoder behind the Generator protocol."""

    def __init__(self, name: str, family: str, gpt: GPT, vq: VQModel, *, resolution: int, sampling: RasterSampling,
                 dtype: str = "fp32", use_kv_cache: bool = True, random_weights: bool,
                 checkpoints: dict[str, Path] | None = None, paper_version: str | None = None, notes: str = ""):
        from varbench.generators.sampling import effective

        self.name, self.family, self.gpt, self.vq = name, family, gpt.eval(), vq.eval()
        self.resolution = resolution
        self.num_classes = gpt.config.num_classes
        self.num_steps = gpt.config.num_tokens
        self.sampling = effective(sampling, gpt.config.vocab_size)
        self.dtype, self.use_kv_cache = dtype, use_kv_cache
        self.random_weights = random_weights
        self.checkpoints = dict(checkpoints or {})
        self.paper_version = paper_version
        self.params = gpt.config.num_params
        self.notes = notes
        self._sha256: dict[str, str] = {}

    @property
    def device(self) -> torch.device:
        return self.gpt.tok_embeddings.weight.device

    @property
    def generated_resolution(self) -> int:
        """Side of the decoded image before any resize to ``resolution``."""
        return self.gpt.config.grid * self.vq.config.downsample

    def _labels(self, labels: Sequence[int]) -> torch.Tensor:
        t = torch.as_tensor(list(labels), dtype=torch.long)
        if t.ndim != 1 or len(t) == 0:
            raise VarbenchError(f"labels must be a non-empty list of class ids, got {list(labels)!r}")
        check_labels(t.tolist(), self.num_classes)
        return t.to(self.device)

    def tokens(self, labels: Sequence[int], seeds: Sequence[int]) -> torch.Tensor:
        """Per-sample mode: (N, grid*grid) tokens, row i from (labels[i], seeds[i]) alone."""
        if len(seeds) != len(labels):
            raise VarbenchError(f"{len(labels)} labels but {len(seeds)} seeds")
        rngs = [torch.Generator(device=self.device).manual_seed(int(s)) for s in seeds]
        return raster_generate(self.gpt, self._labels(labels), self.sampling, use_kv_cache=self.use_kv_cache, rng=rngs)

    def tokens_official(self, labels: Sequence[int], seed: int) -> torch.Tensor:
        """Official-RNG mode: ``torch.manual_seed(seed)`` right before ``generate`` (LlamaGen's sample scripts), one
        draw over the batch per token, so results depend on the batch."""
        rng = torch.Generator(device=self.device).manual_seed(int(seed))
        return raster_generate(self.gpt, self._labels(labels), self.sampling, use_kv_cache=self.use_kv_cache, rng=rng)

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor, per_row: bool = True) -> np.ndarray:
        """Tokens (N, grid*grid) -> uint8 (N, resolution, resolution, 3) by LlamaGen's pixel rule.

        ``per_row`` decodes one image at a time: conv kernels pick different paths for different batch sizes, which
        moves a few pixels by 1, so a batch decode would make a row depend on its batch.
        """
        if per_row and len(tokens) > 1:
            return np.concatenate([self.decode(row[None], per_row=False) for row in tokens])
        images = self.vq.decode_code(tokens.to(self.vq.post_quant_conv.weight.device), self.gpt.config.grid)
        if images.shape[-1] != self.resolution:
            images = F.interpolate(images, size=(self.resolution, self.resolution), mode="bicubic")
        pixels = torch.clamp(127.5 * images + 128.0, 0, 255).permute(0, 2, 3, 1).to("cpu", dtype=torch.uint8)
        return pixels.numpy()

    def generate(self, labels: Sequence[int], seeds: Sequence[int]) -> np.ndarray:
        return self.decode(self.tokens(labels, seeds))

    def generate_official(self, labels: Sequence[int], seed: int) -> np.ndarray:
        """Official-RNG mode end to end: tokens as LlamaGen's generate() after torch.manual_seed(seed), the batch decoded
        at once as the official sampler does."""
        return self.decode(self.tokens_official(labels, seed), per_row=False)

    def checkpoint_sha256(self) -> dict[str, str]:
        from varbench.files import sha256_file

        for role, path in self.checkpoints.items():
            if role not in self._sha256:
                self._sha256[role] = sha256_file(path)
        return dict(self._sha256)

    def describe(self) -> dict:
        gcfg, vcfg = self.gpt.config, self.vq.config
        sha = self.checkpoint_sha256()
        info = {
            "family": self.family, "name": self.name, "resolution": self.resolution,
            "image_size": self.generated_resolution, "grid": gcfg.grid,
            "resize": (f"bicubic {self.generated_resolution}->{self.resolution} (F.interpolate, align_corners=False, "
                       "no antialias)" if self.generated_resolution != self.resolution else None),
            "gpt": {**asdict(gcfg), "head_dim": gcfg.head_dim, "ffn_hidden": gcfg.ffn_hidden, "params": self.params},
            "tokenizer": asdict(vcfg), "sampling": self.sampling.as_dict(), "use_kv_cache": self.use_kv_cache,
            "dtype": self.dtype, "device": str(self.device), "random_weights": self.random_weights,
            "checkpoints": {role: {"path": str(p), "sha256": sha[role]} for role, p in self.checkpoints.items()},
            "pixel_rule": PIXEL_RULE, "labels_note": LABELS_NOTE,
        }
        if self.random_weights:
            info["warning"] = "random weights: no released checkpoint was loaded; images and quality metrics are meaningless"
        if self.notes:
            info["notes"] = self.notes
        return info


def _place(module: torch.nn.Module, device: str, dtype: torch.dtype | None = None) -> torch.nn.Module:
    try:
        return module.to(device=torch.device(device), dtype=dtype)
    except (RuntimeError, AssertionError) as e:  # e.g. "Torch not compiled with CUDA enabled"
        raise VarbenchError(f"cannot put the model on device {device!r}: {str(e).splitlines()[0]}") from None


def random_module(module_cls, cfg, seed: int, device: str):
    """``module_cls(cfg)`` with recipe weights for ``seed`` on ``device`` (built on the meta device first: no init cost)."""
    from varbench.recipe import fill_with_recipe

    with torch.device("meta"):
        module = module_cls(cfg)
    try:
        return fill_with_recipe(module, seed, device)
    except (RuntimeError, AssertionError) as e:
        raise VarbenchError(f"cannot build random weights on device {device!r}: {str(e).splitlines()[0]}") from None


def _grid(spec, image_size: int | None) -> int:
    if image_size is not None and (int(image_size) <= 0 or int(image_size) % 16):
        raise VarbenchError(f"--image-size {image_size} is not a positive multiple of 16 (the tokenizer downsamples by 16)")
    return int(image_size or spec.generated_resolution) // 16


def _with_grid(cfg: GPTConfig, grid: int) -> GPTConfig:
    return GPTConfig(**{**cfg.__dict__, "grid": grid})


def build_llamagen(spec, weight_paths: dict, *, device: str = "cpu", dtype: str = "fp32", sampling=None,
                   image_size: int | None = None, use_kv_cache: bool = True,
                   num_heads: int | None = None) -> RasterScanGenerator:
    """LlamaGen GPT + VQ-16 for a zoo spec, a random-init test spec, or a custom pair of files (``spec.config`` None)."""
    from varbench import checkpoint
    from varbench.generators import weights

    grid = _grid(spec, image_size)
    precision = torch_dtype(dtype)
    sampling = spec.sampling if sampling is None else sampling
    checkpoints: dict[str, Path] = {}
    if spec.random_init:
        gpt = random_module(GPT, _with_grid(spec.config, grid), spec.random_seeds[0], device)
        vq = random_module(VQModel, spec.tokenizer, spec.random_seeds[1], device)
    else:
        custom = spec.config is None
        if custom:
            missing = [role for role in ("gpt", "vq") if not weight_paths.get(role)]
            if missing:
                raise VarbenchError(f"custom LlamaGen needs both checkpoints: pass --{missing[0]}-ckpt FILE")
            checkpoints = {role: Path(weight_paths[role]) for role in ("gpt", "vq")}
        else:
            checkpoints = weights.resolve_all(spec.weights, weight_paths)
        gpt_what, vq_what = f"GPT checkpoint {checkpoints['gpt']}", f"VQ checkpoint {checkpoints['vq']}"
        log.info("loading %s and %s", gpt_what, vq_what)
        gpt_sd = checkpoint.load_state_dict(checkpoints["gpt"], "GPT checkpoint")
        gcfg = (infer_gpt_config(gpt_sd, grid, gpt_what, n_head=num_heads) if custom
                else _with_grid(spec.config, grid))
        gpt = gpt_from_state_dict(gpt_sd, gcfg, gpt_what)
        del gpt_sd
        vq_sd = checkpoint.load_state_dict(checkpoints["vq"], "VQ checkpoint")
        vq = vq_from_state_dict(vq_sd, infer_vq_config(vq_sd, vq_what) if custom else spec.tokenizer, vq_what)
        if gpt.config.vocab_size != vq.config.codebook_size:
            raise VarbenchError(f"{gpt_what} predicts {gpt.config.vocab_size} tokens but {vq_what} has "
                                f"{vq.config.codebook_size} codes; pass matching files")
        vq = _place(vq, device, torch.float32)
    gpt = _place(gpt, device, precision)
    return RasterScanGenerator(spec.name, "llamagen", gpt, vq, resolution=spec.resolution, sampling=sampling,
                               dtype=dtype, use_kv_cache=use_kv_cache, random_weights=spec.random_init,
                               checkpoints=checkpoints, paper_version=spec.paper_version, notes=spec.notes)


def build_raster(spec, weight_paths: dict, *, device: str = "cpu", dtype: str = "fp32", sampling=None,
                 image_size: int | None = None, use_kv_cache: bool = True) -> RasterScanGenerator:
    """A raster twin of VAR with seeded random weights (no released weights exist for these models)."""
    if weight_paths:
        raise VarbenchError(f"{spec.name} is random-init only (no weights exist); do not pass checkpoint files")
    grid = _grid(spec, image_size)
    gpt = _place(random_module(GPT, _with_grid(spec.config, grid), spec.random_seeds[0], device), device,
                 torch_dtype(dtype))
    vq = random_module(VQModel, spec.tokenizer, spec.random_seeds[1], device)
    return RasterScanGenerator(spec.name, "raster", gpt, vq, resolution=spec.resolution,
                               sampling=spec.sampling if sampling is None else sampling, dtype=dtype,
                               use_kv_cache=use_kv_cache, random_weights=True, notes=spec.notes)
