"""Run a sampling plan into an output directory: atomic chunks, a manifest, resume, and the packed ADM npz.

Layout of the output directory::

    manifest.json        what was run (identity + provenance), per-chunk sha256 and timings, artefacts
    chunks/000012.npy    uint8 (n, H, W, 3): global samples [start, stop) of chunk 12
    chunks/000012.json   the chunk's record (sha256 of the .npy, indices, seconds, rank, device), written after it
    samples.npz          ADM evaluator format: arr_0 uint8 (N, H, W, 3), labels int64 (N,), indices int64 (N,)
    png/000123.png       optional: one PNG per global sample index (torch-fidelity / clean-fid folders)
    result.json          a ``varbench.results`` record of kind "generate"
    .lock                flock held by the running rank 0

Every file is written to a temp file in its directory and renamed, so a killed run leaves whole files only.  A rerun
of the same command verifies finished chunks by sha256 and makes only the missing ones; the packed npz is then the
same bytes as an uninterrupted run.  A directory holding a different run is refused unless ``overwrite``.
Which process makes which chunk never changes a byte: chunks depend on the plan alone (``varbench.shard``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import io
import json
import logging
import os
import shutil
import socket
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from varbench import atomic
from varbench.dist import DistInfo, barrier, from_main
from varbench.errors import VarbenchError
from varbench.shard import DEFAULT_BATCH_SIZE, Chunk, Plan, assign
from varbench.weights import sha256_file

log = logging.getLogger(__name__)

MANIFEST_SCHEMA = "varbench.generate"
MANIFEST_VERSION = 1
MANIFEST, SAMPLES, RESULT, CHUNKS, PNGS, LOCK = "manifest.json", "samples.npz", "result.json", "chunks", "png", ".lock"
OWNED = (MANIFEST, SAMPLES, RESULT, CHUNKS, PNGS)  # what --overwrite removes; other files are left alone
# varbench.generator.to_uint8 (VAR); a generator with another rule says so in describe()["pixel_rule"] (LlamaGen)
UINT8_RULE = "uint8 = round(255 * x) for x clamped to [0, 1] (round half to even), HWC, RGB"
PNG_NAME = "{index:06d}.png"
_LOCAL_KEYS = ("device", "dtype", "checkpoints")  # generator.describe() keys left out of the run identity
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed zip member timestamp: the npz bytes depend on the data only


@dataclass(frozen=True)
class GenerateJob:
    out: Path
    plan: Plan
    model: str  # zoo name, or "custom_var" / "custom_llamagen"
    sampling: dict = field(default_factory=dict)  # options the generator was built with (cfg, top_k, ...)
    dtype: str = "fp32"
    device: str = "cpu"  # this process's device ("cuda:1" under torchrun)
    batch_size: int = DEFAULT_BATCH_SIZE  # per-sample mode only changes speed; official mode: = chunk size
    png: bool = False
    overwrite: bool = False
    weights: dict = field(default_factory=dict)  # role -> local checkpoint path (recorded, not compared)

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))


@dataclass(frozen=True)
class Progress:
    """One progress report: ``advance`` more images finished in ``stage`` ("sample" | "png") by this process."""

    stage: str
    advance: int
    done: int
    total: int  # images this process handles in this stage
    chunks_done: int
    chunks_total: int  # chunks this process handles in this stage
    chunks_reused: int = 0  # chunks already finished on disk when the run started (whole run)
    num_chunks: int = 0  # chunks in the plan


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


def job_identity(job: GenerateJob) -> dict:
    """The settings that decide the output bytes (batch size, process count, PNGs and paths do not)."""
    import torch

    from varbench import __version__

    return _canonical(
        {
            "varbench_version": __version__,  # a new release may change samples: no silent mixing
            "torch_version": torch.__version__,
            "model": job.model,
            "sampling": job.sampling,
            "dtype": job.dtype,
            "device_type": torch.device(job.device).type,
            "plan": job.plan.to_dict(),
        }
    )


def generator_identity(generator) -> dict:
    """The generator's own description (checkpoint sha256s, architecture), minus local paths and devices."""
    described = generator.describe()
    return _canonical(
        {
            "name": generator.name,
            "resolution": int(generator.resolution),
            "num_classes": int(generator.num_classes),
            "random_weights": bool(generator.random_weights),
            "checkpoint_sha256": checkpoint_hashes(described),
            "describe": _drop_local(described),
        }
    )


