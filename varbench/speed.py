"""The decoding-speed study: next-scale (VAR) against raster-scan AR decoding, with and without a KV cache.

For every model x resolution x decoding mode this measures the time of one decode call at each batch size (warm-up,
repeats, median and bootstrap interval; CUDA events with synchronisation on GPU), the VQ-decode time separately, the
peak memory, the FLOPs counted by ``torch.utils.flop_counter`` next to the analytic FLOPs of ``varbench.flops``,
and fits time ~ n^k over the measured resolutions and analytic FLOPs ~ n^k over a wide sweep of grid sides n.
The modes of one resolution are built together and timed round-robin (``timing.measure_interleaved``), so a change
in machine load during the run affects them alike and their order is not an artefact of when each ran.

Decoding modes (``mode`` in every row):

- ``var_kv``, ``var_nokv``: VAR's next-scale loop with its KV cache, or recomputing the whole prefix at every scale.
- ``raster_kv``, ``raster_nokv``: the raster twin of the VAR model (same width, depth, heads and 4096-code vocabulary,
  LlamaGen blocks; ``baselines.raster``) decoding token by token with a growing KV cache or recomputing the prefix.
- ``llamagen_kv``: a LlamaGen GPT (``llamagen_b`` ... ``llamagen_3b``), its released size and 16384 codes.

Guidance: with ``cfg`` every model runs a conditional and an unconditional row per image (VAR's ramp, LlamaGen's
constant scale), and analytic FLOPs and cache sizes count both rows; without it no model runs an unconditional row.
VAR's sampler in ``varbench.models.generate`` always runs both rows, so the study drives VAR through ``var_decode``
below, which gives the sampler's tokens with guidance and skips the unconditional rows without.

Random weights are enough for timing (every decoder runs a fixed number of steps); released checkpoints are used when
they are already in the weights cache and match the resolution (nothing is downloaded).  Every row says which.
The library returns plain dicts and dataclasses and prints nothing; ``progress(done, total, label)`` reports.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from varbench import dist, timing
from varbench import flops as F
from varbench.errors import VarbenchError

log = logging.getLogger(__name__)

VAR_MODES = ("var_kv", "var_nokv")
RASTER_MODES = ("raster_kv", "raster_nokv")
LLAMAGEN_MODE = "llamagen_kv"
TWIN_BASELINES = ("var_nokv",) + RASTER_MODES
LLAMAGEN_NAMES = ("llamagen_b", "llamagen_l", "llamagen_xl", "llamagen_xxl", "llamagen_3b")
EXPECTED_ORDER = ("var_kv", "raster_kv", "raster_nokv")  # the study's claim, checked per resolution and batch
OFFICIAL_SCHEDULES = {16: (1, 2, 3, 4, 5, 6, 8, 10, 13, 16), 32: (1, 2, 3, 4, 6, 9, 13, 18, 24, 32),
                      64: (1, 2, 3, 4, 5, 7, 9, 12, 16, 21, 27, 36, 48, 64)}  # = varbench.zoo.PATCH_NUMS_*
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}


@dataclass(frozen=True)
class SpeedConfig:
    models: tuple[str, ...] = ("var_d16",)  # VAR zoo names; each brings its raster twin
    baselines: tuple[str, ...] = TWIN_BASELINES  # var_nokv, raster_kv, raster_nokv, llamagen_<size>
    resolutions: tuple[int, ...] = (256, 512)  # pixels; token-grid side n = resolution / 16
    batch_sizes: tuple[int, ...] = (1, 64)  # 1 = latency; larger = throughput (halved on CUDA OOM)
    cfg: bool = False  # classifier-free guidance: a second (unconditional) row per image
    dtype: str = "auto"  # fp32 | bf16 | fp16 | auto (bf16 on CUDA, fp32 on CPU)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    warmup: int = 1
    repeats: int = 5
    max_seconds: float | None = 300.0  # per measurement; fewer repeats (noted in the row) when exceeded
    compile: bool = False  # torch.compile the transformer forward (dynamic shapes); the warm-up absorbs compilation
    count_flops: bool = True  # one extra batch-1 decode under torch.utils.flop_counter
    width: int | None = None  # override the VAR model's width (random weights; renames the model)
    depth: int | None = None  # override the VAR model's depth (random weights; renames the model)
    vae_ch: int | None = None  # tokenizer base width (default: the released 160; LlamaGen's VQ-16 keeps 128)
    flop_grid_sides: tuple[int, ...] = (8, 16, 32, 64, 128, 256, 512, 1024)  # analytic sweep of n
    threads: int | None = None  # CPU: torch threads during the run (restored after); None: leave as is
    seed: int = 0
    quick: bool = False  # informational: the config came from quick_preset()

    @classmethod
    def quick_preset(cls, **overrides) -> SpeedConfig:
        """The README's main job: offline, random weights, CPU, small widths and resolutions, about a minute."""
        base = dict(models=("var_d16",), baselines=TWIN_BASELINES, resolutions=(96, 128, 160), batch_sizes=(1, 2),
                    cfg=False, dtype="fp32", device="cpu", warmup=1, repeats=3, max_seconds=30.0,
                    count_flops=True, width=256, depth=4, vae_ch=32, threads=1, quick=True)
        return cls(**{**base, **{k: v for k, v in overrides.items() if v is not None}})

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# ------------------------------------------------------------------------------------------------------- the plan


