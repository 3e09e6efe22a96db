"""The output directory of ``varbench edit``: what it holds, when it is refused, what ``--overwrite`` removes.

Images mode (``varbench edit IMAGES...``)::

    manifest.json     inputs (path, sha256, preprocessing), box, task, label, sampling, seeds, random_weights
    samples.npz       arr_0 uint8 (N, H, W, 3) in input order, labels int64 (N,), indices int64 (N,)
    png/000000.png    one PNG per input, in input order
    result.json       a ``varbench.results`` record of kind "edit"

Benchmark mode writes manifest.json, result.json and one generate-style directory per stream (``original/``,
``recon/``, ``inpaint/``, ``outpaint/``, ``class_edit/``: ``chunks/``, ``samples.npz``, task PNGs in ``png/``).
A finished directory is refused unless ``--overwrite``; so is one holding files varbench did not write;
``--overwrite`` removes only varbench's own names.
An unfinished images-mode run is simply made again; an unfinished benchmark resumes when its settings match.
"""

from __future__ import annotations

import json
from pathlib import Path

from varbench import files
from varbench.errors import VarbenchError
from varbench.generate import rundir
from varbench.generate.rundir import MANIFEST

MANIFEST_SCHEMA = "varbench.edit"
MANIFEST_VERSION = 1
STREAMS = ("original", "recon", "inpaint", "outpaint", "class_edit")  # benchmark sub-directories (tasks last)


def read_manifest(out: Path) -> dict | None:
    """The directory's edit manifest (None when there is none); any other ``manifest.json`` is refused."""
    path = out / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise VarbenchError(f"{path} is unreadable ({type(e).__name__}); choose another --out") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        what = "a varbench generate run" if isinstance(manifest, dict) and manifest.get("schema") == \
            rundir.MANIFEST_SCHEMA else "a manifest varbench edit did not write"
        raise VarbenchError(f"--out {out} holds {what} ({path}); --overwrite leaves it alone: choose another --out")
    return manifest


def prepare(out: Path, overwrite: bool, identity: dict | None = None) -> dict | None:
    """Check ``out`` and clear what must go; return the manifest of a run to resume (benchmark mode: pass its
    ``identity``), else None.  Call while holding the lock."""
    if out.exists() and not out.is_dir():
        raise VarbenchError(f"--out {out} is a file, not a directory; choose a directory")
    manifest = read_manifest(out)
    if manifest is None:
        rundir.refuse_foreign_dir(out, overwrite)
        if overwrite:
            remove_owned(out)
        return None
    same = identity is not None and manifest.get("identity") == rundir.canonical(identity)
    if same and not overwrite:
        return manifest  # the same benchmark: resume it (or find it complete)
    finished = manifest.get("status") == "complete"
    if finished and not overwrite:
        raise VarbenchError(f"--out {out} holds a finished edit run ({out / MANIFEST}); choose another --out or pass "
                            "--overwrite to replace it")
    if identity is not None and not overwrite:
        rundir.refuse_if_different(out, manifest.get("identity"), rundir.canonical(identity))
    remove_owned(out)
    return None


def preflight(out: Path, overwrite: bool, resumable: bool = False) -> None:
    """The cheap checks of ``prepare`` before a model is built (nothing is removed).  ``resumable`` (benchmark):
    a run of the same settings may be there; whether it is the same is decided by ``prepare``."""
    if out.exists() and not out.is_dir():
        raise VarbenchError(f"--out {out} is a file, not a directory; choose a directory")
    manifest = read_manifest(out)
    if manifest is None:
        rundir.refuse_foreign_dir(out, overwrite)
    elif not (overwrite or resumable) and manifest.get("status") == "complete":
        raise VarbenchError(f"--out {out} holds a finished edit run ({out / MANIFEST}); choose another --out or pass "
                            "--overwrite to replace it")


def remove_owned(out: Path) -> None:
    """Remove what varbench edit writes (the names above) and nothing else."""
    rundir.remove_temp_files(out)
    rundir.remove_owned(out)  # manifest.json, samples.npz, result.json, chunks/NNNNNN.*, png/NNNNNN.png
    with files.os_errors(out):
        for name in STREAMS:
            d = out / name
            if d.is_dir():
                rundir.remove_temp_files(d)
                rundir.remove_owned(d)
                if not any(d.iterdir()):
                    d.rmdir()


def write_manifest(out: Path, manifest: dict) -> None:
    files.write_json(out / MANIFEST, {"schema": MANIFEST_SCHEMA, "schema_version": MANIFEST_VERSION, **manifest})