def checkpoint_hashes(described: dict) -> dict:
    """role -> sha256 from a ``describe()``: VAR's ``checkpoint_sha256`` or LlamaGen's ``checkpoints[role].sha256``."""
    out = dict(described.get("checkpoint_sha256") or {})
    for role, entry in (described.get("checkpoints") or {}).items():
        if isinstance(entry, dict) and entry.get("sha256"):
            out.setdefault(role, entry["sha256"])
    return out


def pixel_rule(generator) -> str:
    return generator.describe().get("pixel_rule") or UINT8_RULE


def _refuse_foreign_dir(out: Path, overwrite: bool) -> None:
    """A directory with files but no varbench manifest is someone else's: refuse it unless --overwrite."""
    strangers = _foreign_entries(out)
    if strangers and not overwrite:
        raise VarbenchError(
            f"--out {out} is not empty ({strangers[0]}, ...) and holds no varbench run; "
            "choose a new directory (or pass --overwrite to write varbench files into it)"
        )


def preflight(job: GenerateJob) -> None:
    """Cheap checks before a model is built: the directory is writable and holds no different run."""
    out = job.out
    if out.exists() and not out.is_dir():
        raise VarbenchError(f"--out {out} is a file, not a directory; choose a directory")
    manifest = _read_manifest(out)
    if manifest is None:
        _refuse_foreign_dir(out, job.overwrite)
    elif not job.overwrite:
        _refuse_if_different(out, manifest.get("identity", {}).get("job"), job_identity(job))
    with atomic.os_errors(out):
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        os.close(fd)


def created_root(out: Path) -> Path | None:
    """The outermost directory that making ``out`` would create (None when ``out`` exists): call before preflight."""
    out = Path(out).absolute()
    if out.exists():
        return None
    root = out
    while not root.parent.exists():
        root = root.parent
    return root


def remove_if_unused(out: Path, root: Path | None) -> None:
    """After a failed run: remove ``out`` (and its new parents up to ``root``) if this run created it and no chunk
    was written yet (only the lock and a manifest without chunks).  Never touches a directory that existed."""
    out = Path(out).absolute()
    if root is None or not out.is_dir():
        return
    entries = {p.name for p in out.iterdir()}
    if not entries <= {LOCK, MANIFEST, CHUNKS}:
        return
    if (out / CHUNKS).is_dir() and any((out / CHUNKS).iterdir()):
        return
    with contextlib.suppress(OSError):
        for name in (LOCK, MANIFEST):
            (out / name).unlink(missing_ok=True)
        if (out / CHUNKS).is_dir():
            (out / CHUNKS).rmdir()
        d = out
        while True:
            d.rmdir()  # only empty directories
            if d == root:
                break
            d = d.parent


