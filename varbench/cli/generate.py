"""``varbench generate``: options -> spec, sampling settings and plan (all checked before any model is loaded) ->
``varbench.generate.run`` -> one summary line.

Under torchrun every rank runs this command; only rank 0 renders.  ``--nproc K`` reruns the user's own arguments
(minus ``--nproc``) under ``torchrun --standalone --nproc-per-node K``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from varbench.cli.options import guard, int_list, sharded
from varbench.errors import VarbenchError

SMALL_MODEL_PARAMS = 50_000_000  # below this, one CPU thread is faster than two waiting on each other per op
_SHORT = {"cfg": "cfg", "top_k": "k", "top_p": "p", "more_smooth": "smooth", "temperature": "t", "cfg_interval": "ci"}


def generate(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Zoo name, e.g. var_d30 (see `varbench models`)."),
    var_ckpt: Optional[Path] = typer.Option(None, "--var-ckpt", help="VAR transformer state dict (custom VAR)."),
    vae_ckpt: Optional[Path] = typer.Option(None, "--vae-ckpt", help="VAR multi-scale VQVAE state dict."),
    patch_nums: Optional[str] = typer.Option(None, "--patch-nums", help="Custom VAR scales (default: 1,2,3,4,5,6,8,10,13,16)."),
    gpt_ckpt: Optional[Path] = typer.Option(None, "--gpt-ckpt", help="LlamaGen c2i GPT state dict (custom raster)."),
    vq_ckpt: Optional[Path] = typer.Option(None, "--vq-ckpt", help="LlamaGen VQ-16 tokenizer state dict."),
    num_heads: Optional[int] = typer.Option(None, "--num-heads", help="Heads of a custom checkpoint whose width is not 64 x heads."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="LlamaGen generation size in pixels (default: the model's)."),
    num_samples: Optional[int] = typer.Option(None, "--num-samples", "-n", help="Samples in total (default: 1000 x per-class)."),
    per_class: Optional[int] = typer.Option(None, "--per-class", help="Samples of each class (default: 50)."),
    labels: Optional[str] = typer.Option(None, "--labels", help="Explicit labels, one sample each, in order: 1,207,980."),
    cfg: Optional[float] = typer.Option(None, "--cfg", help="Guidance scale (default: the zoo's: 1.5 (VAR ramp), LlamaGen per size)."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Top-k filter, 0 = off (default: the zoo's: 900 for VAR, off for LlamaGen)."),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="Top-p filter, 0 = off (default: the zoo's: 0.96 for VAR, off for LlamaGen)."),
    more_smooth: Optional[bool] = typer.Option(None, "--more-smooth/--no-more-smooth", help="VAR Gumbel smoothing (visuals, not FID) (default: off)."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="LlamaGen sampling temperature (default: 1)."),
    cfg_interval: Optional[float] = typer.Option(None, "--cfg-interval", help="LlamaGen: guide only tokens 0..k+1 (default: -1 = all)."),
    seed: int = typer.Option(0, "--seed", help="Run seed: every sample's randomness derives from it."),
    rng: str = typer.Option("per-sample", "--rng", help="per-sample (batch-independent) or official (one generator per chunk, as the official code)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Images per forward pass (default: 50)."),
    chunk_size: Optional[int] = typer.Option(None, "--chunk-size", help="Images per resumable chunk file (default: 100; official: the batch)."),
    dtype: str = typer.Option("fp32", "--dtype", help="fp32, bf16 or fp16."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N (torchrun: cuda:LOCAL_RANK)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (default: 1 for models under 50M parameters, else torch's)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output directory (default: runs/<model>-<settings>)."),
    png: bool = typer.Option(False, "--png/--no-png", help="Also write png/{index:06d}.png (torch-fidelity, clean-fid)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a different run found in --out (only files varbench wrote)."),
    nproc: Optional[int] = typer.Option(None, "--nproc", help="Launch K processes with torchrun (one per GPU)."),
) -> None:
    """Sample a plan (default: 50 per class, 50,000 images) to OUT/samples.npz in the ADM evaluator format.

    Deterministic and resumable: after an interruption rerun the same command; finished chunks are verified by sha256.

    Several GPUs: --nproc K, or torchrun --nproc-per-node K -m varbench generate ... (see the README for multi-node).

    Example: varbench generate --model var_test --labels 1,207,980,999 --out runs/quickstart
    """
    sharded(dict(locals()), _settings, _launch, _run)


def _settings(info, o: dict) -> dict:
    """Check every option and build spec, sampling settings and plan; no model is loaded."""
    from varbench import dist
    from varbench.generate.plan import make_plan
    from varbench.generate.run import sampling_dict
    from varbench.generators import sampling as sampling_rules
    from varbench.generators.protocol import DTYPES

    if o["nproc"] is not None:
        if info.distributed:
            raise VarbenchError("--nproc launches torchrun itself; drop it when running under torchrun")
        if o["nproc"] < 1:
            raise VarbenchError(f"--nproc must be at least 1, got {o['nproc']}")
    if o["dtype"] not in DTYPES:
        raise VarbenchError(f"unknown --dtype {o['dtype']!r}; use one of {', '.join(DTYPES)}")
    if o["threads"] is not None and o["threads"] < 1:
        raise VarbenchError(f"--threads must be at least 1, got {o['threads']}")
    spec, paths, build_options = model_spec(o)
    settings = sampling_rules.resolve(spec, {k: o[k] for k in sampling_rules.OPTIONS})
    if settings is not None and spec.config is not None:  # no-op filters written as off, as the generator applies them
        settings = sampling_rules.effective(settings, spec.config.vocab_size)
    plan, batch = make_plan(num_samples=o["num_samples"], per_class=o["per_class"],
                            labels=int_list(o["labels"], "--labels"), seed=o["seed"], rng=o["rng"],
                            batch_size=o["batch_size"], chunk_size=o["chunk_size"])
    device = dist.resolve_device(o["device"], info)
    if o["nproc"] and device.startswith("cuda"):
        import torch

        if o["nproc"] > torch.cuda.device_count():
            raise VarbenchError(f"--nproc {o['nproc']} needs that many GPUs; {torch.cuda.device_count()} are visible")
    threads = o["threads"]
    if threads is None and device == "cpu" and (spec.params or 0) < SMALL_MODEL_PARAMS:
        threads = 1
    out = o["out"] if o["out"] is not None else Path("runs") / _slug(spec.name, plan, settings, o["dtype"])
    return {"spec": spec, "paths": paths, "build_options": build_options, "sampling": settings,
            "sampling_dict": sampling_dict(settings), "plan": plan, "batch_size": batch, "device": device,
            "dtype": o["dtype"], "threads": threads, "out": Path(out).expanduser().absolute(), "png": o["png"],
            "overwrite": o["overwrite"]}


def model_spec(o: dict):
    """The GeneratorSpec, explicit weight paths by role, and extra build options."""
    from varbench.generators import zoo

    var_given = o["var_ckpt"] is not None or o["vae_ckpt"] is not None
    gpt_given = o["gpt_ckpt"] is not None or o["vq_ckpt"] is not None
    if var_given and gpt_given:
        raise VarbenchError("give either --var-ckpt/--vae-ckpt (VAR) or --gpt-ckpt/--vq-ckpt (LlamaGen), not both")
    explicit = {r: o[f"{r}_ckpt"] for r in ("var", "vae", "gpt", "vq") if o[f"{r}_ckpt"] is not None}
    if o["patch_nums"] is not None and (o["model"] is not None or not var_given):
        raise VarbenchError("--patch-nums describes a custom VAR: use it with --var-ckpt/--vae-ckpt, not --model")
    if o["num_heads"] is not None and o["model"] is not None:
        raise VarbenchError("--num-heads describes a custom checkpoint: use it with --var-ckpt or --gpt-ckpt")
    if o["model"] is not None:
        spec = zoo.get(o["model"])
        roles = {w.role for w in spec.weights}
        for role in explicit:
            if role not in roles:
                known = ", ".join(f"--{r}-ckpt" for r in sorted(roles)) or "none (it has no weight files)"
                raise VarbenchError(f"--{role}-ckpt does not apply to {spec.name}; its weight options: {known}")
        if o["image_size"] is not None and spec.family != "llamagen":
            raise VarbenchError(f"--image-size applies to LlamaGen models; {spec.name} has a fixed size "
                                f"({spec.resolution} px)")
        return spec, explicit, {"image_size": o["image_size"]} if o["image_size"] is not None else {}
    if var_given:
        _need_both(o, "var", "vae")
        from varbench.models.var import SCHEDULES

        if o["image_size"] is not None:
            raise VarbenchError("--image-size applies to LlamaGen models; a VAR's size follows from --patch-nums")
        pn = tuple(int_list(o["patch_nums"], "--patch-nums") or SCHEDULES[16])
        return zoo.custom_var(pn), explicit, {"patch_nums": pn, "num_heads": o["num_heads"]}
    if gpt_given:
        _need_both(o, "gpt", "vq")
        size = o["image_size"] or 256
        return zoo.custom_llamagen(size), explicit, {"image_size": size, "num_heads": o["num_heads"]}
    raise VarbenchError(
        "choose a model: --model NAME (see `varbench models`), --var-ckpt/--vae-ckpt FILE, or --gpt-ckpt/--vq-ckpt FILE"
    )


def _need_both(o: dict, a: str, b: str) -> None:
    for have, need in ((a, b), (b, a)):
        if o[f"{have}_ckpt"] is not None and o[f"{need}_ckpt"] is None:
            raise VarbenchError(f"--{have}-ckpt needs --{need}-ckpt too")
    for role in (a, b):
        if not Path(o[f"{role}_ckpt"]).expanduser().is_file():
            raise VarbenchError(f"--{role}-ckpt {o[f'{role}_ckpt']} is not a file")


def _slug(name: str, plan, settings, dtype: str) -> str:
    from varbench.generate.run import sampling_dict

    parts = [name, f"n{plan.num_samples}" if not plan.explicit else f"labels{plan.num_samples}"]
    parts += [f"{_SHORT[k]}{int(v) if isinstance(v, bool) else v}" for k, v in sorted(sampling_dict(settings).items())
              if k in _SHORT]
    parts += [f"seed{plan.seed}", plan.rng, dtype]
    return "-".join(str(p) for p in parts)


def _job(s: dict, paths: dict):
    from varbench.generate.run import GenerateJob

    return GenerateJob(out=s["out"], plan=s["plan"], model=s["spec"].name, sampling=s["sampling_dict"],
                       dtype=s["dtype"], device=s["device"], batch_size=s["batch_size"], png=s["png"],
                       overwrite=s["overwrite"], weights=paths, threads=s["threads"])


def resolve_weights(spec, explicit: dict) -> dict:
    from varbench.generators import weights

    if spec.random_init:
        return {}
    if spec.config is None:  # custom files: the paths given
        return {role: Path(p).expanduser() for role, p in explicit.items()}
    return weights.resolve_all(spec.weights, explicit)


def _run(info, s: dict) -> None:
    import torch

    from varbench import dist
    from varbench.cli import render
    from varbench.generate import rundir
    from varbench.generate import run as runner
    from varbench.generators.protocol import build

    dist.init(info, s["device"])
    if info.is_main and s["dtype"] != "fp32":
        _warn_half(s["dtype"], s["device"])
    new_root = rundir.created_root(s["out"]) if info.is_main else None
    threads = torch.get_num_threads()
    if s["threads"] is not None:
        torch.set_num_threads(s["threads"])
    try:
        def checks() -> dict:
            if info.is_main:
                runner.preflight(_job(s, {}))
            return resolve_weights(s["spec"], s["paths"])

        paths = dist.main_first(info, checks)
        gen = build(s["spec"], paths, device=s["device"], dtype=s["dtype"], sampling=s["sampling"],
                    **s["build_options"])
        suffix = f" (rank 0 of {info.world_size})" if info.distributed else ""
        with render.progress(suffix) as progress:
            outcome = runner.run(gen, _job(s, paths), info, progress=progress)
    except BaseException:
        rundir.remove_if_unused(s["out"], new_root)  # a run that failed before any chunk leaves no new directory
        raise
    finally:
        torch.set_num_threads(threads)
        dist.destroy()
    _summary(s, outcome)


def _warn_half(dtype: str, device: str) -> None:
    from varbench import env
    from varbench.cli import render

    render.warn(f"--dtype {dtype} is the fast mode: its tokens can differ from the exact fp32 default (the manifest "
                "records the dtype)")
    if env.native_half(device) is False:
        render.warn(f"this {device} has no native bf16 (AVX512-BF16/AMX): torch emulates {dtype} there, which is "
                    "far slower than fp32; use fp32 on this machine")


def _summary(s: dict, outcome) -> None:
    from varbench.cli import render

    if outcome.random_weights:
        render.warn(f"{s['spec'].name} has random weights: its samples are for pipeline tests only "
                    "(flagged in manifest.json and result.json)")
    where = outcome.samples
    if outcome.already_complete:
        render.info(f"{where} is already complete ({outcome.num_samples:,} samples); nothing to do")
    elif outcome.pngs_only:
        render.info(f"{where} was already complete ({outcome.num_samples:,} samples, unchanged); wrote PNGs to "
                    f"{outcome.png_dir} ({outcome.seconds:.1f} s)")
    else:
        made = f"{outcome.chunks_generated} chunk(s) made, {outcome.chunks_reused} reused"
        rate = f", {outcome.images_per_second:.2f} img/s" if outcome.images_per_second else ""
        pngs = f"; PNGs in {outcome.png_dir}" if outcome.png_dir else ""
        render.info(f"wrote {outcome.num_samples:,} samples to {where} ({made}, {outcome.seconds:.1f} s{rate}){pngs}")


def _launch(s: dict, nproc: int) -> None:
    """Check the directory and weights once, then rerun the user's command under torchrun with ``nproc`` processes."""
    from varbench.cli.app import invocation_args
    from varbench.generate import launch, rundir
    from varbench.generate.run import preflight

    new_root = rundir.created_root(s["out"])
    try:
        preflight(_job(s, {}))
        resolve_weights(s["spec"], s["paths"])  # download once, before the workers start
        launch.relaunch(invocation_args(), nproc)
    except launch.WorkerFailed:
        raise typer.Exit(2) from None
    except BaseException:
        rundir.remove_if_unused(s["out"], new_root)
        raise


def register(app: typer.Typer) -> None:
    app.command("generate")(guard(generate))
