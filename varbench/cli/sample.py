"""``varbench generate``: parse options -> plan + generator -> ``varbench.sampler.run`` -> one summary line.

Under torchrun every rank runs this command; only rank 0 renders.  ``--nproc K`` relaunches the same command under
``torchrun --standalone --nproc-per-node K``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from varbench.cli.options import guard, int_list
from varbench.errors import VarbenchError

SAMPLING_KEYS = ("cfg", "top_k", "top_p", "more_smooth", "temperature", "cfg_interval")
LLAMAGEN_ONLY = ("temperature", "cfg_interval")


def generate(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Zoo name, e.g. var_d30 (see `varbench models`)."),
    var_ckpt: Optional[Path] = typer.Option(None, "--var-ckpt", help="VAR transformer state dict (custom VAR)."),
    vae_ckpt: Optional[Path] = typer.Option(None, "--vae-ckpt", help="VAR multi-scale VQVAE state dict."),
    patch_nums: Optional[str] = typer.Option(
        None, "--patch-nums", help="Custom VAR scales, e.g. 1,2,3,4,5,6,8,10,13,16."
    ),
    gpt_ckpt: Optional[Path] = typer.Option(None, "--gpt-ckpt", help="LlamaGen c2i GPT state dict (custom raster)."),
    vq_ckpt: Optional[Path] = typer.Option(None, "--vq-ckpt", help="LlamaGen VQ-16 tokenizer state dict."),
    image_size: Optional[int] = typer.Option(
        None, "--image-size", help="LlamaGen generation size in pixels (default 256)."
    ),
    num_samples: Optional[int] = typer.Option(
        None, "--num-samples", "-n", help="Samples in total [default: 1000 x per-class]."
    ),
    per_class: Optional[int] = typer.Option(None, "--per-class", help="Samples of each class [default: 50]."),
    labels: Optional[str] = typer.Option(
        None, "--labels", help="Explicit labels, one sample each, in order: 1,207,980."
    ),
    cfg: Optional[float] = typer.Option(None, "--cfg", help="Guidance scale [default: the zoo's, 1.5 for VAR]."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Top-k filter, 0 = off [default: zoo's, 900 for VAR]."),
    top_p: Optional[float] = typer.Option(
        None, "--top-p", help="Top-p filter, 0 = off [default: zoo's, 0.96 for VAR]."
    ),
    more_smooth: Optional[bool] = typer.Option(
        None, "--more-smooth/--no-more-smooth", help="VAR Gumbel smoothing (visuals, not FID)."
    ),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="LlamaGen sampling temperature."),
    cfg_interval: Optional[float] = typer.Option(
        None, "--cfg-interval", help="LlamaGen: guide only tokens 0..k+1 (-1 = all)."
    ),
    seed: int = typer.Option(0, "--seed", help="Run seed: every sample's randomness derives from it."),
    rng: str = typer.Option(
        "per-sample", "--rng", help="per-sample (batch-independent) or official (one generator per chunk)."
    ),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Images per forward pass [default: 50]."),
    chunk_size: Optional[int] = typer.Option(
        None, "--chunk-size", help="Images per resumable chunk file [default: 100; official: batch]."
    ),
    dtype: str = typer.Option("fp32", "--dtype", help="fp32, bf16 or fp16."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N (torchrun: cuda:LOCAL_RANK)."),
    out: Optional[Path] = typer.Option(
        None, "--out", "-o", help="Output directory [default: runs/<model>-<settings>]."
    ),
    png: bool = typer.Option(
        False, "--png/--no-png", help="Also write png/{index:06d}.png (torch-fidelity, clean-fid)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a different run found in --out."),
    nproc: Optional[int] = typer.Option(None, "--nproc", help="Launch K processes with torchrun (one per GPU)."),
) -> None:
    """Sample a plan (default: 50 per class, 50,000 images) to OUT/samples.npz in the ADM evaluator format.

    Deterministic and resumable: after an interruption rerun the same command; finished chunks are verified by sha256.

    Several GPUs: --nproc K, or torchrun --nproc-per-node K -m varbench generate ... (see the README for multi-node).

    Example: varbench generate --model var_test --labels 1,207,980,999 --out runs/quickstart
    """
    options = dict(locals())
    from varbench.dist import DistInfo, PeerError

    info = DistInfo.from_env()
    try:
        settings = _settings(info, options)
    except VarbenchError:
        if info.is_main:
            raise
        raise typer.Exit(2) from None  # the same input error is printed once, by rank 0
    if nproc is not None:
        _launch(settings, options, nproc)
        return
    try:
        _run(info, settings)
    except PeerError:
        raise typer.Exit(2) from None  # rank 0 printed it
    except VarbenchError as e:
        if info.is_main:
            raise
        raise VarbenchError(f"rank {info.rank}: {e}") from None


def _settings(info, o: dict) -> dict:
    """Validate every option (no model is built); errors are one line."""
    from varbench import dist, generator, shard
    from varbench.cli import render

    if not info.is_main:
        render.set_quiet(True)
    if o["nproc"] is not None:
        if info.distributed:
            raise VarbenchError("--nproc launches torchrun itself; drop it when running under torchrun")
        if o["nproc"] < 1:
            raise VarbenchError(f"--nproc must be at least 1, got {o['nproc']}")
    spec, paths, build_extra = _model(o)
    user = {k: o[k] for k in SAMPLING_KEYS if o[k] is not None}
    if spec.family == "var":
        bad = [k for k in LLAMAGEN_ONLY if k in user]
        if bad:
            raise VarbenchError(f"--{bad[0].replace('_', '-')} applies to LlamaGen models, not {spec.name}")
    elif spec.family in ("llamagen", "raster") and "more_smooth" in user:
        raise VarbenchError(f"--more-smooth applies to VAR models, not {spec.name}")
    if spec.family == "noise":
        unused = [k for k in SAMPLING_KEYS if k in user] + (["image_size"] if o["image_size"] is not None else [])
        if unused:
            raise VarbenchError(f"--{unused[0].replace('_', '-')} does not apply to {spec.name} (seeded noise, no "
                                "model: it takes no sampling or size options); drop it")
    if spec.family == "var" and o["image_size"] is not None:
        raise VarbenchError(
            f"--image-size applies to LlamaGen models; {spec.name} has a fixed size ({spec.resolution} px)"
        )
    _check_sampling(user)
    sampling = {**{k: v for k, v in spec.sampling.items() if k in SAMPLING_KEYS}, **user}
    if o["dtype"] not in generator.DTYPES:
        raise VarbenchError(f"unknown --dtype {o['dtype']!r}; use one of {', '.join(generator.DTYPES)}")
    plan, batch = shard.make_plan(
        num_samples=o["num_samples"],
        per_class=o["per_class"],
        labels=int_list(o["labels"], "--labels"),
        seed=o["seed"],
        rng=o["rng"],
        batch_size=o["batch_size"],
        chunk_size=o["chunk_size"],
    )
    device = dist.resolve_device(o["device"], info)
    if o["nproc"] and device.startswith("cuda"):
        import torch

        if o["nproc"] > torch.cuda.device_count():
            raise VarbenchError(f"--nproc {o['nproc']} needs that many GPUs; {torch.cuda.device_count()} are visible")
    out = Path(o["out"]) if o["out"] is not None else Path("runs") / _slug(spec.name, plan, sampling, o["dtype"])
    return {
        "spec": spec,
        "paths": paths,
        "build_extra": build_extra,
        "sampling": sampling,
        "plan": plan,
        "batch_size": batch,
        "device": device,
        "dtype": o["dtype"],
        "out": out.expanduser().absolute(),
        "png": o["png"],
        "overwrite": o["overwrite"],
    }


def _model(o: dict):
    """The GeneratorSpec, explicit weight paths by role, and extra build options."""
    from varbench import zoo
    from varbench.zoo import PATCH_NUMS_256, VAR_FID_SAMPLING, GeneratorSpec

    var_given = o["var_ckpt"] is not None or o["vae_ckpt"] is not None
    gpt_given = o["gpt_ckpt"] is not None or o["vq_ckpt"] is not None
    if var_given and gpt_given:
        raise VarbenchError("give either --var-ckpt/--vae-ckpt (VAR) or --gpt-ckpt/--vq-ckpt (LlamaGen), not both")
    explicit = {r: o[f"{r}_ckpt"] for r in ("var", "vae", "gpt", "vq") if o[f"{r}_ckpt"] is not None}
    extra = {"image_size": o["image_size"]} if o["image_size"] is not None else {}
    if o["patch_nums"] is not None and (o["model"] is not None or not var_given):
        raise VarbenchError("--patch-nums describes a custom VAR: use it with --var-ckpt/--vae-ckpt, not --model")
    if o["model"] is not None:
        spec = zoo.get(o["model"])
        roles = {w.role for w in spec.weights}
        for role in explicit:
            if role not in roles:
                known = ", ".join(f"--{r}-ckpt" for r in sorted(roles)) or "none (it has no weight files)"
                raise VarbenchError(f"--{role}-ckpt does not apply to {spec.name}; its weight options: {known}")
        return spec, explicit, extra
    if var_given:
        _need_both(o, "var", "vae")
        pn = tuple(int_list(o["patch_nums"], "--patch-nums") or PATCH_NUMS_256)
        if not pn or any(p < 1 for p in pn) or list(pn) != sorted(set(pn)):
            raise VarbenchError(f"--patch-nums must be increasing positive integers, got {o['patch_nums']!r}")
        spec = GeneratorSpec(
            name="custom_var", family="var", builder="varbench.generator:build_var", resolution=16 * pn[-1],
            params=0, arch={"patch_nums": pn, "infer": True}, sampling=dict(VAR_FID_SAMPLING),
        )
        return spec, explicit, extra
    if gpt_given:
        _need_both(o, "gpt", "vq")
        size = o["image_size"] or 256
        if size < 16 or size % 16:
            raise VarbenchError(f"--image-size must be a positive multiple of 16, got {size}")
        spec = GeneratorSpec(
            name="custom_llamagen", family="llamagen", builder="baselines.generator:build_llamagen", resolution=size,
            params=0, arch={"infer": True},
        )
        return spec, explicit, {"image_size": size}
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


def _check_sampling(user: dict) -> None:
    if user.get("cfg", 0) < 0:
        raise VarbenchError(f"--cfg must be >= 0, got {user['cfg']}")
    if user.get("top_k", 0) < 0:
        raise VarbenchError(f"--top-k must be >= 0 (0 = off), got {user['top_k']}")
    if not 0 <= user.get("top_p", 0) <= 1:
        raise VarbenchError(f"--top-p must be in [0, 1] (0 = off), got {user['top_p']}")
    if user.get("temperature", 1) <= 0:
        raise VarbenchError(f"--temperature must be > 0, got {user['temperature']}")


def _slug(name: str, plan, sampling: dict, dtype: str) -> str:
    short = {"cfg": "cfg", "top_k": "k", "top_p": "p", "more_smooth": "smooth", "temperature": "t",
             "cfg_interval": "ci"}
    parts = [name, f"n{plan.num_samples}" if not plan.explicit else f"labels{plan.num_samples}"]
    parts += [f"{short[k]}{int(v) if isinstance(v, bool) else v}" for k, v in sorted(sampling.items())]
    parts += [f"seed{plan.seed}", plan.rng, dtype]
    return "-".join(str(p) for p in parts)


def _resolve_weights(spec, explicit: dict) -> dict:
    from varbench import weights

    paths = {w.role: weights.resolve(w, explicit.get(w.role)) for w in spec.weights}
    for role, path in explicit.items():  # custom specs carry no WeightFile entries
        paths.setdefault(role, Path(path).expanduser())
    return paths


def _job(s: dict, paths: dict):
    from varbench.sampler import GenerateJob

    return GenerateJob(
        out=s["out"], plan=s["plan"], model=s["spec"].name, sampling=s["sampling"], dtype=s["dtype"],
        device=s["device"], batch_size=s["batch_size"], png=s["png"], overwrite=s["overwrite"], weights=paths,
    )


def _run(info, s: dict) -> None:
    from varbench import dist, generator, sampler
    from varbench.cli import render

    dist.init(info, s["device"])
    bars = _Bars(info)
    new_root = sampler.created_root(s["out"]) if info.is_main else None
    try:

        def checks() -> dict:
            if info.is_main:
                sampler.preflight(_job(s, {}))
            return _resolve_weights(s["spec"], s["paths"])

        paths = dist.main_first(info, checks)
        options = {**s["sampling"], **s["build_extra"]}
        gen = generator.build(s["spec"], paths, device=s["device"], dtype=s["dtype"], **options)
        outcome = sampler.run(gen, _job(s, paths), info, progress=bars)
    except BaseException:
        sampler.remove_if_unused(s["out"], new_root)  # a run that failed before any chunk leaves no new directory
        raise
    finally:
        bars.close()
        dist.destroy()
    if outcome.random_weights:
        render.warn(f"{s['spec'].name} has random weights: its samples are for pipeline tests only "
                    "(flagged in manifest.json and result.json)")
    where = outcome.samples
    if outcome.already_complete:
        render.info(f"{where} is already complete ({outcome.num_samples:,} samples); nothing to do")
        return
    if outcome.pngs_only:
        render.info(f"{where} was already complete ({outcome.num_samples:,} samples, unchanged); wrote PNGs to "
                    f"{outcome.png_dir} ({outcome.seconds:.1f} s)")
        return
    made = f"{outcome.chunks_generated} chunk(s) made, {outcome.chunks_reused} reused"
    rate = f", {outcome.images_per_second:.2f} img/s" if outcome.images_per_second else ""
    pngs = f"; PNGs in {outcome.png_dir}" if outcome.png_dir else ""
    render.info(f"wrote {outcome.num_samples:,} samples to {where} ({made}, {outcome.seconds:.1f} s{rate}){pngs}")


class _Bars:
    """Turns ``sampler.Progress`` reports into rich bars (one per stage) on rank 0."""

    def __init__(self, info):
        self.info = info
        self.stage = None
        self.stack = contextlib.ExitStack()
        self.advance = None

    def __call__(self, p) -> None:
        from varbench.cli import render

        if p.stage != self.stage:
            self.close()
            self.stage = p.stage
            label = "sampling" if p.stage == "sample" else "writing PNGs"
            if self.info.distributed:
                label += f" (rank 0 of {self.info.world_size})"
            self.advance = self.stack.enter_context(render.progress(label, total=p.total, unit="img"))
        extra = f"chunks {p.chunks_reused + p.chunks_done}/{p.num_chunks}" if p.stage == "sample" else ""
        self.advance(p.advance, extra=extra)

    def close(self) -> None:
        self.stack.close()
        self.stack = contextlib.ExitStack()
        self.stage = None


def _launch(s: dict, o: dict, nproc: int) -> None:
    """Check the directory and weights once, then rerun this command under torchrun with ``nproc`` processes."""
    from varbench import sampler

    new_root = sampler.created_root(s["out"])
    try:
        sampler.preflight(_job(s, {}))
        _resolve_weights(s["spec"], s["paths"])  # download once, before the workers start
    except BaseException:
        sampler.remove_if_unused(s["out"], new_root)
        raise
    args = ["--seed", str(o["seed"]), "--rng", o["rng"], "--dtype", o["dtype"], "--device", o["device"]]
    args += ["--out", str(s["out"]), "--png" if o["png"] else "--no-png"]
    for key in ("model", "var_ckpt", "vae_ckpt", "patch_nums", "gpt_ckpt", "vq_ckpt", "image_size", "num_samples",
                "per_class", "labels", "cfg", "top_k", "top_p", "temperature", "cfg_interval", "batch_size",
                "chunk_size"):
        if o[key] is not None:
            args += [f"--{key.replace('_', '-')}", str(o[key])]
    if o["more_smooth"] is not None:
        args.append("--more-smooth" if o["more_smooth"] else "--no-more-smooth")
    if o["overwrite"]:
        args.append("--overwrite")
    # torchrun --standalone, in-process, so a failed worker ends in one line instead of the launcher's report
    import logging
    import uuid

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()), rdzv_backend="c10d",
        rdzv_endpoint="localhost:0", max_restarts=0,
    )
    quiet = logging.getLogger("torch.distributed")
    level, threads = quiet.level, os.environ.get("OMP_NUM_THREADS")
    quiet.setLevel(logging.CRITICAL)
    if threads is None:  # the workers inherit this process's environment
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc))
    try:
        elastic_launch(config, sys.executable)("-m", "varbench", "generate", *args)
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        if failure.exitcode == 2:  # a VarbenchError: the worker printed its one line
            raise typer.Exit(2) from None
        raise VarbenchError(
            f"worker rank {rank} of {nproc} failed (exit code {failure.exitcode}); see its output above"
        ) from None
    finally:
        quiet.setLevel(level)
        if threads is None:
            os.environ.pop("OMP_NUM_THREADS", None)


def register(app: typer.Typer) -> None:
    app.command("generate")(guard(generate))