def run(
    generator,
    job: GenerateJob,
    info: DistInfo | None = None,
    progress: Callable[[Progress], None] | None = None,
) -> GenerateOutcome:
    """Make every missing chunk of ``job.plan`` (this rank's share), then pack on rank 0.  See the module docstring."""
    info = info or DistInfo()
    tick = progress or (lambda _p: None)
    plan = job.plan
    _check_generator(generator, job)
    session = {"started": _now(), "world_size": info.world_size, "batch_size": job.batch_size,
               "host": socket.gethostname()}
    t_start = time.perf_counter()
    lock: _Lock | None = None
    identity: dict = {}

    def prepare() -> dict:  # rank 0 only; the checkpoint hashes in the identity are computed once
        nonlocal lock
        identity.update(job=job_identity(job), generator=generator_identity(generator))
        run_id = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
        lock = _Lock(job.out)
        return {**_prepare(generator, job, identity, run_id, session), "run_id": run_id}

    try:
        state = from_main(info, prepare)
        t_sample = time.perf_counter()
        mine = assign(state["pending"], info.rank, info.world_size)
        _sample(generator, job, state["run_id"], info, mine, state, tick)
        barrier(info)
        timing = {"t_start": t_start, "sample_seconds": time.perf_counter() - t_sample, "png_seconds": 0.0,
                  "generated": sum(plan.chunk(c).size for c in state["pending"])}
        if job.png and not state["all_done"]:
            t_png = time.perf_counter()
            every = list(range(info.rank, plan.num_chunks, info.world_size))  # PNGs of all chunks, shared out
            _write_pngs(job.out, plan, int(generator.resolution), every, tick)
            barrier(info)
            timing["png_seconds"] = time.perf_counter() - t_png
        if info.is_main and not state["all_done"]:
            _finish(generator, job, identity, session, state, timing)
        return _outcome(job, generator, state, timing)
    finally:
        if lock is not None:
            lock.release()


# ----------------------------------------------------------------------------------------------------------------
# rank 0: directory state


def _prepare(generator, job: GenerateJob, identity: dict, run_id: str, session: dict) -> dict:
    """Check the directory, clean up after a killed run, verify finished chunks, record this session."""
    out, plan = job.out, job.plan
    manifest = _read_manifest(out)
    if manifest is None:
        _refuse_foreign_dir(out, job.overwrite)
        _remove_owned(out)  # with --overwrite: stale varbench-named files of an unknown run
    elif manifest.get("run_id") != run_id:
        if not job.overwrite:
            old = manifest.get("identity") or {}
            _refuse_if_different(out, old.get("job"), identity["job"])
            _refuse_if_different(out, old.get("generator"), identity["generator"], "model")
        _remove_owned(out)
        manifest = None
    # same run (with or without --overwrite): finished chunks are identical to what would be made again, so resume
    _remove_temp_files(out)
    records, pending, damaged = _scan_chunks(out, plan, run_id)
    samples_ok = (
        manifest is not None and manifest.get("status") == "complete" and not pending and _artefact_ok(out, manifest)
    )
    all_done = samples_ok and (not job.png or _pngs_complete(out / PNGS, plan))
    if not all_done:  # record the session before any chunk is written
        manifest = manifest or _new_manifest(generator, job, identity, run_id)
        manifest["status"] = "complete" if samples_ok else "running"
        manifest["sessions"] = [*manifest.get("sessions", []), session]
        atomic.write_json(out / MANIFEST, manifest)
    if damaged:
        log.warning("%d damaged chunk(s) in %s will be made again: %s", len(damaged), out, damaged[:10])
    return {"pending": pending, "reused": len(records), "damaged": damaged, "samples_ok": samples_ok,
            "all_done": all_done}


def _scan_chunks(out: Path, plan: Plan, run_id: str) -> tuple[dict[int, dict], list[int], list[int]]:
    """Finished chunks (record present, same run, sha256 of the .npy matches), pending ones, damaged ones."""
    records: dict[int, dict] = {}
    pending: list[int] = []
    damaged: list[int] = []
    for chunk in plan.chunks():
        rec_path, npy = _chunk_paths(out, chunk)
        if not rec_path.is_file():
            pending.append(chunk.index)
            continue
        try:
            rec = json.loads(rec_path.read_text())
            ok = (
                rec.get("run_id") == run_id
                and (rec.get("start"), rec.get("stop")) == (chunk.start, chunk.stop)
                and npy.is_file()
                and sha256_file(npy) == rec.get("sha256")
            )
        except (OSError, ValueError):
            ok = False
        if ok:
            records[chunk.index] = rec
        else:
            pending.append(chunk.index)
            damaged.append(chunk.index)
            with atomic.os_errors(rec_path):
                rec_path.unlink()  # the .npy is rewritten before a new record appears
    return records, pending, damaged