def var_schedule(grid: int) -> tuple[int, ...]:
    """VAR's scale schedule ending at ``grid``: the released ones for 16/32/64, else a geometric one.

    The geometric schedule has K = round(1 + ln(n) / ln(4/3)) scales (O(log n) steps, as lemma D.2), sides rounded
    from n^(i / (K - 1)) with repeats dropped (n = 8 gives 1, 2, 3, 4, 6, 8).
    """
    if grid < 1:
        raise VarbenchError(f"token grid side must be >= 1, got {grid}")
    if grid in OFFICIAL_SCHEDULES:
        return OFFICIAL_SCHEDULES[grid]
    if grid == 1:
        return (1,)
    k = max(2, round(1 + math.log(grid) / math.log(4 / 3)))
    out: list[int] = []
    for i in range(k):
        p = max(1, round(grid ** (i / (k - 1))))
        if not out or p > out[-1]:
            out.append(p)
    out[-1] = grid
    return tuple(out)


@dataclass(frozen=True)
class Job:
    """One model x resolution x mode of the study (everything known before any model is built)."""

    model: str
    family: str  # "var" | "raster" | "llamagen"
    mode: str
    resolution: int
    grid: int
    arch: F.Arch
    heads: int
    build_key: tuple  # jobs with the same key share one built model
    spec_name: str | None  # zoo entry whose cached weights may be used
    patch_nums: tuple[int, ...] = ()  # VAR only
    shared_adaln: bool = False
    ffn_hidden: int | None = None  # raster/LlamaGen SwiGLU width
    cfg_scale: float = 0.0  # guidance scale used when cfg is on

    @property
    def kv(self) -> bool:
        return not self.mode.endswith("_nokv")

    @property
    def steps(self) -> int:
        return len(self.patch_nums) if self.family == "var" else self.grid**2

    @property
    def tokens(self) -> int:
        return sum(p * p for p in self.patch_nums) if self.family == "var" else self.grid**2

    def flops(self, cfg: bool, attention: str = "useful", grid: int | None = None) -> F.Flops:
        """Analytic FLOPs per image (both rows under cfg); ``grid`` evaluates the same model at another size."""
        rows = 2 if cfg else 1
        if self.family == "var":
            pn = self.patch_nums if grid is None else var_schedule(grid)
            return F.var_flops(self.arch, pn, kv_cache=self.kv, attention=attention, shared_adaln=self.shared_adaln,
                               cfg_rows=rows)
        tokens = (grid or self.grid) ** 2
        return F.raster_flops(self.arch, tokens, cache="ideal" if self.kv else "none", attention=attention,
                              cfg_rows=rows)

    def kv_cache_bytes(self, batch: int, cfg: bool, dtype: str) -> int:
        """Bytes of the KV cache at the end of one decode call (0 without a cache)."""
        if not self.kv:
            return 0
        # VAR caches every token; the raster cache holds the class token and all image tokens (1 + T positions)
        positions = self.tokens if self.family == "var" else 1 + self.tokens
        return F.kv_cache_bytes(self.arch.width, self.arch.depth, positions, rows=batch * (2 if cfg else 1),
                                bytes_per_value=DTYPE_BYTES[dtype])


