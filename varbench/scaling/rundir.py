"""The output directory of one model in ``varbench scaling``: layout, chunk plan, manifest, lock, resume.

Layout (``OUT/<model>/``)::

    manifest.json        what is evaluated (identity: model, data, protocol), sessions, per-chunk records at the end
    chunks/000003.npz    per image of chunk 3: positions, labels, ce_sum (n, S) float64, hits (n, S), source_sha256
    chunks/000003.json   the chunk's record (sha256 of the .npz, run id, seconds, rank, device), written after it
    result.json          a ``varbench.results`` record of kind "scaling" (``results["what"] == "model"``)
    .lock                flock held by the running rank 0

A chunk counts as finished when its record names this run and the .npz's sha256 matches; anything else is made
again.  A directory holding a different run is refused unless ``overwrite``, which removes only the names above.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from varbench import files
from varbench.errors import VarbenchError
from varbench.files import sha256_file
from varbench.files import is_temp
from varbench.generate.plan import Chunk, cut
from varbench.generate.rundir import canonical, drop_local, read_run_manifest, refuse_if_different

MANIFEST_SCHEMA = "varbench.scaling"
MANIFEST_VERSION = 1
MANIFEST, RESULT, CHUNKS, LOCK = "manifest.json", "result.json", "chunks", files.DirLock.NAME
_CHUNK_FILE = re.compile(r"^\d{6}\.(npz|json)$")


def chunks(num_images: int, chunk_size: int) -> list[Chunk]:
    """Positions [0, n) cut into chunks of ``chunk_size`` (the last one shorter)."""
    return cut(num_images, chunk_size)


def chunk_paths(out: Path, chunk: Chunk) -> tuple[Path, Path]:
    return out / CHUNKS / f"{chunk.stem}.json", out / CHUNKS / f"{chunk.stem}.npz"


def job_identity(job, data) -> dict:
    """What decides the numbers apart from the model's weights (batch size, processes and threads only move float32
    rounding of the logits, so they are recorded per chunk, not compared; the data's location may change, its
    listing may not)."""
    import torch

    from varbench import __version__
    from varbench.scaling.loss import PROTOCOL

    return canonical({
        "varbench_version": __version__, "torch_version": torch.__version__, "model": job.model,
        "data": drop_local(data.describe()), "chunk_size": job.chunk_size, "device_type": torch.device(job.device).type,
        "protocol": PROTOCOL["name"],
    })


def model_identity(generator) -> dict:
    return canonical({"name": generator.name, "random_weights": bool(generator.random_weights),
                      "checkpoint_sha256": generator.checkpoint_sha256(), "describe": drop_local(generator.describe())})


def read_manifest(out: Path, overwrite: bool = False) -> dict | None:
    return read_run_manifest(out / MANIFEST, MANIFEST_SCHEMA, MANIFEST_VERSION, "scaling", overwrite)


def refuse_foreign_dir(out: Path, overwrite: bool) -> None:
    strangers = sorted(p.name for p in out.iterdir() if p.name != LOCK and not is_temp(p.name)) if out.is_dir() else []
    if strangers and not overwrite:
        raise VarbenchError(f"{out} is not empty ({strangers[0]}, ...) and holds no varbench scaling run; choose "
                            "another --out (or pass --overwrite to write varbench files into it)")


def check_dir(out: Path, identity: dict, overwrite: bool) -> dict | None:
    """Refuse a directory of another run (unless ``overwrite``) or a foreign one; the manifest when there is one."""
    if out.exists() and not out.is_dir():
        raise VarbenchError(f"{out} is a file, not a directory; choose another --out")
    manifest = read_manifest(out, overwrite)
    if manifest is None:
        refuse_foreign_dir(out, overwrite)
    elif not overwrite:
        refuse_if_different(out, (manifest.get("identity") or {}).get("job"), identity)
    return manifest


def scan(out: Path, plan: list[Chunk], run_id: str) -> tuple[list[int], list[int], list[int]]:
    """(finished, pending, damaged) chunk indices; the record of a damaged chunk is removed."""
    done, pending, damaged = [], [], []
    for chunk in plan:
        rec_path, data = chunk_paths(out, chunk)
        if not rec_path.is_file():
            pending.append(chunk.index)
            continue
        try:
            rec = json.loads(rec_path.read_text())
            ok = (rec.get("run_id") == run_id and (rec.get("start"), rec.get("stop")) == (chunk.start, chunk.stop)
                  and data.is_file() and sha256_file(data) == rec.get("sha256"))
        except (OSError, ValueError):
            ok = False
        if ok:
            done.append(chunk.index)
        else:
            pending.append(chunk.index)
            damaged.append(chunk.index)
            with files.os_errors(rec_path):
                rec_path.unlink()
    return done, pending, damaged


def load_chunks(out: Path, plan: list[Chunk], run_id: str) -> tuple[list[dict], dict]:
    """Every chunk's record and its arrays concatenated in order (positions, labels, ce_sum, hits, source_sha256)."""
    import numpy as np

    records, parts = [], []
    for chunk in plan:
        rec_path, data = chunk_paths(out, chunk)
        try:
            rec = json.loads(rec_path.read_text())
            if rec.get("run_id") != run_id or sha256_file(data) != rec.get("sha256"):
                raise ValueError("another run")
            with np.load(data, allow_pickle=False) as z:
                parts.append({k: z[k] for k in z.files})
        except (OSError, ValueError):
            raise VarbenchError(f"chunk {rec_path} is missing or belongs to another run after evaluation; rerun the "
                                "same command (several nodes need --out on a filesystem they all share)") from None
        records.append(rec)
    merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}
    return records, merged


def remove_owned(out: Path) -> None:
    """Remove what this module writes in ``out`` and nothing else."""
    with files.os_errors(out):
        for name in (MANIFEST, RESULT):
            if (out / name).is_file():
                (out / name).unlink()
        d = out / CHUNKS
        if d.is_dir():
            for p in d.iterdir():
                if p.is_file() and (_CHUNK_FILE.match(p.name) or is_temp(p.name)):
                    p.unlink()
            if not any(d.iterdir()):
                d.rmdir()


def remove_temp_files(out: Path) -> None:
    files.remove_temp_files(out, out / CHUNKS)


def lock(out: Path) -> files.DirLock:
    """The lock of a scaling directory."""
    return files.DirLock(out, "scaling")