def _new_manifest(generator, job: GenerateJob, identity: dict, run_id: str) -> dict:
    from varbench import env

    plan = job.plan
    described = _canonical(generator.describe())
    return {
        "schema": MANIFEST_SCHEMA,
        "schema_version": MANIFEST_VERSION,
        "status": "running",
        "run_id": run_id,
        "identity": identity,
        "model": {
            "name": job.model,
            "generator": generator.name,
            "resolution": int(generator.resolution),
            "num_classes": int(generator.num_classes),
            "random_weights": bool(generator.random_weights),
            "checkpoint_sha256": checkpoint_hashes(described),  # role -> sha256 (empty: random init)
            "describe": described,
            "weights": {k: str(v) for k, v in job.weights.items()},
        },
        "random_weights": bool(generator.random_weights),
        "sampling": _canonical(job.sampling),
        "seed": plan.seed,
        "rng": plan.rng,
        "dtype": job.dtype,
        "device": job.device,
        "plan": plan.to_dict(),
        "uint8_rule": pixel_rule(generator),
        "env": env.collect(job.device),
        "sessions": [],
        "chunks": [],
        "timings": {},
        "artefacts": {},
    }


def _finish(generator, job: GenerateJob, identity: dict, session: dict, state: dict, timing: dict) -> None:
    """Rank 0, after every chunk exists: pack, then the complete manifest and result.json."""
    from varbench import env, results

    out, plan = job.out, job.plan
    manifest = _read_manifest(out)  # written by _prepare; this session is its last entry
    if state["samples_ok"]:
        _finish_pngs_only(job, manifest, session, timing)
        return
    records = _collect_records(out, plan, state["run_id"])
    pack_seconds = 0.0
    artefacts = dict(manifest.get("artefacts") or {})
    if not state["samples_ok"]:
        t_pack = time.perf_counter()
        artefacts["samples_npz"] = {**_pack(out, plan, int(generator.resolution)), "uint8_rule": pixel_rule(generator)}
        pack_seconds = time.perf_counter() - t_pack
    if job.png or _pngs_complete(out / PNGS, plan):
        artefacts["png"] = {"dir": PNGS, "count": plan.num_samples, "name_format": PNG_NAME}
    chunk_seconds = sum(r["seconds"] for r in records)
    generated, sample_seconds = timing["generated"], timing["sample_seconds"]
    session.update(
        finished=_now(),
        wall_seconds=round(time.perf_counter() - timing["t_start"], 3),
        sample_seconds=round(sample_seconds, 3),
        pack_seconds=round(pack_seconds, 3),
        png_seconds=round(timing["png_seconds"], 3),
        chunks_generated=len(state["pending"]),
        chunks_reused=state["reused"],
        chunks_regenerated=len(state["damaged"]),
        chunks_regenerated_indices=state["damaged"],
        images_per_second=round(generated / sample_seconds, 4) if generated and sample_seconds > 0 else None,
        env=env.collect(job.device),
    )
    sessions = [*manifest["sessions"][:-1], session]
    last = ("wall_seconds", "sample_seconds", "pack_seconds", "png_seconds", "images_per_second")
    manifest.update(
        status="complete",
        env=session["env"],
        sessions=sessions,
        chunks=records,
        artefacts=artefacts,
        timings={
            "chunk_seconds_total": round(chunk_seconds, 3),
            "images_per_second_per_process": round(plan.num_samples / chunk_seconds, 4) if chunk_seconds > 0 else None,
            "sessions_wall_seconds": round(sum(s.get("wall_seconds") or 0.0 for s in sessions), 3),
            "last_session": {k: session[k] for k in last},
        },
    )
    atomic.write_json(out / MANIFEST, manifest)
    config = {
        "model": job.model,
        "generator": identity["generator"],
        "weights": manifest["model"]["weights"],
        "sampling": manifest["sampling"],
        "seed": plan.seed,
        "rng": plan.rng,
        "dtype": job.dtype,
        "device": job.device,
        "plan": plan.to_dict(),
        "batch_size": job.batch_size,
        "world_size": session["world_size"],
        "png": job.png,
        "out": str(out),
    }
    summary = {
        "num_samples": plan.num_samples,
        "resolution": int(generator.resolution),
        "samples_npz": str(out / SAMPLES),
        "samples_sha256": artefacts["samples_npz"]["sha256"],
        "png_dir": str(out / PNGS) if "png" in artefacts else None,
        "num_chunks": plan.num_chunks,
        "chunks_generated": len(state["pending"]),
        "chunks_reused": state["reused"],
        "wall_seconds": session["wall_seconds"],
        "images_per_second": session["images_per_second"],
        "images_per_second_per_process": manifest["timings"]["images_per_second_per_process"],
        "uint8_rule": manifest["uint8_rule"],
    }
    results.save(out / RESULT, results.make("generate", config, summary, device=job.device,
                                            random_weights=bool(generator.random_weights)))


