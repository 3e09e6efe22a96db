"""Summaries of a speed study: the analytic FLOP sweep and its power-law fits, the n^6 crossover of cache-free
raster decoding, the measured-time fits, and whether the expected order of the modes holds."""

from __future__ import annotations

import math
from collections.abc import Sequence

from varbench.speed import flops as F
from varbench.speed import timing
from varbench.speed.plan import EXPECTED_ORDER, Job, SpeedConfig


def summarise(res, jobs: Sequence[Job], config: SpeedConfig) -> None:
    """FLOP sweep over ``flop_grid_sides``, its power-law fits and the n^6 crossover of each raster model."""
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


def time_fits(rows: Sequence[dict], config: SpeedConfig) -> list[dict]:
    """time ~ n^k per model x mode x batch over the measured resolutions (bootstrap over the repeats)."""
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