def _check_config(config: SpeedConfig) -> None:
    if not config.models:
        raise VarbenchError("--models is empty; name at least one VAR model, e.g. var_d16")
    if not config.resolutions:
        raise VarbenchError("--resolutions is empty; e.g. --resolutions 256,512")
    for r in config.resolutions:
        if r < 32 or r % 16:
            raise VarbenchError(f"resolution {r} is not a multiple of 16 of at least 32 (the tokenizers downsample by 16)")
    for flag, values in (("--models", config.models), ("--resolutions", config.resolutions),
                         ("--baselines", config.baselines)):
        if len(set(values)) != len(values):
            raise VarbenchError(f"{flag} has duplicates: {', '.join(map(str, values))}")
    if not config.batch_sizes or any(b < 1 for b in config.batch_sizes):
        raise VarbenchError(f"--batch-sizes must be positive integers, got {list(config.batch_sizes)}")
    for b in config.baselines:
        if b not in TWIN_BASELINES and b not in LLAMAGEN_NAMES:
            from varbench.errors import unknown_name

            raise unknown_name("baseline", b, TWIN_BASELINES + LLAMAGEN_NAMES)
    if config.width is not None and (config.width < 64 or config.width % 64):
        raise VarbenchError(f"--width must be a positive multiple of 64 (head dim 64), got {config.width}")
    if config.depth is not None and config.depth < 1:
        raise VarbenchError(f"--depth must be >= 1, got {config.depth}")
    if config.vae_ch is not None and (config.vae_ch < 32 or config.vae_ch % 32):
        raise VarbenchError(f"--vae-ch must be a multiple of 32 (GroupNorm of 32 groups), got {config.vae_ch}")
    if config.dtype not in ("auto", *DTYPE_BYTES):
        raise VarbenchError(f"unknown dtype {config.dtype!r}; use auto, fp32, bf16 or fp16")
    if len(set(config.flop_grid_sides)) < 2 or any(n < 1 for n in config.flop_grid_sides):
        raise VarbenchError(f"the FLOP sweep needs two or more positive grid sides, got {list(config.flop_grid_sides)}")
    if config.threads is not None and config.threads < 1:
        raise VarbenchError(f"--threads must be >= 1, got {config.threads}")
    timing.TimingConfig(warmup=config.warmup, repeats=config.repeats, max_seconds=config.max_seconds)  # validates


def plan(config: SpeedConfig) -> list[Job]:
    """Every job of the study, in run order; raises ``VarbenchError`` on bad input.  Builds nothing."""
    from varbench import zoo

    _check_config(config)
    jobs: list[Job] = []
    custom = config.width is not None or config.depth is not None
    for name in config.models:
        spec = zoo.get(name)
        if spec.family != "var":
            raise VarbenchError(f"--models takes VAR models (var_d16 ... var_d36); {name} is a {spec.family} model: "
                                "pass raster_kv/raster_nokv or llamagen_<size> in --baselines")
        depth = config.depth or spec.arch["depth"]
        width = config.width or 64 * depth
        heads = width // 64
        shared = bool(spec.arch.get("shared_aln"))
        label = f"var_w{width}d{depth}" if custom else name
        if any(j.model == label for j in jobs):
            raise VarbenchError(f"--models: {name} is a second {label} under --width/--depth; name each size once")
        twin = f"raster_w{width}d{depth}" if custom else f"raster_d{depth}"
        for res in config.resolutions:
            grid = res // 16
            pn = var_schedule(grid)
            var_arch = F.Arch(width, depth, 4096)
            for mode in ("var_kv", *(m for m in VAR_MODES[1:] if m in config.baselines)):
                jobs.append(Job(label, "var", mode, res, grid, var_arch, heads, ("var", label, res),
                                None if custom else name, pn, shared, cfg_scale=1.5))
            hidden = _swiglu_hidden(width)
            for mode in RASTER_MODES:
                if mode in config.baselines:
                    jobs.append(Job(twin, "raster", mode, res, grid, F.Arch.swiglu(width, depth, 4096, hidden),
                                    heads, ("raster", twin, res), None, ffn_hidden=hidden, cfg_scale=1.5))
    for name in config.baselines:
        if name in LLAMAGEN_NAMES:
            spec = zoo.get(name)
            dim, layers, heads = spec.arch["dim"], spec.arch["depth"], spec.arch["heads"]
            hidden = _swiglu_hidden(dim)
            for res in config.resolutions:
                jobs.append(Job(name, "llamagen", LLAMAGEN_MODE, res, res // 16,
                                F.Arch.swiglu(dim, layers, 16384, hidden), heads, ("llamagen", name, res), name,
                                ffn_hidden=hidden, cfg_scale=float(spec.sampling.get("cfg", 2.0))))
    return jobs


