"""``varbench speed``: the next-scale vs raster decoding study (parse -> ``varbench.speed`` -> tables, JSON, PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from varbench.cli.options import guard, int_list, str_list
from varbench.errors import VarbenchError


def speed(
    resolutions: Optional[str] = typer.Option(None, "--resolutions", "-r", help="Image sizes in px, comma-separated; n = px/16 (1024 uses VAR's 1024 schedule) (default: 256,512)."),
    models: Optional[str] = typer.Option(None, "--models", "-m", help="VAR zoo models, each timed with its raster twin (default: var_d16)."),
    baselines: Optional[str] = typer.Option(None, "--baselines", help="Any of var_nokv, raster_kv, raster_nokv, llamagen_b..llamagen_3b (default: var_nokv,raster_kv,raster_nokv)."),
    batch_sizes: Optional[str] = typer.Option(None, "--batch-sizes", "-b", help="Batch sizes; 1 = latency, larger = throughput (halved on CUDA OOM) (default: 1,64)."),
    cfg: Optional[bool] = typer.Option(None, "--cfg/--no-cfg", help="Classifier-free guidance: a second (unconditional) row per image in every model (default: off)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="auto (bf16 on CUDA, fp32 on CPU), fp32, bf16 or fp16."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda or cuda:N."),
    repeats: Optional[int] = typer.Option(None, "--repeats", help="Timed calls per measurement (default: 5)."),
    warmup: Optional[int] = typer.Option(None, "--warmup", help="Untimed calls before them (default: 1)."),
    compile: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the transformers (dynamic shapes)."),
    quick: bool = typer.Option(False, "--quick", help="Small CPU study: width 256, depth 4, 96-160 px, random weights, one thread, about 1.5 minutes."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print steps, tokens, analytic FLOPs and KV-cache sizes; run nothing."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the results JSON here."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write the log-log PNG (time and FLOPs vs n) here."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing --json/--plot files."),
    width: Optional[int] = typer.Option(None, "--width", help="Override the VAR (and twin) width; random weights."),
    depth: Optional[int] = typer.Option(None, "--depth", help="Override the VAR (and twin) depth; random weights."),
    vae_ch: Optional[int] = typer.Option(None, "--vae-ch", help="Tokenizer base width (default: released 160)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads for torch during the run (--quick: 1)."),
    cpu_budget_minutes: Optional[float] = typer.Option(None, "--cpu-budget-minutes", help="On CPU, refuse a study whose FLOPs need longer (default: 20; 0 = no limit)."),
    max_seconds: Optional[float] = typer.Option(None, "--max-seconds", help="Per measurement: fewer repeats beyond this (default: 300)."),
    count_flops: Optional[bool] = typer.Option(None, "--count-flops/--no-count-flops", help="Also count FLOPs with torch.utils.flop_counter (one extra decode)."),
    flop_grid: Optional[str] = typer.Option(None, "--flop-grid", help="Grid sides n of the analytic FLOP sweep (default: 8,16,...,1024)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Sampling and bootstrap seed (default: 0)."),
) -> None:
    """Decode time, throughput, FLOPs (formula and counted), memory and fitted exponents: VAR vs raster AR.

    Every model x resolution x mode (var_kv, var_nokv, raster_kv, raster_nokv, llamagen_kv) is timed at each batch
    size (warm-up, repeats, median with a bootstrap 95% interval; CUDA events on GPU), VQ decoding separately.
    Time ~ n^k is fitted over the resolutions, analytic FLOPs ~ n^k over a wide sweep of grid sides n.
    Random weights unless released weights are already cached for that resolution.

    Example: varbench speed --quick --json runs/quick_speed.json --plot runs/quick_speed.png
    """

    from varbench import files
    from varbench.speed import plan as speed_plan
    from varbench.speed import run as speed_run

    given = {
        "resolutions": _tuple(int_list(resolutions, "--resolutions")),
        "models": _tuple(str_list(models, "--models")),
        "baselines": _tuple(str_list(baselines, "--baselines")),
        "batch_sizes": _tuple(int_list(batch_sizes, "--batch-sizes")),
        "cfg": cfg, "dtype": dtype, "device": device, "repeats": repeats, "warmup": warmup, "compile": compile,
        "width": width, "depth": depth, "vae_ch": vae_ch, "threads": threads, "max_seconds": max_seconds,
        "cpu_budget_minutes": cpu_budget_minutes,
        "count_flops": count_flops, "flop_grid_sides": _tuple(int_list(flop_grid, "--flop-grid")), "seed": seed,
    }
    given = {k: v for k, v in given.items() if v is not None}
    files.check_output(json_out, "--json", overwrite)
    files.check_output(plot, "--plot", overwrite)
    if json_out is not None and plot is not None and json_out.resolve() == plot.resolve():
        raise VarbenchError(f"--json and --plot name the same file {plot}")
    config = speed_plan.SpeedConfig.quick_preset(**given) if quick else speed_plan.SpeedConfig(**given)
    if dry_run:
        result = speed_run.dry_run(config)
        _render_dry_run(result)
    else:
        from varbench.cli import render

        with render.progress() as progress:
            result = speed_run.run(config, progress=progress)
        _render_run(result)
    _write(result, json_out, plot)


def _tuple(v):
    return None if v is None else tuple(v)


def _write(result, json_out: Optional[Path], plot: Optional[Path]) -> None:
    from varbench import files
    from varbench.cli import render
    from varbench.report import plots
    from varbench.results import schema

    if json_out is not None:
        warnings = ["random weights: timings and FLOPs are valid, images are noise"] if result.random_weights else []
        obj = schema.make("speed", result.config, result.results(), schema.empty_protocol(),
                          device=result.config["device"], random_weights=result.random_weights, warnings=warnings)
        schema.save(json_out, obj)
        render.info(f"results: {json_out}")
    if plot is not None:
        title = f"{result.config.get('device')}, {result.config.get('dtype')}"
        png = plots.speed_loglog(result.rows, result.fits, result.flop_sweep, result.crossovers,
                                 title=title + (", random weights" if result.random_weights else ""))
        if png is None:
            raise VarbenchError("nothing to plot (no FLOP sweep)")
        files.write_bytes(plot, png)
        render.info(f"plot: {plot}")


def _g(x) -> str:
    """FLOPs as GFLOP: one decimal from 10 up, three significant digits below."""
    return "–" if x is None else f"{x / 1e9:,.1f}" if x >= 1e10 else f"{x / 1e9:.3g}"


def _mb(x) -> str:
    return "–" if x is None else f"{x / 2**20:,.1f}"


def _s(x) -> str:
    return "–" if x is None else f"{x:.4g}"


def _crossover_lines(result) -> list[str]:
    out = []
    for c in result.crossovers:
        out.append(f"{c['model']} (w={c['width']}): without a KV cache the n^6 attention term exceeds the dense recompute "
                   f"beyond T = {c['nokv_attention_dominates_tokens']:,.0f} tokens (n ≈ {c['nokv_attention_dominates_grid']:.0f}); "
                   f"with a cache attention exceeds dense beyond T = {c['kv_attention_dominates_tokens']:,.0f} "
                   f"(n ≈ {c['kv_attention_dominates_grid']:.0f})")
    return out


def _render_fits(result, quantity: str, title: str) -> None:
    from varbench.cli import render

    fits = [f for f in result.fits if f["quantity"] == quantity]
    if not fits:
        return
    with_model = _model_column(result)
    rows = []
    for f in fits:
        ci = "–" if f["ci_low"] is None else f"[{f['ci_low']:.2f}, {f['ci_high']:.2f}]"
        n = f["n_values"]
        last = f"{f['local_exponent_last']:.2f}" if quantity == "flops" else f"{f['batch_size']}"
        rows.append((*([f["model"]] if with_model else []), f["mode"], f"{f['exponent']:.2f}", ci,
                     f"{n[0]}-{n[-1]} ({len(n)})", last))
    caption = ("95% CI: bootstrap over the repeats at each n (measurement noise only)" if quantity == "time" else
               "95% CI: t-interval of the log-log slope (wide where the curve bends); last column: local slope at "
               "the largest n")
    render.table(title, [*(["model"] if with_model else []), "mode", "k", "95% CI", "n (points)",
                         "k at n max" if quantity == "flops" else "batch"], rows, caption=caption)


def _render_dry_run(result) -> None:
    from varbench.cli import render

    with_model = _model_column(result)
    rows = [(*([r["model"]] if with_model else []), r["mode"], r["resolution"], r["grid"], r["batch_size"], r["steps"],
             r["tokens"], _g(r["flops_analytic"]), _g(r["flops_breakdown"]["dense"]),
             _g(r["flops_breakdown"]["attention"]), _g(r["flops_breakdown"]["head"]), _mb(r["kv_cache_bytes"]))
            for r in result.rows]
    cfg = result.config
    render.table("varbench speed --dry-run (analytic; nothing run)",
                 [*(["model"] if with_model else []), "mode", "px", "n", "batch", "steps", "tokens", "GFLOP/img",
                  "dense", "attn", "head", "KV MiB"], rows,
                 caption=(f"{'with' if cfg['cfg'] else 'no'} CFG; KV cache per call in {cfg['dtype']}; FLOPs with the "
                          "actual MLP widths (LlamaGen-style SwiGLU rounds 8/3 w up to a multiple of 256)"
                          + ("" if with_model else f"; {_models_caption(result)}")))
    _render_fits(result, "flops", "Analytic FLOPs ~ n^k over the sweep")
    for line in _crossover_lines(result):
        render.info(line)


def _ms(x) -> str:
    return "–" if x is None else f"{x * 1e3:.3g}"


def _model_column(result) -> bool:
    """Whether a mode is shared by several models (otherwise the mode names the model, given in the caption)."""
    seen: dict[str, set] = {}
    for r in result.rows:
        seen.setdefault(r["mode"], set()).add(r["model"])
    return any(len(m) > 1 for m in seen.values())


def _models_caption(result) -> str:
    by_model: dict[str, list[str]] = {}
    for r in result.rows:
        modes = by_model.setdefault(r["model"], [])
        if r["mode"] not in modes:
            modes.append(r["mode"])
    return "; ".join(f"{model}: {', '.join(modes)}" for model, modes in by_model.items())


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.0f}%"


def _peak_caption(result) -> str:
    peaks = result.config.get("matmul_peaks_flops_s") or {}
    named = ", ".join(f"{dt} {v / 1e9:,.0f} GFLOP/s" for dt, v in peaks.items())
    return (f"% peak: achieved FLOP/s (formula, executed work; VQ decode: counted) / a plain matmul measured in this "
            f"run ({named})")


def _memory_caption(result) -> str:
    kind = result.rows[0].get("peak_mem_kind", "") if result.rows else ""
    if kind == "cuda_max_allocated":
        return "peak: CUDA max allocated during the call (per mode)"
    return ("process peak: the whole process's peak RSS during the call (all built models included), not a per-mode "
            "figure; KV MiB/img below is per mode")


def _render_run(result) -> None:
    from varbench.cli import render

    cfg = result.config
    with_model = _model_column(result)
    lead = ["model"] if with_model else []
    timing_rows, cost_rows, seen = [], [], set()
    for r in result.rows:
        m = [r["model"]] if with_model else []
        ci = "–" if r["latency_ci"] is None else f"{_ms(r['latency_ci'][0])}–{_ms(r['latency_ci'][1])}"
        timing_rows.append((*m, r["mode"], r["resolution"], r["batch_size"], _ms(r["latency_s"]), ci,
                            _s(r["throughput_img_s"]), _pct(r.get("efficiency")), _ms(r["vq_decode_s"]),
                            _pct(r.get("vq_decode_efficiency")), _mb(r["peak_mem_bytes"])))
        key = (r["model"], r["mode"], r["resolution"])
        if key not in seen:
            seen.add(key)
            ratio = None if not r["flops_counted"] else r["flops_counted"] / r["flops_analytic"]
            cost_rows.append((*m, r["mode"], r["resolution"], r["grid"], r["steps"], r["tokens"],
                              _g(r["flops_analytic"]), _g(r["flops_counted"]), "–" if ratio is None else f"{ratio:.3f}",
                              _mb(r["kv_cache_bytes"] / r["batch_size"])))
    weights = "random weights" if result.random_weights else "released weights"
    render.table(
        "varbench speed: decode time per call",
        [*lead, "mode", "px", "batch", "ms/call", "95% CI ms", "img/s", "% peak", "VQ dec ms", "VQ % peak",
         "peak MiB" if str(cfg["device"]).startswith("cuda") else "process peak MiB"],
        timing_rows,
        caption=(f"{cfg['device']} {cfg['dtype']}, {cfg.get('torch_threads')} thread(s), "
                 f"{'with' if cfg['cfg'] else 'no'} CFG, {weights}; median of {cfg['repeats']} after "
                 f"{cfg['warmup']} warm-up; " + _peak_caption(result) + "; " + _memory_caption(result)
                 + ("" if with_model else f"; {_models_caption(result)}")),
    )
    render.table(
        "Work per image",
        [*lead, "mode", "px", "n", "steps", "tokens", "GFLOP formula", "GFLOP counted", "counted/formula",
         "KV MiB/img"],
        cost_rows,
        caption=("formula: useful work (shared/facts/baselines.md section 3, actual MLP widths); counted: "
                 "torch.utils.flop_counter, which also counts the masked half of attention in no-KV modes"),
    )
    _render_fits(result, "time", "Measured time ~ n^k")
    _render_fits(result, "flops", "Analytic FLOPs ~ n^k over the sweep")
    for o in result.ordering:
        parts = " < ".join(f"{m} {t * 1e3:.3g} ms" for m, t in zip(o["order"], o["latency_s"]))
        verdict = "as expected" if o["holds"] else "NOT " + " < ".join(o["expected"])
        render.info(f"{o['resolution']} px, batch {o['batch_size']}: {parts} ({verdict})")
    if any(not o["holds"] and o["batch_size"] > 1 and o["order"].index("raster_kv") < o["order"].index("var_kv")
           for o in result.ordering if {"raster_kv", "var_kv"} <= set(o["order"])):
        render.info("where compute, not the number of sequential steps, limits a batch, the KV-cached raster twin "
                    "can beat VAR: it does fewer FLOPs per image (see GFLOP formula)")
    for line in _crossover_lines(result):
        render.info(line)
    for n in sorted({n for r in result.rows for n in (r.get("notes") or [])}):
        render.warn(n)
    if result.random_weights:
        render.info("random weights: timings and FLOPs are valid, images are noise")
    if not str(cfg["device"]).startswith("cuda"):
        render.info("CPU run: these are not GPU numbers (use --device cuda --dtype bf16 for the paper's setting)")


def register(app: typer.Typer) -> None:
    app.command("speed")(guard(speed))
