"""The results schema (version 2): one JSON object per run, written by ``generate``, ``fid`` and ``speed`` and read by
``report``, ``compare`` and ``varbench.results.load_frame`` at fixed paths.

Every number carries its protocol: ``protocol`` is the same object for every kind, with a fixed key for each fact
that decides whether two numbers may be compared (model and checkpoint, every sampling setting including the
guidance rule by name and the effective weight at the last step, label scheme, seed rule, the scored samples, the
reference and the feature extractor, the arithmetic of each metric).  A fact that does not apply is ``None``.
Writers build these types (``varbench.generate``, ``varbench.evaluate``, ``varbench.speed``); readers never guess keys.

    {
      "schema": "varbench.result", "schema_version": 2,
      "kind": "generate" | "fid" | "speed" | "audit" | "sweep" | "scaling" | "edit",
      "created": "2026-12-01T12:00:00+00:00",      # UTC, ISO 8601
      "env": Env,                                   # versions, git sha, device, threads
      "protocol": Protocol,                         # how the numbers were made (below)
      "config": {...},                              # every setting of the command (kind-specific, complete)
      "results": {...},                             # the numbers: GenerateResults | FidResults | SpeedResults
      "random_weights": false,                      # any model (or the feature extractor) had random weights
      "warnings": ["..."]                           # what the reader of the numbers must know
    }

Readers (``varbench.results.read``) reject unknown schema versions with one line; version 1 files load through
``varbench.results.migrate``.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import TypedDict

from varbench import files

SCHEMA = "varbench.result"
SCHEMA_VERSION = 2
KINDS = ("generate", "fid", "speed", "audit", "sweep", "scaling", "edit")


class Env(TypedDict, total=False):
    varbench_version: str
    git_sha: str | None  # commit of the varbench checkout (None when installed without git)
    python: str
    platform: str
    torch: str
    cuda: str | None
    cudnn: int | None
    numpy: str
    device: str  # "cpu", "cuda:0"
    device_name: str  # GPU or CPU model
    cpu_capability: str  # the SIMD kernels torch uses on this CPU ("AVX2", "AVX512"): float results depend on them
    torch_threads: int  # intra-op threads (CPU numerics can depend on them)
    native_bf16: bool | None  # bf16 in hardware (AVX512-BF16/AMX or a bf16 GPU); None: unknown
    cpu_huge_pages: bool  # torch's CPU allocator asked for transparent huge pages (speed only, not values)
    cpu_heap_kept: bool  # glibc's malloc kept freed memory for reuse (env.tune_cpu_allocator; speed only)


class ModelInfo(TypedDict):
    name: str  # zoo name ("var_d30") or "custom_var" / "custom_llamagen"
    family: str  # "var" | "llamagen" | "raster" | "noise"
    resolution: int  # side of the images the model delivers (after any resize)
    generated_resolution: int  # side it generates at (LlamaGen-XL: 384, resized to 256)
    params: int | None  # transformer parameters (tokenizer excluded)
    checkpoint_sha256: dict  # role ("var", "vae", "gpt", "vq") -> sha256 of the file loaded; {} for random weights
    random_weights: bool
    paper_version: str | None  # the paper version whose numbers these weights match, where known


class SamplingInfo(TypedDict):
    guidance_rule: str  # "var_ramp": (1+t) cond - t uncond, t = cfg * si / (S-1); "constant": uncond + cfg (cond - uncond)
    cfg: float  # the scale as given (VAR: at the last scale; LlamaGen: at every guided token)
    last_step_weight: float  # weight on the conditional logits at the last step (VAR 1 + cfg, LlamaGen cfg; 1 = none)
    top_k: int  # 0 = off
    top_p: float  # 0 = off
    temperature: float | None  # LlamaGen only
    cfg_interval: float | None  # LlamaGen only: guide tokens 0..k+1 (-1 = all)
    more_smooth: bool | None  # VAR only
    dtype: str  # "fp32" | "bf16" | "fp16"
    settings: dict  # the family's full sampling dataclass


class LabelsInfo(TypedDict):
    scheme: str  # "50_per_class" ("{P}_per_class"), "explicit", "uniform_random"
    per_class: int | None
    num_classes: int  # distinct classes planned
    rule: str  # how a sample index maps to its label


class SeedsInfo(TypedDict):
    seed: int
    rng: str  # "per-sample" | "official"
    rule: str  # how a sample (or chunk) gets its seed


class SamplesInfo(TypedDict):
    count: int
    resolution: int  # side in pixels (the larger one if not square)
    height: int
    width: int
    sha256: str  # of the uint8 (N, H, W, 3) array
    path: str
    kind: str  # "npz" | "generate_dir" | "folder"
    order: str | None  # "shuffled" | "label order" | None (unknown)


class ReferenceInfo(TypedDict):
    name: str
    batch: str | None  # the reference batch it was built from ("VIRTUAL_imagenet256_labeled.npz"), by file name
    origin: str  # "adm-stored" (its stored mu/sigma) | "computed"
    source_sha256: str
    stats_sha256: str
    extractor_id: str
    n_stats: int  # images behind mu/sigma (0: not recorded, the ADM batches)
    n_features: int  # images whose features serve precision/recall and KID
    resolution: int


class ExtractorInfo(TypedDict):
    id: str  # "name@version": statistics of other ids are never compared
    official_weights: bool | None  # None: the release publishes no checksum (DINOv2), so it cannot be verified
    weights_sha256: str
    dtype: str
    device: str


class Protocol(TypedDict):
    model: ModelInfo | None
    sampling: SamplingInfo | None
    labels: LabelsInfo | None
    seeds: SeedsInfo | None
    samples: SamplesInfo | None
    reference: ReferenceInfo | None
    extractor: ExtractorInfo | None
    arithmetic: dict  # metric key -> the arithmetic it used ("fp16 distances (ADM)", "float64 statistics, eig trace")


class Result(TypedDict):
    schema: str
    schema_version: int
    kind: str
    created: str
    env: dict
    protocol: Protocol
    config: dict
    results: dict
    random_weights: bool
    warnings: list


class GenerateResults(TypedDict):
    num_samples: int
    resolution: int
    samples_npz: str  # path of the ADM-format npz (arr_0 uint8 (N,H,W,3), labels, indices)
    samples_sha256: str
    png_dir: str | None
    num_chunks: int
    chunks_generated: int  # this session
    chunks_reused: int
    wall_seconds: float  # this session
    images_per_second: float | None  # registry key: generated images / sampling wall time
    images_per_second_per_process: float | None
    uint8_rule: str


class FidResults(TypedDict):
    metrics: dict  # metric key -> value, the primary backend's (ADM protocol unless another backend alone ran)
    backend: str  # "adm" | "torch-fidelity" | "clean-fid"
    backends: dict  # backend -> {metric key -> value}, every backend that ran
    differences: dict  # backend -> {metric key -> value - adm value}
    details: dict  # per-metric extras (IS splits, order-robust IS, seconds)
    features: dict | None  # {cached, cache_path, seconds, images_per_s}
    # --bootstrap N: {replicates, seed, level, metrics: {key: {value, low, high, std, bias, method, replicates,
    # resamples}}}; None without it
    intervals: dict | None
    # fd_dinov2 / dc_dinov2: {reference: ReferenceInfo, extractor: ExtractorInfo, features: {cached, ...}} of the
    # DINOv2 side (the protocol section holds the Inception ones); None when no DINOv2 metric ran
    dinov2: dict | None
    # the sample-set audit run before scoring (varbench.results.audit's results section: verdict, checks, ...);
    # None with --audit off
    audit: dict | None
    seconds: float


class SpeedResults(TypedDict):
    rows: list  # one per model x mode x resolution x batch: see varbench.speed.run (latency_s, throughput_img_s, ...)
    fits: list  # {model, mode, quantity "time" | "flops", batch_size, exponent, ci}
    flop_sweep: list
    crossovers: list
    ordering: list
    dry_run: bool


def empty_protocol() -> Protocol:
    return Protocol(model=None, sampling=None, labels=None, seeds=None, samples=None, reference=None, extractor=None,
                    arithmetic={})


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def make(kind: str, config: dict, results: dict, protocol: Protocol, *, device: str | None = None,
         random_weights: bool = False, warnings: list | None = None) -> Result:
    from varbench import env

    if kind not in KINDS:
        raise ValueError(f"unknown result kind {kind!r}")
    missing = set(Protocol.__annotations__) - set(protocol)
    if missing:
        raise ValueError(f"protocol lacks {sorted(missing)}")
    return Result(schema=SCHEMA, schema_version=SCHEMA_VERSION, kind=kind, created=now_utc(), env=env.collect(device),
                  protocol=protocol, config=config, results=results, random_weights=bool(random_weights),
                  warnings=list(warnings or []))


def save(path: str | Path, result: Result) -> None:
    files.write_json(path, result)


# ---- builders shared by the writers (and the version-1 migration) -------------------------------------------------


def label_scheme(per_class: int | None, explicit: bool) -> str:
    """The label-scheme name of a plan: "explicit" for given labels, "{P}_per_class" for a balanced plan (the ADM
    protocol of VAR: "50_per_class"); published tables use the same names ("uniform_random" for LlamaGen's)."""
    if explicit:
        return "explicit"
    return f"{per_class}_per_class" if per_class else "unknown"


def sampling_info(settings, dtype: str, num_steps: int) -> SamplingInfo:
    """The schema's view of a family's sampling dataclass (``VarSampling`` or ``RasterSampling``)."""
    import dataclasses

    d = dataclasses.asdict(settings)
    return SamplingInfo(
        guidance_rule=settings.guidance_rule,
        cfg=float(settings.cfg),
        last_step_weight=float(settings.last_step_weight(num_steps)),
        top_k=int(settings.top_k),
        top_p=float(settings.top_p),
        temperature=d.get("temperature"),
        cfg_interval=d.get("cfg_interval"),
        more_smooth=d.get("more_smooth"),
        dtype=dtype,
        settings=d,
    )
