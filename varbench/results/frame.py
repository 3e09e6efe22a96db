"""Results as a pandas DataFrame: one row per result file, the protocol flattened into columns, one column per
metric.  ``load_frame`` is the public entry point (``varbench.results.load_frame``), meant for notebooks too::

    from varbench.results import load_frame
    df = load_frame(["runs/var_d16/result.json", "runs/var_d16/fid.json"])
    df[df.kind == "fid"][["model", "guidance_rule", "cfg", "fid", "is_mean"]]

Every column is read from a fixed path of the schema (``varbench.results.schema``); a fact a result does not have is
None (NaN in numeric columns).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from varbench.errors import VarbenchError
from varbench.metrics import registry
from varbench.results import read, schema

# column -> (protocol section, key): the protocol facts every row carries
PROTOCOL_COLUMNS = {
    "model": ("model", "name"), "family": ("model", "family"), "params": ("model", "params"),
    "paper_version": ("model", "paper_version"), "generated_resolution": ("model", "generated_resolution"),
    "guidance_rule": ("sampling", "guidance_rule"), "cfg": ("sampling", "cfg"),
    "last_step_weight": ("sampling", "last_step_weight"), "top_k": ("sampling", "top_k"),
    "top_p": ("sampling", "top_p"), "temperature": ("sampling", "temperature"),
    "more_smooth": ("sampling", "more_smooth"), "dtype": ("sampling", "dtype"),
    "label_scheme": ("labels", "scheme"), "per_class": ("labels", "per_class"),
    "seed": ("seeds", "seed"), "rng": ("seeds", "rng"),
    "samples": ("samples", "count"), "resolution": ("samples", "resolution"),
    "samples_sha256": ("samples", "sha256"), "samples_path": ("samples", "path"),
    "reference": ("reference", "name"), "reference_batch": ("reference", "batch"),
    "extractor": ("extractor", "id"), "extractor_official": ("extractor", "official_weights"),
}


def result_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Result files from files and directories (a directory stands for the result JSONs directly inside it), each
    once, in the order given."""
    out: list[Path] = []
    seen: set[Path] = set()
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.glob("*.json") if is_result(f))
            if not found:
                raise VarbenchError(f"{p} holds no varbench result JSON; pass the result files themselves")
        else:
            found = [p]
        for f in found:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.append(f)
    if not out:
        raise VarbenchError("no result files given")
    return out


def is_result(path: Path) -> bool:
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(obj, dict) and obj.get("schema") == schema.SCHEMA


def run_names(paths: Sequence[Path]) -> list[str]:
    """Short unique names: the file stem (a generate dir's ``result.json`` is named after its directory), with parent
    directories added until names are unique."""
    parts = [tuple(x for x in Path(p).with_suffix("").parts if x != Path(p).anchor) for p in paths]
    parts = [p[:-1] if len(p) > 1 and p[-1] == "result" else p for p in parts]
    depth = 1
    while True:
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names):
            return names
        if depth >= max(len(p) for p in parts):  # the same file given twice: number the repeats
            return [n if names[:i].count(n) == 0 else f"{n} #{names[:i].count(n) + 1}" for i, n in enumerate(names)]
        depth += 1


def load_inputs(paths: Sequence[str | os.PathLike]) -> list[tuple[str, schema.Result, Path]]:
    """(run name, result, path) of every result file in ``paths`` (see ``result_files``)."""
    files = result_files(paths)
    return [(name, read.load(f), f) for name, f in zip(run_names(files), files)]


def protocol_row(result: schema.Result) -> dict:
    """The protocol columns of one result (``PROTOCOL_COLUMNS``)."""
    p = result["protocol"]
    return {col: (p.get(section) or {}).get(key) for col, (section, key) in PROTOCOL_COLUMNS.items()}


def metric_values(result: schema.Result) -> dict:
    """metric key -> value of a fid or generate result (speed results hold rows, see ``speed_frame``)."""
    res = result["results"]
    if result["kind"] == "fid":
        return {k: v for k, v in (res.get("metrics") or {}).items() if k in registry.METRICS}
    if result["kind"] == "generate":
        return {"images_per_second": res.get("images_per_second")}
    return {}


def frame(inputs: Iterable[tuple[str, schema.Result, Path]]):
    """One row per result: run, kind, path, created, git_sha, random_weights, the protocol columns, the metrics."""
    import pandas as pd

    rows = []
    for name, result, path in inputs:
        rows.append({"run": name, "kind": result["kind"], "path": str(path), "created": result["created"],
                     "git_sha": (result["env"].get("git_sha") or "")[:10] or None,
                     "random_weights": bool(result["random_weights"]), **protocol_row(result),
                     **metric_values(result)})
    columns = ["run", "kind", "path", "created", "git_sha", "random_weights", *PROTOCOL_COLUMNS,
               *[k for k in registry.METRICS if any(k in r for r in rows)]]
    return pd.DataFrame(rows, columns=columns)


def speed_frame(inputs: Iterable[tuple[str, schema.Result, Path]]):
    """One row per timed (model, mode, resolution, batch) of every speed result, with its run name."""
    import pandas as pd

    rows = [{"run": name, "random_weights": bool(row.get("random_weights")), **row}
            for name, result, _ in inputs if result["kind"] == "speed" for row in result["results"]["rows"]]
    return pd.DataFrame(rows)


def load_frame(paths: Sequence[str | os.PathLike]):
    """The DataFrame of the result files (or directories holding them) in ``paths``; see the module docstring."""
    return frame(load_inputs(paths))
