"""Generator adapters for raster-scan models: LlamaGen (released or custom checkpoints) and the raster twins of VAR.

``build_llamagen`` / ``build_raster`` follow the zoo builder signature ``fn(spec, weight_paths, device, dtype,
**options)``.  Options: ``image_size`` (generation size; the output is resized to ``spec.resolution`` when they differ,
bicubic as LlamaGen's sampler does for its 384 px models), ``use_kv_cache`` (default True) and sampling overrides with
the keys of ``spec.sampling`` (``cfg``, ``cfg_interval``, ``temperature``, ``top_k``, ``top_p``; a spec without them,
as for custom files, starts from sample_c2i_ddp.py's defaults: cfg 1.5, no top-k/top-p).  ``None`` means unset.

A custom pair of files is a spec with ``arch={"infer": True}``: the architecture is read from the state dicts
(``arch["n_head"]`` sets the heads, which shapes cannot tell; default: the released sizes', else width / 64).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from baselines.convert import gpt_from_state_dict, infer_gpt_config, infer_vq_config, vq_from_state_dict
from baselines.llamagen import GPT, GPTConfig, gpt_config
from baselines.raster import RasterConfig, twin_tokenizer_config
from baselines.raster_generate import RasterSampling, raster_generate
from baselines.recipe import fill_with_recipe
from baselines.vq16 import VQConfig, VQModel
from varbench.errors import VarbenchError
from varbench.generator import torch_dtype
from varbench.weights import load_state_dict, resolve, sha256_file
from varbench.zoo import GeneratorSpec

log = logging.getLogger(__name__)

SAMPLING_KEYS = ("cfg", "cfg_interval", "temperature", "top_k", "top_p")
# sample_c2i_ddp.py's own defaults: used for specs without sampling settings (custom checkpoint files).
LLAMAGEN_SAMPLER_DEFAULTS = {"cfg": 1.5, "cfg_interval": -1, "temperature": 1.0, "top_k": 0, "top_p": 1.0}
OTHER_OPTIONS = ("image_size", "use_kv_cache")
PIXEL_RULE = "uint8 = trunc(clamp(127.5 * x + 128, 0, 255)) (LlamaGen sample_c2i_ddp.py)"
LABELS_NOTE = ("LlamaGen's sample_c2i_ddp.py draws labels at random (torch.randint per batch); "
               "varbench generate uses a fixed number per class")


class RasterScanGenerator:
    """Class-conditional raster-scan AR model + VQ decoder behind the Generator protocol."""

    def __init__(self, name: str, family: str, gpt: GPT, vq: VQModel, *, resolution: int, sampling: RasterSampling,
                 use_kv_cache: bool = True, random_weights: bool, checkpoints: dict[str, Path] | None = None,
                 notes: str = ""):
        self.name, self.family, self.gpt, self.vq = name, family, gpt.eval(), vq.eval()
        self.resolution = resolution
        self.num_classes = gpt.config.num_classes
        self.sampling, self.use_kv_cache = sampling, use_kv_cache
        self.random_weights = random_weights
        self.checkpoints = dict(checkpoints or {})
        self.notes = notes
        self._sha256: dict[str, str] = {}

    @property
    def device(self) -> torch.device:
        return self.gpt.tok_embeddings.weight.device

    @property
    def image_size(self) -> int:
        """Side of the decoded image before any resize to ``resolution``."""
        return self.gpt.config.grid * self.vq.config.downsample

    def _labels(self, labels: Sequence[int]) -> torch.Tensor:
        t = torch.as_tensor(list(labels), dtype=torch.long)
        if t.ndim != 1 or len(t) == 0:
            raise VarbenchError(f"labels must be a non-empty list of class ids, got {list(labels)!r}")
        bad = t[(t < 0) | (t >= self.num_classes)]
        if len(bad):
            raise VarbenchError(f"class label {int(bad[0])} is outside 0..{self.num_classes - 1}")
        return t.to(self.device)

    def tokens(self, labels: Sequence[int], seeds: Sequence[int]) -> torch.Tensor:
        """Per-sample mode: (N, grid*grid) tokens, row i from (labels[i], seeds[i]) alone."""
        if len(seeds) != len(labels):
            raise VarbenchError(f"{len(labels)} labels but {len(seeds)} seeds")
        rngs = [torch.Generator(device=self.device).manual_seed(int(s)) for s in seeds]
        return raster_generate(self.gpt, self._labels(labels), self.sampling, use_kv_cache=self.use_kv_cache, rng=rngs)

    def tokens_official(self, labels: Sequence[int], seed: int) -> torch.Tensor:
        """Official-RNG mode: one generator seeded like ``torch.manual_seed(seed)``, one draw over the batch per token
        (LlamaGen's ``generate``), so results depend on the batch."""
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
        for role, path in self.checkpoints.items():
            if role not in self._sha256:
                self._sha256[role] = sha256_file(path)
        return dict(self._sha256)

    def describe(self) -> dict:
        gcfg, vcfg = self.gpt.config, self.vq.config
        sha = self.checkpoint_sha256()
        info = {
            "family": self.family,
            "name": self.name,
            "resolution": self.resolution,
            "image_size": self.image_size,
            "grid": gcfg.grid,
            "resize": (f"bicubic {self.image_size}->{self.resolution} (F.interpolate, align_corners=False, no antialias)"
                       if self.image_size != self.resolution else None),
            "gpt": {**asdict(gcfg), "head_dim": gcfg.head_dim, "ffn_hidden": gcfg.ffn_hidden, "params": gcfg.num_params},
            "tokenizer": asdict(vcfg),
            "sampling": self.sampling.as_dict(),
            "use_kv_cache": self.use_kv_cache,
            "dtype": str(self.gpt.tok_embeddings.weight.dtype).removeprefix("torch."),
            "device": str(self.device),
            "random_weights": self.random_weights,
            "checkpoints": {role: {"path": str(p), "sha256": sha[role]} for role, p in self.checkpoints.items()},
            "pixel_rule": PIXEL_RULE,
            "labels_note": LABELS_NOTE,
        }
        if self.random_weights:
            info["warning"] = "random weights: no released checkpoint was loaded; images and quality metrics are meaningless"
        if self.notes:
            info["notes"] = self.notes
        return info


def _split_options(spec: GeneratorSpec, options: dict) -> tuple[RasterSampling, int | None, bool]:
    options = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(options) - set(SAMPLING_KEYS) - set(OTHER_OPTIONS))
    if unknown:
        raise VarbenchError(f"unknown option(s) {', '.join(unknown)} for {spec.name}; "
                            f"known: {', '.join(SAMPLING_KEYS + OTHER_OPTIONS)}")
    s = {**LLAMAGEN_SAMPLER_DEFAULTS, **spec.sampling, **{k: options[k] for k in SAMPLING_KEYS if k in options}}
    try:
        sampling = RasterSampling(cfg_scale=float(s["cfg"]), cfg_interval=float(s["cfg_interval"]),
                                  temperature=float(s["temperature"]), top_k=int(s["top_k"]), top_p=float(s["top_p"]))
    except (TypeError, ValueError):
        raise VarbenchError(f"sampling settings must be numbers, got {s}") from None
    if sampling.temperature < 0 or sampling.top_k < 0 or not 0 < sampling.top_p <= 1:
        raise VarbenchError(f"bad sampling settings {sampling.as_dict()}: need temperature >= 0, top_k >= 0, "
                            "0 < top_p <= 1")
    image_size = options.get("image_size")
    if image_size is not None and (int(image_size) <= 0 or int(image_size) % 16):
        raise VarbenchError(f"--image-size {image_size} is not a positive multiple of 16 (the tokenizer downsamples by 16)")
    return sampling, None if image_size is None else int(image_size), bool(options.get("use_kv_cache", True))


