"""Run the decoding-speed study: build every model of a resolution, time its modes round-robin, summarise.

For every model x resolution x decoding mode this measures the time of one decode call at each batch size (warm-up,
repeats, median and bootstrap interval; CUDA events with synchronisation on GPU), the VQ-decode time separately, the
peak memory, the FLOPs counted by ``torch.utils.flop_counter`` next to the analytic FLOPs of
``varbench.speed.flops``; ``varbench.speed.analysis`` then fits time ~ n^k over the measured resolutions and
analytic FLOPs ~ n^k over a wide sweep of grid sides n.  The modes of one resolution are built together and timed
round-robin (``timing.measure_interleaved``), so a change in machine load during the run affects them alike.
The library returns dataclasses and prints nothing; progress goes through ``varbench.progress``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from varbench import dist, env
from varbench.errors import VarbenchError
from varbench.progress import Progress, ProgressEvent, no_progress
from varbench.speed import analysis, efficiency, timing
from varbench.speed.decoders import build_decoder
from varbench.speed.plan import Job, SpeedConfig, plan, resolve_dtype

log = logging.getLogger(__name__)
STAGE = "speed"


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

    def results(self):
        """The ``results`` object of the results schema."""
        from varbench.results.schema import SpeedResults

        return SpeedResults(rows=self.rows, fits=self.fits, flop_sweep=self.flop_sweep, crossovers=self.crossovers,
                            ordering=self.ordering, dry_run=self.dry_run)


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
        "guidance_rule": job.sampling.guidance_rule if config.cfg else None,
        "last_step_weight": job.sampling.last_step_weight(job.steps) if config.cfg else 1.0,
        "precision": _precision(job.family, dtype),
        "width": job.arch.width, "depth": job.arch.depth, "vocab": job.arch.vocab,
        "patch_nums": list(job.patch_nums) or None,
        "flops_breakdown": analytic.as_dict(),
        "flops_analytic_executed": job.flops(config.cfg, "executed").total,
        # efficiency: executed FLOPs per call / latency against the same-run matmul peak of the dtype (None in a dry
        # run); the VQ decode's FLOPs are counted by torch on the meta device
        "matmul_peak_flops_s": None, "achieved_flops_s": None, "efficiency": None,
        "vq_decode_dtype": None, "vq_decode_flops": None, "vq_decode_peak_flops_s": None,
        "vq_decode_achieved_flops_s": None, "vq_decode_efficiency": None,
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
    analysis.summarise(res, jobs, config)
    return res


def _is_oom(e: BaseException) -> bool:
    import torch

    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()


def run(config: SpeedConfig, progress: Progress = no_progress) -> SpeedResult:
    """Run the study: every job at every batch size; returns rows, fits, the FLOP sweep and the ordering check."""
    import torch

    jobs = plan(config)
    device = dist.check_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        # the same-run practical peaks that every row's efficiency is measured against (the VQ decoders of the
        # raster models stay float32)
        peaks = efficiency.peaks(device, (dtype,))
        if device == "cpu" and config.cpu_budget_minutes:
            check_cpu_budget(jobs, config, peaks["fp32"])
        return _run(jobs, config, device, dtype, progress, peaks)
    finally:
        torch.set_num_threads(threads)


def check_cpu_budget(jobs: list[Job], config: SpeedConfig, peak: float | None = None) -> None:
    """Refuse, before building anything, a CPU study that cannot finish within ``config.cpu_budget_minutes`` even at
    this machine's measured fp32 matmul peak (``peak``; measured here when not given)."""
    from varbench.speed.plan import least_flops

    flops = least_flops(jobs, config)
    peak = peak or timing.matmul_peak("cpu", "fp32")
    seconds = flops / peak
    if seconds > config.cpu_budget_minutes * 60:
        raise VarbenchError(
            f"this study needs at least {flops / 1e12:,.0f} TFLOP: over {seconds / 3600:.1f} h on this CPU "
            f"({peak / 1e9:.0f} GFLOP/s matmul peak, budget {config.cpu_budget_minutes:g} min); use --quick for a CPU "
            "study, --device cuda, smaller --resolutions/--batch-sizes, or --cpu-budget-minutes 0 to run it anyway"
        )


def _run(jobs: list[Job], config: SpeedConfig, device: str, dtype: str, progress, peaks: dict) -> SpeedResult:
    import torch

    if dtype != "fp32" and device == "cpu" and not env.native_half(device):
        log.warning("%s on this CPU (no AVX512-BF16/AMX) is emulated and far slower than fp32; timings are not "
                    "representative of GPUs", dtype)
    tcfg = timing.TimingConfig(warmup=config.warmup, repeats=config.repeats, max_seconds=config.max_seconds,
                               seed=config.seed)
    total = len(jobs) * len(config.batch_sizes)
    rows: list[dict] = []
    progress(ProgressEvent(STAGE, 0, total, unit="rows"))
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
                row.update(_efficiency(row, decoders[job.build_key], job, peaks))
                rows.append(row)
            progress(ProgressEvent(STAGE, len(rows), total, unit="rows", detail=f"{res}px batch {batch}"))
        decoders.clear()
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    res = SpeedResult({**config.as_dict(), "device": device, "dtype": dtype,
                       "torch_threads": torch.get_num_threads(), "matmul_peaks_flops_s": peaks}, rows)
    analysis.summarise(res, jobs, config)
    res.fits = analysis.time_fits(rows, config) + res.fits
    res.ordering = analysis.ordering(rows)
    return res


def _efficiency(row: dict, dec, job: Job, peaks: dict) -> dict:
    """Achieved FLOP/s and the fraction of the same-run matmul peak, for the decode call and for its VQ decode."""
    batch = row["batch_size"]
    peak = peaks.get(row["dtype"])
    transformer = efficiency.row_efficiency(row["flops_analytic_executed"] * batch, row["latency_s"], peak)
    vq_dtype = dec.decode_dtype
    vq_flops = dec.decode_flops(job, batch)
    vq = efficiency.row_efficiency(vq_flops, row["vq_decode_s"], peaks.get(vq_dtype))
    return {"matmul_peak_flops_s": peak, **transformer, "vq_decode_dtype": vq_dtype, "vq_decode_flops": vq_flops,
            "vq_decode_peak_flops_s": peaks.get(vq_dtype), "vq_decode_achieved_flops_s": vq["achieved_flops_s"],
            "vq_decode_efficiency": vq["efficiency"]}


def _measure_group(group: Sequence[Job], decoders: dict, config: SpeedConfig, batch: int, device: str,
                   tcfg) -> list[dict]:
    """Time every job of one resolution at ``batch``, interleaved; VQ decoding and peak memory per job.

    The first warm-up call of each job also finds the batch that fits: on CUDA out-of-memory it is halved.
    """
    import torch

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
