"""One prepared GPU acceptance run: run it once on one NVIDIA GPU; it writes one JSON and prints one table (issue 16).

    python benchmarks/gpu_acceptance.py [--json reports/gpu_acceptance_<gpu>.json] [--budget-s 450]
    python benchmarks/gpu_acceptance.py --tiny --device cpu --json /tmp/gpu_acceptance_tiny.json   # the test's run

Planned for under 8 minutes on an H100/H200-class card (nothing is downloaded; every model has seeded random
weights; the timings are valid, the images are noise).  Steps, in order:

1. environment: GPU, versions, SDPA kernels, and plain-matmul peaks in fp32 (TF32 off) and bf16;
2. var_sampling: VAR-d16 and VAR-d30 shapes, FID sampling (cfg 1.5, top-k 900, top-p 0.96, KV cache), fp32 and bf16
   (autocast, as ``varbench generate --dtype bf16``), batch 1, 64 and the largest that fits (estimated from the
   memory per image at 64, capped by the time of one call), the transformer and the VQ decode timed separately and
   added ("with decode"), efficiency against the matmul peaks;
3. raster_llamagen: the same-size raster twin of VAR-d16 and the LlamaGen-L shape, KV cache, batch 1 and 64, fp32 and
   bf16; plus LlamaGen-L in the setting of LlamaGen's published A100 timings (8 images at 384 px, cfg 4.0, top-k
   2000, bf16), quoted beside;
4. speed_study: ``varbench speed`` at 256 and 512 px, batch 1 and 64 (bf16; latency, throughput, fitted exponents);
   cache-free raster decoding at batch 64 and 512 px is dropped when its predicted time exceeds the step budget;
5. inception: the Inception feature pipeline on 10k synthetic images against torch-fidelity's on the same images
   (time ratio, max feature difference);
6. prec_recall: precision/recall with 50k x 10k features: time, peak RSS and GPU memory (varbench computes it on
   the CPU in numpy, by design);
7. cpu_vs_gpu: greedy fp32 decoding of a few samples on the CPU and the GPU (tokens equal?; sampled tokens cannot be
   compared across devices, since CPU and CUDA generators draw different random streams).

Before each step the free memory is checked against the step's estimate and what cannot fit is skipped with a line;
an out-of-memory error also skips (with its line), and steps left when ``--budget-s`` is spent are skipped.  Every
figure that has a reference (torch-fidelity, CPU) is a ratio measured in this run; published figures (VAR README
relative costs, LlamaGen's A100 timings) are quoted beside ours with batch, precision and attention kernel.
``--tiny`` swaps in tiny shapes, few samples and one repeat so the whole script runs on a CPU in well under a
minute: the test suite runs it that way so that it never rots.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # inception_random: seeded synthetic images

GiB = 2**30
# published figures quoted beside ours (shared/facts/baselines.md sections 1.2, 1.4, 2)
PUBLISHED = {
    "var_readme_relative_cost": {"var_d16": 0.4, "var_d20": 0.5, "var_d24": 0.6, "var_d30": 1.0,
                                 "protocol": "VAR README 'rel. cost' (= paper Table 1 time); no GPU, batch, "
                                             "precision or kernel stated"},
    "llamagen_a100_sample_c2i": {"model": "GPT-L", "seconds": 13.72, "seconds_vllm": 3.48, "images": 8,
                                 "resolution": 384, "cfg": 4.0, "top_k": 2000, "sequences": 16,
                                 "protocol": "LlamaGen autoregressive/serve/README, A100, one sample_c2i.py call, no "
                                             "compile, time.time() around generate without CUDA sync"},
}


@dataclass
class Ctx:
    """What every step shares: the options, the clock, the peaks and the outputs."""

    args: argparse.Namespace
    device: str
    start: float = field(default_factory=time.monotonic)
    peaks: dict = field(default_factory=dict)
    steps: dict = field(default_factory=dict)
    table: list = field(default_factory=list)

    @property
    def tiny(self) -> bool:
        return self.args.tiny

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def left(self) -> float:
        return self.args.budget_s - (time.monotonic() - self.start)

    def timing(self):
        from varbench.speed.timing import TimingConfig

        if self.tiny:
            return TimingConfig(warmup=0, repeats=1)
        return TimingConfig(warmup=1, repeats=3, max_seconds=self.args.max_call_s)

    def row(self, step: str, what: str, value: str, reference: str = "", note: str = "") -> None:
        self.table.append((step, what, value, reference, note))


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="tiny shapes, few samples, one repeat (CPU; the test)")
    ap.add_argument("--budget-s", type=float, default=450.0, help="steps left when this is spent are skipped")
    ap.add_argument("--max-call-s", type=float, default=15.0, help="time cap of one measurement (fewer repeats)")
    ap.add_argument("--max-batch", type=int, default=1024, help="cap of the largest-batch search")
    ap.add_argument("--steps", default=None, help="comma-separated subset of the steps (default: all)")
    ap.add_argument("--inception-weights", default=None, help="official Inception weights (default: random, seed 0)")
    ap.add_argument("--json", type=Path, default=None, help="default: reports/gpu_acceptance_<device>.json")
    ap.add_argument("--overwrite", action="store_true")
    return ap.parse_args(argv)


# ------------------------------------------------------------------------------------------------------ machinery


def free_bytes(device: str) -> int:
    """Free memory on ``device``: CUDA's free bytes (after releasing the allocator's cache) or MemAvailable."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()
        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def is_oom(e: BaseException) -> bool:
    import torch

    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()