def _swiglu_hidden(dim: int, multiple: int = 256) -> int:
    """LlamaGen's SwiGLU width: int(2/3 * 4 * dim) rounded up to a multiple of 256 (as baselines.llamagen)."""
    return multiple * math.ceil(int(2 * 4 * dim / 3) / multiple)


# ---------------------------------------------------------------------------------------------------- decoding


def _autocast(device_type: str, dtype):
    import torch

    return torch.autocast(device_type, dtype=dtype, enabled=dtype is not None)


def var_decode(var, vae, labels, sampling, rng, *, guidance: bool = True, kv_cache: bool = True,
               autocast_dtype=None, step=None, step_no_cache=None, flops=None):
    """VAR's next-scale loop for timing: ``generate.sample``'s tokens, optionally without unconditional rows.

    labels (B,) on the model's device; ``sampling`` a ``SampleConfig`` (``more_smooth`` unsupported); ``rng`` one
    torch.Generator (the official draw order).  ``guidance=True`` runs [cond; uncond] rows with the cfg ramp exactly
    as ``sample`` does; ``False`` runs only the B conditional rows (the unguided logits ``sample`` uses at cfg 0).
    ``step`` / ``step_no_cache`` replace ``var.step`` / ``var.step_no_cache`` (e.g. compiled); ``flops`` (a
    ``timing.FlopCounter``) counts the transformer calls only, not the quantizer's convolutions.
    Returns (per-scale tokens [(B, pn*pn)], f_hat (B, Cvae, n, n)).
    """
    import torch

    from varbench.models.generate import sample_top_k_top_p_

    if sampling.more_smooth:
        raise VarbenchError("the speed study samples with more_smooth off (the FID protocol)")
    step = step or var.step
    step_no_cache = step_no_cache or var.step_no_cache
    region = flops.region if flops is not None else contextlib.nullcontext
    cfg = var.cfg
    B, S = labels.shape[0], len(cfg.patch_nums)
    device = labels.device
    with torch.inference_mode():
        rows = torch.cat((labels, torch.full_like(labels, var.null_class))) if guidance else labels
        cond = var.class_emb(rows)  # (R, C): start token content and AdaLN condition
        level_pos = var.level_pos()
        x = cond.unsqueeze(1) + var.pos_start.expand(rows.shape[0], 1, -1) + level_pos[:, :1]  # (R, 1, C)
        last = cfg.patch_nums[-1]
        f_hat = cond.new_zeros(B, cfg.latent_dim, last, last, dtype=torch.float32)
        codebook = vae.quantize.embedding.weight
        cache = var.new_cache() if kv_cache else None
        prefix = None  # (R, L_k, C) without a cache
        tokens, cur = [], 0
        for si, pn in enumerate(cfg.patch_nums):
            cur += pn * pn
            with _autocast(device.type, autocast_dtype), region():
                if kv_cache:
                    logits = step(x, cond, cache)  # (R, pn*pn, V) float32
                else:
                    prefix = x if prefix is None else torch.cat((prefix, x), dim=1)
                    logits = step_no_cache(prefix, cond, pn * pn)
            if guidance:
                t = sampling.cfg * si / max(S - 1, 1)
                logits = (1 + t) * logits[:B] - t * logits[B:]
            idx = sample_top_k_top_p_(logits, sampling.top_k, sampling.top_p, rng)  # (B, pn*pn)
            tokens.append(idx)
            h = codebook[idx].float().transpose_(1, 2).reshape(B, cfg.latent_dim, pn, pn)
            f_hat, nxt = vae.quantize.next_scale_input(si, f_hat, h)
            if si != S - 1:
                nxt = nxt.view(B, cfg.latent_dim, -1).transpose(1, 2)  # (B, pn'^2, Cvae)
                with _autocast(device.type, autocast_dtype):
                    x = var.word_embed(nxt) + level_pos[:, cur : cur + cfg.patch_nums[si + 1] ** 2]
                if guidance:
                    x = x.repeat(2, 1, 1)
    return tokens, f_hat


