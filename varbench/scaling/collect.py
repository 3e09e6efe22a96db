"""The fits of an output directory: every finished model result under ``OUT/*/result.json`` -> ``OUT/fits.json``.

The fits cover all models evaluated into ``OUT`` on the same images (the data's content sha256), not only those of
the last command, so models run one at a time (one GPU job each) end up in one fit.  ``fits.json`` and
``scaling.png`` are derived files: varbench rewrites its own, and refuses to replace files it did not write unless
``--overwrite``.
"""

from __future__ import annotations

import json
from pathlib import Path

from varbench.errors import VarbenchError
from varbench.results import read, schema
from varbench.scaling.rundir import RESULT

FITS, FIGURE = "fits.json", "scaling.png"


def _is_fits(path: Path) -> bool:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(obj, dict) and obj.get("schema") == schema.SCHEMA and obj.get("kind") == "scaling"
            and isinstance(obj.get("results"), dict) and obj["results"].get("what") == "fits")


def check_outputs(root: Path, overwrite: bool) -> None:
    """Refuse a ``fits.json`` varbench did not write, or a ``scaling.png`` without one, unless ``overwrite``."""
    if overwrite:
        return
    fits, figure = root / FITS, root / FIGURE
    if fits.exists() and not _is_fits(fits):
        raise VarbenchError(f"{fits} exists and is not a varbench scaling fits result; choose another --out or pass "
                            "--overwrite to replace it")
    if figure.exists() and not fits.exists():
        raise VarbenchError(f"{figure} exists but varbench wrote no {FITS} beside it; choose another --out or pass "
                            "--overwrite to replace it")


def model_results(root: Path, content_sha256: str | None = None) -> tuple[list[tuple[dict, Path]], list[str]]:
    """(result, path) of every finished model under ``root`` (on the given data only), and the models left out."""
    found, skipped = [], []
    for path in sorted(root.glob(f"*/{RESULT}")):
        try:
            result = read.load(path, "scaling")
        except VarbenchError:
            continue
        section = result["results"]
        if section.get("what") != "model":
            continue
        if content_sha256 is not None and section["data"]["content_sha256"] != content_sha256:
            skipped.append(section["model"])
            continue
        found.append((result, path))
    return found, skipped


def write_fits(root: Path, results: list[tuple[dict, Path]]) -> dict:
    """Fit ``results`` and save ``root/fits.json``; returns the fits result."""
    from varbench.scaling.fit import fits_result

    result = fits_result(results)
    schema.save(root / FITS, result)
    return result
