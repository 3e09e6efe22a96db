"""``varbench edit --benchmark DIR``: the protocol of ``varbench.edit.protocol`` run over a folder of real images.

Five streams: ``original`` (the inputs at the model's resolution, as ``varbench edit`` prepares them), ``recon``
(VQVAE reconstructions of their tokens) and one per task.  Each stream is a generate-style directory (``chunks/``,
``samples.npz``, task PNGs in ``png/``) of chunks of images; a rerun of the same command verifies finished chunks by
sha256 and makes only the missing ones, then scores (``varbench.edit.scoring``) and writes ``result.json`` (kind
"edit").  Randomness as ``varbench.edit.editor`` (official mode: chunk k is one batch drawn with seed + k).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from varbench import files
from varbench.edit import outdir
from varbench.edit.editor import SEED_RULE, Editor
from varbench.edit.inputs import load_images
from varbench.edit.outdir import STREAMS
from varbench.edit.protocol import BOX, ORDER_RULE, PROTOCOL_VERSION, TARGET_RULE, TASKS, discover, stream_labels
from varbench.edit.spec import EditSpec
from varbench.errors import VarbenchError
from varbench.generate import rundir
from varbench.generate.plan import DEFAULT_BATCH_SIZE, DEFAULT_CHUNK_SIZE, Plan
from varbench.progress import Progress, ProgressEvent, no_progress

STAGE = "edit benchmark"


@dataclass(frozen=True)
class BenchmarkJob:
    out: Path
    folder: Path
    model: str
    num_images: int | None = None  # None: every image of the folder
    seed: int = 0
    rng: str = "per-sample"
    batch_size: int = DEFAULT_BATCH_SIZE
    chunk_size: int | None = None  # None: 100 (official: the batch size)
    no_leak: bool = False
    leak_ring: int = 0
    dtype: str = "fp32"
    device: str = "cpu"
    overwrite: bool = False
    weights: dict = field(default_factory=dict)
    inception_weights: Path | None = None
    feature_batch_size: int = 32

    def __post_init__(self) -> None:
        from varbench.edit.run import check_run_options

        object.__setattr__(self, "out", Path(self.out))
        check_run_options(self.seed, self.rng, self.batch_size)
        if self.num_images is not None and self.num_images < 1:
            raise VarbenchError(f"--num-images must be at least 1, got {self.num_images}")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise VarbenchError(f"--chunk-size must be at least 1, got {self.chunk_size}")
        if self.rng == "official" and self.chunk_size not in (None, self.batch_size):
            raise VarbenchError(f"--rng official draws each chunk as one batch: --batch-size ({self.batch_size}) "
                                f"must equal --chunk-size ({self.chunk_size}); give only one of them")
        if self.leak_ring < 0 or (self.leak_ring and not self.no_leak):
            raise VarbenchError(f"--leak-ring {self.leak_ring} needs --no-leak and must be >= 0")

    @property
    def chunk(self) -> int:
        return self.batch_size if self.rng == "official" else (self.chunk_size or DEFAULT_CHUNK_SIZE)

    def spec(self, task: str) -> EditSpec:
        s = TASKS[task]
        return EditSpec(s.box, s.outpaint, s.label, self.no_leak, self.leak_ring)


@dataclass(frozen=True)
class BenchmarkOutcome:
    out: Path
    num_images: int
    chunks_generated: int  # (stream, chunk) pairs made this session
    chunks_reused: int
    seconds: float
    already_complete: bool
    result: dict


def identity(generator, job: BenchmarkJob, paths: list[Path], sources: list[int]) -> dict:
    import torch

    from varbench import __version__

    digest = hashlib.sha256()
    for p, s in zip(paths, sources):
        digest.update(f"{p.relative_to(job.folder)}\0{s}\0{files.sha256_file(p)}\n".encode())
    ident = {"protocol_version": PROTOCOL_VERSION, "varbench_version": __version__, "torch_version": torch.__version__,
             "model": job.model, "generator": rundir.generator_identity(generator), "seed": job.seed, "rng": job.rng,
             "chunk_size": job.chunk, "num_images": len(paths), "images_sha256": digest.hexdigest(),
             "no_leak": job.no_leak, "leak_ring": job.leak_ring, "dtype": job.dtype,
             "device_type": torch.device(job.device).type}
    if ident["device_type"] == "cpu":  # CPU reductions depend on the intra-op thread count
        ident["cpu_threads"] = torch.get_num_threads()
    return rundir.canonical(ident)


def run_benchmark(generator, job: BenchmarkJob, progress: Progress = no_progress) -> BenchmarkOutcome:
    from varbench.edit import scoring

    t0 = time.perf_counter()
    paths, sources = discover(job.folder, job.num_images)
    ident = identity(generator, job, paths, sources)
    run_id = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    lock = files.DirLock(job.out, "edit")
    try:
        manifest = outdir.prepare(job.out, job.overwrite, ident)
        if manifest is not None and manifest.get("status") == "complete" and (job.out / rundir.RESULT).is_file():
            from varbench.results import read

            result = read.load(job.out / rundir.RESULT, "edit")
            return BenchmarkOutcome(job.out, len(paths), 0, 0, time.perf_counter() - t0, True, result)
        manifest = manifest or _new_manifest(generator, job, ident, run_id, paths, sources)
        manifest.setdefault("preprocessed", _count_preprocessed(paths, int(generator.resolution)))
        outdir.write_manifest(job.out, {k: v for k, v in manifest.items() if k not in ("schema", "schema_version")})
        plans = {s: _plan(job, stream_labels(s, sources, job.seed, generator.var.null_class)) for s in STREAMS}
        made, reused = _make_chunks(generator, job, plans, paths, run_id, progress)
        artefacts = _pack(job, plans, int(generator.resolution), run_id)
        result = scoring.score(generator, job, plans, artefacts, manifest, time.perf_counter() - t0, progress)
        manifest.update(status="complete", artefacts=artefacts)
        outdir.write_manifest(job.out, {k: v for k, v in manifest.items() if k not in ("schema", "schema_version")})
        from varbench.results import schema

        schema.save(job.out / rundir.RESULT, result)
    finally:
        lock.release()
    return BenchmarkOutcome(job.out, len(paths), made, reused, time.perf_counter() - t0, False, result)


def _count_preprocessed(paths: list[Path], size: int) -> int:
    """Images not at the model's resolution (read from the headers only)."""
    from PIL import Image

    count = 0
    for p in paths:
        try:
            with Image.open(p) as img:
                count += img.size != (size, size)
        except OSError:
            pass  # load_images reports it with one line
    return count