class VarDecoder:
    """Times VAR (one built model serves var_kv and var_nokv)."""

    def __init__(self, var, vae, *, random_weights: bool, autocast_dtype, compile: bool):
        import torch

        self.var, self.vae = var.eval(), vae.eval()
        self.random_weights = random_weights
        self.autocast_dtype = autocast_dtype
        self.device = var.class_emb.weight.device
        self.step = torch.compile(var.step, dynamic=True) if compile else var.step
        self.step_no_cache = torch.compile(var.step_no_cache, dynamic=True) if compile else var.step_no_cache

    def run(self, job: Job, batch: int, cfg: bool, seed: int, flops=None):
        import torch

        from varbench.models.generate import SampleConfig

        sampling = SampleConfig(cfg=job.cfg_scale if cfg else 0.0, top_k=900, top_p=0.96)
        labels = _labels(batch, self.device)
        rng = torch.Generator(device=self.device).manual_seed(seed)
        return var_decode(self.var, self.vae, labels, sampling, rng, guidance=cfg, kv_cache=job.kv,
                          autocast_dtype=self.autocast_dtype, step=self.step, step_no_cache=self.step_no_cache,
                          flops=flops)

    def vq_decode(self, job: Job, out):
        from varbench.models.generate import decode_images

        return decode_images(self.vae, out[1])

    def same_tokens(self, a, b) -> bool:
        return all(bool((x == y).all()) for x, y in zip(a[0], b[0]))


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

        from baselines.raster_generate import RasterSampling, raster_generate

        # LlamaGen's FID sampling: constant-scale CFG, no top-k / top-p, temperature 1
        sampling = RasterSampling(cfg_scale=job.cfg_scale if cfg else 1.0)
        labels = _labels(batch, self.device)
        rng = torch.Generator(device=self.device).manual_seed(seed)
        with flops.region() if flops is not None else contextlib.nullcontext():
            return raster_generate(self.gpt, labels, sampling, use_kv_cache=job.kv, rng=rng)

    def vq_decode(self, job: Job, out):
        import torch

        with torch.inference_mode():
            return self.vq.decode_code(out, job.grid)

    def same_tokens(self, a, b) -> bool:
        return bool((a == b).all())


def _labels(batch: int, device):
    import torch

    return (torch.arange(batch, device=device) * 7919 + 207) % 1000


# --------------------------------------------------------------------------------------------------- building


def resolve_dtype(dtype: str, device: str) -> str:
    if dtype == "auto":
        return "bf16" if device.startswith("cuda") else "fp32"
    return dtype


def _weights_cached(spec) -> bool:
    from varbench import weights

    return bool(spec.weights) and all((weights.weights_dir() / w.filename).is_file() for w in spec.weights)


def _released_fits(spec, job: Job, config: SpeedConfig) -> bool:
    """Released VAR weights serve a job when they are cached and trained on its scale schedule."""
    return (tuple(spec.arch.get("patch_nums", ())) == job.patch_nums and config.vae_ch is None
            and _weights_cached(spec))


def _random_module(cls, cfg, seed: int, device: str):
    import torch

    from baselines.recipe import fill_with_recipe

    with torch.device("meta"):
        module = cls(cfg)
    return fill_with_recipe(module, seed, device)


