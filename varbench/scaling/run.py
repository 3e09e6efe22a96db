"""One model's teacher-forced validation loss over a ``ValidationSet``: resumable chunks, torchrun-sharded, merged by
rank 0 into ``OUT/<model>/result.json`` (layout in ``varbench.scaling.rundir``).

Every rank evaluates a disjoint, round-robin share of the pending chunks (``varbench.generate.plan.assign``); rank 0
owns the directory (lock, manifest, merge).  A chunk's numbers depend on its images and the batch size only; the
merged totals are float64 sums over images in evaluation order, so the process count never changes them.
``prepare`` / ``evaluate_chunks`` / ``finish`` are the three phases of ``run`` (tests call them one by one to stand in
for several ranks).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import json
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from varbench import files
from varbench.dist import DistInfo, barrier, from_main
from varbench.errors import VarbenchError
from varbench.generate.plan import assign
from varbench.generate.rundir import now
from varbench.progress import Progress, ProgressEvent, no_progress
from varbench.scaling import rundir
from varbench.scaling.rundir import MANIFEST, RESULT

DEFAULT_BATCH_SIZE = 50
DEFAULT_CHUNK_SIZE = 1000


@dataclass(frozen=True)
class ScalingJob:
    out: Path  # this model's directory (OUT/<model>)
    model: str  # the name results carry: zoo name or the custom checkpoint's name
    batch_size: int = DEFAULT_BATCH_SIZE  # images per forward pass
    chunk_size: int = DEFAULT_CHUNK_SIZE  # images per resumable chunk file
    device: str = "cpu"  # this process's device ("cuda:1" under torchrun)
    workers: int = 1  # threads decoding and resizing images
    overwrite: bool = False
    weights: dict = field(default_factory=dict)  # role -> checkpoint path (recorded)

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        if self.batch_size < 1 or self.chunk_size < 1 or self.workers < 1:
            raise VarbenchError(f"--batch-size, --chunk-size and --workers must be at least 1, got "
                                f"{self.batch_size}, {self.chunk_size}, {self.workers}")


@dataclass(frozen=True)
class ModelOutcome:
    model: str
    out: Path
    result_path: Path
    num_images: int
    num_chunks: int
    chunks_evaluated: int  # this session, all processes
    chunks_reused: int
    seconds: float
    images_per_second: float
    random_weights: bool
    already_complete: bool  # the directory held the finished result: nothing was evaluated


def preflight(job: ScalingJob, data) -> None:
    """Before any model is built: the directory is ours (or new) and holds no different run."""
    rundir.check_dir(job.out, rundir.job_identity(job, data), job.overwrite)


def run(generator, data, job: ScalingJob, info: DistInfo | None = None,
        progress: Progress = no_progress) -> ModelOutcome:
    """Evaluate every pending chunk (this rank's share), then merge on rank 0."""
    info = info or DistInfo()
    _check_model(generator, data)
    session = {"started": now(), "world_size": info.world_size, "batch_size": job.batch_size,
               "host": socket.gethostname()}
    t_start = time.perf_counter()
    lock: files.DirLock | None = None

    def prep() -> dict:
        nonlocal lock
        lock = rundir.lock(job.out)
        return prepare(generator, data, job, session)

    try:
        state = from_main(info, prep)
        t_eval = time.perf_counter()
        evaluate_chunks(generator, data, job, state, assign(state["pending"], info.rank, info.world_size), info,
                        progress)
        barrier(info)
        timing = {"t_start": t_start, "eval_seconds": time.perf_counter() - t_eval}
        if info.is_main and not state["all_done"]:
            finish(generator, data, job, state, session, timing)
        return _outcome(generator, data, job, state, timing)
    finally:
        if lock is not None:
            lock.release()


def prepare(generator, data, job: ScalingJob, session: dict) -> dict:
    """Rank 0: check the directory, clean up after a killed run, verify finished chunks, record this session."""
    out = job.out
    identity = {"job": rundir.job_identity(job, data), "model": rundir.model_identity(generator)}
    run_id = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    manifest = rundir.check_dir(out, identity["job"], job.overwrite)
    if manifest is not None and manifest.get("run_id") != run_id:
        if not job.overwrite:
            rundir.refuse_if_different(out, (manifest.get("identity") or {}).get("model"), identity["model"], "model")
        manifest = None
    if manifest is None:
        rundir.remove_owned(out)
    rundir.remove_temp_files(out)
    plan = rundir.chunks(len(data), job.chunk_size)
    done, pending, damaged = rundir.scan(out, plan, run_id)
    all_done = (manifest is not None and manifest.get("status") == "complete" and not pending
                and _result_ok(out / RESULT, run_id))
    if not all_done:
        manifest = manifest or _new_manifest(generator, data, job, identity, run_id)
        manifest["status"] = "running"
        manifest["sessions"] = [*manifest.get("sessions", []), session]
        files.write_json(out / MANIFEST, manifest)
    return {"run_id": run_id, "pending": pending, "reused": len(done), "damaged": damaged, "all_done": all_done,
            "num_chunks": len(plan)}


def _result_ok(path: Path, run_id: str) -> bool:
    try:
        return json.loads(path.read_text())["config"]["run_id"] == run_id
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _new_manifest(generator, data, job: ScalingJob, identity: dict, run_id: str) -> dict:
    from varbench import env
    from varbench.generators.protocol import model_info
    from varbench.scaling.loss import PROTOCOL

    return {"schema": rundir.MANIFEST_SCHEMA, "schema_version": rundir.MANIFEST_VERSION, "status": "running",
            "run_id": run_id, "identity": identity, "random_weights": bool(generator.random_weights),
            "model": {**model_info(generator), "describe": rundir.canonical(generator.describe()),
                      "weights": {k: str(v) for k, v in job.weights.items()}},
            "data": data.describe(), "protocol": PROTOCOL, "chunk_size": job.chunk_size,
            "env": env.collect(job.device), "sessions": [], "chunks": []}


def evaluate_chunks(generator, data, job: ScalingJob, state: dict, mine: list[int], info: DistInfo,
                    progress: Progress = no_progress) -> None:
    """Evaluate chunks ``mine`` batch by batch (the next batch decodes while this one runs), write each one."""
    import torch

    from varbench.features.inception import precise_float32
    from varbench.preprocess import to_model_input
    from varbench.scaling.loss import batch_stats

    plan = rundir.chunks(len(data), job.chunk_size)
    todo = [plan[i] for i in mine]
    total, done = sum(c.size for c in todo), 0
    res, device = int(generator.resolution), torch.device(job.device)

    def report(k: int, saved: bool) -> None:
        detail = f"chunks {state['reused'] + k}/{state['num_chunks']}"
        progress(ProgressEvent(f"validation loss {job.model}", done, total, detail=detail, resumable=True,
                               saved=saved))

    report(0, True)
    spans = [(c, s, min(s + job.batch_size, c.stop)) for c in todo for s in range(c.start, c.stop, job.batch_size)]
    parts: list = []
    finished, t_chunk = 0, time.perf_counter()
    with precise_float32(), concurrent.futures.ThreadPoolExecutor(1) as loader:
        ahead = loader.submit(data.load, range(*spans[0][1:]), res, job.workers) if spans else None
        for k, (chunk, s, e) in enumerate(spans):
            crops, shas = ahead.result()
            if k + 1 < len(spans):
                ahead = loader.submit(data.load, range(*spans[k + 1][1:]), res, job.workers)
            labels = torch.from_numpy(data.labels[s:e]).to(device)
            parts.append((batch_stats(generator.var, generator.vae, to_model_input(crops).to(device), labels), shas))
            done += e - s
            report(finished, False)
            if e == chunk.stop:
                _write_chunk(job, chunk, parts, data, time.perf_counter() - t_chunk, state["run_id"], info)
                parts, finished, t_chunk = [], finished + 1, time.perf_counter()
                report(finished, True)


def _write_chunk(job: ScalingJob, chunk, parts: list, data, seconds: float, run_id: str, info: DistInfo) -> None:
    from varbench.generate.rundir import write_chunk

    buf = io.BytesIO()
    np.savez(buf, positions=np.arange(chunk.start, chunk.stop, dtype=np.int64),
             labels=data.labels[chunk.start:chunk.stop].astype(np.int64),
             ce_sum=np.concatenate([p[0].ce_sum for p in parts]), hits=np.concatenate([p[0].hits for p in parts]),
             source_sha256=np.array([s for p in parts for s in p[1]], dtype="S64"))
    rec_path, path = rundir.chunk_paths(job.out, chunk)
    write_chunk(job.out, chunk, buf.getvalue(), path, rec_path, run_id=run_id, seconds=seconds, device=job.device,
                info=info, batch_size=job.batch_size)


def finish(generator, data, job: ScalingJob, state: dict, session: dict, timing: dict) -> dict:
    """Rank 0, after every chunk exists: merge, complete the manifest, write result.json; returns the result."""
    from varbench import env
    from varbench.results import schema
    from varbench.scaling import result as records

    plan = rundir.chunks(len(data), job.chunk_size)
    chunk_records, merged = rundir.load_chunks(job.out, plan, state["run_id"])
    if not np.array_equal(merged["positions"], np.arange(len(data))) or \
            not np.array_equal(merged["labels"], data.labels):
        raise VarbenchError(f"the chunks in {job.out / rundir.CHUNKS} do not cover the data in order; rerun with "
                            "--overwrite")
    evaluated = sum(plan[i].size for i in state["pending"])
    session.update(finished=now(), wall_seconds=round(time.perf_counter() - timing["t_start"], 3),
                   eval_seconds=round(timing["eval_seconds"], 3), chunks_evaluated=len(state["pending"]),
                   chunks_reused=state["reused"], chunks_damaged=state["damaged"],
                   images_per_second=round(evaluated / timing["eval_seconds"], 4)
                   if evaluated and timing["eval_seconds"] > 0 else None, env=env.collect(job.device))
    manifest = rundir.read_manifest(job.out)
    manifest.update(status="complete", sessions=[*manifest["sessions"][:-1], session], chunks=chunk_records,
                    env=session["env"])
    files.write_json(job.out / MANIFEST, manifest)
    result = records.build(generator, data, job, merged, state, session)
    schema.save(job.out / RESULT, result)
    return result


def _outcome(generator, data, job: ScalingJob, state: dict, timing: dict) -> ModelOutcome:
    plan = rundir.chunks(len(data), job.chunk_size)
    evaluated = sum(plan[i].size for i in state["pending"])
    seconds = timing["eval_seconds"]
    return ModelOutcome(
        model=job.model, out=job.out, result_path=job.out / RESULT, num_images=len(data), num_chunks=len(plan),
        chunks_evaluated=len(state["pending"]), chunks_reused=state["reused"],
        seconds=time.perf_counter() - timing["t_start"],
        images_per_second=evaluated / seconds if evaluated and seconds > 0 else 0.0,
        random_weights=bool(generator.random_weights), already_complete=state["all_done"])


def _check_model(generator, data) -> None:
    var, vae = generator.var, generator.vae
    if tuple(var.cfg.patch_nums) != tuple(vae.cfg.patch_nums):
        raise VarbenchError(f"{generator.name}: the VAR scales {list(var.cfg.patch_nums)} differ from the VQVAE's "
                            f"{list(vae.cfg.patch_nums)}; pass matching --patch-nums")
    top = int(data.labels.max())
    if top >= int(generator.num_classes):
        raise VarbenchError(f"label {top} is out of range for {generator.name} ({generator.num_classes} classes)")
