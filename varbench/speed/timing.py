"""Measurement primitives of the speed study: timers, peak memory, FLOP counting and power-law fits.

- Timing (like spaCy's ``benchmark_speed``: warm-up calls, then repeats; median with a bootstrap 95% interval):
  ``perf_counter`` on CPU; on CUDA a pair of CUDA events with ``torch.cuda.synchronize()`` before the start event and
  a wait on the end event (as nanoGPT's ``bench.py``), so queued kernels are inside the interval.
  ``measure_interleaved`` times several functions round-robin so that drifting load hits all of them alike.
- Peak memory: ``torch.cuda.max_memory_allocated`` after a reset on CUDA; on CPU the process's peak resident set
  (``VmHWM`` of ``/proc/self/status``, reset through ``/proc/self/clear_refs`` where the kernel allows it).
- FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` (matmul-like ops only), plus a formula for the CPU
  flash-attention op that torch's table lacks; like torch's own attention formulas it counts the full
  query x key square even under a causal or block mask.
- Fits: log-log least squares of y = c * n^k, with a t-interval for the slope, or a bootstrap interval that
  resamples the repeats measured at each n.

torch is imported inside functions, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from varbench.errors import VarbenchError


@dataclass(frozen=True)
class TimingConfig:
    warmup: int = 1  # untimed calls before the repeats (allocator, autotuning, torch.compile)
    repeats: int = 5  # timed calls
    confidence: float = 0.95  # bootstrap interval of the median
    n_boot: int = 2000  # bootstrap resamples
    seed: int = 0  # bootstrap RNG
    max_seconds: float | None = None  # per measurement: fewer repeats when warmup says they would take longer

    def __post_init__(self) -> None:
        if self.warmup < 0:
            raise VarbenchError(f"--warmup must be >= 0, got {self.warmup}")
        if self.repeats < 1:
            raise VarbenchError(f"--repeats must be >= 1, got {self.repeats}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise VarbenchError(f"--max-seconds must be > 0, got {self.max_seconds:g}")
        if not 0 < self.confidence < 1:
            raise VarbenchError(f"confidence must be in (0, 1), got {self.confidence}")


@dataclass
class Timing:
    """Seconds per call: every repeat, the median and its bootstrap interval."""

    samples: list[float]
    median: float
    ci_low: float
    ci_high: float
    warmup: int
    clock: str  # "perf_counter" | "cuda_event"
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"samples": self.samples, "median": self.median, "ci": [self.ci_low, self.ci_high],
                "warmup": self.warmup, "repeats": len(self.samples), "clock": self.clock, "notes": self.notes}


def is_cuda(device) -> bool:
    return str(device).startswith("cuda")


def synchronize(device) -> None:
    if is_cuda(device):
        import torch

        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device) -> float:
    """Seconds of one call of ``fn``; on CUDA measured with events between two synchronisations."""
    if is_cuda(device):
        import torch

        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bootstrap_ci(samples: Sequence[float], stat: Callable = np.median, *, confidence: float = 0.95,
                 n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat`` (a numpy reduction taking ``axis``) over ``samples``; a single
    sample gives a zero-width interval."""
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        raise ValueError("no samples")
    if x.size == 1:
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    stats = stat(x[idx], axis=1)
    alpha = (1 - confidence) / 2
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


def measure(fn: Callable[[], object], device, config: TimingConfig = TimingConfig(),
            progress: Callable[[str], None] | None = None) -> Timing:
    """Warm up, then time ``config.repeats`` calls of ``fn`` (fewer when ``max_seconds`` would be exceeded)."""
    notes: list[str] = []
    warm = [time_call(fn, device) for _ in range(config.warmup)]
    repeats = _budgeted_repeats(config, warm[-1] if warm else None, notes)
    samples = []
    for i in range(repeats):
        samples.append(time_call(fn, device))
        if progress is not None:
            progress(f"repeat {i + 1}/{repeats}")
    lo, hi = bootstrap_ci(samples, confidence=config.confidence, n_boot=config.n_boot, seed=config.seed)
    return Timing(samples, float(np.median(samples)), lo, hi, config.warmup,
                  "cuda_event" if is_cuda(device) else "perf_counter", notes)