def build_decoder(job: Job, config: SpeedConfig, device: str, dtype: str):
    """The decoder for ``job.build_key``: cached released weights when they fit, else seeded random weights."""
    import torch

    from varbench import zoo
    from varbench.generator import build, random_init_, torch_dtype

    precision = torch_dtype(dtype)
    if job.family == "var":
        from varbench.models.var import VAR, VARConfig
        from varbench.models.vqvae import VQVAE, VQVAEConfig

        autocast = None if dtype == "fp32" else precision
        spec = zoo.get(job.spec_name) if job.spec_name else None
        if spec is not None and _released_fits(spec, job, config):
            gen = build(spec, {}, device=device, dtype=dtype)
            return VarDecoder(gen.var, gen.vae, random_weights=False, autocast_dtype=autocast, compile=config.compile)
        vcfg = VARConfig(depth=job.arch.depth, patch_nums=job.patch_nums, width=job.arch.width, num_heads=job.heads,
                         shared_aln=job.shared_adaln)
        with torch.device(device):
            var = VAR(vcfg)
            vae = VQVAE(VQVAEConfig(patch_nums=job.patch_nums, ch=config.vae_ch or 160))
        random_init_(var, seed=1)
        random_init_(vae, seed=2)
        return VarDecoder(var.requires_grad_(False), vae.requires_grad_(False), random_weights=True,
                          autocast_dtype=autocast, compile=config.compile)
    from baselines.llamagen import GPT, GPTConfig
    from baselines.raster import twin_tokenizer_config
    from baselines.vq16 import VQConfig, VQModel

    if job.family == "llamagen":
        spec = zoo.get(job.spec_name)
        if _weights_cached(spec):
            gen = build(spec, {}, device=device, dtype=dtype, image_size=job.resolution)
            return RasterDecoder(gen.gpt, gen.vq, random_weights=False, compile=config.compile)
        gcfg = GPTConfig(dim=job.arch.width, n_layer=job.arch.depth, n_head=job.heads, grid=job.grid)
        vq_cfg = VQConfig() if config.vae_ch is None else VQConfig(ch=config.vae_ch)
        seed = 0
    else:
        gcfg = GPTConfig(dim=job.arch.width, n_layer=job.arch.depth, n_head=job.heads, vocab_size=4096,
                         grid=job.grid)
        vq_cfg = twin_tokenizer_config(4096, config.vae_ch or 160)
        seed = job.arch.depth
    if gcfg.ffn_hidden != job.ffn_hidden:
        raise AssertionError(f"SwiGLU width {gcfg.ffn_hidden} != planned {job.ffn_hidden}")
    gpt = _random_module(GPT, gcfg, seed, device).to(precision).requires_grad_(False)
    vq = _random_module(VQModel, vq_cfg, 1000 + seed, device).requires_grad_(False)
    return RasterDecoder(gpt, vq, random_weights=True, compile=config.compile)


# ------------------------------------------------------------------------------------------------------ the run


@dataclass
class SpeedResult:
    config: dict  # SpeedConfig.as_dict() with the resolved device and dtype
    rows: list[dict]
    fits: list[dict] = field(default_factory=list)
    flop_sweep: list[dict] = field(default_factory=list)
    crossovers: list[dict] = field(default_factory=list)
    ordering: list[dict] = field(default_factory=list)
    dry_run: bool = False

    @property
    def random_weights(self) -> bool:
        return any(r.get("random_weights") for r in self.rows)

    def results(self) -> dict:
        """The ``results`` object of the shared results JSON."""
        return {"rows": self.rows, "fits": self.fits, "flop_sweep": self.flop_sweep, "crossovers": self.crossovers,
                "ordering": self.ordering, "dry_run": self.dry_run}


def _base_row(job: Job, config: SpeedConfig, batch: int, device: str, dtype: str) -> dict:
    analytic = job.flops(config.cfg)
    return {
        "model": job.model, "family": job.family, "mode": job.mode, "resolution": job.resolution, "grid": job.grid,
        "batch_size": batch, "steps": job.steps, "tokens": job.tokens,
        "latency_s": None, "latency_ci": None, "throughput_img_s": None,
        "flops_analytic": analytic.total, "flops_counted": None, "peak_mem_bytes": None, "vq_decode_s": None,
        "kv_cache_bytes": job.kv_cache_bytes(batch, config.cfg, dtype), "random_weights": None,
        # extras
        "cfg": config.cfg, "rows_per_image": 2 if config.cfg else 1, "device": device, "dtype": dtype,
        "precision": _precision(job.family, dtype),
        "width": job.arch.width, "depth": job.arch.depth, "vocab": job.arch.vocab,
        "patch_nums": list(job.patch_nums) or None,
        "flops_breakdown": analytic.as_dict(),
        "flops_analytic_executed": job.flops(config.cfg, "executed").total,
    }


def _precision(family: str, dtype: str) -> str:
    if dtype == "fp32":
        return "fp32"
    if family == "var":  # as the official VAR demo: fp32 weights under autocast
        return f"fp32 weights, {dtype} autocast"
    return f"{dtype} weights"  # as LlamaGen's sampler: the GPT cast to the dtype


