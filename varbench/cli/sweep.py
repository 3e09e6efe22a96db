"""``varbench sweep``: generate and score one model over a grid of guidance scales (and top-k / top-p), each point
over one or more seeds; one result with a table and plots, the no-guidance, FID-optimal and FD_DINOv2-optimal
points reported apart."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from varbench.cli.options import float_list, guard, int_list, str_list
from varbench.errors import VarbenchError
from varbench.metrics.registry import ADM_SUITE


def sweep(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Zoo name, e.g. var_d16 (see `varbench models`)."),
    var_ckpt: Optional[Path] = typer.Option(None, "--var-ckpt", help="VAR transformer state dict (custom VAR)."),
    vae_ckpt: Optional[Path] = typer.Option(None, "--vae-ckpt", help="VAR multi-scale VQVAE state dict."),
    patch_nums: Optional[str] = typer.Option(None, "--patch-nums", help="Custom VAR scales."),
    gpt_ckpt: Optional[Path] = typer.Option(None, "--gpt-ckpt", help="LlamaGen c2i GPT state dict."),
    vq_ckpt: Optional[Path] = typer.Option(None, "--vq-ckpt", help="LlamaGen VQ-16 tokenizer state dict."),
    num_heads: Optional[int] = typer.Option(None, "--num-heads", help="Heads of a custom checkpoint."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="LlamaGen generation size in pixels."),
    cfg: Optional[str] = typer.Option(None, "--cfg", help="Guidance scales to sweep, e.g. 1,1.5,2 (default: the zoo's one)."),
    top_k: Optional[str] = typer.Option(None, "--top-k", help="Top-k values to sweep, e.g. 0,900 (default: the zoo's)."),
    top_p: Optional[str] = typer.Option(None, "--top-p", help="Top-p values to sweep (default: the zoo's)."),
    more_smooth: Optional[bool] = typer.Option(None, "--more-smooth/--no-more-smooth", help="VAR Gumbel smoothing (fixed)."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="LlamaGen temperature (fixed)."),
    cfg_interval: Optional[float] = typer.Option(None, "--cfg-interval", help="LlamaGen guidance interval (fixed)."),
    seeds: str = typer.Option("0", "--seeds", help="Run seeds, each its own generate run per point: 0,1,2."),
    num_samples: Optional[int] = typer.Option(None, "--num-samples", "-n", help="Samples per run (default: 50 per class)."),
    per_class: Optional[int] = typer.Option(None, "--per-class", help="Samples of each class per run."),
    rng: str = typer.Option("per-sample", "--rng", help="per-sample or official."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Images per forward pass."),
    chunk_size: Optional[int] = typer.Option(None, "--chunk-size", help="Images per resumable chunk."),
    dtype: str = typer.Option("fp32", "--dtype", help="fp32, bf16 or fp16."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (default: as generate)."),
    ref: Optional[str] = typer.Option("imagenet256", "--ref", help="Inception reference of the scores."),
    metrics: str = typer.Option(",".join(ADM_SUITE), "--metrics", help="As varbench fid: fid,sfid,is,pr,kid,dc,fd_dinov2,dc_dinov2."),
    inception_weights: Optional[Path] = typer.Option(None, "--inception-weights", help="Inception weights file."),
    dinov2_ref: Optional[str] = typer.Option(None, "--dinov2-ref", help="DINOv2 reference (fd_dinov2, dc_dinov2)."),
    dinov2_weights: Optional[Path] = typer.Option(None, "--dinov2-weights", help="DINOv2 weights file."),
    dinov2_heads: Optional[int] = typer.Option(None, "--dinov2-heads", help="Heads of the DINOv2 ViT."),
    is_splits: Optional[int] = typer.Option(None, "--is-splits", help="torch-fidelity's K IS splits (default: ADM's)."),
    kid_subsets: int = typer.Option(100, "--kid-subsets", help="KID subsets."),
    kid_subset_size: int = typer.Option(1000, "--kid-subset-size", help="Rows per KID subset."),
    eval_batch_size: int = typer.Option(32, "--eval-batch-size", help="Images per feature batch."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Sweep directory (default: runs/sweep-<model>)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace another sweep's or a stale score's files in --out."),
) -> None:
    """Generate and score a model over a grid of guidance scales (x top-k x top-p) and seeds, resumable as a whole.

    Every point states its guidance rule and its weight at the last step; the no-guidance, FID-optimal and
    FD_DINOv2-optimal points are reported apart (the optima are tuned on the reference).

    Example: varbench sweep --model var_test --cfg 0,1.5,3 --seeds 0,1 --num-samples 16 --ref my_ref --out runs/sweep
    """
    o = dict(locals())
    import torch

    from varbench import dist
    from varbench.cli import render
    from varbench.cli.generate import SMALL_MODEL_PARAMS, model_spec, resolve_weights
    from varbench.evaluate.config import EvalConfig
    from varbench.generators import sampling as sampling_rules
    from varbench.generate.plan import make_plan
    from varbench.sweep import run as sweeper

    spec, explicit, build_options = model_spec({**o, "labels": None})
    if spec.sampling is None:
        raise VarbenchError(f"{spec.name} takes no sampling settings: there is nothing to sweep")
    fixed = {k: o[k] for k in ("more_smooth", "temperature", "cfg_interval")}
    grid = {"cfg": float_list(cfg, "--cfg"), "top_k": int_list(top_k, "--top-k"), "top_p": float_list(top_p, "--top-p")}
    overrides = sweeper.grid_points(fixed, grid["cfg"], grid["top_k"], grid["top_p"])
    points = []
    for ov in overrides:
        settings = sampling_rules.resolve(spec, ov)
        points.append(sampling_rules.effective(settings, spec.config.vocab_size) if spec.config else settings)
    seed_list = int_list(seeds, "--seeds")
    plan_kwargs = {"num_samples": num_samples, "per_class": per_class, "labels": None, "rng": rng,
                   "batch_size": batch_size, "chunk_size": chunk_size}
    make_plan(seed=seed_list[0], **plan_kwargs)  # bad plan options: one line now, not after the first point
    info = dist.DistInfo.from_env()
    if info.distributed:
        raise VarbenchError("varbench sweep runs in one process; launch each point with varbench generate --nproc")
    dev = dist.resolve_device(device, info)
    config = EvalConfig(metrics=tuple(str_list(metrics, "--metrics")), device=dev, batch_size=eval_batch_size,
                        is_splits=is_splits, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size,
                        dinov2_ref=dinov2_ref, dinov2_heads=dinov2_heads)
    if threads is None and dev == "cpu" and (spec.params or 0) < SMALL_MODEL_PARAMS:
        threads = 1
    job = sweeper.SweepJob(
        out=Path(out or Path("runs") / f"sweep-{spec.name}").expanduser().absolute(), spec=spec,
        points=tuple(points), grid={k: v if v is not None else [getattr(points[0], k)] for k, v in grid.items()},
        seeds=tuple(seed_list), plan=plan_kwargs, eval=config, ref=ref if config.needs_inception else None,
        weights=resolve_weights(spec, explicit), build_options=build_options, device=dev, dtype=dtype,
        threads=threads, inception_weights=str(inception_weights) if inception_weights else None,
        dinov2_weights=str(dinov2_weights) if dinov2_weights else None, overwrite=overwrite)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with render.progress() as progress:
            result = sweeper.run(job, progress=progress)
    finally:
        torch.set_num_threads(before)
    plots = sweeper.write_plots(result, job.out / "sweep_plots")
    _show(result)
    render.info(f"sweep: {job.out / sweeper.RESULT_FILE}; plots: {', '.join(p.name for p in plots)}")


def _show(result: dict) -> None:
    from varbench.cli import render
    from varbench.report.sweep import sweep_table

    for w in result["warnings"]:
        render.warn(w)
    table = sweep_table([("sweep", result, None)])
    shown = table.display()
    render.table(table.title, list(shown.columns), shown.itertuples(index=False), " ".join(table.notes))


def register(app: typer.Typer) -> None:
    app.command("sweep")(guard(sweep))
