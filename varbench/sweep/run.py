"""``varbench sweep``: one model generated and scored over a grid of sampling settings, each over several seeds.

Every (point, seed) is an ordinary generate directory ``OUT/points/<point>-seed<S>/`` (resumable, verified by
sha256) with its score ``fid.json`` beside it; all points share one sampling plan (the same labels and, per seed,
the same per-sample seeds), and rescoring reuses the feature cache.  A rerun of the same command resumes where it
stopped: finished generate runs are not redone and scores of unchanged samples are reused.  ``OUT/sweep.json``
(kind "sweep") is written last.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from varbench import files
from varbench.errors import VarbenchError
from varbench.evaluate.config import EvalConfig
from varbench.progress import Progress, ProgressEvent, no_progress
from varbench.results import schema
from varbench.results.sweep import OPTIMA, SUMMARY_RULE, Optimum, SeedRun, Summary, SweepPoint, SweepResults

RESULT_FILE = "sweep.json"
POINTS_DIR = "points"
SCORE_FILE = "fid.json"
GRID_KEYS = ("cfg", "top_k", "top_p")


@dataclass(frozen=True)
class SweepJob:
    out: Path
    spec: object  # GeneratorSpec
    points: tuple  # resolved sampling settings, one per grid point, in grid order
    grid: dict  # {"cfg": [...], "top_k": [...], "top_p": [...]}
    seeds: tuple[int, ...]
    plan: dict  # make_plan keyword arguments except the seed
    eval: EvalConfig
    ref: str | None  # the Inception reference (None when only DINOv2 metrics are asked for)
    weights: dict = field(default_factory=dict)  # model weights: role -> path
    build_options: dict = field(default_factory=dict)
    device: str = "cpu"
    dtype: str = "fp32"
    threads: int | None = None
    inception_weights: str | None = None
    dinov2_weights: str | None = None
    overwrite: bool = False

    def __post_init__(self):
        object.__setattr__(self, "out", Path(self.out))
        if not self.points or not self.seeds:
            raise VarbenchError("a sweep needs at least one grid point and one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise VarbenchError(f"--seeds has duplicates: {', '.join(map(str, self.seeds))}")

    def config(self) -> dict:
        return {"model": self.spec.name, "grid": self.grid, "seeds": list(self.seeds), "plan": self.plan,
                "eval": self.eval.to_dict(), "ref": self.ref, "device": self.device, "dtype": self.dtype,
                "build_options": {k: list(v) if isinstance(v, tuple) else v for k, v in self.build_options.items()}}


def grid_points(base: dict, cfgs=None, top_ks=None, top_ps=None) -> list[dict]:
    """Sampling overrides of every grid point: ``base`` with each (cfg, top_k, top_p) of the product (a None list
    keeps the base value), cfg slowest."""
    axes = [[base.get(k)] if vals is None else list(vals) for k, vals in zip(GRID_KEYS, (cfgs, top_ks, top_ps))]
    return [{**base, **dict(zip(GRID_KEYS, combo))} for combo in itertools.product(*axes)]


def point_name(settings) -> str:
    return f"cfg{settings.cfg:g}-k{settings.top_k}-p{settings.top_p:g}"


def run(job: SweepJob, progress: Progress = no_progress) -> schema.Result:
    """Generate and score every (point, seed) not done yet; return (and write) the sweep result."""
    _refuse_other_sweep(job)
    t0 = time.perf_counter()
    total = len(job.points) * len(job.seeds)
    points, protocol = [], None
    for i, settings in enumerate(job.points):
        runs, weight = [], None
        for seed in job.seeds:
            progress(ProgressEvent("sweep", len(points) * len(job.seeds) + len(runs), total, unit="runs",
                                   detail=f"{point_name(settings)} seed {seed}", resumable=True, saved=True))
            score = _generate_and_score(job, settings, seed, progress)
            protocol = protocol or score["protocol"]
            weight = score["protocol"]["sampling"]["last_step_weight"]  # as the generate run recorded it
            runs.append(SeedRun(seed=seed, out=str(_run_dir(job, settings, seed)),
                                fid_json=str(_run_dir(job, settings, seed) / SCORE_FILE),
                                samples_sha256=score["protocol"]["samples"]["sha256"],
                                metrics=score["results"]["metrics"]))
        points.append(_point(settings, runs, weight))
    progress(ProgressEvent("sweep", total, total, unit="runs", resumable=True, saved=True))
    results = SweepResults(model=job.spec.name, grid=job.grid, seeds=list(job.seeds), points=points,
                           optima=optima(points, job.ref), summary_rule=SUMMARY_RULE, reference=job.ref,
                           dinov2_reference=job.eval.dinov2_ref, seconds=time.perf_counter() - t0)
    protocol = dict(protocol)
    protocol["sampling"] = None  # it varies over the points: each point states its own
    protocol["seeds"] = None
    warnings = ["FID/FD-optimal points are chosen by scoring against the evaluation reference itself (tuned on it)"]
    random = any(json_result["random_weights"] for json_result in _scores(job))
    result = schema.make("sweep", job.config(), results, protocol, device=job.device, random_weights=random,
                         warnings=warnings)
    schema.save(job.out / RESULT_FILE, result)
    return result


def _run_dir(job: SweepJob, settings, seed: int) -> Path:
    return job.out / POINTS_DIR / f"{point_name(settings)}-seed{seed}"


def _refuse_other_sweep(job: SweepJob) -> None:
    path = job.out / RESULT_FILE
    if not path.is_file() or job.overwrite:
        return
    from varbench.results.read import load

    old = load(path, "sweep")
    if old["config"] != files.as_json(job.config()):
        raise VarbenchError(f"--out {job.out} holds another sweep ({path}); rerun its own command to resume it, "
                            "choose another --out, or pass --overwrite")


def _generate_and_score(job: SweepJob, settings, seed: int, progress: Progress) -> dict:
    from varbench.evaluate import score
    from varbench.generate import rundir
    from varbench.generate import run as runner
    from varbench.generate.plan import make_plan
    from varbench.results.read import load

    out = _run_dir(job, settings, seed)
    plan, batch = make_plan(seed=seed, **job.plan)
    gjob = runner.GenerateJob(out=out, plan=plan, model=job.spec.name, sampling=runner.sampling_dict(settings),
                              dtype=job.dtype, device=job.device, batch_size=batch, overwrite=job.overwrite,
                              weights={k: str(v) for k, v in job.weights.items()}, threads=job.threads)
    runner.preflight(gjob)
    manifest = rundir.read_manifest(out)
    if not (manifest and manifest.get("status") == "complete" and rundir.artefact_ok(out, manifest)):
        from varbench.generators.protocol import build

        generator = build(job.spec, job.weights, device=job.device, dtype=job.dtype, sampling=settings,
                          **job.build_options)
        runner.run(generator, gjob, progress=progress)
    made = load(out / "result.json", "generate")["protocol"]["samples"]["sha256"]
    score_path = out / SCORE_FILE
    if score_path.is_file():
        old = load(score_path, "fid")
        same = old["protocol"]["samples"]["sha256"] == made and old["config"] == files.as_json(
            _score_config(job, out))
        if same:
            return old
        if not job.overwrite:
            raise VarbenchError(f"{score_path} scores other samples or settings than this sweep asks for; rerun "
                                "the sweep's own command, or pass --overwrite to score again")
    result = score.evaluate(out, job.ref, job.eval, weights=job.inception_weights, dinov2_weights=job.dinov2_weights,
                            progress=progress)
    schema.save(score_path, result)
    return result


def _score_config(job: SweepJob, out: Path) -> dict:
    """The config a fid result of ``out`` written by this sweep holds (``score.evaluate``'s run config)."""
    from varbench.evaluate import samples

    return {**job.eval.to_dict(), "samples": str(samples.open_samples(out).path), "ref": job.ref,
            "inception_weights": job.inception_weights, "dinov2_weights": job.dinov2_weights}


def _scores(job: SweepJob):
    from varbench.results.read import load

    for settings in job.points:
        for seed in job.seeds:
            yield load(_run_dir(job, settings, seed) / SCORE_FILE, "fid")


def _point(settings, runs: list, last_step_weight: float) -> SweepPoint:
    keys = [k for k in runs[0]["metrics"] if all(k in r["metrics"] for r in runs)]
    summary = {}
    for key in keys:
        v = np.array([r["metrics"][key] for r in runs], dtype=np.float64)
        summary[key] = Summary(mean=float(v.mean()), min=float(v.min()), max=float(v.max()),
                               std=float(v.std(ddof=1)) if len(v) > 1 else 0.0, spread=float(v.max() - v.min()),
                               n=len(v))
    return SweepPoint(cfg=float(settings.cfg), top_k=int(settings.top_k), top_p=float(settings.top_p),
                      guidance_rule=settings.guidance_rule, last_step_weight=last_step_weight, runs=runs,
                      summary=summary)


def optima(points: list, reference: str | None) -> dict:
    """The no-guidance point (last-step weight 1) and the points of least mean FID and FD_DINOv2."""
    out: dict = {k: None for k in OPTIMA}

    def optimum(i: int, metric: str | None, tuned: bool) -> Optimum:
        p = points[i]
        return Optimum(point=i, cfg=p["cfg"], top_k=p["top_k"], top_p=p["top_p"],
                       last_step_weight=p["last_step_weight"], metric=metric,
                       value=p["summary"][metric]["mean"] if metric else None, tuned_on_reference=tuned,
                       reference=reference if tuned else None)

    unguided = [i for i, p in enumerate(points) if abs(p["last_step_weight"] - 1.0) < 1e-12]
    if unguided:
        out["no_guidance"] = optimum(unguided[0], None, False)
    for metric in ("fid", "fd_dinov2"):
        scored = [i for i, p in enumerate(points) if metric in p["summary"]]
        if scored:
            best = min(scored, key=lambda i: points[i]["summary"][metric]["mean"])
            out[metric] = optimum(best, metric, True)
    return out


def write_plots(result: dict, folder: Path) -> list[Path]:
    """The sweep's figures as PNGs in ``folder`` (files varbench names; replaced on every run)."""
    from varbench.report import sweep as sweep_report

    written = []
    for name, png in sweep_report.figures(result).items():
        path = folder / f"{name}.png"
        files.write_bytes(path, png)
        written.append(path)
    return written