def dry_run(config: SpeedConfig) -> SpeedResult:
    """Steps, tokens, analytic FLOPs and KV-cache bytes of every job without building or running anything."""
    jobs = plan(config)
    device = dist.check_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    rows = [_base_row(j, config, b, device, dtype) for j in jobs for b in config.batch_sizes]
    res = SpeedResult({**config.as_dict(), "device": device, "dtype": dtype}, rows, dry_run=True)
    _analytic_summaries(res, jobs, config)
    return res


def _is_oom(e: BaseException) -> bool:
    import torch

    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()


def run(config: SpeedConfig, progress: Callable[[int, int, str], None] | None = None) -> SpeedResult:
    """Run the study: every job at every batch size; returns rows, fits, the FLOP sweep and the ordering check."""
    import torch

    jobs = plan(config)
    device = dist.check_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        return _run(jobs, config, device, dtype, progress)
    finally:
        torch.set_num_threads(threads)


def _run(jobs: list[Job], config: SpeedConfig, device: str, dtype: str, progress) -> SpeedResult:
    import torch

    from varbench import timing

    if dtype != "fp32" and device == "cpu":
        log.warning("%s on CPU is emulated and slow; timings are not representative of GPUs", dtype)
    tcfg = timing.TimingConfig(warmup=config.warmup, repeats=config.repeats, max_seconds=config.max_seconds,
                               seed=config.seed)
    total = len(jobs) * len(config.batch_sizes)
    done = 0
    rows: list[dict] = []
    for res in config.resolutions:
        group = [j for j in jobs if j.resolution == res]
        # every model of this resolution stays in memory so that the modes can be timed round-robin
        decoders: dict[tuple, object] = {}
        for job in group:
            if job.build_key not in decoders:
                decoders[job.build_key] = build_decoder(job, config, device, dtype)
        counted: dict[Job, int | None] = {}
        for job in group:
            counted[job] = None
            if config.count_flops:
                counter = timing.FlopCounter()
                decoders[job.build_key].run(job, 1, config.cfg, config.seed, flops=counter)
                counted[job] = counter.total
        for batch in config.batch_sizes:
            for job, measured in zip(group, _measure_group(group, decoders, config, batch, device, tcfg)):
                row = _base_row(job, config, batch, device, dtype)
                row.update(random_weights=decoders[job.build_key].random_weights, flops_counted=counted[job])
                row.update(measured)
                row["kv_cache_bytes"] = job.kv_cache_bytes(row["batch_size"], config.cfg, dtype)
                rows.append(row)
            done += len(group)
            if progress is not None:
                progress(done, total, f"{res}px batch {batch}")
        decoders.clear()
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    res = SpeedResult({**config.as_dict(), "device": device, "dtype": dtype,
                       "torch_threads": torch.get_num_threads()}, rows)
    _analytic_summaries(res, jobs, config)
    res.fits = _time_fits(rows, config) + res.fits
    res.ordering = ordering(rows)
    return res


def _measure_group(group: Sequence[Job], decoders: dict, config: SpeedConfig, batch: int, device: str,
                   tcfg) -> list[dict]:
    """Time every job of one resolution at ``batch``, interleaved; VQ decoding and peak memory per job.

    The first warm-up call of each job also finds the batch that fits: on CUDA out-of-memory it is halved.
    """
    import torch

    from varbench import timing

    outputs: list[dict] = [{} for _ in group]
    fns, warm, batches, notes = [], [], [], []
    for job, box in zip(group, outputs):
        dec, b, note = decoders[job.build_key], batch, []
        while True:
            fn = functools.partial(_decode_into, box, dec, job, b, config.cfg, config.seed)
            try:
                times = [timing.time_call(fn, device) for _ in range(max(1, config.warmup))]
                break
            except RuntimeError as e:
                if not (device.startswith("cuda") and _is_oom(e)) or b == 1:
                    raise
                box.clear()
                torch.cuda.empty_cache()
                note.append(f"{job.mode}: out of memory at batch {b}; halved")
                b //= 2
        fns.append(fn)
        warm.append(times[-1])
        batches.append(b)
        notes.append(note)
    measured = timing.measure_interleaved(fns, device, tcfg, warm_seconds=warm)
    out = []
    for job, box, (t, mem), b, note in zip(group, outputs, measured, batches, notes):
        dec = decoders[job.build_key]
        vq = timing.measure(functools.partial(dec.vq_decode, job, box["out"]), device, tcfg)
        box.clear()
        out.append({
            "batch_size": b, "requested_batch_size": batch,
            "latency_s": t.median, "latency_ci": [t.ci_low, t.ci_high], "latency_samples": t.samples,
            "repeats": len(t.samples), "warmup": t.warmup, "clock": t.clock, "interleaved_with": len(group),
            "throughput_img_s": b / t.median if t.median > 0 else None,
            "peak_mem_bytes": mem.bytes, "peak_mem_kind": mem.kind,
            "vq_decode_s": vq.median, "vq_decode_ci": [vq.ci_low, vq.ci_high],
            "notes": note + t.notes,
        })
    return out


