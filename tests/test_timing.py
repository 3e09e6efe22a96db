"""Timers, bootstrap intervals, peak memory, FLOP counting and power-law fits (CPU)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

from varbench.speed import timing
from varbench.errors import VarbenchError


def test_measure_counts_warmup_and_repeats():
    calls = []
    t = timing.measure(lambda: calls.append(time.sleep(0.002)), "cpu", timing.TimingConfig(warmup=2, repeats=4))
    assert len(calls) == 6 and len(t.samples) == 4 and t.clock == "perf_counter"
    assert all(s >= 0.002 for s in t.samples)
    assert t.ci_low <= t.median <= t.ci_high
    assert t.median == pytest.approx(float(np.median(t.samples)))


def test_measure_cuts_repeats_over_budget():
    t = timing.measure(lambda: time.sleep(0.03), "cpu",
                       timing.TimingConfig(warmup=1, repeats=10, max_seconds=0.1))
    assert 1 <= len(t.samples) <= 4
    assert t.notes and "repeats cut from 10" in t.notes[0]


def test_interleaved_runs_round_robin_with_own_budgets():
    order = []

    def make(i, seconds):
        return lambda: (order.append(i), time.sleep(seconds))

    cfg = timing.TimingConfig(warmup=1, repeats=4, max_seconds=0.2)
    (fast, fast_mem), (slow, _) = timing.measure_interleaved([make(0, 0.001), make(1, 0.08)], "cpu", cfg)
    assert order[:2] == [0, 1]  # warm-ups
    timed = order[2:]
    assert timed[:4] == [0, 1, 0, 1] and timed.count(0) == 4  # round-robin while both have repeats left
    assert len(slow.samples) == 2 and "repeats cut from 4 to 2" in slow.notes[0]
    assert len(fast.samples) == 4 and not fast.notes
    assert all(s >= 0.08 for s in slow.samples) and fast.median < slow.median
    assert fast_mem.bytes is not None and fast_mem.kind.startswith("process_rss")
    # a warm-up done by the caller: no extra calls, its duration sets the budget
    order.clear()
    (t, _), = timing.measure_interleaved([make(0, 0.0)], "cpu", cfg, warm_seconds=[0.15])
    assert len(order) == 1 and len(t.samples) == 1


def test_timing_config_rejects_bad_values():
    with pytest.raises(VarbenchError):
        timing.TimingConfig(repeats=0)
    with pytest.raises(VarbenchError):
        timing.TimingConfig(warmup=-1)
    for bad in (0, -1, 0.0):
        with pytest.raises(VarbenchError, match="--max-seconds must be > 0"):
            timing.TimingConfig(max_seconds=bad)
    assert timing.TimingConfig(max_seconds=None).max_seconds is None


def test_bootstrap_ci_brackets_median_and_shrinks_with_more_samples():
    rng = np.random.default_rng(0)
    few, many = rng.normal(1.0, 0.1, 5), rng.normal(1.0, 0.1, 500)
    lo5, hi5 = timing.bootstrap_ci(few)
    lo500, hi500 = timing.bootstrap_ci(many)
    assert lo5 <= np.median(few) <= hi5 and lo500 <= np.median(many) <= hi500
    assert hi500 - lo500 < hi5 - lo5
    assert lo500 < 1.0 < hi500
    assert timing.bootstrap_ci([3.0]) == (3.0, 3.0)
    assert timing.bootstrap_ci(few, seed=1) == timing.bootstrap_ci(few, seed=1)


def test_power_law_fit_recovers_exponent():
    n = np.array([4, 8, 16, 32, 64], float)
    fit = timing.fit_power_law(n, 3.0 * n**4)
    assert fit.exponent == pytest.approx(4.0, abs=1e-9) and fit.method == "t"
    assert fit.ci_low == pytest.approx(4.0, abs=1e-6) and fit.ci_high == pytest.approx(4.0, abs=1e-6)
    noisy = 3.0 * n**2 * np.exp(np.random.default_rng(1).normal(0, 0.05, n.size))
    fit = timing.fit_power_law(n, noisy)
    assert fit.ci_low < 2.0 < fit.ci_high and fit.ci_high - fit.ci_low < 0.5
    # a curved series (n^2 + n^4) gets a wide interval: the slope is not one number
    curved = timing.fit_power_law(n, n**2 * 1e3 + n**4)
    assert curved.ci_high - curved.ci_low > 0.3
    two = timing.fit_power_law([2, 4], [1.0, 8.0])
    assert two.exponent == pytest.approx(3.0) and two.ci_low is None and two.method == "exact"


def test_bootstrap_fit_uses_repeats():
    rng = np.random.default_rng(2)
    n = [4, 8, 16]
    samples = [list(0.01 * k**3 * (1 + rng.normal(0, 0.02, 7))) for k in n]
    fit = timing.fit_power_law_bootstrap(n, samples)
    assert fit.method == "bootstrap" and fit.exponent == pytest.approx(3.0, abs=0.05)
    assert fit.ci_low < fit.exponent < fit.ci_high
    with pytest.raises(VarbenchError):
        timing.fit_power_law_bootstrap([4, 4], [[1.0], [2.0]])
    with pytest.raises(VarbenchError):
        timing.fit_power_law([1, 2, 3], [1.0, 0.0, 2.0])


def test_peak_memory_sees_an_allocation():
    with timing.peak_memory("cpu") as base:
        pass
    with timing.peak_memory("cpu") as mem:
        x = torch.ones(64 * 2**20 // 4 * 4)  # 256 MiB, touched
        del x
    assert mem.kind in ("process_rss_peak", "process_rss_peak_since_start")
    assert mem.bytes is not None and base.bytes is not None
    if mem.kind == "process_rss_peak":  # the peak was reset at entry, so the allocation shows
        assert mem.bytes - base.bytes > 200 * 2**20


def test_flop_counter_counts_matmul_and_cpu_attention():
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    assert timing.count_flops(lambda: a @ b) == 2 * 8 * 16 * 4
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 8)
    # torch's table lacks the CPU flash-attention op; timing adds it (QK^T and AV: 4 * B * H * Lq * Lk * D)
    assert timing.count_flops(lambda: TF.scaled_dot_product_attention(q, k, v)) == 4 * 2 * 3 * 5 * 7 * 8
    q7 = torch.randn(2, 3, 7, 8)
    causal = timing.count_flops(lambda: TF.scaled_dot_product_attention(q7, k, v, is_causal=True))
    assert causal == 4 * 2 * 3 * 7 * 7 * 8  # the full square: masks are not discounted
    counter = timing.FlopCounter()
    for _ in range(3):
        with counter.region():
            a @ b
    assert counter.total == 3 * 2 * 8 * 16 * 4


@pytest.mark.gpu
def test_cuda_timer_and_memory():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA")
    x = torch.randn(2048, 2048, device="cuda")
    with timing.peak_memory("cuda") as mem:
        t = timing.measure(lambda: x @ x, "cuda", timing.TimingConfig(warmup=2, repeats=5))
    assert t.clock == "cuda_event" and t.median > 0
    assert mem.kind == "cuda_max_allocated" and mem.bytes >= 2 * 2048 * 2048 * 4


def test_matmul_peak_is_sane_and_checks_the_dtype():
    peak = timing.matmul_peak("cpu", "fp32", seconds=0.05)
    fixed = timing.matmul_peak("cpu", "fp32", n=128, seconds=0.02)
    assert 1e8 < peak < 1e13 and 1e7 < fixed < 1e13  # between 0.1 GFLOP/s and 10 TFLOP/s on any CPU
    with pytest.raises(VarbenchError, match="unknown dtype 'fp8'"):
        timing.matmul_peak("cpu", "fp8")


def test_matmul_peak_grows_the_size_until_a_call_is_long_enough(monkeypatch):
    """With a fake clock of 1 s per 10^9 multiply-adds, the search doubles n from 256 until a call takes a tenth of
    the budget, so the peak it reports is that of the chosen size (2 n^3 FLOP per call)."""
    sizes = []
    real_randn = torch.randn

    def randn(*shape, **kw):
        sizes.append(shape[0])
        return real_randn(2, 2, dtype=kw.get("dtype"))

    monkeypatch.setattr(torch, "randn", randn)
    monkeypatch.setattr(timing, "time_call", lambda fn, device: sizes[-1] ** 3 / 1e9)
    assert timing.matmul_peak("cpu", "fp32", seconds=1.0) == pytest.approx(2e9)
    assert sorted(set(sizes)) == [256, 512]  # 512^3 / 1e9 = 0.13 s >= 0.1 s: stop
    sizes.clear()
    timing.matmul_peak("cpu", "fp32", seconds=100.0)
    assert max(sizes) == timing.MATMUL_MAX_N["cpu"]  # never beyond the cap


def test_efficiency_arithmetic():
    from varbench.speed.efficiency import Efficiency, row_efficiency

    e = Efficiency(flops=3e9, seconds=0.5, peak_flops_s=1e10)
    assert e.achieved_flops_s == 6e9 and e.fraction == pytest.approx(0.6)
    assert Efficiency(1.0, 1.0, None).fraction is None and Efficiency(1.0, 0.0, 1.0).achieved_flops_s is None
    assert row_efficiency(3e9, 0.5, 1e10) == {"achieved_flops_s": 6e9, "efficiency": pytest.approx(0.6)}
    assert row_efficiency(None, 0.5, 1e10) == {"achieved_flops_s": None, "efficiency": None}


def test_decode_flops_on_meta_equal_a_real_decode():
    """The meta-device count (no arithmetic) equals torch's counter over a real decode of the same shapes."""
    from varbench.baselines.vq16 import VQConfig, VQModel
    from varbench.models.vqvae import VQVAE, VQVAEConfig
    from varbench.speed.efficiency import var_decode_flops, vq16_decode_flops

    cfg = VQVAEConfig(patch_nums=(1, 2, 4), ch=32)
    vae = VQVAE(cfg).eval()
    with torch.inference_mode():
        real = timing.count_flops(lambda: vae.fhat_to_img(torch.randn(2, cfg.latent_dim, 4, 4)))
    assert var_decode_flops(cfg, 2) == real > 0
    assert var_decode_flops(cfg, 6) == 3 * real  # linear in the batch
    # the released tokenizer: 394 GFLOP per 256-px image (issue 16's figure)
    assert var_decode_flops(VQVAEConfig(ch=160), 1) / 1e9 == pytest.approx(393.7, abs=0.1)
    vq_cfg = VQConfig(ch=32, codebook_size=64, z_channels=32, embed_dim=8)
    vq = VQModel(vq_cfg).eval()
    with torch.inference_mode():
        real = timing.count_flops(lambda: vq.decode_code(torch.zeros(2, 9, dtype=torch.long), 3))
    assert vq16_decode_flops(vq_cfg, 2, 3) == real > 0


def test_native_bf16_follows_the_cpu_flags(monkeypatch):
    """AVX512-BF16 or AMX-BF16 in /proc/cpuinfo mean native bf16; AVX2 alone is emulation; unreadable is None."""
    from varbench import env

    for flags, native in (({"avx", "avx2", "fma"}, False), ({"avx2", "avx512_bf16"}, True),
                          ({"amx_bf16", "avx512f"}, True), (None, None)):
        monkeypatch.setattr(env, "cpu_flags", lambda flags=flags: flags)
        assert env.native_half("cpu") is native
        record = env.machine("cpu")
        assert record["native_bf16"] is native and record["cpu_flags"] == sorted(
            f for f in flags or () if f.startswith(("avx", "amx", "fma")))
