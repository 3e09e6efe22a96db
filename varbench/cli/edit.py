"""``varbench edit``: VAR's zero-shot in-painting, out-painting and class-conditional editing of given images, or the
fixed edit benchmark over a folder of real images (options -> spec and job, all checked before a model is loaded
-> ``varbench.edit`` -> summary)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from varbench.cli.options import guard
from varbench.errors import VarbenchError

SAMPLING_OPTIONS = ("cfg", "top_k", "top_p", "more_smooth")


def edit(
    images: Optional[List[Path]] = typer.Argument(None, help="Images to edit (PNG/JPEG); images not at the model's size go through VAR's validation transform (resize + centre crop)."),
    box: Optional[str] = typer.Option(None, "--box", help="Y0,X0,Y1,X1: the box in fractions of the image, rows then columns; generated, the rest kept."),
    outpaint: bool = typer.Option(False, "--outpaint", help="Out-painting: keep the box and generate the rest."),
    label: Optional[int] = typer.Option(None, "--label", help="Class-conditional editing towards this class (default: the null class, in-/out-painting)."),
    no_leak: bool = typer.Option(False, "--no-leak", help="Encode the image with the generated region mid-grey (0 in [-1, 1]), so kept tokens carry nothing of it."),
    leak_ring: int = typer.Option(0, "--leak-ring", help="With --no-leak: also generate K tokens around the generated region."),
    benchmark: Optional[Path] = typer.Option(None, "--benchmark", help="Run the fixed edit benchmark over this folder of real images (class subfolders or flat) and score it."),
    num_images: Optional[int] = typer.Option(None, "--num-images", "-n", help="Benchmark: use the first N images of the folder's order (default: all)."),
    chunk_size: Optional[int] = typer.Option(None, "--chunk-size", help="Benchmark: images per resumable chunk (default: 100; official: the batch)."),
    inception_weights: Optional[Path] = typer.Option(None, "--inception-weights", help="Benchmark: torch-fidelity's weights-inception-2015-12-05-6726825d.pth (default: the torch hub cache)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Zoo name of a VAR model, e.g. var_d16 (see `varbench models`)."),
    var_ckpt: Optional[Path] = typer.Option(None, "--var-ckpt", help="VAR transformer state dict (custom VAR)."),
    vae_ckpt: Optional[Path] = typer.Option(None, "--vae-ckpt", help="VAR multi-scale VQVAE state dict."),
    patch_nums: Optional[str] = typer.Option(None, "--patch-nums", help="Custom VAR scales (default: 1,2,3,4,5,6,8,10,13,16)."),
    num_heads: Optional[int] = typer.Option(None, "--num-heads", help="Heads of a custom checkpoint whose width is not 64 x heads."),
    cfg: Optional[float] = typer.Option(None, "--cfg", help="Guidance scale (VAR ramp) (default: the zoo's, 1.5)."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Top-k filter, 0 = off (default: the zoo's, 900)."),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="Top-p filter, 0 = off (default: the zoo's, 0.96)."),
    more_smooth: Optional[bool] = typer.Option(None, "--more-smooth/--no-more-smooth", help="Gumbel smoothing of the generated codes (the notebook uses it) (default: off)."),
    seed: int = typer.Option(0, "--seed", help="Seed: per-sample seeds as `varbench generate`; official: batch k uses seed + k."),
    rng: str = typer.Option("per-sample", "--rng", help="per-sample (batch-independent) or official (one generator per batch, as the notebook)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Images per edit batch (default: 50)."),
    dtype: str = typer.Option("fp32", "--dtype", help="fp32, bf16 or fp16 (the official equality holds in fp32)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (default: 1 for models under 50M parameters, else torch's)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output directory (default: runs/edit-<model>-<task>-seed<S>)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a finished run in --out (removes only files varbench wrote)."),
) -> None:
    """Edit IMAGES with a VAR model: the box is generated and the rest kept (--outpaint: the reverse); --label L
    edits towards class L.  Writes OUT/samples.npz (arr_0 uint8, input order), OUT/png/, manifest.json, result.json.

    --benchmark DIR: the fixed, seeded, resumable edit benchmark over DIR, scored (FID/KID, PSNR/MSE, class rank).

    Example: varbench edit photo.png --model var_test --box 0.25,0.25,0.75,0.75 --out runs/edit_quickstart
    """
    options = dict(locals())
    s = _settings(options)
    if s["benchmark"] is not None:
        _run_benchmark(s)
    else:
        _run_images(s)


def _settings(o: dict) -> dict:
    """Check every option and build the spec, sampling settings and job inputs; no model is loaded."""
    from varbench import dist
    from varbench.cli.generate import SMALL_MODEL_PARAMS, model_spec
    from varbench.edit.run import check_run_options
    from varbench.edit.spec import EditSpec, parse_box
    from varbench.generate.plan import DEFAULT_BATCH_SIZE
    from varbench.generators import sampling as sampling_rules
    from varbench.generators.protocol import DTYPES

    bench = o["benchmark"] is not None
    _check_mode(o, bench)
    if o["dtype"] not in DTYPES:
        raise VarbenchError(f"unknown --dtype {o['dtype']!r}; use one of {', '.join(DTYPES)}")
    if o["threads"] is not None and o["threads"] < 1:
        raise VarbenchError(f"--threads must be at least 1, got {o['threads']}")
    spec, paths, build_options = model_spec({**o, "gpt_ckpt": None, "vq_ckpt": None, "image_size": None})
    if spec.family != "var":
        raise VarbenchError(f"varbench edit needs a VAR model (--model var_*, or --var-ckpt/--vae-ckpt); {spec.name} "
                            f"is a {spec.family} model")
    settings = sampling_rules.resolve(spec, {k: o[k] for k in SAMPLING_OPTIONS})
    if spec.config is not None:
        settings = sampling_rules.effective(settings, spec.config.vocab_size)
    batch = o["batch_size"] or (o["chunk_size"] if bench and o["rng"] == "official" and o["chunk_size"] else
                                DEFAULT_BATCH_SIZE)
    check_run_options(o["seed"], o["rng"], batch)
    edit_spec = None if bench else EditSpec(box=parse_box(o["box"]), outpaint=o["outpaint"], label=o["label"],
                                            no_leak=o["no_leak"], leak_ring=o["leak_ring"])
    if edit_spec is not None:  # the box and label rules need only the grid, known before the weights
        from varbench.edit.spec import check

        check(edit_spec, spec.tokenizer.patch_nums[-1], 1000)
    device = dist.resolve_device(o["device"], dist.DistInfo.from_env())
    threads = o["threads"]
    if threads is None and device == "cpu" and (spec.params or 0) < SMALL_MODEL_PARAMS:
        threads = 1
    task = "bench" if bench else edit_spec.task
    out = o["out"] if o["out"] is not None else Path("runs") / f"edit-{spec.name}-{task}-seed{o['seed']}"
    return {"spec": spec, "paths": paths, "build_options": build_options, "sampling": settings, "edit": edit_spec,
            "images": [str(p) for p in o["images"] or []], "benchmark": o["benchmark"], "seed": o["seed"],
            "rng": o["rng"], "batch_size": batch, "chunk_size": o["chunk_size"], "num_images": o["num_images"],
            "no_leak": o["no_leak"], "leak_ring": o["leak_ring"], "inception_weights": o["inception_weights"],
            "device": device, "dtype": o["dtype"], "threads": threads,
            "out": Path(out).expanduser().absolute(), "overwrite": o["overwrite"]}


def _check_mode(o: dict, bench: bool) -> None:
    if bench:
        if o["images"]:
            raise VarbenchError("give either IMAGES or --benchmark DIR, not both")
        given = [f for f, k in (("--box", "box"), ("--label", "label")) if o[k] is not None]
        given += ["--outpaint"] if o["outpaint"] else []
        if given:
            raise VarbenchError(f"{given[0]} does not apply to --benchmark: its boxes and labels are fixed by the "
                                "protocol (see `varbench edit --help`)")
        if not Path(o["benchmark"]).expanduser().is_dir():
            raise VarbenchError(f"--benchmark {o['benchmark']} is not a directory; give a folder of images")
        return
    if not o["images"]:
        raise VarbenchError("give the images to edit (varbench edit IMAGE... --box Y0,X0,Y1,X1), or --benchmark DIR")
    if o["box"] is None:
        raise VarbenchError("--box Y0,X0,Y1,X1 is required: the region to generate, in fractions (rows then columns)")
    for flag, key in (("--num-images", "num_images"), ("--chunk-size", "chunk_size"),
                      ("--inception-weights", "inception_weights")):
        if o[key] is not None:
            raise VarbenchError(f"{flag} applies to --benchmark only; drop it")


def _build(s: dict):
    from varbench.cli.generate import resolve_weights
    from varbench.generators.protocol import build

    paths = resolve_weights(s["spec"], s["paths"])
    gen = build(s["spec"], paths, device=s["device"], dtype=s["dtype"], sampling=s["sampling"], **s["build_options"])
    return gen, paths


def _threads(s: dict):
    import contextlib

    import torch

    @contextlib.contextmanager
    def scope():
        before = torch.get_num_threads()
        if s["threads"] is not None:
            torch.set_num_threads(s["threads"])
        try:
            yield
        finally:
            torch.set_num_threads(before)

    return scope()


def _run_images(s: dict) -> None:
    from varbench.cli import render
    from varbench.edit import outdir
    from varbench.edit.run import EditJob, run
    from varbench.generate import rundir

    outdir.preflight(s["out"], s["overwrite"])
    new_root = rundir.created_root(s["out"])
    with _threads(s):
        try:
            gen, paths = _build(s)
            job = EditJob(out=s["out"], images=tuple(s["images"]), spec=s["edit"], model=s["spec"].name,
                          seed=s["seed"], rng=s["rng"], batch_size=s["batch_size"], dtype=s["dtype"],
                          device=s["device"], overwrite=s["overwrite"], weights=paths)
            with render.progress() as progress:
                outcome = run(gen, job, progress=progress)
        except BaseException:
            rundir.remove_if_unused(s["out"], new_root)
            raise
    if outcome.random_weights:
        render.warn(f"{s['spec'].name} has random weights: its edits are for pipeline tests only "
                    "(flagged in manifest.json and result.json)")
    if outcome.preprocessed:
        r = int(gen.resolution)
        render.warn(f"{outcome.preprocessed} of {outcome.num_images} image(s) were not {r}x{r}: resized and "
                    "centre-cropped by VAR's validation transform (listed in manifest.json)")
    render.info(f"wrote {outcome.num_images} {s['edit'].task} edit(s) to {outcome.samples} and {outcome.png_dir} "
                f"({outcome.seconds:.1f} s)")


def _run_benchmark(s: dict) -> None:
    from varbench.cli import render
    from varbench.edit import outdir
    from varbench.edit.benchmark import BenchmarkJob, run_benchmark
    from varbench.generate import rundir
    from varbench.report.edit import zero_shot_table

    outdir.preflight(s["out"], s["overwrite"], resumable=True)
    new_root = rundir.created_root(s["out"])
    with _threads(s):
        try:
            gen, paths = _build(s)
            job = BenchmarkJob(out=s["out"], folder=Path(s["benchmark"]).expanduser(), model=s["spec"].name,
                               num_images=s["num_images"], seed=s["seed"], rng=s["rng"],
                               batch_size=s["batch_size"], chunk_size=s["chunk_size"], no_leak=s["no_leak"],
                               leak_ring=s["leak_ring"], dtype=s["dtype"], device=s["device"],
                               overwrite=s["overwrite"], weights=paths, inception_weights=s["inception_weights"])
            with render.progress() as progress:
                outcome = run_benchmark(gen, job, progress=progress)
        except BaseException:
            rundir.remove_if_unused(s["out"], new_root)
            raise
    for w in outcome.result["warnings"]:
        render.warn(w)
    table = zero_shot_table([(s["out"].name, outcome.result, s["out"])])
    if table is not None:
        shown = table.display()
        render.table(table.title, list(shown.columns), shown.values.tolist(), caption=" | ".join(table.notes))
    if outcome.already_complete:
        render.info(f"{s['out']} already holds this finished edit benchmark ({outcome.num_images} images); nothing "
                    "to do")
        return
    made = f"{outcome.chunks_generated} chunk(s) made, {outcome.chunks_reused} reused"
    render.info(f"edit benchmark of {outcome.num_images} image(s) in {s['out']} ({made}, {outcome.seconds:.1f} s); "
                f"scores in {s['out'] / 'result.json'}")


def register(app: typer.Typer) -> None:
    app.command("edit")(guard(edit))