def _finish_pngs_only(job: GenerateJob, manifest: dict, session: dict, timing: dict) -> None:
    """A finished run that only gained PNGs: record the png artefact and this session; the packed samples, chunk
    timings and result.json's numbers stay those of the session that made them (result.json only gains png_dir)."""
    from varbench import results

    out, plan = job.out, job.plan
    artefacts = dict(manifest.get("artefacts") or {})
    artefacts["png"] = {"dir": PNGS, "count": plan.num_samples, "name_format": PNG_NAME}
    session.update(finished=_now(), wall_seconds=round(time.perf_counter() - timing["t_start"], 3),
                   png_seconds=round(timing["png_seconds"], 3), pngs_only=True)
    manifest.update(artefacts=artefacts, sessions=[*manifest["sessions"][:-1], session])
    atomic.write_json(out / MANIFEST, manifest)
    try:
        result = results.load(out / RESULT, "generate")
    except VarbenchError as e:
        log.warning("%s; left as it is (the PNGs are recorded in %s)", e, out / MANIFEST)
        return
    result["results"]["png_dir"] = str(out / PNGS)
    results.save(out / RESULT, result)


def _outcome(job: GenerateJob, generator, state: dict, timing: dict) -> GenerateOutcome:
    generated, sample_seconds = timing["generated"], timing["sample_seconds"]
    return GenerateOutcome(
        out=job.out,
        samples=job.out / SAMPLES,
        png_dir=job.out / PNGS if job.png else None,
        num_samples=job.plan.num_samples,
        resolution=int(generator.resolution),
        num_chunks=job.plan.num_chunks,
        chunks_generated=len(state["pending"]),
        chunks_reused=state["reused"],
        chunks_regenerated=len(state["damaged"]),
        seconds=time.perf_counter() - timing["t_start"],
        images_per_second=generated / sample_seconds if generated and sample_seconds > 0 else 0.0,
        random_weights=bool(generator.random_weights),
        already_complete=state["all_done"],
        pngs_only=state["samples_ok"] and not state["all_done"],
    )


# ----------------------------------------------------------------------------------------------------------------
# every rank: sampling and PNGs