def _budgeted_repeats(config: TimingConfig, warm_seconds: float | None, notes: list[str]) -> int:
    repeats = config.repeats
    if config.max_seconds is not None and warm_seconds is not None and warm_seconds * repeats > config.max_seconds:
        repeats = max(1, int(config.max_seconds // max(warm_seconds, 1e-9)))
        if repeats < config.repeats:
            notes.append(f"repeats cut from {config.repeats} to {repeats}: one call takes {warm_seconds:.3g} s "
                         f"(budget {config.max_seconds:g} s)")
    return repeats


def measure_interleaved(fns: Sequence[Callable[[], object]], device, config: TimingConfig = TimingConfig(),
                        warm_seconds: Sequence[float] | None = None) -> list[tuple[Timing, PeakMemory]]:
    """Time several functions round-robin: repeat i of every function runs before repeat i + 1 of any.

    A slow drift of the machine (other processes, clocks, thermals) then hits every function alike instead of
    whichever happened to run during it.  Each function warms up first (``config.warmup`` calls; or pass
    ``warm_seconds``, the duration of a warm-up already done by the caller) and gets its own repeat budget.
    Peak memory is taken per timed call (outside the timed interval) and the maximum is kept.
    """
    if warm_seconds is None:
        warm = []
        for fn in fns:
            times = [time_call(fn, device) for _ in range(config.warmup)]
            warm.append(times[-1] if times else None)
        warmups = config.warmup
    else:
        warm, warmups = list(warm_seconds), max(config.warmup, 1)
    notes: list[list[str]] = [[] for _ in fns]
    repeats = [_budgeted_repeats(config, w, n) for w, n in zip(warm, notes)]
    samples: list[list[float]] = [[] for _ in fns]
    peaks = [PeakMemory() for _ in fns]
    for i in range(max(repeats, default=0)):
        for j, fn in enumerate(fns):
            if i >= repeats[j]:
                continue
            with peak_memory(device) as mem:
                samples[j].append(time_call(fn, device))
            if mem.bytes is not None and (peaks[j].bytes is None or mem.bytes > peaks[j].bytes):
                peaks[j] = mem
    out = []
    clock = "cuda_event" if is_cuda(device) else "perf_counter"
    for j, s in enumerate(samples):
        lo, hi = bootstrap_ci(s, confidence=config.confidence, n_boot=config.n_boot, seed=config.seed)
        out.append((Timing(s, float(np.median(s)), lo, hi, warmups, clock, notes[j]), peaks[j]))
    return out


MATMUL_MAX_N = {"cpu": 2048, "cuda": 8192}  # largest side the peak search tries, per device type


def matmul_peak(device, dtype: str = "fp32", n: int | None = None, seconds: float = 0.5) -> float:
    """FLOP/s of a plain n x n matmul on ``device`` in ``dtype`` (the best of repeated calls for about ``seconds``):
    the machine's practical peak that achieved FLOP/s are compared with.

    ``n`` None: start at 256 and double while one call takes under a tenth of ``seconds`` (up to ``MATMUL_MAX_N``),
    so a native dtype is measured at a size where it runs at full speed and an emulated one (bf16 on a CPU without
    AVX512-BF16 or AMX: about a hundred times slower) in about the same time.
    """
    import torch

    table = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if dtype not in table:
        raise VarbenchError(f"unknown dtype {dtype!r} for the matmul peak; use one of {', '.join(table)}")
    max_n = MATMUL_MAX_N["cuda" if is_cuda(device) else "cpu"]
    size = n or 256
    while True:
        a = torch.randn(size, size, device=device, dtype=table[dtype])
        b = torch.randn(size, size, device=device, dtype=table[dtype])
        time_call(lambda: a @ b, device)  # warm-up
        best = time_call(lambda: a @ b, device)
        if n is not None or size >= max_n or best >= seconds / 10:
            break
        size *= 2
    spent = best
    while spent < seconds:
        t = time_call(lambda: a @ b, device)
        best, spent = min(best, t), spent + t
    return 2 * size**3 / best


# ---------------------------------------------------------------------------------------------------------- memory

_STATUS = Path("/proc/self/status")


def _status_kib(key: str) -> int | None:
    try:
        m = re.search(rf"^{key}:\s+(\d+)\s+kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def _reset_rss_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak RSS (VmHWM) to the current RSS
        return True
    except OSError:
        return False


@dataclass
class PeakMemory:
    """Filled when the ``peak_memory`` block exits: bytes and what they mean."""

    bytes: int | None = None
    kind: str = "unavailable"  # "cuda_max_allocated" | "process_rss_peak" | "process_rss_peak_since_start" | ...


@contextlib.contextmanager
def peak_memory(device) -> Iterator[PeakMemory]:
    """Peak memory of the enclosed block: CUDA max allocated bytes, or the process's peak RSS on CPU."""
    out = PeakMemory()
    if is_cuda(device):
        import torch

        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        yield out
        torch.cuda.synchronize(device)
        out.bytes, out.kind = int(torch.cuda.max_memory_allocated(device)), "cuda_max_allocated"
        return
    reset = _reset_rss_peak()
    yield out
    kib = _status_kib("VmHWM")
    if kib is not None:
        # the whole process (every built model): not a per-mode figure; the CLI and the report say so
        out.bytes, out.kind = kib * 1024, "process_rss_peak" if reset else "process_rss_peak_since_start"


# ----------------------------------------------------------------------------------------------------------- FLOPs


def _sdpa_cpu_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query_shape, key_shape, value_shape)


class FlopCounter:
    """Counts FLOPs of matmul-like ops inside ``region()`` blocks, summed over all blocks."""

    def __init__(self) -> None:
        self.total = 0
        self.by_op: dict[str, int] = {}

    @contextlib.contextmanager
    def region(self) -> Iterator[None]:
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        custom = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flop}
        mode = FlopCounterMode(display=False, custom_mapping=custom)
        with mode:
            yield
        self.total += int(mode.get_total_flops())
        for op, n in mode.get_flop_counts().get("Global", {}).items():
            self.by_op[str(op)] = self.by_op.get(str(op), 0) + int(n)


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` as counted by ``torch.utils.flop_counter``."""
    counter = FlopCounter()
    with counter.region():
        fn()
    return counter.total


# ------------------------------------------------------------------------------------------------------------ fits


@dataclass(frozen=True)
class PowerLawFit:
    """y = c * n^exponent over ``n_values``; [ci_low, ci_high] is a ``confidence`` interval of the exponent."""

    exponent: float
    ci_low: float | None
    ci_high: float | None
    log_c: float
    n_values: tuple[float, ...]
    method: str  # "t" | "bootstrap" | "exact" (two points, no interval)
    confidence: float = 0.95

    def as_dict(self) -> dict:
        ci = None if self.ci_low is None else [self.ci_low, self.ci_high]
        return {"exponent": self.exponent, "ci_low": self.ci_low, "ci_high": self.ci_high, "ci": ci,
                "n_values": list(self.n_values), "method": self.method, "confidence": self.confidence}


def _slope(logx: np.ndarray, logy: np.ndarray) -> tuple[float, float]:
    slope, intercept = np.polyfit(logx, logy, 1)
    return float(slope), float(intercept)


def _check_fit_input(n_values: Sequence[float], ys: Sequence) -> None:
    if len(n_values) != len(ys):
        raise ValueError(f"{len(n_values)} n values but {len(ys)} y values")
    if len(set(n_values)) < 2:
        raise VarbenchError(f"a power-law fit needs at least two different n values, got {list(n_values)}")
    if any(n <= 0 for n in n_values):
        raise VarbenchError(f"power-law fits need positive n, got {list(n_values)}")


def fit_power_law(n_values: Sequence[float], y: Sequence[float], confidence: float = 0.95) -> PowerLawFit:
    """Least squares on (log n, log y) with a Student-t interval for the slope (needs three or more points)."""
    _check_fit_input(n_values, y)
    if any(v <= 0 for v in y):
        raise VarbenchError(f"power-law fits need positive values, got {list(y)}")
    from scipy import stats

    lx, ly = np.log(np.asarray(n_values, float)), np.log(np.asarray(y, float))
    k, c = _slope(lx, ly)
    m = len(lx)
    if m < 3:
        return PowerLawFit(k, None, None, c, tuple(n_values), "exact", confidence)
    resid = ly - (k * lx + c)
    se = math.sqrt(float(resid @ resid) / (m - 2) / float(((lx - lx.mean()) ** 2).sum()))
    half = float(stats.t.ppf(0.5 + confidence / 2, m - 2)) * se
    return PowerLawFit(k, k - half, k + half, c, tuple(n_values), "t", confidence)


def fit_power_law_bootstrap(n_values: Sequence[float], samples: Sequence[Sequence[float]], *,
                            confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> PowerLawFit:
    """Fit the medians of repeated measurements; the interval resamples the repeats at every n independently.

    This captures measurement noise (and works with two n values); it does not capture a wrong model (curvature),
    which ``fit_power_law``'s residual-based interval does.
    """
    _check_fit_input(n_values, samples)
    arrays = [np.asarray(s, float) for s in samples]
    if any(a.size == 0 or (a <= 0).any() for a in arrays):
        raise VarbenchError("power-law fits need at least one positive measurement per n")
    lx = np.log(np.asarray(n_values, float))
    k, c = _slope(lx, np.log([np.median(a) for a in arrays]))
    rng = np.random.default_rng(seed)
    boot = np.empty((n_boot, len(arrays)))
    for j, a in enumerate(arrays):
        boot[:, j] = np.median(a[rng.integers(0, a.size, size=(n_boot, a.size))], axis=1)
    slopes = np.polyfit(lx, np.log(boot).T, 1)[0]
    alpha = (1 - confidence) / 2
    return PowerLawFit(k, float(np.quantile(slopes, alpha)), float(np.quantile(slopes, 1 - alpha)), c,
                       tuple(n_values), "bootstrap", confidence)
