"""The output directory of ``varbench generate``: its layout, manifest, lock, and what may be removed or resumed.

Layout::

    manifest.json        what was run (identity + provenance), per-chunk sha256 and timings, artefacts
    chunks/000012.npy    uint8 (n, H, W, 3): global samples [start, stop) of chunk 12
    chunks/000012.json   the chunk's record (sha256 of the .npy, indices, seconds, rank, device), written after it
    samples.npz          ADM evaluator format: arr_0 uint8 (N, H, W, 3), labels int64 (N,), indices int64 (N,)
    png/000123.png       optional: one PNG per global sample index (torch-fidelity / clean-fid folders)
    result.json          a ``varbench.results`` record of kind "generate"
    .lock                flock held by the running rank 0

A directory holding a different run is refused unless ``overwrite``; ``--overwrite`` removes only what varbench
wrote (the names above), never another file, and never a ``manifest.json`` varbench did not write.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

from varbench import files
from varbench.errors import VarbenchError
from varbench.files import sha256_file
from varbench.generate.plan import Chunk, Plan

MANIFEST_SCHEMA = "varbench.generate"
MANIFEST_VERSION = 2
MANIFEST, SAMPLES, RESULT, CHUNKS, PNGS, LOCK = "manifest.json", "samples.npz", "result.json", "chunks", "png", files.DirLock.NAME
PNG_NAME = "{index:06d}.png"
_CHUNK_FILE = re.compile(r"^\d{6}\.(npy|json)$")
_PNG_FILE = re.compile(r"^\d{6}\.png$")
_LOCAL_KEYS = ("device", "dtype", "checkpoints")  # generator.describe() keys left out of the run identity


def refuse_foreign_dir(out: Path, overwrite: bool) -> None:
    """A directory with files but no varbench manifest is someone else's: refuse it unless --overwrite."""
    strangers = foreign_entries(out)
    if strangers and not overwrite:
        raise VarbenchError(
            f"--out {out} is not empty ({strangers[0]}, ...) and holds no varbench run; "
            "choose a new directory (or pass --overwrite to write varbench files into it)"
        )


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


def scan_chunks(out: Path, plan: Plan, run_id: str) -> tuple[dict[int, dict], list[int], list[int]]:
    """Finished chunks (record present, same run, sha256 of the .npy matches), pending ones, damaged ones."""
    records: dict[int, dict] = {}
    pending: list[int] = []
    damaged: list[int] = []
    for chunk in plan.chunks():
        rec_path, npy = chunk_paths(out, chunk)
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
            with files.os_errors(rec_path):
                rec_path.unlink()  # the .npy is rewritten before a new record appears
    return records, pending, damaged


def chunk_paths(out: Path, chunk: Chunk) -> tuple[Path, Path]:
    return out / CHUNKS / f"{chunk.stem}.json", out / CHUNKS / f"{chunk.stem}.npy"


def write_chunk(out: Path, chunk: Chunk, payload: bytes, data_path: Path, rec_path: Path, *, run_id: str,
                seconds: float, device: str, info, **extra) -> None:
    """A finished chunk: its data file first, then the record that makes it count (sha256, timing, where and how it
    was made; ``extra`` adds the command's own fields), both atomically."""
    import hashlib
    import socket

    import torch

    from varbench.env import describe_device

    files.write_bytes(data_path, payload)
    files.write_json(rec_path, {
        "chunk": chunk.index, "start": chunk.start, "stop": chunk.stop, "file": data_path.relative_to(out).as_posix(),
        "sha256": hashlib.sha256(payload).hexdigest(), "run_id": run_id, "seconds": round(seconds, 4),
        "images_per_second": round(chunk.size / seconds, 4) if seconds > 0 else None, **extra,
        "rank": info.rank, "world_size": info.world_size, "device": device,
        "device_name": describe_device(device).get("device_name"), "torch_threads": torch.get_num_threads(),
        "host": socket.gethostname(), "created": now(),
    })


def collect_records(out: Path, plan: Plan, run_id: str) -> list[dict]:
    records = []
    for chunk in plan.chunks():
        rec_path, _ = chunk_paths(out, chunk)
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


def artefact_ok(out: Path, manifest: dict) -> bool:
    want = (manifest.get("artefacts") or {}).get("samples_npz") or {}
    path = out / SAMPLES
    return bool(want.get("sha256")) and path.is_file() and sha256_file(path) == want["sha256"]


def read_manifest(out: Path, overwrite: bool = False) -> dict | None:
    """The generate directory's manifest (None when there is none); see ``read_run_manifest``."""
    return read_run_manifest(out / MANIFEST, MANIFEST_SCHEMA, MANIFEST_VERSION, "generate", overwrite)


