"""``varbench scaling``: the VAR trainer's teacher-forced validation loss and token accuracy for several model sizes
-> ``OUT/<model>/result.json`` each, then power laws metric = (c * N)^alpha -> ``OUT/fits.json`` + ``OUT/scaling.png``,
printed next to the VAR paper's laws.

Models: ``--models`` (zoo VAR names) and/or custom checkpoints: ``--var-ckpt`` repeated, one per model (named by the
file's stem); ``--vae-ckpt``, ``--patch-nums`` and ``--num-heads`` are given once (for every ``--var-ckpt``) or once
per ``--var-ckpt``, in the same order.  Under torchrun every rank runs this command; only rank 0 renders.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import List, Optional

import typer

from varbench.cli.options import guard, int_list, sharded, str_list
from varbench.errors import VarbenchError


def scaling(
    models: Optional[str] = typer.Option(None, "--models", "-m", help="Zoo VAR models, comma-separated: var_d16,var_d20,var_d24,var_d30."),
    var_ckpt: Optional[List[Path]] = typer.Option(None, "--var-ckpt", help="A custom VAR checkpoint; repeat for several (each named by its file stem)."),
    vae_ckpt: Optional[List[Path]] = typer.Option(None, "--vae-ckpt", help="Their VQVAE: once for all --var-ckpt, or once per --var-ckpt in order."),
    patch_nums: Optional[List[str]] = typer.Option(None, "--patch-nums", help="Their scales (default: 1,2,3,4,5,6,8,10,13,16): once, or once per --var-ckpt."),
    num_heads: Optional[List[int]] = typer.Option(None, "--num-heads", help="Heads of a checkpoint whose width is not 64 x heads: once, or once per --var-ckpt."),
    data: Path = typer.Option(..., "--data", "-d", help="ImageNet-style folder DIR/<class index or synset>/<image>, or an npz (arr_0 uint8 NHWC + labels)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N images (folders: interleaved over classes; npz: array order)."),
    out: Path = typer.Option(Path("runs/scaling"), "--out", "-o", help="Output directory: OUT/<model>/result.json, OUT/fits.json, OUT/scaling.png."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Images per forward pass (default: 50)."),
    chunk_size: Optional[int] = typer.Option(None, "--chunk-size", help="Images per resumable chunk file (default: 1000)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Threads decoding images (default: min(8, CPUs per process))."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N (torchrun: cuda:LOCAL_RANK)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace different runs found in OUT/<model> (only files varbench wrote)."),
    nproc: Optional[int] = typer.Option(None, "--nproc", help="Launch K processes with torchrun (one per GPU)."),
) -> None:
    """Validation loss vs model size: L_avg, L_last, token accuracy and error per model, and their power-law fits.

    Protocol of VAR's trainer (eval_ep): LANCZOS short side to round(1.125 x res), centre crop, RGB, [-1, 1].

    VQVAE tokens; one fp32 teacher-forced forward with the true labels; CE and argmax accuracy, float64 sums.

    Resumable: rerun the same command. Several GPUs: --nproc K, or torchrun --nproc-per-node K -m varbench scaling.

    Example: varbench scaling --models var_d16,var_d20,var_d24,var_d30 --data /data/imagenet/val --out runs/scaling
    """
    sharded(dict(locals()), _settings, _launch, _run)


def _settings(info, o: dict) -> dict:
    """Check every option, open the data and make one job per model; no model is loaded."""
    from varbench import dist
    from varbench.scaling import data as datasets
    from varbench.scaling import run as runner

    if o["nproc"] is not None and (info.distributed or o["nproc"] < 1):
        raise VarbenchError("--nproc launches torchrun itself; drop it under torchrun" if info.distributed
                            else f"--nproc must be at least 1, got {o['nproc']}")
    entries = _entries(o)
    validation = datasets.open_validation(o["data"], o["limit"])
    device = dist.resolve_device(o["device"], info)
    procs = o["nproc"] or info.local_world_size
    workers = max(1, min(8, (os.cpu_count() or 1) // max(1, procs))) if o["workers"] is None else o["workers"]
    root = Path(o["out"]).expanduser().absolute()
    jobs = [runner.ScalingJob(out=root / e["name"], model=e["name"], device=device, workers=workers,
                              batch_size=_given(o["batch_size"], runner.DEFAULT_BATCH_SIZE),
                              chunk_size=_given(o["chunk_size"], runner.DEFAULT_CHUNK_SIZE), overwrite=o["overwrite"],
                              weights={k: Path(v).expanduser().absolute() for k, v in e["explicit"].items()})
            for e in entries]
    return {"entries": entries, "jobs": jobs, "data": validation, "device": device, "root": root,
            "overwrite": o["overwrite"]}


def _given(value, default):
    return default if value is None else value


def _entries(o: dict) -> list[dict]:
    """One {name, spec, explicit weight paths, build options} per model, zoo models first."""
    from varbench.generators import zoo

    entries = []
    for name in str_list(o["models"], "--models") or []:
        spec = zoo.get(name)
        if spec.family != "var":
            raise VarbenchError(f"{name} is a {spec.family} model; scaling evaluates VAR models (next-scale "
                                "teacher forcing)")
        entries.append({"name": name, "spec": spec, "explicit": {}, "options": {}})
    entries += _custom_entries(o)
    if not entries:
        raise VarbenchError("choose models: --models var_d16,var_d20,var_d24,var_d30 (see `varbench models`) and/or "
                            "--var-ckpt FILE --vae-ckpt FILE")
    names = [e["name"] for e in entries]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise VarbenchError(f"model {twice[0]} is given twice (results go to OUT/<name>); rename a checkpoint file "
                            "or drop the repeat")
    return entries


def _custom_entries(o: dict) -> list[dict]:
    from varbench.generators import zoo
    from varbench.models.var import SCHEDULES

    ckpts = list(o["var_ckpt"] or [])
    per = {"--vae-ckpt": list(o["vae_ckpt"] or []), "--patch-nums": list(o["patch_nums"] or []),
           "--num-heads": list(o["num_heads"] or [])}
    for flag, values in per.items():
        if values and not ckpts:
            raise VarbenchError(f"{flag} describes custom checkpoints: give --var-ckpt FILE too (zoo models bring "
                                "their own)")
        if len(values) not in (0, 1, len(ckpts)):
            raise VarbenchError(f"{flag} is given {len(values)} times for {len(ckpts)} --var-ckpt files; give it "
                                "once (for all) or once per --var-ckpt, in the same order")
    if ckpts and not per["--vae-ckpt"]:
        raise VarbenchError("--var-ckpt needs --vae-ckpt (the VQVAE the checkpoint was trained with)")

    def pick(flag: str, i: int):
        values = per[flag]
        return None if not values else values[0] if len(values) == 1 else values[i]

    entries = []
    for i, ckpt in enumerate(ckpts):
        vae = pick("--vae-ckpt", i)
        for flag, path in (("--var-ckpt", ckpt), ("--vae-ckpt", vae)):
            if not Path(path).expanduser().is_file():
                raise VarbenchError(f"{flag} {path} is not a file")
        pn = tuple(int_list(pick("--patch-nums", i), "--patch-nums") or SCHEDULES[16])
        name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(ckpt).stem) or f"custom_{i}"
        entries.append({"name": name, "spec": zoo.custom_var(pn), "explicit": {"var": ckpt, "vae": vae},
                        "options": {"patch_nums": pn, "num_heads": pick("--num-heads", i)}})
    return entries


def _weights(entry: dict) -> dict:
    from varbench.generators import weights

    spec = entry["spec"]
    if spec.random_init:
        return {}
    if spec.config is None:
        return {role: Path(p).expanduser() for role, p in entry["explicit"].items()}
    return weights.resolve_all(spec.weights, {})


def _preflight(s: dict) -> None:
    from varbench.scaling import collect
    from varbench.scaling import run as runner

    for job in s["jobs"]:
        runner.preflight(job, s["data"])
    collect.check_outputs(s["root"], s["overwrite"])


def _run(info, s: dict) -> None:
    from varbench import dist
    from varbench.cli import render
    from varbench.generators.protocol import build
    from varbench.scaling import run as runner

    dist.init(info, s["device"])
    outcomes = []
    try:
        dist.from_main(info, lambda: _preflight(s))
        every = [dist.main_first(info, lambda e=e: _weights(e)) for e in s["entries"]]  # all found before any work
        for entry, job, paths in zip(s["entries"], s["jobs"], every):
            gen = build(entry["spec"], paths, device=s["device"], dtype="fp32", **entry["options"])
            gen.name = entry["name"]
            suffix = f" (rank 0 of {info.world_size})" if info.distributed else ""
            with render.progress(suffix) as progress:
                outcomes.append(runner.run(gen, s["data"], job, info, progress))
            del gen
            _free(s["device"])
        if info.is_main:
            _fits_and_summary(s, outcomes)
    finally:
        dist.destroy()


def _free(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def _fits_and_summary(s: dict, outcomes: list) -> None:
    from varbench import files
    from varbench.cli import render
    from varbench.report import scaling as tables
    from varbench.results import read
    from varbench.scaling import collect

    mine = [read.load(o.result_path, "scaling") for o in outcomes]
    content = mine[0]["results"]["data"]["content_sha256"]
    found, skipped = collect.model_results(s["root"], content)
    runs = [(r["results"]["model"], r, p) for r, p in found]
    if len(found) >= 2:
        fits = collect.write_fits(s["root"], found)
        runs.append(("fits", fits, s["root"] / collect.FITS))
        png = tables.loglog(runs)
        if png:
            files.write_bytes(s["root"] / collect.FIGURE, png)
    for t in tables.scaling_tables(runs):
        if t.name != "scaling_per_scale":
            shown = t.display()
            render.table(t.title, list(shown.columns), shown.itertuples(index=False), " ".join(t.notes) or None)
    if any(o.random_weights for o in outcomes):
        render.warn("random weights in " + ", ".join(o.model for o in outcomes if o.random_weights) +
                    ": the losses test the pipeline, not a model (flagged in the results)")
    if skipped:
        render.warn(f"left out of the fits (evaluated on other images): {', '.join(skipped)}")
    for o in outcomes:
        what = "already complete" if o.already_complete else \
            f"{o.chunks_evaluated} chunk(s) evaluated, {o.chunks_reused} reused, {o.seconds:.1f} s"
        render.info(f"{o.model}: {o.result_path} ({what})")
    if len(found) >= 2:
        render.info(f"fits over {len(found)} models: {s['root'] / collect.FITS}, {s['root'] / collect.FIGURE}")
    else:
        render.info("one model in OUT: no fits (evaluate two or more sizes into the same --out)")


def _launch(s: dict, nproc: int) -> None:
    """Check directories and weights once, then rerun the user's command under torchrun with ``nproc`` processes."""
    from varbench.cli.app import invocation_args
    from varbench.generate import launch

    if s["device"].startswith("cuda"):
        import torch

        if nproc > torch.cuda.device_count():
            raise VarbenchError(f"--nproc {nproc} needs that many GPUs; {torch.cuda.device_count()} are visible")
    _preflight(s)
    for entry in s["entries"]:
        _weights(entry)  # download once, before the workers start
    try:
        launch.relaunch(invocation_args(), nproc)
    except launch.WorkerFailed:
        raise typer.Exit(2) from None


def register(app: typer.Typer) -> None:
    app.command("scaling")(guard(scaling))