def _place(module: torch.nn.Module, device: str, dtype: torch.dtype | None = None) -> torch.nn.Module:
    try:
        return module.to(device=torch.device(device), dtype=dtype)
    except (RuntimeError, AssertionError) as e:  # e.g. "Torch not compiled with CUDA enabled"
        raise VarbenchError(f"cannot put the model on device {device!r}: {str(e).splitlines()[0]}") from None


def _random(module_cls, cfg, seed: int, device: str):
    with torch.device("meta"):
        module = module_cls(cfg)
    try:
        return fill_with_recipe(module, seed, device)
    except (RuntimeError, AssertionError) as e:
        raise VarbenchError(f"cannot build random weights on device {device!r}: {str(e).splitlines()[0]}") from None


def build_llamagen(spec: GeneratorSpec, weight_paths: dict, device: str = "cpu", dtype: str = "fp32",
                   **options) -> RasterScanGenerator:
    """LlamaGen GPT + VQ-16 for a zoo spec, a random-init test spec, or a custom pair of files (``arch["infer"]``)."""
    sampling, image_size, use_kv_cache = _split_options(spec, options)
    arch = spec.arch
    image_size = image_size or arch.get("image_size") or spec.resolution
    grid = image_size // 16
    precision = torch_dtype(dtype)
    checkpoints: dict[str, Path] = {}
    if spec.random_init:
        gpt = _random(GPT, GPTConfig(**{**arch["gpt"], "grid": grid}), arch["gpt_seed"], device)
        vq = _random(VQModel, VQConfig(**arch["vq"]), arch["vq_seed"], device)
    else:
        if arch.get("infer"):
            missing = [role for role in ("gpt", "vq") if not weight_paths.get(role)]
            if missing:
                raise VarbenchError(f"custom LlamaGen needs both checkpoints: pass --{missing[0]}-ckpt FILE")
            checkpoints = {role: Path(weight_paths[role]) for role in ("gpt", "vq")}
        else:
            checkpoints = {wf.role: resolve(wf, weight_paths.get(wf.role)) for wf in spec.weights}
        gpt_what = f"GPT checkpoint {checkpoints['gpt']}"
        vq_what = f"VQ checkpoint {checkpoints['vq']}"
        log.info("loading %s and %s", gpt_what, vq_what)
        gpt_sd = load_state_dict(checkpoints["gpt"], "GPT checkpoint")
        gcfg = (infer_gpt_config(gpt_sd, grid, gpt_what, n_head=arch.get("n_head")) if arch.get("infer")
                else gpt_config(arch["size"], grid))
        gpt = gpt_from_state_dict(gpt_sd, gcfg, gpt_what)
        del gpt_sd
        vq_sd = load_state_dict(checkpoints["vq"], "VQ checkpoint")
        vcfg = infer_vq_config(vq_sd, vq_what) if arch.get("infer") else VQConfig()
        vq = vq_from_state_dict(vq_sd, vcfg, vq_what)
        if gpt.config.vocab_size != vq.config.codebook_size:
            raise VarbenchError(f"{gpt_what} predicts {gpt.config.vocab_size} tokens but {vq_what} has "
                                f"{vq.config.codebook_size} codes; pass matching files")
        vq = _place(vq, device, torch.float32)
    gpt = _place(gpt, device, precision)
    return RasterScanGenerator(spec.name, "llamagen", gpt, vq, resolution=spec.resolution, sampling=sampling,
                               use_kv_cache=use_kv_cache, random_weights=spec.random_init, checkpoints=checkpoints,
                               notes=spec.notes)