def run_step(ctx: Ctx, name: str, need_bytes: int, fn) -> None:
    """Run one step unless the budget is spent or its estimate does not fit; record status, time and its result."""
    chosen = ctx.args.steps.split(",") if ctx.args.steps else None
    if chosen is not None and name not in chosen:
        return
    entry = {"status": "skipped", "reason": None, "need_bytes": need_bytes}
    free = free_bytes(ctx.device)
    if ctx.left() <= 0:
        entry["reason"] = f"time budget of {ctx.args.budget_s:.0f} s spent"
    elif need_bytes > free:
        entry["reason"] = f"needs ~{need_bytes / GiB:.1f} GiB, {free / GiB:.1f} GiB free"
    else:
        t0 = time.monotonic()
        try:
            entry.update(status="ok", result=fn(ctx))
        except RuntimeError as e:
            if not is_oom(e):
                raise
            entry.update(status="skipped", reason=f"out of memory: {str(e).splitlines()[0][:160]}")
        entry["seconds"] = time.monotonic() - t0
    if entry["status"] == "skipped":
        print(f"[{name}] skipped: {entry['reason']}", flush=True)
        ctx.row(name, "skipped", "–", "", entry["reason"])
    else:
        print(f"[{name}] done in {entry['seconds']:.1f} s", flush=True)
    ctx.steps[name] = entry