def read_run_manifest(path: Path, schema: str, version: int, command: str, overwrite: bool) -> dict | None:
    """A run directory's manifest (None when there is none), for every command that keeps one.

    A manifest varbench did not write (another ``schema``) is refused even with ``overwrite`` (it is not ours to
    remove); one of another manifest version is refused without ``overwrite`` and returned with it (a different run to
    replace).
    """
    if not path.is_file():
        return None
    foreign = ("; varbench did not write it, so --overwrite leaves it alone: choose another --out"
               if overwrite else "; use another --out")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise VarbenchError(f"{path} is unreadable ({type(e).__name__}){foreign}") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != schema:
        raise VarbenchError(f"{path} is not a varbench {command} manifest{foreign}")
    if manifest.get("schema_version") != version and not overwrite:
        raise VarbenchError(
            f"{path} has manifest version {manifest.get('schema_version')!r}, this varbench writes "
            f"{version}; use another --out or pass --overwrite to replace that run"
        )
    return manifest


def refuse_if_different(out: Path, old: dict | None, new: dict, what: str = "settings") -> None:
    derived = ("sha256", "planned_classes", "num_chunks", "_rule")  # follow from other keys: list them last
    diffs = sorted(diff(old or {}, new), key=lambda d: any(m in d.split(" ")[0] for m in derived))
    if diffs:
        shown = "; ".join(diffs[:3]) + (f"; +{len(diffs) - 3} more" if len(diffs) > 3 else "")
        threads = next((d for d in diffs if d.startswith("cpu_threads ")), None)
        if threads and len(diffs) == 1:
            raise VarbenchError(
                f"--out {out} was made with {threads.split()[1]} CPU thread(s) and this process has "
                f"{threads.split()[-1]}; CPU bytes depend on the thread count, so resume it with --threads "
                f"{threads.split()[1]} (or choose another --out)"
            )
        raise VarbenchError(
            f"--out {out} holds a different run ({what} differ: {shown}); rerun its own command to resume it, "
            "choose another --out, or pass --overwrite to replace it"
        )


def diff(old, new, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new or old[key] != new[key]:
                if key in old and key in new and isinstance(old[key], dict) and isinstance(new[key], dict):
                    out += diff(old[key], new[key], name)
                else:
                    out.append(f"{name} {short(old.get(key, '<unset>'))} -> {short(new.get(key, '<unset>'))}")
        return out
    return [] if old == new else [f"{prefix or 'value'} {short(old)} -> {short(new)}"]


def short(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


def foreign_entries(out: Path) -> list[str]:
    if not out.is_dir():
        return []
    return sorted(p.name for p in out.iterdir() if p.name != LOCK and not is_temp(p.name))


is_temp = files.is_temp


def remove_temp_files(out: Path) -> None:
    """Temp files left by a killed run (only while holding the lock: nobody else is writing)."""
    files.remove_temp_files(out, out / CHUNKS, out / PNGS)


def remove_owned(out: Path) -> None:
    """Remove what varbench writes in ``out`` (manifest, samples, result, chunk files, PNGs named by index) and
    nothing else: a file of the user's in ``chunks/`` or ``png/`` stays, and so does its folder."""
    with files.os_errors(out):
        for name in (MANIFEST, SAMPLES, RESULT):
            if (out / name).is_file():
                (out / name).unlink()
        for sub, pattern in ((CHUNKS, _CHUNK_FILE), (PNGS, _PNG_FILE)):
            d = out / sub
            if not d.is_dir():
                continue
            for p in d.iterdir():
                if p.is_file() and (pattern.match(p.name) or is_temp(p.name)):
                    p.unlink()
            if not any(d.iterdir()):
                d.rmdir()


def canonical(obj):
    return json.loads(json.dumps(obj, sort_keys=True, default=files.json_default))


def now() -> str:
    from varbench.results.schema import now_utc

    return now_utc()


def lock(out: Path) -> files.DirLock:
    """The lock of a generate directory."""
    return files.DirLock(out, "generate")


# ---- the run's identity: what decides the bytes (a different identity is another run) -------------------------


def job_identity(job) -> dict:
    """The settings that decide the output bytes (batch size, process count, PNGs and paths do not)."""
    import torch

    from varbench import __version__

    identity = {
        "varbench_version": __version__,  # a new release may change samples: no silent mixing
        "torch_version": torch.__version__,
        "model": job.model,
        "sampling": job.sampling,
        "dtype": job.dtype,
        "device_type": torch.device(job.device).type,
        "plan": job.plan.to_dict(),
    }
    if identity["device_type"] == "cpu":  # CPU reductions (the VQ decode) depend on the intra-op thread count
        identity["cpu_threads"] = job.threads or torch.get_num_threads()
    return canonical(identity)


def generator_identity(generator) -> dict:
    """The generator's own description (checkpoint sha256s, architecture), minus local paths and devices."""
    return canonical({
        "name": generator.name,
        "resolution": int(generator.resolution),
        "num_classes": int(generator.num_classes),
        "random_weights": bool(generator.random_weights),
        "checkpoint_sha256": generator.checkpoint_sha256(),
        "describe": drop_local(generator.describe()),
    })


def drop_local(obj):
    """Drop keys that name local files or devices (they may differ between machines of the same run; the
    checkpoint sha256s and the job's device type and dtype stay in the identity)."""
    if isinstance(obj, dict):
        return {k: drop_local(v) for k, v in obj.items() if "path" not in str(k).lower() and str(k) not in _LOCAL_KEYS}
    if isinstance(obj, (list, tuple)):
        return [drop_local(v) for v in obj]
    return obj