def _plan(job: BenchmarkJob, labels: list[int]) -> Plan:
    return Plan(num_samples=len(labels), seed=job.seed, chunk_size=job.chunk, rng=job.rng, labels=tuple(labels))


def _new_manifest(generator, job: BenchmarkJob, ident: dict, run_id: str, paths, sources) -> dict:
    from varbench import env
    from varbench.generate.run import pixel_rule
    from varbench.generators.protocol import model_info, sampling_record

    return {"status": "running", "mode": "benchmark", "run_id": run_id, "identity": ident, "created": rundir.now(),
            "random_weights": bool(generator.random_weights), "folder": str(job.folder),
            "images": [{"path": str(p.relative_to(job.folder)), "source_class": s} for p, s in zip(paths, sources)],
            "order_rule": ORDER_RULE, "target_rule": TARGET_RULE, "box": list(BOX),
            "tasks": {t: Editor(generator, job.spec(t)).describe() for t in TASKS},
            "model": {**model_info(generator), "weights": {k: str(v) for k, v in job.weights.items()}},
            "sampling": rundir.canonical(sampling_record(generator)), "seed": job.seed, "rng": job.rng,
            "seed_rule": SEED_RULE, "chunk_size": job.chunk, "batch_size": job.batch_size, "dtype": job.dtype,
            "device": job.device, "uint8_rule": pixel_rule(generator), "env": env.collect(job.device)}


