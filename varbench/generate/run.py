"""Run a sampling plan into an output directory (``varbench.generate.rundir``): atomic chunks, resume, packing.

Every file is written to a temp file in its directory and renamed, so a killed run leaves whole files only.  A rerun
of the same command verifies finished chunks by sha256 and makes only the missing ones; the packed npz is then the
same bytes as an uninterrupted run.  Which process makes which chunk never changes a byte: chunks depend on the plan
alone (``varbench.generate.plan``).  Rank 0 owns the directory (lock, manifest, packing); every rank samples.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from varbench import files
from varbench.dist import DistInfo, barrier, from_main
from varbench.errors import VarbenchError
from varbench.generate import pack, rundir
from varbench.generate.plan import DEFAULT_BATCH_SIZE, Plan, assign
from varbench.generate.rundir import MANIFEST, PNG_NAME, PNGS, RESULT, SAMPLES
from varbench.progress import Progress, ProgressEvent, no_progress

log = logging.getLogger(__name__)

# varbench.generators.protocol.to_uint8 (VAR); a generator with another rule says so in describe()["pixel_rule"]
UINT8_RULE = "uint8 = round(255 * x) for x clamped to [0, 1] (round half to even), HWC, RGB"
SAMPLE_STAGE = "sampling"


@dataclass(frozen=True)
class GenerateJob:
    out: Path
    plan: Plan
    model: str  # zoo name, or "custom_var" / "custom_llamagen"
    sampling: dict = field(default_factory=dict)  # the sampling dataclass the generator applies, as a dict
    dtype: str = "fp32"
    device: str = "cpu"  # this process's device ("cuda:1" under torchrun)
    batch_size: int = DEFAULT_BATCH_SIZE  # per-sample mode only changes speed; official mode: = chunk size
    png: bool = False
    overwrite: bool = False
    weights: dict = field(default_factory=dict)  # role -> local checkpoint path (recorded, not compared)
    threads: int | None = None  # CPU intra-op threads (the bytes can depend on them); None: torch's current setting

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))


@dataclass(frozen=True)
class GenerateOutcome:
    out: Path
    samples: Path
    png_dir: Path | None
    num_samples: int
    resolution: int
    num_chunks: int
    chunks_generated: int  # this session, all processes
    chunks_reused: int  # verified and skipped
    chunks_regenerated: int  # found damaged (hash mismatch) and made again
    seconds: float  # wall time of this session
    images_per_second: float  # images generated this session / sampling wall time (all processes together)
    random_weights: bool
    already_complete: bool  # nothing to do: the directory held the finished run
    pngs_only: bool = False  # the packed samples were already there; this session only wrote PNGs


def pixel_rule(generator) -> str:
    return generator.describe().get("pixel_rule") or UINT8_RULE


def preflight(job: GenerateJob) -> None:
    """Cheap checks before a model is built: the directory is writable and holds no different run."""
    out = job.out
    if out.exists() and not out.is_dir():
        raise VarbenchError(f"--out {out} is a file, not a directory; choose a directory")
    manifest = rundir.read_manifest(out, job.overwrite)
    if manifest is None:
        rundir.refuse_foreign_dir(out, job.overwrite)
    elif not job.overwrite:
        rundir.refuse_if_different(out, manifest.get("identity", {}).get("job"), rundir.job_identity(job))
    with files.os_errors(out):
        out.mkdir(parents=True, exist_ok=True)
        os.close(os.open(out / rundir.LOCK, os.O_RDWR | os.O_CREAT, 0o644))


def run(generator, job: GenerateJob, info: DistInfo | None = None,
        progress: Progress = no_progress) -> GenerateOutcome:
    """Make every missing chunk of ``job.plan`` (this rank's share), then pack on rank 0."""
    info = info or DistInfo()
    plan = job.plan
    _check_generator(generator, job)
    session = {"started": rundir.now(), "world_size": info.world_size, "batch_size": job.batch_size,
               "host": socket.gethostname()}
    t_start = time.perf_counter()
    lock: files.DirLock | None = None
    identity: dict = {}

    def prepare() -> dict:  # rank 0 only; the checkpoint hashes in the identity are computed once
        nonlocal lock
        identity.update(job=rundir.job_identity(job), generator=rundir.generator_identity(generator))
        run_id = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
        lock = rundir.lock(job.out)
        return {**_prepare(generator, job, identity, run_id, session), "run_id": run_id}

    try:
        state = from_main(info, prepare)
        t_sample = time.perf_counter()
        _sample(generator, job, state, info, assign(state["pending"], info.rank, info.world_size), progress)
        barrier(info)
        timing = {"t_start": t_start, "sample_seconds": time.perf_counter() - t_sample, "png_seconds": 0.0,
                  "generated": sum(plan.chunk(c).size for c in state["pending"])}
        if job.png and not state["all_done"]:
            t_png = time.perf_counter()
            every = list(range(info.rank, plan.num_chunks, info.world_size))  # PNGs of all chunks, shared out
            pack.write_pngs(job.out, plan, int(generator.resolution), every, progress)
            barrier(info)
            timing["png_seconds"] = time.perf_counter() - t_png
        if info.is_main and not state["all_done"]:
            _finish(generator, job, identity, session, state, timing)
        return _outcome(job, generator, state, timing)
    finally:
        if lock is not None:
            lock.release()


def _prepare(generator, job: GenerateJob, identity: dict, run_id: str, session: dict) -> dict:
    """Check the directory, clean up after a killed run, verify finished chunks, record this session."""
    out, plan = job.out, job.plan
    manifest = rundir.read_manifest(out, job.overwrite)
    if manifest is None:
        rundir.refuse_foreign_dir(out, job.overwrite)
        rundir.remove_owned(out)  # with --overwrite: stale varbench-named files of an unknown run
    elif manifest.get("run_id") != run_id:
        if not job.overwrite:
            old = manifest.get("identity") or {}
            rundir.refuse_if_different(out, old.get("job"), identity["job"])
            rundir.refuse_if_different(out, old.get("generator"), identity["generator"], "model")
        rundir.remove_owned(out)
        manifest = None
    # same run (with or without --overwrite): finished chunks are identical to what would be made again, so resume
    rundir.remove_temp_files(out)
    records, pending, damaged = rundir.scan_chunks(out, plan, run_id)
    samples_ok = (manifest is not None and manifest.get("status") == "complete" and not pending
                  and rundir.artefact_ok(out, manifest))
    all_done = samples_ok and (not job.png or pack.pngs_complete(out / PNGS, plan))
    if not all_done:  # record the session before any chunk is written
        manifest = manifest or _new_manifest(generator, job, identity, run_id)
        manifest["status"] = "complete" if samples_ok else "running"
        manifest["sessions"] = [*manifest.get("sessions", []), session]
        files.write_json(out / MANIFEST, manifest)
    if damaged:
        log.warning("%d damaged chunk(s) in %s will be made again: %s", len(damaged), out, damaged[:10])
    return {"pending": pending, "reused": len(records), "damaged": damaged, "samples_ok": samples_ok,
            "all_done": all_done}


def _new_manifest(generator, job: GenerateJob, identity: dict, run_id: str) -> dict:
    from varbench import env
    from varbench.generators.protocol import model_info, sampling_record

    return {
        "schema": rundir.MANIFEST_SCHEMA, "schema_version": rundir.MANIFEST_VERSION, "status": "running",
        "run_id": run_id, "identity": identity, "random_weights": bool(generator.random_weights),
        "model": {**model_info(generator), "describe": rundir.canonical(generator.describe()),
                  "weights": {k: str(v) for k, v in job.weights.items()}},
        "sampling": rundir.canonical(sampling_record(generator)),
        "seed": job.plan.seed, "rng": job.plan.rng, "dtype": job.dtype, "device": job.device,
        "plan": job.plan.to_dict(), "uint8_rule": pixel_rule(generator), "env": env.collect(job.device),
        "sessions": [], "chunks": [], "timings": {}, "artefacts": {},
    }


def _sample(generator, job: GenerateJob, state: dict, info: DistInfo, mine: list[int], progress: Progress) -> None:
    """Make this rank's chunks: images in batches, then the .npy and, after it, the chunk's record."""
    plan = job.plan
    if not mine:
        return
    labels = plan.labels_array()
    chunks = [plan.chunk(c) for c in mine]
    total, done = sum(c.size for c in chunks), 0

    def report(chunks_done: int, saved: bool) -> None:
        detail = f"chunks {state['reused'] + chunks_done}/{plan.num_chunks}"
        progress(ProgressEvent(SAMPLE_STAGE, done, total, detail=detail, resumable=True, saved=saved))

    report(0, True)
    for k, chunk in enumerate(chunks):
        t0 = time.perf_counter()
        parts = []
        if plan.rng == "official":
            images = generator.generate_official(labels[chunk.start : chunk.stop].tolist(), plan.chunk_seed(chunk.index))
            parts.append(_checked(generator, images, chunk.size))
            done += chunk.size
            report(k, False)
        else:
            for s in range(chunk.start, chunk.stop, job.batch_size):
                e = min(s + job.batch_size, chunk.stop)
                parts.append(_checked(generator, generator.generate(labels[s:e].tolist(), plan.sample_seeds(s, e)), e - s))
                done += e - s
                report(k, False)
        _write_chunk(job, chunk, np.concatenate(parts), time.perf_counter() - t0, state["run_id"], info)
        report(k + 1, True)


def _write_chunk(job: GenerateJob, chunk, images: np.ndarray, seconds: float, run_id: str, info: DistInfo) -> None:
    buf = io.BytesIO()
    np.save(buf, images, allow_pickle=False)
    rec_path, npy = rundir.chunk_paths(job.out, chunk)
    official = job.plan.rng == "official"
    rundir.write_chunk(job.out, chunk, buf.getvalue(), npy, rec_path, run_id=run_id, seconds=seconds,
                       device=job.device, info=info, batch_size=chunk.size if official else job.batch_size,
                       seed=job.plan.chunk_seed(chunk.index) if official else None)


def _checked(generator, images, n: int) -> np.ndarray:
    r = int(generator.resolution)
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.shape != (n, r, r, 3):
        got = f"{getattr(images, 'dtype', type(images).__name__)} {getattr(images, 'shape', '')}"
        raise ValueError(f"generator {generator.name} returned {got}; expected uint8 ({n}, {r}, {r}, 3)")
    return images


def _finish(generator, job: GenerateJob, identity: dict, session: dict, state: dict, timing: dict) -> None:
    """Rank 0, after every chunk exists: pack, then the complete manifest and result.json."""
    out, plan = job.out, job.plan
    manifest = rundir.read_manifest(out)  # written by _prepare; this session is its last entry
    if state["samples_ok"]:
        _finish_pngs_only(job, manifest, session, timing)
        return
    records = rundir.collect_records(out, plan, state["run_id"])
    t_pack = time.perf_counter()
    artefacts = {**(manifest.get("artefacts") or {}),
                 "samples_npz": {**pack.pack(out, plan, int(generator.resolution)), "uint8_rule": pixel_rule(generator)}}
    if job.png or pack.pngs_complete(out / PNGS, plan):
        artefacts["png"] = {"dir": PNGS, "count": plan.num_samples, "name_format": PNG_NAME}
    _record_session(session, job, state, timing, time.perf_counter() - t_pack)
    sessions = [*manifest["sessions"][:-1], session]
    chunk_seconds = sum(r["seconds"] for r in records)
    last = ("wall_seconds", "sample_seconds", "pack_seconds", "png_seconds", "images_per_second")
    manifest.update(status="complete", env=session["env"], sessions=sessions, chunks=records, artefacts=artefacts,
                    timings={
                        "chunk_seconds_total": round(chunk_seconds, 3),
                        "images_per_second_per_process":
                            round(plan.num_samples / chunk_seconds, 4) if chunk_seconds > 0 else None,
                        "sessions_wall_seconds": round(sum(s.get("wall_seconds") or 0.0 for s in sessions), 3),
                        "last_session": {k: session[k] for k in last},
                    })
    files.write_json(out / MANIFEST, manifest)
    _write_result(generator, job, identity, manifest, session, state)


def _record_session(session: dict, job: GenerateJob, state: dict, timing: dict, pack_seconds: float) -> None:
    from varbench import env

    generated, sample_seconds = timing["generated"], timing["sample_seconds"]
    session.update(
        finished=rundir.now(), wall_seconds=round(time.perf_counter() - timing["t_start"], 3),
        sample_seconds=round(sample_seconds, 3), pack_seconds=round(pack_seconds, 3),
        png_seconds=round(timing["png_seconds"], 3), chunks_generated=len(state["pending"]),
        chunks_reused=state["reused"], chunks_regenerated=len(state["damaged"]),
        chunks_regenerated_indices=state["damaged"],
        images_per_second=round(generated / sample_seconds, 4) if generated and sample_seconds > 0 else None,
        env=env.collect(job.device),
    )


def _write_result(generator, job: GenerateJob, identity: dict, manifest: dict, session: dict, state: dict) -> None:
    from varbench.generators.protocol import model_info, sampling_record
    from varbench.results import schema

    out, plan, npz = job.out, job.plan, manifest["artefacts"]["samples_npz"]
    config = {"model": job.model, "generator": identity["generator"], "weights": manifest["model"]["weights"],
              "sampling": job.sampling, "seed": plan.seed, "rng": plan.rng, "dtype": job.dtype, "device": job.device,
              "plan": plan.to_dict(), "batch_size": job.batch_size, "world_size": session["world_size"],
              "threads": identity["job"].get("cpu_threads"), "png": job.png, "out": str(out)}
    res = int(generator.resolution)
    summary = schema.GenerateResults(
        num_samples=plan.num_samples, resolution=res, samples_npz=str(out / SAMPLES), samples_sha256=npz["sha256"],
        png_dir=str(out / PNGS) if "png" in manifest["artefacts"] else None, num_chunks=plan.num_chunks,
        chunks_generated=len(state["pending"]), chunks_reused=state["reused"], wall_seconds=session["wall_seconds"],
        images_per_second=session["images_per_second"],
        images_per_second_per_process=manifest["timings"]["images_per_second_per_process"],
        uint8_rule=manifest["uint8_rule"])
    protocol = schema.empty_protocol()
    protocol.update(
        model=model_info(generator), sampling=sampling_record(generator), labels=plan.labels_info(),
        seeds=plan.seeds_info(),
        samples=schema.SamplesInfo(count=plan.num_samples, resolution=res, height=res, width=res,
                                   sha256=npz["array_sha256"], path=str(out / SAMPLES), kind="generate_dir",
                                   order=plan.order_name))
    warnings = [f"{generator.name} has random weights: its samples test the pipeline, not a model"] \
        if generator.random_weights else []
    schema.save(out / RESULT, schema.make("generate", config, summary, protocol, device=job.device,
                                          random_weights=bool(generator.random_weights), warnings=warnings))


def _finish_pngs_only(job: GenerateJob, manifest: dict, session: dict, timing: dict) -> None:
    """A finished run that only gained PNGs: record the png artefact and this session; the packed samples, chunk
    timings and result.json's numbers stay those of the session that made them (result.json only gains png_dir)."""
    from varbench.results import read, schema

    out, plan = job.out, job.plan
    artefacts = {**(manifest.get("artefacts") or {}),
                 "png": {"dir": PNGS, "count": plan.num_samples, "name_format": PNG_NAME}}
    session.update(finished=rundir.now(), wall_seconds=round(time.perf_counter() - timing["t_start"], 3),
                   png_seconds=round(timing["png_seconds"], 3), pngs_only=True)
    manifest.update(artefacts=artefacts, sessions=[*manifest["sessions"][:-1], session])
    files.write_json(out / MANIFEST, manifest)
    try:
        result = read.load(out / RESULT, "generate")
    except VarbenchError as e:
        log.warning("%s; left as it is (the PNGs are recorded in %s)", e, out / MANIFEST)
        return
    result["results"]["png_dir"] = str(out / PNGS)
    schema.save(out / RESULT, result)


def _outcome(job: GenerateJob, generator, state: dict, timing: dict) -> GenerateOutcome:
    generated, sample_seconds = timing["generated"], timing["sample_seconds"]
    return GenerateOutcome(
        out=job.out, samples=job.out / SAMPLES, png_dir=job.out / PNGS if job.png else None,
        num_samples=job.plan.num_samples, resolution=int(generator.resolution), num_chunks=job.plan.num_chunks,
        chunks_generated=len(state["pending"]), chunks_reused=state["reused"], chunks_regenerated=len(state["damaged"]),
        seconds=time.perf_counter() - timing["t_start"],
        images_per_second=generated / sample_seconds if generated and sample_seconds > 0 else 0.0,
        random_weights=bool(generator.random_weights), already_complete=state["all_done"],
        pngs_only=state["samples_ok"] and not state["all_done"],
    )


def _check_generator(generator, job: GenerateJob) -> None:
    plan = job.plan
    top = int(plan.labels_array().max())
    if top >= int(generator.num_classes):
        raise VarbenchError(f"label {top} is out of range for {generator.name} ({generator.num_classes} classes)")
    if plan.rng == "official" and not callable(getattr(generator, "generate_official", None)):
        raise VarbenchError(f"model {generator.name} has no official RNG mode; use --rng per-sample")
    if job.batch_size < 1:
        raise VarbenchError(f"--batch-size must be at least 1, got {job.batch_size}")


def sampling_dict(settings) -> dict:
    """A sampling dataclass as the job's (and the identity's) plain dict; {} when there is none."""
    return {} if settings is None else dataclasses.asdict(settings)
