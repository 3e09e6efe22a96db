"""The plan of the decoding-speed study: its config, and every model x resolution x decoding mode as a ``Job``.

Decoding modes (``mode`` in every row):

- ``var_kv``, ``var_nokv``: VAR's next-scale loop with its KV cache, or recomputing the whole prefix at every scale.
- ``raster_kv``, ``raster_nokv``: the raster twin of the VAR model (same width, depth, heads and 4096-code vocabulary,
  LlamaGen blocks; ``varbench.baselines.raster``) decoding token by token with a growing KV cache or recomputing the
  prefix.
- ``llamagen_kv``: a LlamaGen GPT (``llamagen_b`` ... ``llamagen_3b``), its released size and 16384 codes.

Guidance: with ``cfg`` every model runs a conditional and an unconditional row per image, with its own FID-protocol
guidance from the zoo (VAR's ramp, LlamaGen's constant scale); without it no model runs an unconditional row.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from varbench.baselines.llamagen import GPTConfig
from varbench.baselines.raster import VAR_VOCAB
from varbench.errors import VarbenchError, unknown_name
from varbench.models.var import patch_schedule
from varbench.speed import flops as F
from varbench.speed import timing

VAR_MODES = ("var_kv", "var_nokv")
RASTER_MODES = ("raster_kv", "raster_nokv")
LLAMAGEN_MODE = "llamagen_kv"
TWIN_BASELINES = ("var_nokv",) + RASTER_MODES
LLAMAGEN_NAMES = ("llamagen_b", "llamagen_l", "llamagen_xl", "llamagen_xxl", "llamagen_3b")
EXPECTED_ORDER = ("var_kv", "raster_kv", "raster_nokv")  # the study's claim, checked per resolution and batch
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
    cpu_budget_minutes: float = 20.0  # on CPU, refuse a study whose FLOPs alone need longer (0: no limit)

    @classmethod
    def quick_preset(cls, **overrides) -> SpeedConfig:
        """The README's main job: offline, random weights, CPU, small widths and resolutions, one thread, about 1.5
        minutes."""
        base = dict(models=("var_d16",), baselines=TWIN_BASELINES, resolutions=(96, 128, 160), batch_sizes=(1, 2),
                    cfg=False, dtype="fp32", device="cpu", warmup=1, repeats=3, max_seconds=30.0,
                    count_flops=True, width=256, depth=4, vae_ch=32, threads=1, quick=True)
        return cls(**{**base, **{k: v for k, v in overrides.items() if v is not None}})

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


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
    sampling: object = None  # the model's FID sampling settings (VarSampling | RasterSampling); guidance when cfg is on

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
            pn = self.patch_nums if grid is None else patch_schedule(grid)
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
    if config.cpu_budget_minutes < 0:
        raise VarbenchError(f"--cpu-budget-minutes must be >= 0, got {config.cpu_budget_minutes}")
    timing.TimingConfig(warmup=config.warmup, repeats=config.repeats, max_seconds=config.max_seconds)  # validates


def plan(config: SpeedConfig) -> list[Job]:
    """Every job of the study, in run order; raises ``VarbenchError`` on bad input.  Builds nothing."""
    from varbench.generators import zoo

    _check_config(config)
    jobs: list[Job] = []
    custom = config.width is not None or config.depth is not None
    for name in config.models:
        spec = zoo.get(name)
        if spec.family != "var":
            raise VarbenchError(f"--models takes VAR models (var_d16 ... var_d36); {name} is a {spec.family} model: "
                                "pass raster_kv/raster_nokv or llamagen_<size> in --baselines")
        depth = config.depth or spec.config.depth
        width = config.width or 64 * depth
        heads = width // 64
        label = f"var_w{width}d{depth}" if custom else name
        if any(j.model == label for j in jobs):
            raise VarbenchError(f"--models: {name} is a second {label} under --width/--depth; name each size once")
        twin = f"raster_w{width}d{depth}" if custom else f"raster_d{depth}"
        hidden = GPTConfig(dim=width, n_layer=depth, n_head=heads).ffn_hidden
        for res in config.resolutions:
            grid = res // 16
            var_arch = F.Arch(width, depth, VAR_VOCAB)
            for mode in ("var_kv", *(m for m in VAR_MODES[1:] if m in config.baselines)):
                jobs.append(Job(label, "var", mode, res, grid, var_arch, heads, ("var", label, res),
                                None if custom else name, patch_schedule(grid), spec.config.shared_aln,
                                sampling=spec.sampling))
            for mode in RASTER_MODES:
                if mode in config.baselines:
                    jobs.append(Job(twin, "raster", mode, res, grid, F.Arch.swiglu(width, depth, VAR_VOCAB, hidden),
                                    heads, ("raster", twin, res), None, ffn_hidden=hidden, sampling=zoo.TWIN_SAMPLING))
    for name in config.baselines:
        if name in LLAMAGEN_NAMES:
            spec = zoo.get(name)
            c = spec.config
            for res in config.resolutions:
                jobs.append(Job(name, "llamagen", LLAMAGEN_MODE, res, res // 16,
                                F.Arch.swiglu(c.dim, c.n_layer, c.vocab_size, c.ffn_hidden), c.n_head,
                                ("llamagen", name, res), name, ffn_hidden=c.ffn_hidden, sampling=spec.sampling))
    return jobs


def least_flops(jobs: list[Job], config: SpeedConfig) -> float:
    """FLOPs the study cannot avoid: one warm-up and one timed call per job and batch (more repeats only add), plus
    the batch-1 decode of the FLOP counter."""
    calls = max(1, config.warmup) + 1
    total = sum(calls * b * j.flops(config.cfg, "executed").total for j in jobs for b in config.batch_sizes)
    return total + (sum(j.flops(config.cfg, "executed").total for j in jobs) if config.count_flops else 0.0)


def resolve_dtype(dtype: str, device: str) -> str:
    return ("bf16" if device.startswith("cuda") else "fp32") if dtype == "auto" else dtype