def _make_chunks(generator, job, plans: dict, paths: list[Path], run_id: str, progress: Progress) -> tuple[int, int]:
    """Make every missing (stream, chunk); return (made, reused)."""
    pending: dict[int, list[str]] = {}
    reused = 0
    for stream, plan in plans.items():
        records, todo, _ = rundir.scan_chunks(job.out / stream, plan, run_id)
        reused += len(records)
        for c in todo:
            pending.setdefault(c, []).append(stream)
    plan = plans["original"]
    editors = {t: Editor(generator, job.spec(t)) for t in TASKS}
    done = sum(plan.chunk(c).size for c in range(plan.num_chunks) if c not in pending)
    progress(ProgressEvent(STAGE, done, plan.num_samples, resumable=True, saved=True))
    made = 0
    for c in sorted(pending):
        chunk = plan.chunk(c)
        t0 = time.perf_counter()
        images, _ = load_images(paths[chunk.start : chunk.stop], int(generator.resolution))
        for stream in pending[c]:
            out = _stream_chunk(stream, editors, images, plans[stream], chunk, job)
            _write_chunk(job.out / stream, chunk, out, run_id, time.perf_counter() - t0)
            made += 1
        done += chunk.size
        finished = plan.num_chunks - len([k for k in pending if k > c])
        progress(ProgressEvent(STAGE, done, plan.num_samples, resumable=True, saved=True,
                               detail=f"chunks {finished}/{plan.num_chunks}"))
    return made, reused


def _stream_chunk(stream: str, editors: dict, images: np.ndarray, plan: Plan, chunk, job: BenchmarkJob) -> np.ndarray:
    from varbench.edit.run import batch_seeds

    if stream == "original":
        return images
    if stream == "recon":
        editor = editors["inpaint"]
        if job.no_leak:  # the reconstruction of the image itself, never of a blanked one
            editor = Editor(editor.generator, TASKS["inpaint"])
        return editor.reconstruct(editor.tokens(images))
    labels = plan.labels_array()
    parts = []
    for s in range(chunk.start, chunk.stop, job.batch_size):
        e = min(s + job.batch_size, chunk.stop)
        seeds = batch_seeds(job.rng, job.seed, s, e, chunk.index)  # official: one batch per chunk
        out, _, _ = editors[stream].edit(images[s - chunk.start : e - chunk.start], job.rng, seeds, labels[s:e])
        parts.append(out)
    return np.concatenate(parts)


def _write_chunk(stream_dir: Path, chunk, images: np.ndarray, run_id: str, seconds: float) -> None:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(images), allow_pickle=False)
    data = buf.getvalue()
    rec_path, npy = rundir.chunk_paths(stream_dir, chunk)
    files.write_bytes(npy, data)
    files.write_json(rec_path, {"chunk": chunk.index, "start": chunk.start, "stop": chunk.stop,
                                "file": f"{rundir.CHUNKS}/{npy.name}", "sha256": hashlib.sha256(data).hexdigest(),
                                "run_id": run_id, "seconds": round(seconds, 4), "created": rundir.now()})


def _pack(job: BenchmarkJob, plans: dict, resolution: int, run_id: str) -> dict:
    """Pack every stream's samples.npz (and the task PNGs); their records."""
    from varbench.generate import pack

    artefacts = {}
    for stream, plan in plans.items():
        d = job.out / stream
        rundir.collect_records(d, plan, run_id)  # every chunk present and of this run
        artefacts[stream] = pack.pack(d, plan, resolution)
        if stream in TASKS:
            pack.write_pngs(d, plan, resolution, list(range(plan.num_chunks)))
    return artefacts