def raster_config(spec: GeneratorSpec, grid: int | None = None) -> RasterConfig:
    a = spec.arch
    return RasterConfig(width=a["width"], depth=a["depth"], heads=a["heads"], grid=grid or a["grid"],
                        vocab_size=a["vocab_size"])


def build_raster(spec: GeneratorSpec, weight_paths: dict, device: str = "cpu", dtype: str = "fp32",
                 **options) -> RasterScanGenerator:
    """A raster twin of VAR with seeded random weights (no released weights exist for these models)."""
    if weight_paths:
        raise VarbenchError(f"{spec.name} is random-init only (no weights exist); do not pass checkpoint files")
    sampling, image_size, use_kv_cache = _split_options(spec, options)
    grid = (image_size or spec.resolution) // 16
    rcfg = raster_config(spec, grid)
    gpt = _place(_random(GPT, rcfg.gpt_config(), spec.arch["gpt_seed"], device), device, torch_dtype(dtype))
    vq = _random(VQModel, twin_tokenizer_config(rcfg.vocab_size, spec.arch["vq_ch"]), spec.arch["vq_seed"], device)
    return RasterScanGenerator(spec.name, "raster", gpt, vq, resolution=spec.resolution, sampling=sampling,
                               use_kv_cache=use_kv_cache, random_weights=True, notes=spec.notes)