def _sample(generator, job: GenerateJob, run_id: str, info: DistInfo, mine: list[int], state: dict, tick) -> None:
    """Make this rank's chunks: images in batches, then the .npy and, after it, the chunk's record."""
    import torch

    from varbench.env import describe_device

    plan = job.plan
    if not mine:
        return
    labels = plan.labels_array()
    chunks = [plan.chunk(c) for c in mine]
    total = sum(c.size for c in chunks)
    device_name = describe_device(job.device).get("gpu_name") or "cpu"
    threads = torch.get_num_threads()  # CPU numerics (and so the bytes) can depend on it
    done = 0

    def report(n: int, chunks_done: int) -> None:
        tick(Progress("sample", n, done, total, chunks_done, len(chunks), state["reused"], plan.num_chunks))

    report(0, 0)
    for k, chunk in enumerate(chunks):
        t0 = time.perf_counter()
        parts = []
        if plan.rng == "official":
            chunk_labels = labels[chunk.start : chunk.stop].tolist()
            images = generator.generate_official(chunk_labels, plan.chunk_seed(chunk.index))
            parts.append(_checked(generator, images, chunk.size))
            done += chunk.size
            report(chunk.size, k)
        else:
            for s in range(chunk.start, chunk.stop, job.batch_size):
                e = min(s + job.batch_size, chunk.stop)
                images = generator.generate(labels[s:e].tolist(), plan.sample_seeds(s, e))
                parts.append(_checked(generator, images, e - s))
                done += e - s
                report(e - s, k)
        images = parts[0] if len(parts) == 1 else np.concatenate(parts)
        seconds = time.perf_counter() - t0
        buf = io.BytesIO()
        np.save(buf, images, allow_pickle=False)
        data = buf.getvalue()
        rec_path, npy = _chunk_paths(job.out, chunk)
        atomic.write_bytes(npy, data)
        atomic.write_json(
            rec_path,
            {
                "chunk": chunk.index,
                "start": chunk.start,
                "stop": chunk.stop,
                "file": f"{CHUNKS}/{npy.name}",
                "sha256": hashlib.sha256(data).hexdigest(),
                "run_id": run_id,
                "seconds": round(seconds, 4),
                "images_per_second": round(chunk.size / seconds, 4) if seconds > 0 else None,
                "batch_size": chunk.size if plan.rng == "official" else job.batch_size,
                "rank": info.rank,
                "world_size": info.world_size,
                "device": job.device,
                "device_name": device_name,
                "torch_threads": threads,
                "host": socket.gethostname(),
                "created": _now(),
            },
        )
        report(0, k + 1)


def _checked(generator, images, n: int) -> np.ndarray:
    r = int(generator.resolution)
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.shape != (n, r, r, 3):
        got = f"{getattr(images, 'dtype', type(images).__name__)} {getattr(images, 'shape', '')}"
        raise ValueError(f"generator {generator.name} returned {got}; expected uint8 ({n}, {r}, {r}, 3)")
    return images


def _write_pngs(out: Path, plan: Plan, resolution: int, chunk_indices: list[int], tick) -> None:
    """Write ``png/{index:06d}.png`` for every sample of these chunks that has no PNG yet."""
    from PIL import Image

    png_dir = out / PNGS
    with atomic.os_errors(png_dir):
        png_dir.mkdir(parents=True, exist_ok=True)
    todo = [
        i
        for chunk in (plan.chunk(c) for c in chunk_indices)
        for i in range(chunk.start, chunk.stop)
        if not (png_dir / PNG_NAME.format(index=i)).is_file()
    ]
    if not todo:
        return
    reader = _ChunkReader(out, plan, resolution)

    def write(i: int) -> None:
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(reader.row(i))).save(buf, format="PNG")
        atomic.write_bytes(png_dir / PNG_NAME.format(index=i), buf.getvalue())

    tick(Progress("png", 0, 0, len(todo), 0, len(chunk_indices)))
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        for done, _ in enumerate(pool.map(write, todo), 1):
            tick(Progress("png", 1, done, len(todo), 0, len(chunk_indices)))


def _pngs_complete(png_dir: Path, plan: Plan) -> bool:
    if not png_dir.is_dir():
        return False
    names = {p.name for p in png_dir.iterdir()}
    return all(PNG_NAME.format(index=i) in names for i in range(plan.num_samples))


# ----------------------------------------------------------------------------------------------------------------
# rank 0: packing