def attention_kernels(fn) -> list[str]:
    """The scaled-dot-product-attention ops that one call of ``fn`` dispatched to (from the profiler's op names)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return sorted({e.key.replace("aten::", "") for e in prof.key_averages()
                   if "scaled_dot_product" in e.key and e.key != "aten::scaled_dot_product_attention"})


def sampling_row(ctx: Ctx, job, dec, batch: int, dtype: str, cfg: bool = True) -> dict:
    """Transformer and VQ decode of one batch, timed separately; memory per image; efficiency."""
    import torch

    from varbench.speed import timing
    from varbench.speed.efficiency import row_efficiency

    box = {}
    seed = 0

    def transformer():
        box["out"] = dec.run(job, batch, cfg, seed)

    base = torch.cuda.memory_allocated(ctx.device) if ctx.cuda else 0
    with timing.peak_memory(ctx.device) as mem:
        t = timing.measure(transformer, ctx.device, ctx.timing())
    with timing.peak_memory(ctx.device) as dmem:
        d = timing.measure(lambda: dec.vq_decode(job, box["out"]), ctx.device, ctx.timing())
    box.clear()
    flops = job.flops(cfg, "executed").total * batch
    dflops = dec.decode_flops(job, batch)
    peak = max(mem.bytes or 0, dmem.bytes or 0)
    return {"model": job.model, "mode": job.mode, "resolution": job.resolution, "batch": batch, "dtype": dtype,
            "cfg": cfg, "transformer_s": t.median, "transformer_ci": [t.ci_low, t.ci_high], "decode_s": d.median,
            "with_decode_s": t.median + d.median, "img_s": batch / t.median,
            "img_s_with_decode": batch / (t.median + d.median), "repeats": len(t.samples), "notes": t.notes,
            "peak_mem_bytes": peak, "peak_mem_kind": mem.kind,
            "bytes_per_image": (peak - base) / batch if ctx.cuda else None,
            "transformer": row_efficiency(flops, t.median, ctx.peaks.get(dtype)),
            "decode": row_efficiency(dflops, d.median, ctx.peaks.get(dec.decode_dtype)),
            "flops_per_call": flops, "decode_flops_per_call": dflops, "decode_dtype": dec.decode_dtype}


def describe_row(r: dict) -> str:
    eff = r["transformer"]["efficiency"]
    return (f"{r['img_s']:.3g} img/s ({r['transformer_s'] * 1e3:.4g} ms/call), with decode "
            f"{r['img_s_with_decode']:.3g} img/s" + ("" if eff is None else f"; {100 * eff:.0f}% of matmul peak"))


# ---------------------------------------------------------------------------------------------------------- steps


def step_environment(ctx: Ctx) -> dict:
    import torch

    from varbench import env
    from varbench.speed import efficiency

    ctx.peaks = efficiency.peaks(ctx.device, ("bf16",))
    info = env.collect(ctx.device)
    out = {"env": info, "matmul_peaks_flops_s": ctx.peaks,
           "tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32}}
    if ctx.cuda:
        out["sdpa_enabled"] = {"flash": torch.backends.cuda.flash_sdp_enabled(),
                               "mem_efficient": torch.backends.cuda.mem_efficient_sdp_enabled(),
                               "cudnn": torch.backends.cuda.cudnn_sdp_enabled(),
                               "math": torch.backends.cuda.math_sdp_enabled()}
    ctx.row("environment", "device", f"{info.get('device_name')} ({info['device']})", "",
            f"torch {info['torch']}, CUDA {info['cuda']}, native bf16 {info['native_bf16']}")
    ctx.row("environment", "matmul peak", ", ".join(f"{k} {v / 1e12:.3g} TFLOP/s" for k, v in ctx.peaks.items()),
            "", "plain n x n matmul, TF32 off; the 100% of every efficiency below")
    return out


def _speed_config(ctx: Ctx, **kw):
    from varbench.speed.plan import SpeedConfig

    tiny = dict(width=64, depth=2, vae_ch=32) if ctx.tiny else {}
    return SpeedConfig(**{"device": ctx.device, "count_flops": False, "cfg": True, **tiny, **kw})


def _tiny_llamagen(config):
    """A LlamaGen-shaped job for --tiny (width 64, 2 layers, LlamaGen's 16384 codes)."""
    from varbench.baselines.llamagen import GPTConfig
    from varbench.generators import zoo
    from varbench.speed import flops as F
    from varbench.speed.plan import LLAMAGEN_MODE, Job

    res = config.resolutions[0]
    hidden = GPTConfig(dim=64, n_layer=2, n_head=1).ffn_hidden
    return Job("llamagen_tiny", "llamagen", LLAMAGEN_MODE, res, res // 16, F.Arch.swiglu(64, 2, 16384, hidden), 1,
               ("llamagen", "tiny", res), None, ffn_hidden=hidden, sampling=zoo.get("llamagen_l").sampling)


def sampling_jobs(ctx: Ctx, resolution: int | None = None):
    """(config, jobs): VAR-d16/d30 with their raster twins and LlamaGen-L at 256 px (tiny shapes with --tiny)."""
    from varbench.speed.plan import plan

    if ctx.tiny:
        config = _speed_config(ctx, models=("var_d16",), baselines=("raster_kv",), resolutions=(resolution or 32,))
        return config, plan(config) + [_tiny_llamagen(config)]
    config = _speed_config(ctx, models=("var_d16", "var_d30"), baselines=("raster_kv", "llamagen_l"),
                           resolutions=(resolution or 256,))
    return config, plan(config)


def _build(ctx: Ctx, job, config, dtype: str):
    from varbench.speed.decoders import build_decoder

    return build_decoder(job, dataclasses.replace(config, dtype=dtype), ctx.device, dtype)


def _largest(ctx: Ctx, job, dec, dtype: str, at64: dict) -> dict:
    """The largest batch that fits, from the memory per image at 64 and capped by the time of one call."""
    if not ctx.cuda:
        return {"skipped": "CPU run: the largest batch is a GPU measurement"}
    per_image = max(at64["bytes_per_image"] or 1, 1)
    by_memory = int(0.85 * free_bytes(ctx.device) / per_image)
    by_time = int(ctx.args.max_call_s / 3 / (at64["with_decode_s"] / at64["batch"]))
    batch = min(by_memory, by_time, ctx.args.max_batch) // 32 * 32
    why = f"memory allows {by_memory}, a {ctx.args.max_call_s / 3:.0f} s call {by_time}, cap {ctx.args.max_batch}"
    while batch > at64["batch"]:
        try:
            return {**sampling_row(ctx, job, dec, batch, dtype), "chosen_by": why}
        except RuntimeError as e:
            if not is_oom(e):
                raise
            why += f"; out of memory at {batch}"
            batch //= 2
    return {"skipped": f"no batch above {at64['batch']} ({why})"}


def step_var_sampling(ctx: Ctx) -> dict:
    """VAR shapes: batch 1, 64 (2 with --tiny) and the largest, fp32 and bf16, transformer and decode."""
    config, jobs = sampling_jobs(ctx)
    rows, kernels = [], {}
    batches = (1, 2) if ctx.tiny else (1, 64)
    for job in (j for j in jobs if j.family == "var"):
        for dtype in ("fp32", "bf16"):
            if ctx.left() <= 0:
                ctx.row("var_sampling", f"{job.model} {dtype}", "skipped", "", "time budget spent")
                continue
            dec = _build(ctx, job, config, dtype)
            kernels[f"{job.model} {dtype}"] = attention_kernels(lambda: dec.run(job, 1, True, 0))
            got = [sampling_row(ctx, job, dec, b, dtype) for b in batches]
            got.append(_largest(ctx, job, dec, dtype, got[-1]) if not ctx.tiny else
                       {"skipped": "--tiny: no largest-batch search"})
            for r in got:
                if "skipped" in r:
                    ctx.row("var_sampling", f"{job.model} {dtype} largest batch", "skipped", "", r["skipped"])
                    continue
                r["attention_kernels"] = kernels[f"{job.model} {dtype}"]
                ctx.row("var_sampling", f"{job.model} {dtype} batch {r['batch']}", describe_row(r), "",
                        f"cfg 1.5, KV cache, {'/'.join(r['attention_kernels']) or 'no SDPA op'}")
                rows.append(r)
            dec = None  # freed before the next build
    return {"rows": rows, "relative_cost": _relative_cost(ctx, rows)}


def _relative_cost(ctx: Ctx, rows: list[dict]) -> dict | None:
    """VAR-d16 / VAR-d30 time per image at batch 64 (with decode), beside the README's 0.4."""
    got = {}
    for dtype in ("fp32", "bf16"):
        at = {r["model"]: r for r in rows if r["batch"] == 64 and r["dtype"] == dtype}
        if {"var_d16", "var_d30"} <= set(at):
            ratio = at["var_d30"]["img_s_with_decode"] / at["var_d16"]["img_s_with_decode"]
            got[dtype] = ratio
            ctx.row("var_sampling", f"d16 / d30 time per image, batch 64, {dtype}", f"{ratio:.2f}",
                    f"README rel. cost {PUBLISHED['var_readme_relative_cost']['var_d16']}", "with decode, cfg 1.5")
    return got or None


def step_raster_llamagen(ctx: Ctx) -> dict:
    """The raster twins and LlamaGen-L with a KV cache: batch 1 and 64, fp32 and bf16; the published setting."""
    config, jobs = sampling_jobs(ctx)
    rows = []
    batches = (1, 2) if ctx.tiny else (1, 64)
    for job in (j for j in jobs if j.family != "var"):
        for dtype in ("fp32", "bf16"):
            if ctx.left() <= 0:
                ctx.row("raster_llamagen", f"{job.model} {dtype}", "skipped", "", "time budget spent")
                continue
            dec = _build(ctx, job, config, dtype)
            kernels = attention_kernels(lambda: dec.run(job, 1, True, 0))
            for b in batches:
                r = {**sampling_row(ctx, job, dec, b, dtype), "attention_kernels": kernels}
                ctx.row("raster_llamagen", f"{job.model} {dtype} batch {b}", describe_row(r), "",
                        f"cfg {job.sampling.cfg}, KV cache, {'/'.join(kernels) or 'no SDPA op'}")
                rows.append(r)
            dec = None  # freed before the next build
    return {"rows": rows, "published_setting": _llamagen_published(ctx)}


def _llamagen_published(ctx: Ctx) -> dict:
    """LlamaGen-L as LlamaGen's A100 table: 8 images at 384 px, cfg 4.0 (16 sequences), top-k 2000, bf16."""
    pub = PUBLISHED["llamagen_a100_sample_c2i"]
    config, jobs = sampling_jobs(ctx, resolution=48 if ctx.tiny else pub["resolution"])
    job = next(j for j in jobs if j.family == "llamagen")
    job = dataclasses.replace(job, sampling=dataclasses.replace(job.sampling, cfg=pub["cfg"], top_k=pub["top_k"]))
    dec = _build(ctx, job, config, "bf16")
    r = sampling_row(ctx, job, dec, 2 if ctx.tiny else pub["images"], "bf16")
    r["attention_kernels"] = attention_kernels(lambda: dec.run(job, 1, True, 0))
    ctx.row("raster_llamagen", f"{job.model} {r['batch']} images at {job.resolution} px, cfg 4, top-k 2000, bf16",
            f"{r['transformer_s']:.3g} s (with decode {r['with_decode_s']:.3g} s)",
            f"A100: {pub['seconds']} s ({pub['seconds_vllm']} s vLLM)",
            f"KV cache, {'/'.join(r['attention_kernels'])}; random weights")
    return r


def _study_configs(ctx: Ctx) -> list:
    """The speed study's configs: all modes at batch 1 and 64 when the predicted time fits a third of what is left,
    else cache-free raster decoding at batch 1 only (a second study)."""
    from varbench.speed.plan import least_flops, plan

    if ctx.tiny:
        return [_speed_config(ctx, resolutions=(32, 48), batch_sizes=(1, 2), cfg=False, warmup=0, repeats=1)]
    common = dict(resolutions=(256, 512), cfg=False, dtype="bf16", warmup=1, repeats=3,
                  max_seconds=ctx.args.max_call_s)
    full = _speed_config(ctx, batch_sizes=(1, 64), **common)

    def predicted(config) -> float:  # FLOPs at 30% of the bf16 peak + 30 us per layer and sequential step
        jobs = plan(config)
        steps = sum(max(1, config.warmup) + 1 for _ in config.batch_sizes) * sum(j.steps * j.arch.depth for j in jobs)
        return least_flops(jobs, config) / (0.3 * ctx.peaks["bf16"]) + 30e-6 * steps

    if predicted(full) <= ctx.left() / 3:
        return [full]
    return [_speed_config(ctx, batch_sizes=(1, 64), baselines=("var_nokv", "raster_kv"), **common),
            _speed_config(ctx, batch_sizes=(1,), baselines=("raster_nokv",), **common)]


def step_speed_study(ctx: Ctx) -> dict:
    from varbench.speed import run as speed_run

    out = []
    for config in _study_configs(ctx):
        res = speed_run.run(config)
        keep = ("model", "mode", "resolution", "batch_size", "latency_s", "latency_ci", "throughput_img_s",
                "vq_decode_s", "efficiency", "vq_decode_efficiency", "peak_mem_bytes", "dtype", "notes")
        rows = [{k: r.get(k) for k in keep} for r in res.rows]
        fits = [f for f in res.fits if f["quantity"] == "time"]
        for r in rows:
            ctx.row("speed_study", f"{r['mode']} {r['resolution']} px batch {r['batch_size']}",
                    f"{r['latency_s'] * 1e3:.4g} ms, {r['throughput_img_s']:.3g} img/s",
                    "", f"{r['dtype']}, no CFG" + ("" if r["efficiency"] is None else
                                                  f", {100 * r['efficiency']:.0f}% of peak"))
        for f in fits:
            ctx.row("speed_study", f"time ~ n^k: {f['mode']} batch {f['batch_size']}", f"k = {f['exponent']:.2f}",
                    "FLOPs: 4 (KV), 6 (no KV) asymptotically", f"n = {f['n_values']}")
        out.append({"config": res.config, "rows": rows, "time_fits": fits, "ordering": res.ordering})
    return {"studies": out}


def _synthetic(n: int, size: int):
    import numpy as np

    import inception_random

    return np.concatenate([inception_random.images(min(500, n - lo), size, size, seed=lo) for lo in range(0, n, 500)])


def step_inception(ctx: Ctx) -> dict:
    """varbench's Inception pipeline vs torch-fidelity's on the same in-memory images: time ratio, feature diff."""
    import tempfile

    import numpy as np
    import torch
    from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

    from varbench.features.inception import InceptionExtractor, precise_float32, random_state_dict
    from varbench.speed.timing import time_call

    n, size, batch = (16, 64, 8) if ctx.tiny else (10_000, 256, 200)
    images = _synthetic(n, size)

    class Images(torch.utils.data.Dataset):  # torch-fidelity's input: uint8 (3, H, W) tensors
        def __len__(self):
            return n

        def __getitem__(self, i):
            return torch.from_numpy(images[i]).permute(2, 0, 1).contiguous()

    with tempfile.TemporaryDirectory() as tmp:
        weights = ctx.args.inception_weights
        if weights is None:
            weights = Path(tmp) / "random-inception-0.pth"
            torch.save(random_state_dict(0), weights)
        ours = InceptionExtractor.from_file(weights, device=ctx.device)
        theirs = create_feature_extractor("inception-v3-compat", ["2048"], cuda=ctx.cuda,
                                          feature_extractor_weights_path=str(weights))
        got = {}

        def run_ours():
            got["ours"] = np.concatenate([ours.extract(images[lo:lo + batch])["pool3"] for lo in range(0, n, batch)])

        def run_theirs():
            with precise_float32():
                got["theirs"] = get_featuresdict_from_dataset(Images(), theirs, batch, ctx.cuda, ctx.tiny,
                                                              False)["2048"].numpy()

        ours.extract(images[:2])  # warm-up (folding, kernels)
        seconds = {"varbench": [], "torch-fidelity": []}
        for _ in range(1 if ctx.tiny else 2):  # alternate, so both see the same machine
            seconds["varbench"].append(time_call(run_ours, ctx.device))
            seconds["torch-fidelity"].append(time_call(run_theirs, ctx.device))
    med = {k: min(v) for k, v in seconds.items()}
    diff = np.abs(got["ours"].astype(np.float64) - got["theirs"])
    out = {"images": n, "size": size, "batch_size": batch, "seconds": seconds,
           "images_per_s": {k: n / v for k, v in med.items()}, "ratio_torch_fidelity_over_varbench":
           med["torch-fidelity"] / med["varbench"], "pool3_max_abs_diff": float(diff.max()),
           "pool3_max_rel_diff": float(diff.max() / np.abs(got["theirs"]).max()),
           "weights": "official" if ctx.args.inception_weights else "random (seed 0; offline)"}
    ctx.row("inception", f"{n} images {size} px, pool3", f"{out['images_per_s']['varbench']:.4g} img/s",
            f"{out['ratio_torch_fidelity_over_varbench']:.2f}x torch-fidelity",
            f"max |diff| {out['pool3_max_abs_diff']:.2e} (rel {out['pool3_max_rel_diff']:.1e}); {out['weights']}")
    return out


def step_prec_recall(ctx: Ctx) -> dict:
    import numpy as np
    import torch

    from varbench.metrics import prec_recall
    from varbench.speed import timing

    n_fake, n_real = (500, 100) if ctx.tiny else (50_000, 10_000)
    rng = np.random.default_rng(0)
    real = np.abs(rng.standard_normal((n_real, 2048), dtype=np.float32))
    fake = np.abs(rng.standard_normal((n_fake, 2048), dtype=np.float32))
    if ctx.cuda:
        torch.cuda.reset_peak_memory_stats(ctx.device)
        gpu_before = torch.cuda.max_memory_allocated(ctx.device)
    t0 = time.perf_counter()
    with timing.peak_memory("cpu") as rss:
        got = prec_recall.precision_recall(real, fake)
    seconds = time.perf_counter() - t0
    gpu = torch.cuda.max_memory_allocated(ctx.device) - gpu_before if ctx.cuda else None
    out = {"n_fake": n_fake, "n_real": n_real, "seconds": seconds, "precision": got.precision, "recall": got.recall,
           "peak_rss_bytes": rss.bytes, "peak_rss_kind": rss.kind, "gpu_peak_bytes_added": gpu,
           "where": "CPU (numpy; varbench's metrics are pure numpy functions)"}
    ctx.row("prec_recall", f"{n_fake} x {n_real} features", f"{seconds:.3g} s, peak RSS {(rss.bytes or 0) / GiB:.2f} GiB",
            "", f"GPU memory added: {'–' if gpu is None else f'{gpu / GiB:.2f} GiB'} (computed on the CPU)")
    return out


def _on(dec, device: str):
    """A copy of a CPU-built decoder on ``device`` (the same weights)."""
    import copy

    from varbench.speed.decoders import RasterDecoder, VarDecoder

    if isinstance(dec, VarDecoder):
        return VarDecoder(copy.deepcopy(dec.var).to(device), copy.deepcopy(dec.vae).to(device), random_weights=True,
                          autocast_dtype=None, compile=False)
    return RasterDecoder(copy.deepcopy(dec.gpt).to(device), copy.deepcopy(dec.vq).to(device), random_weights=True,
                         compile=False)


def step_cpu_vs_gpu(ctx: Ctx) -> dict:
    """Greedy fp32 decoding on the CPU and on the device, the same weights: which tokens differ."""
    import torch

    from varbench.speed.decoders import build_decoder

    config, jobs = sampling_jobs(ctx)
    config = dataclasses.replace(config, dtype="fp32")
    picked = [j for j in jobs if j.model in ("var_d16", "raster_d16") or (ctx.tiny and j.family != "llamagen")]
    out = []
    for job in picked:
        greedy = (dataclasses.replace(job.sampling, top_k=1) if job.family == "var"
                  else dataclasses.replace(job.sampling, greedy=True))
        job = dataclasses.replace(job, sampling=greedy)
        cpu = build_decoder(job, config, "cpu", "fp32")
        other = _on(cpu, ctx.device)
        a, b = cpu.run(job, 2, True, 0), other.run(job, 2, True, 0)
        ta = torch.cat(a.tokens, 1) if job.family == "var" else a
        tb = (torch.cat(b.tokens, 1) if job.family == "var" else b).cpu()
        differs = (ta != tb)
        first = [int(r.nonzero()[0, 0]) if r.any() else None for r in differs]
        r = {"model": job.model, "mode": job.mode, "samples": 2, "tokens": int(ta.numel()),
             "tokens_equal": int((~differs).sum()), "all_equal": not bool(differs.any()),
             "first_differing_position": first, "sampling": "greedy (VAR: top-k 1; raster: argmax), cfg on",
             "devices": ["cpu", ctx.device]}
        note = ("equal" if r["all_equal"] else f"{r['tokens'] - r['tokens_equal']} differ, first at {first}")
        if not ctx.cuda:
            note += " (no GPU: the CPU against itself, a code-path check)"
        ctx.row("cpu_vs_gpu", f"{job.model} greedy fp32, 2 samples", f"{r['tokens_equal']}/{r['tokens']} tokens equal",
                "", note)
        out.append(r)
        cpu = other = None
    return {"rows": out, "note": "sampled (non-greedy) tokens cannot match across devices: CPU and CUDA generators "
                                 "draw different random streams; greedy decoding compares the arithmetic alone"}


STEPS = (("environment", step_environment, lambda ctx: 0),
         ("var_sampling", step_var_sampling, lambda ctx: (1 if ctx.tiny else 24) * GiB),
         ("raster_llamagen", step_raster_llamagen, lambda ctx: (1 if ctx.tiny else 8) * GiB),
         ("speed_study", step_speed_study, lambda ctx: (1 if ctx.tiny else 16) * GiB),
         ("inception", step_inception, lambda ctx: (1 if ctx.tiny else 4) * GiB),
         ("prec_recall", step_prec_recall, lambda ctx: 0),
         ("cpu_vs_gpu", step_cpu_vs_gpu, lambda ctx: (1 if ctx.tiny else 4) * GiB))


def print_table(ctx: Ctx) -> None:
    widths = [16, 50, 60, 36]
    head = ("step", "measurement", "value", "reference / ratio", "note")
    print("\n" + "".join(h.ljust(w) for h, w in zip(head, widths)) + head[-1])
    for row in ctx.table:
        print("".join(str(c)[: w - 1].ljust(w) for c, w in zip(row, widths)) + str(row[-1]))


def main(argv=None) -> dict:
    args = parse(argv)
    import torch

    from varbench import dist, files

    device = dist.check_device(args.device)
    path = args.json or ROOT / "reports" / f"gpu_acceptance_{device.replace(':', '')}.json"
    files.check_output(path, "--json", args.overwrite)
    if device.startswith("cuda"):  # fp32 means IEEE fp32: no TF32 in matmuls or convolutions
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    ctx = Ctx(args, device)
    if not ctx.cuda:
        ctx.row("environment", "no GPU", device, "", "CPU run: none of these are GPU numbers")
    for name, fn, need in STEPS:
        run_step(ctx, name, need(ctx), fn)
    print_table(ctx)
    result = {"benchmark": "gpu_acceptance", "tiny": args.tiny, "device": device, "budget_s": args.budget_s,
              "elapsed_s": time.monotonic() - ctx.start, "random_weights": True, "published": PUBLISHED,
              "steps": ctx.steps, "table": [list(r) for r in ctx.table]}
    files.write_json(path, result)
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