def _decode_into(box: dict, dec, job: Job, batch: int, cfg: bool, seed: int) -> None:
    box["out"] = dec.run(job, batch, cfg, seed)


# ------------------------------------------------------------------------------------------------------- summaries


def _analytic_summaries(res: SpeedResult, jobs: Sequence[Job], config: SpeedConfig) -> None:
    """FLOP sweep over ``flop_grid_sides``, its power-law fits and the n^6 crossover of each raster model."""
    from varbench import timing

    sides = sorted(set(config.flop_grid_sides))
    seen: set[tuple[str, str]] = set()
    for job in jobs:
        if (job.model, job.mode) in seen:
            continue
        seen.add((job.model, job.mode))
        values = [job.flops(config.cfg, grid=n).total for n in sides]
        local = F.local_exponents(sides, values)
        for n, v, k in zip(sides, values, local):
            res.flop_sweep.append({"model": job.model, "mode": job.mode, "grid": n, "resolution": 16 * n,
                                   "flops_analytic": v, "local_exponent": k})
        fit = timing.fit_power_law(sides, values)
        res.fits.append({"model": job.model, "mode": job.mode, "quantity": "flops", "batch_size": None,
                         **fit.as_dict(), "local_exponent_last": local[-1]})
        if job.family != "var" and not any(c["model"] == job.model for c in res.crossovers):
            t6 = F.no_kv_crossover_tokens(job.arch)
            t4 = F.kv_attention_crossover_tokens(job.arch)
            res.crossovers.append({
                "model": job.model, "width": job.arch.width, "depth": job.arch.depth,
                "nokv_attention_dominates_tokens": t6, "nokv_attention_dominates_grid": math.sqrt(t6),
                "kv_attention_dominates_tokens": t4, "kv_attention_dominates_grid": math.sqrt(t4),
            })


def _time_fits(rows: Sequence[dict], config: SpeedConfig) -> list[dict]:
    """time ~ n^k per model x mode x batch over the measured resolutions (bootstrap over the repeats)."""
    from varbench import timing

    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r.get("latency_samples"):
            groups.setdefault((r["model"], r["mode"], r["requested_batch_size"]), []).append(r)
    fits = []
    for (model, mode, batch), rs in groups.items():
        if len({r["grid"] for r in rs}) < 2 or len({r["batch_size"] for r in rs}) > 1:
            continue  # one resolution, or the batch was cut differently at different sizes
        rs = sorted(rs, key=lambda r: r["grid"])
        fit = timing.fit_power_law_bootstrap([r["grid"] for r in rs], [r["latency_samples"] for r in rs],
                                             seed=config.seed)
        fits.append({"model": model, "mode": mode, "quantity": "time", "batch_size": rs[0]["batch_size"],
                     **fit.as_dict()})
    return fits


def ordering(rows: Sequence[dict]) -> list[dict]:
    """Per resolution and batch: the modes of EXPECTED_ORDER sorted by latency, and whether that order holds."""
    groups: dict[tuple, dict[str, float]] = {}
    for r in rows:
        if r.get("latency_s") is not None and r["mode"] in EXPECTED_ORDER:
            groups.setdefault((r["resolution"], r["batch_size"]), {})[r["mode"]] = r["latency_s"]
    out = []
    for (res, batch), lat in sorted(groups.items()):
        if len(lat) < 2:
            continue
        order = sorted(lat, key=lat.get)
        expected = [m for m in EXPECTED_ORDER if m in lat]
        out.append({"resolution": res, "batch_size": batch, "order": order, "latency_s": [lat[m] for m in order],
                    "expected": expected, "holds": order == expected})
    return out
