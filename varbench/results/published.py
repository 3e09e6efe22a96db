"""Published numbers: the source of truth for every "reported" value varbench shows.

The tables live as CSV files in ``varbench/results/published/`` (package data; one file per source table, documented
in its README.md).
Each row carries the numbers *and* the protocol they were produced under, because the same model has different
published numbers depending on the paper version, reference batch, CFG rule, label scheme and resolution:

    table            file stem, e.g. "var_neurips_table1"
    type, model      the row as printed ("VAR-d16", "LlamaGen-XL-384"); remark: a parenthetical printed with it
    zoo              the varbench zoo name a reproduction of this row uses ("var_d16"); empty when none can
    fid, is_mean, precision, recall           the published metrics (None where the table has "–")
    params, steps, time_rel, time_source      as printed; time_rel is relative wall-clock (VAR-d30 = 1)
    approx           metric keys printed as approximate ("~45")
    paper_version    which paper/README version the number comes from (VAR arXiv v1 vs NeurIPS differ)
    reference_batch  "VIRTUAL_imagenet256_labeled", "VIRTUAL_imagenet512" or "not_stated"
    samples          number of generated images scored (None: not stated)
    label_scheme     "50_per_class", "uniform_random", "not_stated", "not_applicable"
    cfg, cfg_semantics  the guidance scale (None: not stated) and its rule: "var_ramp" (scale 1 -> 1+cfg over the
                     scales), "constant" (LlamaGen), "not_stated", "not_applicable"
    top_k, top_p     sampling truncation where the source states it (top_k 0 / top_p 1.0 = off)
    resolution       pixels generated; eval_resolution: pixels scored (LlamaGen "-384" rows: 384 -> 256)
    rejection        True for classifier rejection-sampled rows ("-re"); None where not applicable
    source, notes    where the numbers were read, and caveats

Loading uses only the standard library, on first use.
"""

from __future__ import annotations

import csv
import functools
from importlib import resources
from pathlib import Path

from varbench.errors import VarbenchError, unknown_name
from varbench.metrics import registry

TABLES: dict[str, str] = {
    "var_neurips_table1": "VAR (NeurIPS 2024) Table 1: ImageNet 256x256",
    "var_neurips_table2": "VAR (NeurIPS 2024) Table 2: ImageNet 512x512",
    "var_readme_zoo": "VAR README model zoo (arXiv v1 numbers)",
    "llamagen_readme": "LlamaGen README: class-conditional ImageNet 256x256",
}
_FLOAT = set(registry.published_keys()) | {"cfg", "top_p"}
_INT = {"samples", "top_k", "resolution", "eval_resolution"}
_BOOL = {"rejection"}
_STR = {
    "table", "type", "model", "remark", "zoo", "params", "steps", "time_rel", "time_source", "approx",
    "paper_version", "reference_batch", "label_scheme", "cfg_semantics", "source", "notes",
}  # fmt: skip
COLUMNS = _FLOAT | _INT | _BOOL | _STR


def data_dir() -> Path:
    """The directory holding the published CSV files (package data of ``varbench.results``)."""
    return Path(str(resources.files("varbench.results") / "published"))


@functools.lru_cache(maxsize=None)
def _load(table: str) -> tuple[dict, ...]:
    path = data_dir() / f"{table}.csv"
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = set(reader.fieldnames or ())
            if header != COLUMNS:
                extra, missing = sorted(header - COLUMNS), sorted(COLUMNS - header)
                raise VarbenchError(f"{path}: unexpected columns {extra} / missing columns {missing}")
            rows = tuple(_parse(raw, path, i + 2) for i, raw in enumerate(reader))
    except OSError as e:
        raise VarbenchError(f"cannot read published table {path}: {e.strerror or e}") from None
    for r in rows:
        if r["table"] != table:
            raise VarbenchError(f"{path}: row {r['model']!r} names table {r['table']!r}")
    return rows


def _parse(raw: dict, path: Path, line: int) -> dict:
    row: dict = {}
    for key, text in raw.items():
        text = (text or "").strip()
        try:
            if key in _FLOAT:
                row[key] = float(text) if text else None
            elif key in _INT:
                row[key] = int(text) if text else None
            elif key in _BOOL:
                if text not in ("", "true", "false"):
                    raise ValueError(text)
                row[key] = None if not text else text == "true"
            else:
                row[key] = text
        except ValueError:
            raise VarbenchError(f"{path}:{line}: column {key!r} has a bad value {text!r}") from None
    row["approx"] = tuple(k for k in row["approx"].split(";") if k)
    return row


def load(table: str) -> list[dict]:
    """Rows of one published table, in printed order (fresh dicts: callers may modify them)."""
    if table not in TABLES:
        raise unknown_name("published table", table, TABLES)
    return [dict(r) for r in _load(table)]


def all_rows() -> list[dict]:
    return [r for t in TABLES for r in load(t)]


def for_model(zoo_name: str, eval_resolution: int | None = None) -> list[dict]:
    """Published rows that a run of zoo model ``zoo_name`` reproduces (optionally at one scored resolution)."""
    return [
        r
        for r in all_rows()
        if r["zoo"] == zoo_name and (eval_resolution is None or r["eval_resolution"] == eval_resolution)
    ]