class _ChunkReader:
    """Random access to sample rows through memory-mapped chunk files (bounded number open at once)."""

    def __init__(self, out: Path, plan: Plan, resolution: int):
        self.out, self.plan, self.resolution = out, plan, resolution
        self._open = functools.lru_cache(maxsize=64)(self._load)

    def _load(self, c: int) -> np.ndarray:
        chunk = self.plan.chunk(c)
        _, npy = _chunk_paths(self.out, chunk)
        try:
            arr = np.load(npy, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise VarbenchError(
                f"chunk file {npy} is missing or unreadable ({type(e).__name__}); rerun the same command to remake it "
                "(multi-node runs need --out on a filesystem shared by all nodes)"
            ) from None
        want = (chunk.size, self.resolution, self.resolution, 3)
        if arr.dtype != np.uint8 or arr.shape != want:
            raise VarbenchError(
                f"chunk file {npy} holds {arr.dtype} {arr.shape}, expected uint8 {want}; rerun to remake it"
            )
        return arr

    def row(self, index: int) -> np.ndarray:
        c = index // self.plan.chunk_size
        return self._open(c)[index - c * self.plan.chunk_size]


def _pack(out: Path, plan: Plan, resolution: int, block: int = 256) -> dict:
    """Stream ``samples.npz`` (arr_0, labels, indices) in the plan's order; return its artefact record."""
    order = plan.order()
    labels = plan.labels_array()[order]
    reader = _ChunkReader(out, plan, resolution)
    shape = (plan.num_samples, resolution, resolution, 3)

    def image_blocks() -> Iterator[bytes]:
        for p in range(0, plan.num_samples, block):
            idx = order[p : p + block]
            buf = np.empty((len(idx), resolution, resolution, 3), np.uint8)
            for j, i in enumerate(idx):
                buf[j] = reader.row(int(i))
            yield buf.tobytes()

    path = out / SAMPLES
    with atomic.open_write(path) as f:
        write_npz(
            f,
            [
                ("arr_0", np.dtype(np.uint8), shape, image_blocks()),
                ("labels", labels.dtype, labels.shape, iter([labels.tobytes()])),
                ("indices", order.dtype, order.shape, iter([order.tobytes()])),
            ],
        )
    return {
        "file": SAMPLES,
        "sha256": sha256_file(path),
        "bytes": path.stat().st_size,
        "arrays": {"arr_0": ["uint8", list(shape)], "labels": ["int64", [plan.num_samples]],
                   "indices": ["int64", [plan.num_samples]]},
        "order": "shuffled" if not plan.explicit else "label order",
    }


def write_npz(f, members) -> None:
    """Write an uncompressed npz to the binary file ``f`` from ``(name, dtype, shape, byte blocks)`` members.

    Readable by ``np.load(allow_pickle=False)`` and the ADM evaluator; member timestamps are fixed, so the bytes
    depend only on the data.  Blocks are C-order bytes, streamed (the whole array is never in memory).
    """
    from numpy.lib import format as npy_format

    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, dtype, shape, blocks in members:
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
            written = 0
            with zf.open(info, mode="w", force_zip64=True) as member:
                descr = npy_format.dtype_to_descr(np.dtype(dtype))
                header = {"descr": descr, "fortran_order": False, "shape": tuple(shape)}
                npy_format.write_array_header_1_0(member, header)
                for data in blocks:
                    member.write(data)
                    written += len(data)
            if written != expected:
                raise ValueError(f"npz member {name}: wrote {written} bytes, expected {expected}")


# ----------------------------------------------------------------------------------------------------------------
# helpers


def _check_generator(generator, job: GenerateJob) -> None:
    plan = job.plan
    top = int(plan.labels_array().max())
    if top >= int(generator.num_classes):
        raise VarbenchError(f"label {top} is out of range for {generator.name} ({generator.num_classes} classes)")
    if plan.rng == "official" and not callable(getattr(generator, "generate_official", None)):
        raise VarbenchError(f"model {generator.name} has no official RNG mode; use --rng per-sample")
    if job.batch_size < 1:
        raise VarbenchError(f"--batch-size must be at least 1, got {job.batch_size}")


def _chunk_paths(out: Path, chunk: Chunk) -> tuple[Path, Path]:
    return out / CHUNKS / f"{chunk.stem}.json", out / CHUNKS / f"{chunk.stem}.npy"


def _collect_records(out: Path, plan: Plan, run_id: str) -> list[dict]:
    records = []
    for chunk in plan.chunks():
        rec_path, _ = _chunk_paths(out, chunk)
        try:
            rec = json.loads(rec_path.read_text())
        except (OSError, ValueError):
            raise VarbenchError(
                f"chunk record {rec_path} is missing after sampling; rerun the same command "
                "(multi-node runs need --out on a filesystem shared by all nodes)"
            ) from None
        if rec.get("run_id") != run_id:
            raise VarbenchError(f"chunk record {rec_path} belongs to another run; rerun the same command")
        records.append(rec)
    return records


def _artefact_ok(out: Path, manifest: dict) -> bool:
    want = (manifest.get("artefacts") or {}).get("samples_npz") or {}
    path = out / SAMPLES
    return bool(want.get("sha256")) and path.is_file() and sha256_file(path) == want["sha256"]


def _read_manifest(out: Path) -> dict | None:
    path = out / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise VarbenchError(
            f"{path} is unreadable ({type(e).__name__}); use another --out or pass --overwrite"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        raise VarbenchError(f"{path} is not a varbench generate manifest; use another --out or pass --overwrite")
    if manifest.get("schema_version") != MANIFEST_VERSION:
        raise VarbenchError(
            f"{path} has manifest version {manifest.get('schema_version')!r}, this varbench writes "
            f"{MANIFEST_VERSION}; use another --out or pass --overwrite"
        )
    return manifest


def _refuse_if_different(out: Path, old: dict | None, new: dict, what: str = "settings") -> None:
    derived = ("sha256", "planned_classes", "num_chunks", "_rule")  # follow from other keys: list them last
    diffs = sorted(_diff(old or {}, new), key=lambda d: any(m in d.split(" ")[0] for m in derived))
    if diffs:
        shown = "; ".join(diffs[:3]) + (f"; +{len(diffs) - 3} more" if len(diffs) > 3 else "")
        raise VarbenchError(
            f"--out {out} holds a different run ({what} differ: {shown}); rerun its own command to resume it, "
            "choose another --out, or pass --overwrite to replace it"
        )


def _diff(old, new, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new or old[key] != new[key]:
                if key in old and key in new and isinstance(old[key], dict) and isinstance(new[key], dict):
                    out += _diff(old[key], new[key], name)
                else:
                    out.append(f"{name} {_short(old.get(key, '<unset>'))} -> {_short(new.get(key, '<unset>'))}")
        return out
    return [] if old == new else [f"{prefix or 'value'} {_short(old)} -> {_short(new)}"]


def _short(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


def _foreign_entries(out: Path) -> list[str]:
    if not out.is_dir():
        return []
    return sorted(p.name for p in out.iterdir() if p.name != LOCK and not _is_temp(p.name))


def _is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def _remove_temp_files(out: Path) -> None:
    """Temp files left by a killed run (only while holding the lock: nobody else is writing)."""
    for d in (out, out / CHUNKS, out / PNGS):
        if d.is_dir():
            for p in d.iterdir():
                if _is_temp(p.name) and p.is_file():
                    with atomic.os_errors(p):
                        p.unlink()


def _remove_owned(out: Path) -> None:
    with atomic.os_errors(out):
        for name in OWNED:
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()


def _drop_local(obj):
    """Drop keys that name local files or devices (they may differ between machines of the same run; the
    checkpoint sha256s and the job's device type and dtype stay in the identity)."""
    if isinstance(obj, dict):
        return {k: _drop_local(v) for k, v in obj.items() if "path" not in str(k).lower() and str(k) not in _LOCAL_KEYS}
    if isinstance(obj, (list, tuple)):
        return [_drop_local(v) for v in obj]
    return obj


def _canonical(obj):
    return json.loads(json.dumps(obj, sort_keys=True, default=atomic.json_default))


def _now() -> str:
    from varbench.results import now_utc

    return now_utc()


class _Lock:
    """An exclusive flock on ``DIR/.lock`` (released by the kernel if the process dies)."""

    def __init__(self, out: Path):
        with atomic.os_errors(out):
            out.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(self.fd)
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise VarbenchError(
                    f"another varbench generate is writing to {out}; wait for it or use another --out"
                ) from None
            raise VarbenchError(atomic.describe_os_error(out / LOCK, e)) from None

    def release(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
