"""Result files -> report tables, and ``compare()`` -> regressions.

Everything here is pure: tables are built from the loaded result JSONs alone (like lm-eval's ``make_table``) plus
the published tables in ``baselines/published`` (``varbench.published``), so ``reports/`` can always be rebuilt from
the JSON files.  Rendering to Markdown/HTML/CSV/JSON is done by ``render_*`` functions that return strings; the CLI
writes them.

Tables
    runs        one row per input file: kind, model, settings, samples, reference, random weights, git sha
    quality     one row per (fid run, metric, published row): reproduced next to published, delta, protocol
                differences between the run and the published row
    cfg_sweep   FID/IS/P/R per (model, cfg) when a model has fid runs at several CFG scales
    generate    throughput and settings of ``generate`` runs
    speed       the rows of ``speed`` runs (latency, throughput, FLOPs, memory); speed_fits: fitted exponents
    published:* a published table verbatim (on request)
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from varbench import published, results
from varbench.errors import VarbenchError, unknown_name
from varbench.metrics import registry

REPORT_SCHEMA = "varbench.report"
REPORT_SCHEMA_VERSION = 1
QUALITY_METRICS = ("fid", "sfid", "is_mean", "is_std", "precision", "recall", "kid_mean", "kid_std")
SPEED_METRICS = ("latency_s", "throughput_img_s", "peak_mem_bytes")
ALIASES = {
    "is": "is_mean",
    "inception_score": "is_mean",
    "kid": "kid_mean",
    "prec": "precision",
    "rec": "recall",
    "latency": "latency_s",
    "throughput": "throughput_img_s",
    "mem": "peak_mem_bytes",
    "memory": "peak_mem_bytes",
    "peak_mem": "peak_mem_bytes",
    "ips": "images_per_second",
}
_FORMATS = {
    "fid": ".3f", "sfid": ".3f", "is_mean": ".2f", "is_std": ".3f", "precision": ".4f", "recall": ".4f",
    "kid_mean": ".5f", "kid_std": ".5f", "latency_s": ".4g", "throughput_img_s": ".4g", "images_per_second": ".4g",
    "vq_decode_s": ".4g", "seconds": ".4g", "cfg": "g", "top_p": "g", "exponent": ".3f",
}  # fmt: skip


# ----------------------------------------------------------------------------------------------------------- tables
@dataclass(frozen=True)
class Table:
    """A table: ``records`` hold raw values (JSON/CSV); ``display_rows()`` formats them for Markdown/HTML/terminal."""

    name: str
    title: str
    columns: tuple[tuple[str, str], ...]  # (record key, header)
    records: tuple[dict, ...]
    notes: tuple[str, ...] = ()
    formats: tuple[tuple[str, str], ...] = ()  # (record key, format spec) overriding the defaults for this table

    @property
    def headers(self) -> list[str]:
        return [h for _, h in self.columns]

    def display_rows(self) -> list[list[str]]:
        fmts = dict(self.formats)
        return [[format_cell(key, rec.get(key), rec, fmts.get(key)) for key, _ in self.columns] for rec in self.records]


@dataclass(frozen=True)
class Report:
    title: str
    inputs: tuple[dict, ...]  # {run, kind, model, created, random_weights}
    tables: tuple[Table, ...]
    warnings: tuple[str, ...] = ()
    plots: dict = field(default_factory=dict)  # name -> PNG bytes (filled by the caller from varbench.plots)
    captions: dict = field(default_factory=dict)  # plot name -> caption

    def table(self, name: str) -> Table:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(name)


def format_cell(key: str, value, record: dict | None = None, fmt: str | None = None) -> str:
    """Display form of one cell; metric columns of long tables are formatted by the row's ``metric``.

    A key listed in the record's ``approx`` is shown with a leading "~" (published "~45")."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        if key == "ci" and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
            return f"[{value[0]:.3f}, {value[1]:.3f}]"
        return "; ".join(str(v) for v in value) if value else ""
    fmt_key = record.get("metric", key) if record and key in ("reproduced", "published", "base", "new", "delta") else key
    if fmt_key == "peak_mem_bytes" and isinstance(value, (int, float)):
        text = f"{value / 2**20:.1f} MiB"
        return "+" + text if key == "delta" and value > 0 else text
    if isinstance(value, float):
        text = format(value, fmt or _FORMATS.get(fmt_key, ".4g"))
        if record and key in record.get("approx", ()):
            text = "~" + text
        return ("+" + text if value > 0 else text) if key == "delta" else text
    return str(value)


# ------------------------------------------------------------------------------------------------------------ input
def load_inputs(paths: Sequence[str | Path]) -> list[tuple[str, dict, Path]]:
    """Load result files (a directory stands for the result JSONs directly inside it) as (run name, result, path)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.glob("*.json") if _looks_like_result(f))
            if not found:
                raise VarbenchError(f"{p} holds no varbench result JSON; pass the result files themselves")
            files.extend(found)
        else:
            files.append(p)
    if not files:
        raise VarbenchError("no result files given")
    names = run_names(files)
    return [(name, results.load(f), f) for name, f in zip(names, files)]


def _looks_like_result(path: Path) -> bool:
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(obj, dict) and obj.get("schema") == results.SCHEMA


def run_names(paths: Sequence[Path]) -> list[str]:
    """Short unique names: the file stem (a generate dir's ``result.json`` is named after its directory), with parent
    directories added until names are unique."""
    parts = [Path(p).with_suffix("").parts for p in paths]
    parts = [p[:-1] if len(p) > 1 and p[-1] == "result" else p for p in parts]
    depth = 1
    while True:
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names) or depth >= max(len(p) for p in parts):
            return names
        depth += 1


# ------------------------------------------------------------------------------------------------ run descriptions
def _first(*values):
    for v in values:
        if v is not None:
            return v
    return None


def _sections(config: dict) -> list[dict]:
    """The config and its nested settings sections, searched in order for sampling settings."""
    out = [config]
    for key in ("sampling", "sample", "generate", "manifest", "samples_config", "generator"):
        sub = config.get(key)
        if isinstance(sub, dict):
            out.append(sub)
            if isinstance(sub.get("sampling"), dict):
                out.append(sub["sampling"])
    return out


def _setting(config: dict, *keys: str):
    for section in _sections(config):
        for k in keys:
            if section.get(k) is not None:
                return section[k]
    return None


def describe(result: dict) -> dict:
    """The protocol facts of one result, read from its JSON alone (missing facts are None)."""
    cfg, res = result.get("config") or {}, result.get("results") or {}
    samples = res.get("samples") if isinstance(res.get("samples"), dict) else {}
    reference = res.get("reference") if isinstance(res.get("reference"), dict) else {}
    model = _setting(cfg, "model", "model_name")
    if isinstance(model, dict):  # {"name": ...} sections
        model = model.get("name")
    resolution = _pixels(_first(samples.get("resolution"), _setting(cfg, "resolution", "image_size")))
    gen_res = _pixels(_first(_setting(cfg, "image_size"), _setting(cfg, "resolution")))
    extractor = res.get("extractor") if isinstance(res.get("extractor"), dict) else {}
    return {
        "kind": result.get("kind"),
        "model": model if isinstance(model, str) else None,
        "cfg": _setting(cfg, "cfg", "cfg_scale"),
        "cfg_semantics": _setting(cfg, "cfg_semantics"),
        "top_k": _setting(cfg, "top_k"),
        "top_p": _setting(cfg, "top_p"),
        "more_smooth": _setting(cfg, "more_smooth"),
        "seed": _setting(cfg, "seed"),
        "label_scheme": _first(_setting(cfg, "label_scheme", "labels_scheme"), _label_scheme(_setting(cfg, "plan"))),
        "samples": _first(samples.get("n"), res.get("num_samples"), _setting(cfg, "num_samples")),
        # pixels generated: only from explicit settings (a fid result knows the scored size, not always the generated one)
        "resolution": _first(gen_res, res.get("resolution") if result.get("kind") == "generate" else None),
        "eval_resolution": resolution,
        "reference": reference.get("name"),
        "reference_aliases": reference_aliases(reference),
        "extractor": _first(reference.get("extractor"), reference.get("extractor_id"), extractor.get("id"),
                            _setting(cfg, "extractor")),
        "extractor_official": extractor.get("official_weights"),
        "samples_path": samples.get("path"),
        "warnings": [str(w) for w in res.get("warnings") or [] if w],
        "random_weights": bool(result.get("random_weights")),
        "created": result.get("created"),
        "git_sha": (result.get("env") or {}).get("git_sha"),
    }


def _pixels(value) -> int | None:
    """Side length from an int or an [H, W] pair (the larger side when not square)."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, int) for v in value):
        return max(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def reference_aliases(reference: dict) -> list[str]:
    """Every name a result's reference goes by: its name, file name, origin and the known file of that name
    (``varbench ref`` names "imagenet256" the ADM batch VIRTUAL_imagenet256_labeled.npz)."""
    names = [reference.get("name"), reference.get("origin")]
    if isinstance(reference.get("path"), str):
        names.append(Path(reference["path"]).name)
    try:
        from varbench import stats

        entry = stats.known().get(reference.get("name") or "")
    except Exception:  # noqa: BLE001 - the manifest is optional context; a report never fails on it
        entry = None
    if isinstance(entry, dict) and entry.get("file"):
        names.append(entry["file"])
    return [str(n) for n in names if n]


def _label_scheme(plan) -> str | None:
    """"50_per_class" for a balanced sampling plan, "explicit" for a list of labels (see ``varbench.shard``)."""
    if not isinstance(plan, dict):
        return None
    if plan.get("labels"):
        return "explicit"
    return f"{plan['per_class']}_per_class" if plan.get("per_class") else None


_INHERITED = ("model", "cfg", "cfg_semantics", "top_k", "top_p", "more_smooth", "seed", "label_scheme", "resolution")


def _abs(path) -> str | None:
    return os.path.normpath(os.path.abspath(str(path))) if isinstance(path, (str, Path)) and str(path) else None


def link_runs(runs: list[tuple], paths: dict | None = None) -> list[tuple]:
    """Fill a fid run's missing sampling facts from a generate result given alongside whose samples it scored, so
    a report needs no other files.  Matched by the samples' sha256, or by path: the fid run's samples path is the
    generate directory (where its result JSON lives, ``config.out``) or its ``samples.npz``."""
    paths = paths or {}
    by_key: dict[str, dict] = {}
    for name, res, d in runs:
        if d["kind"] != "generate":
            continue
        r, c = res["results"], res["config"]
        keys = [r.get("samples_sha256"), _abs(r.get("samples_npz")), _abs(c.get("out"))]
        if paths.get(name) is not None:
            keys.append(_abs(Path(paths[name]).parent))
        by_key.update({k: d for k in keys if k})
    out = []
    for name, res, d in runs:
        samples = res["results"].get("samples") if d["kind"] == "fid" else None
        gen = None
        if isinstance(samples, dict):
            for key in (samples.get("sha256"), _abs(samples.get("path"))):
                gen = gen or (by_key.get(key) if key else None)
        if gen is not None:
            d = {**d, **{k: gen[k] for k in _INHERITED if d[k] is None and gen[k] is not None}}
            d["random_weights"] = d["random_weights"] or gen["random_weights"]
        out.append((name, res, d))
    return out


def protocol_differences(run: dict, row: dict) -> list[str]:
    """Where a reproduction's protocol differs from (or cannot be checked against) a published row's."""
    diffs: list[str] = []
    if run["random_weights"]:
        diffs.append("random weights")
    ref = row["reference_batch"]
    if ref == "not_stated":
        diffs.append("published reference batch not stated")
    elif run["reference"] is None:
        diffs.append(f"reference unknown (published: {ref})")
    elif not any(ref.lower() in a.lower() for a in run.get("reference_aliases") or [str(run["reference"])]):
        diffs.append(f"reference {run['reference']} vs {ref}")
    if run.get("extractor_official") is False:
        diffs.append("Inception weights not the official file")
    if row["samples"] is not None and run["samples"] is not None and int(run["samples"]) != row["samples"]:
        diffs.append(f"{run['samples']} samples vs {row['samples']}")
    if row["label_scheme"] not in ("not_stated", "not_applicable") and run["label_scheme"] not in (None, row["label_scheme"]):
        diffs.append(f"labels {run['label_scheme']} vs {row['label_scheme']}")
    if row["cfg"] is None:
        diffs.append("published cfg not stated")
    elif run["cfg"] is not None and not _close(run["cfg"], row["cfg"]):
        diffs.append(f"cfg {run['cfg']:g} vs {row['cfg']:g}")
    if row["cfg_semantics"] not in ("not_stated", "not_applicable") and run["cfg_semantics"] not in (None, row["cfg_semantics"]):
        diffs.append(f"cfg rule {run['cfg_semantics']} vs {row['cfg_semantics']}")
    for key in ("top_k", "top_p"):
        if row[key] is not None and run[key] is not None and not _close(run[key], row[key]):
            diffs.append(f"{key} {run[key]:g} vs {row[key]:g}")
    resized = row["resolution"] != row["eval_resolution"]
    if run["resolution"] is None and resized:
        diffs.append(f"published generated at {row['resolution']} and resized to {row['eval_resolution']}; "
                     "the run does not record its generation size")  # fmt: skip
    elif run["resolution"] is not None and int(run["resolution"]) != row["resolution"]:
        diffs.append(f"generated at {run['resolution']} vs {row['resolution']}" + (
            f" (published resized to {row['eval_resolution']})" if resized else ""))  # fmt: skip
    if row["rejection"]:
        diffs.append("published uses rejection sampling")
    return diffs


def _close(a, b) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    except (TypeError, ValueError):
        return False


def _num(v) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    return None


# --------------------------------------------------------------------------------------------------------- builders
def build(
    inputs: Sequence[tuple],
    *,
    published_tables: Iterable[str] = (),
    title: str = "varbench report",
) -> Report:
    """All report tables from ``(run name, result, ...)`` tuples (``load_inputs``) and, on request, published tables."""
    paths = {name: rest[0] for name, _, *rest in inputs if rest}
    runs = link_runs([(name, res, describe(res)) for name, res, *_ in inputs], paths)
    tables = [t for t in (runs_table(runs), quality_table(runs), cfg_sweep_table(runs), generate_table(runs)) if t]
    tables += [t for t in speed_tables(runs) if t]
    for name in published_tables:
        tables.append(published_table(name))
    warnings = []
    random = [name for name, _, d in runs if d["random_weights"]]
    if random:
        warnings.append(f"random weights in {', '.join(random)}: numbers test the pipeline, not a model")
    for name, _, d in runs:
        warnings += [f"{name}: {w}" for w in d.get("warnings", [])]
    unknown = [name for name, _, d in runs if d["kind"] == "fid" and d["model"] is None]
    if unknown:
        warnings.append(f"no model recorded in {', '.join(unknown)}: no published numbers to compare with")
    inputs_info = tuple(
        {"run": name, "kind": d["kind"], "model": d["model"], "created": d["created"], "random_weights": d["random_weights"]}
        for name, _, d in runs
    )
    return Report(title=title, inputs=inputs_info, tables=tuple(tables), warnings=tuple(warnings))


def runs_table(runs) -> Table | None:
    if not runs:
        return None
    records = []
    for name, _, d in runs:
        records.append({"run": name, **{k: d[k] for k in (
            "kind", "model", "cfg", "top_k", "top_p", "seed", "samples", "eval_resolution", "reference", "extractor",
            "random_weights", "created")}, "git_sha": (d["git_sha"] or "")[:10] or None})  # fmt: skip
    cols = (("run", "run"), ("kind", "kind"), ("model", "model"), ("cfg", "cfg"), ("top_k", "top-k"), ("top_p", "top-p"),
            ("seed", "seed"), ("samples", "samples"), ("eval_resolution", "res"), ("reference", "reference"),
            ("extractor", "extractor"), ("random_weights", "random weights"), ("created", "created"), ("git_sha", "git"))  # fmt: skip
    return Table("runs", "Inputs", cols, tuple(records))


def quality_table(runs) -> Table | None:
    records = []
    for name, res, d in runs:
        if d["kind"] != "fid":
            continue
        metrics = (res["results"].get("metrics") or {}) if isinstance(res["results"], dict) else {}
        rows = published.for_model(d["model"], d["eval_resolution"]) if d["model"] else []
        for metric in QUALITY_METRICS:
            value = _num(metrics.get(metric))
            if value is None:
                continue
            matches = [r for r in rows if metric in published.METRICS and r[metric] is not None]
            if not matches:
                records.append({"run": name, "model": d["model"], "metric": metric, "reproduced": value,
                                "published": None, "delta": None, "source": None, "paper_version": None,
                                "differences": ["random weights"] if d["random_weights"] else []})  # fmt: skip
            for r in matches:
                records.append({
                    "run": name, "model": d["model"], "metric": metric, "reproduced": value, "published": r[metric],
                    "delta": value - r[metric], "source": r["source"], "paper_version": r["paper_version"],
                    "differences": protocol_differences(d, r) + (["published value approximate"] if metric in r["approx"] else []),
                })  # fmt: skip
    if not records:
        return None
    cols = (("run", "run"), ("model", "model"), ("metric", "metric"), ("reproduced", "reproduced"),
            ("published", "published"), ("delta", "Δ"), ("source", "published source"),
            ("paper_version", "paper version"), ("differences", "protocol differences"))  # fmt: skip
    notes = ("Δ = reproduced − published; the direction that is better: " + ", ".join(
        f"{m} {'↑' if registry.get(m).higher_is_better else '↓'}" for m in published.METRICS),)
    return Table("quality", "Quality: reproduced vs published", cols, tuple(records), notes)


def cfg_points(runs) -> list[dict]:
    """(model, cfg, metrics) of every fid run that records a model and a CFG scale."""
    pts = []
    for name, res, d in runs:
        if d["kind"] != "fid" or d["model"] is None or _num(d["cfg"]) is None:
            continue
        m = res["results"].get("metrics") or {}
        pts.append({"run": name, "model": d["model"], "cfg": float(d["cfg"]), "random_weights": d["random_weights"],
                    **{k: _num(m.get(k)) for k in ("fid", "is_mean", "precision", "recall")}})  # fmt: skip
    return sorted(pts, key=lambda p: (p["model"], p["cfg"], p["run"]))


def cfg_sweep_table(runs) -> Table | None:
    pts = cfg_points(runs)
    by_model: dict[str, set] = {}
    for p in pts:
        by_model.setdefault(p["model"], set()).add(p["cfg"])
    pts = [p for p in pts if len(by_model[p["model"]]) > 1]
    if not pts:
        return None
    cols = (("model", "model"), ("cfg", "cfg"), ("fid", "FID"), ("is_mean", "IS"), ("precision", "precision"),
            ("recall", "recall"), ("run", "run"))  # fmt: skip
    return Table("cfg_sweep", "FID vs CFG", cols, tuple(pts))


def generate_table(runs) -> Table | None:
    records = []
    for name, res, d in runs:
        if d["kind"] != "generate":
            continue
        r = res["results"]
        records.append({"run": name, "model": d["model"], "samples": d["samples"], "cfg": d["cfg"], "top_k": d["top_k"],
                        "top_p": d["top_p"], "more_smooth": d["more_smooth"], "seed": d["seed"],
                        "seconds": _num(_first(r.get("seconds"), r.get("wall_seconds"))), "images_per_second": _num(r.get("images_per_second")),
                        "random_weights": d["random_weights"]})  # fmt: skip
    if not records:
        return None
    cols = (("run", "run"), ("model", "model"), ("samples", "samples"), ("cfg", "cfg"), ("top_k", "top-k"),
            ("top_p", "top-p"), ("more_smooth", "more smooth"), ("seed", "seed"), ("seconds", "seconds"),
            ("images_per_second", "images/s"), ("random_weights", "random weights"))  # fmt: skip
    return Table("generate", "Generation runs", cols, tuple(records))


def speed_rows(runs) -> list[dict]:
    out = []
    for name, res, d in runs:
        if d["kind"] != "speed":
            continue
        for row in res["results"].get("rows") or []:
            if isinstance(row, dict):
                out.append({"run": name, "random_weights": d["random_weights"], **row})
    return out


def speed_fits(runs) -> list[dict]:
    """Fitted exponents of speed results: {run, model, mode, quantity ("time"|"flops"), batch_size, exponent, ci}."""
    out = []
    for name, res, d in runs:
        if d["kind"] != "speed":
            continue
        for fit in res["results"].get("fits") or []:
            if not isinstance(fit, dict):
                continue
            ci = fit.get("ci")
            if ci is None and fit.get("ci_low") is not None:
                ci = [fit.get("ci_low"), fit.get("ci_high")]
            out.append({"run": name, "model": fit.get("model"), "mode": fit.get("mode"),
                        "quantity": fit.get("quantity", "time"), "batch_size": fit.get("batch_size"),
                        "exponent": _num(_first(fit.get("exponent"), fit.get("k"))),
                        "ci": [float(c) for c in ci] if isinstance(ci, (list, tuple)) else None})  # fmt: skip
    return out


_SPEED_COLUMNS = (("run", "run"), ("model", "model"), ("mode", "mode"), ("resolution", "res"),
                  ("batch_size", "batch"), ("cfg", "cfg"), ("steps", "steps"), ("tokens", "tokens"),
                  ("latency_s", "latency s"), ("throughput_img_s", "img/s"), ("gflops_analytic", "GFLOPs (formula)"),
                  ("gflops_counted", "GFLOPs (counted)"), ("peak_mem_bytes", "peak memory"),
                  ("vq_decode_s", "VQ decode s"))  # fmt: skip


def speed_tables(runs) -> list[Table | None]:
    rows = []
    for r in speed_rows(runs):
        rec = {k: r.get(k) for k, _ in _SPEED_COLUMNS}
        for k in ("flops_analytic", "flops_counted"):
            v = _num(r.get(k))
            rec[f"g{k}"] = None if v is None else v / 1e9
        rec.update(dtype=r.get("dtype"), device=r.get("device"), random_weights=r.get("random_weights"))
        rows.append(rec)
    if not rows:
        return [None]
    tables: list[Table | None] = [Table("speed", "Decoding speed", _SPEED_COLUMNS, tuple(rows),
                                        ("latency: median seconds per generate call of `batch` images; "
                                         "GFLOPs per image (both CFG rows when cfg is on)",))]  # fmt: skip
    fits = speed_fits(runs)
    if fits:
        cols = (("run", "run"), ("model", "model"), ("mode", "mode"), ("quantity", "quantity"),
                ("batch_size", "batch"), ("exponent", "k"), ("ci", "95% CI"))  # fmt: skip
        tables.append(Table("speed_fits", "Scaling exponents (quantity ∝ n^k, n = token grid side)", cols,
                            tuple(fits)))  # fmt: skip
    return tables


PUBLISHED_FORMATS = (("fid", ".2f"), ("is_mean", ".1f"), ("precision", ".2f"), ("recall", ".2f"), ("cfg", "g"))


def published_table(name: str) -> Table:
    """One published table as printed, with its protocol columns."""
    rows = published.load(name)
    cols = (("model", "model"), ("fid", "FID"), ("is_mean", "IS"), ("precision", "precision"), ("recall", "recall"),
            ("params", "params"), ("steps", "steps"), ("time_rel", "time"), ("paper_version", "paper version"),
            ("reference_batch", "reference batch"), ("label_scheme", "labels"), ("cfg", "cfg"),
            ("cfg_semantics", "cfg rule"), ("resolution", "res"), ("eval_resolution", "scored at"))  # fmt: skip
    for r in rows:
        r["model"] = f"{r['model']} ({r['remark']})" if r["remark"] else r["model"]
        r["approx"] = list(r["approx"])
    sources = sorted({r["source"] for r in rows})
    return Table(f"published:{name}", f"Published: {published.TABLES[name]}", cols, tuple(rows),
                 tuple(f"source: {s}" for s in sources), PUBLISHED_FORMATS)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------- compare
@dataclass(frozen=True)
class Threshold:
    value: float  # allowed worsening: absolute in metric units, or a fraction of |base| when relative
    relative: bool = False

    def limit(self, base: float) -> float:
        return self.value * abs(base) if self.relative else self.value

    def __str__(self) -> str:
        if math.isinf(self.value):
            return "not gated"
        return f"{self.value * 100:g}%" if self.relative else f"{self.value:g}"


# Without --max-regression: quality metrics of a deterministic pipeline may not worsen at all; timings may drift 10%.
DEFAULT_THRESHOLDS: dict[str, Threshold] = {
    **{m: Threshold(0.0) for m in QUALITY_METRICS},
    **{m: Threshold(0.10, relative=True) for m in ("latency_s", "throughput_img_s", "images_per_second", "peak_mem_bytes")},
}


def metric_key(name: str) -> str:
    """A metric key from a user's spelling: registered keys and common aliases (``is`` -> ``is_mean``)."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in registry.METRICS:
        raise unknown_name("metric", name, list(registry.METRICS) + list(ALIASES), "use fid=0.05,is=2,...")
    return key


def parse_thresholds(text: str | None) -> dict[str, Threshold]:
    """Parse ``fid=0.05,is=2,latency=10%,*=inf`` (``*`` sets every metric not named)."""
    out: dict[str, Threshold] = {}
    if not text:
        return out
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep or not value.strip():
            raise VarbenchError(f"--max-regression item {item!r} is not METRIC=VALUE (e.g. fid=0.05 or latency=10%)")
        key = "*" if name.strip() == "*" else metric_key(name)
        value = value.strip()
        relative = value.endswith("%")
        try:
            number = float(value[:-1] if relative else value)
        except ValueError:
            raise VarbenchError(f"--max-regression {name.strip()}: {value!r} is not a number (e.g. 0.05 or 10%)") from None
        if math.isnan(number) or number < 0:
            raise VarbenchError(f"--max-regression {name.strip()}: the allowed worsening must be >= 0, got {value!r}")
        out[key] = Threshold(number / 100 if relative else number, relative)
    return out


@dataclass(frozen=True)
class Change:
    item: str  # what was measured: "" (the main metrics), a backend name, or a speed row "model mode 256px b8"
    metric: str
    base: float | None
    new: float | None
    higher_is_better: bool
    threshold: Threshold
    status: str  # "regressed" | "improved" | "unchanged" | "within" | "missing" | "new"

    @property
    def delta(self) -> float | None:
        return None if self.base is None or self.new is None else self.new - self.base

    @property
    def regressed(self) -> bool:
        return self.status in ("regressed", "missing")


@dataclass(frozen=True)
class Comparison:
    kind: str
    base_name: str
    new_name: str
    changes: tuple[Change, ...]
    warnings: tuple[str, ...]

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.regressed]

    def table(self) -> Table:
        recs = tuple(
            {"item": c.item, "metric": c.metric, "better": "higher" if c.higher_is_better else "lower", "base": c.base,
             "new": c.new, "delta": c.delta, "threshold": str(c.threshold), "status": c.status}
            for c in self.changes
        )  # fmt: skip
        cols = (("item", "item"), ("metric", "metric"), ("better", "better"), ("base", self.base_name),
                ("new", self.new_name), ("delta", "Δ"), ("threshold", "allowed worsening"), ("status", "status"))  # fmt: skip
        return Table("compare", f"{self.kind}: {self.base_name} → {self.new_name}", cols, recs, self.warnings)

    def to_json(self) -> dict:
        return {"schema": "varbench.compare", "schema_version": 1, "kind": self.kind, "base": self.base_name,
                "new": self.new_name, "regressed": bool(self.regressions), "warnings": list(self.warnings),
                "changes": [dict(r) for r in self.table().records]}  # fmt: skip


def _metric_items(result: dict) -> dict[tuple[str, str], float | None]:
    """(item, metric) -> value for every registered metric a result holds."""
    res, kind = result["results"], result["kind"]
    out: dict[tuple[str, str], float | None] = {}

    def take(item: str, d: dict) -> None:
        for k, v in d.items():
            if k in registry.METRICS and (v is None or isinstance(v, (int, float))) and not isinstance(v, bool):
                out[(item, k)] = None if v is None else float(v)

    if kind == "fid":
        main = res.get("metrics") or {}
        take("", main)
        for name, d in sorted((res.get("backends") or {}).items()):
            if isinstance(d, dict) and d != main:  # the backend "metrics" came from is not listed twice
                take(name, d)
    elif kind == "generate":
        take("", {**res, "images_per_second": _num(res.get("images_per_second"))})
    elif kind == "speed":
        for row in res.get("rows") or []:
            if isinstance(row, dict):
                take(_speed_item(row), {k: row.get(k) for k in SPEED_METRICS})
    return out


def _speed_item(row: dict) -> str:
    return f"{row.get('model')} {row.get('mode')} {row.get('resolution')}px b{row.get('batch_size')}"


def _status(base: float | None, new: float | None, higher: bool, thr: Threshold) -> str:
    if base is None and new is None:
        return "unchanged"
    if new is None or math.isnan(new):
        return "within" if math.isinf(thr.value) else "missing"
    if base is None or math.isnan(base):
        return "new"
    worse = (base - new) if higher else (new - base)
    if worse > thr.limit(base) + 1e-12 * max(1.0, abs(base)):
        return "regressed"
    if worse < 0:
        return "improved"
    return "unchanged" if worse == 0 else "within"


def compare(
    base: dict,
    new: dict,
    max_regression: dict[str, Threshold] | None = None,
    *,
    base_name: str = "base",
    new_name: str = "new",
) -> Comparison:
    """Every shared metric of two results of one kind, each judged by its registered direction.

    ``max_regression`` maps metric keys (and ``*``) to the allowed worsening; keys not given fall back to ``*`` and
    then to ``DEFAULT_THRESHOLDS``.  A metric present in BASE but missing (or NaN) in NEW counts as a regression.
    """
    results.validate(base, base_name)
    results.validate(new, new_name)
    if base["kind"] != new["kind"]:
        raise VarbenchError(
            f"cannot compare a {base['kind']!r} result ({base_name}) with a {new['kind']!r} result ({new_name}); "
            "pass two results of the same kind"
        )
    limits = dict(max_regression or {})
    default = limits.pop("*", None)
    b, n = _metric_items(base), _metric_items(new)
    if not b:
        raise VarbenchError(f"{base_name} holds no metrics to compare (kind {base['kind']!r})")
    changes = []
    for key in list(b) + [k for k in n if k not in b]:
        item, metric = key
        spec = registry.get(metric)
        thr = limits.get(metric) or default or DEFAULT_THRESHOLDS.get(metric, Threshold(0.0))
        changes.append(Change(item, metric, b.get(key), n.get(key), spec.higher_is_better, thr,
                              _status(b.get(key), n.get(key), spec.higher_is_better, thr)))  # fmt: skip
    return Comparison(base["kind"], base_name, new_name, tuple(changes), tuple(_config_warnings(base, new)))


def _flatten(d, prefix: str = "") -> dict:
    out = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    else:
        out[prefix[:-1]] = d
    return out


_IGNORED_CONFIG = ("out", "path", "dir", "npz", "created", "device", "workers", "verbose")


def _config_warnings(base: dict, new: dict) -> list[str]:
    warn = []
    if base["random_weights"] != new["random_weights"]:
        warn.append(f"random_weights differ: {base['random_weights']} vs {new['random_weights']}")
    fb, fn = _flatten(base["config"]), _flatten(new["config"])
    diff = [k for k in sorted(set(fb) | set(fn))
            if fb.get(k) != fn.get(k) and not any(part in _IGNORED_CONFIG for part in k.split("."))]  # fmt: skip
    for k in diff[:8]:
        warn.append(f"config {k}: {fb.get(k)!r} vs {fn.get(k)!r}")
    if len(diff) > 8:
        warn.append(f"... and {len(diff) - 8} more config differences")
    sb, sn = base["results"].get("samples"), new["results"].get("samples")
    if isinstance(sb, dict) and isinstance(sn, dict) and sb.get("sha256") and sb.get("sha256") != sn.get("sha256"):
        warn.append("the scored samples differ (sha256): the generator's output changed")
    gb, gn = base["results"].get("samples_sha256"), new["results"].get("samples_sha256")
    if gb and gn and gb != gn:
        warn.append("samples.npz differs (sha256): the generator's output changed")
    rb, rn = base["results"].get("reference"), new["results"].get("reference")
    if isinstance(rb, dict) and isinstance(rn, dict):
        for k in ("sha256", "extractor", "extractor_id", "n"):  # not stats_sha256: the stats file records its path
            if rb.get(k) != rn.get(k):
                warn.append(f"reference {k} differs: {rb.get(k)!r} vs {rn.get(k)!r} (FIDs are not comparable)")
    return warn


# --------------------------------------------------------------------------------------------------------- renderers
def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Report, plot_files: dict[str, str] | None = None) -> str:
    """Markdown; ``plot_files`` maps plot names to relative image paths to embed."""
    lines = [f"# {report.title}", ""]
    for w in report.warnings:
        lines += [f"> **warning:** {w}", ""]
    for t in report.tables:
        lines += markdown_table(t)
    for name, rel in (plot_files or {}).items():
        lines += [f"### {name}", "", f"![{name}]({rel})", ""]
        if report.captions.get(name):
            lines += [f"_{_md_escape(report.captions[name])}_", ""]
    return "\n".join(lines).rstrip() + "\n"


def markdown_table(t: Table) -> list[str]:
    lines = [f"## {t.title}", "", "| " + " | ".join(_md_escape(h) for h in t.headers) + " |",
             "|" + "|".join("---" for _ in t.headers) + "|"]  # fmt: skip
    for row in t.display_rows():
        lines.append("| " + " | ".join(_md_escape(c) for c in row) + " |")
    lines.append("")
    for note in t.notes:
        lines += [f"_{_md_escape(note)}_", ""]
    return lines


_CSS = """
body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1500px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0}tr:nth-child(even) td{background:#fafafa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.worse{color:#b00020}td.better{color:#0a7d32}
.warn{background:#fff4ce;border:1px solid #e0c060;padding:6px 10px;margin:6px 0}
.note{color:#555;font-size:12px;font-style:italic}
img{max-width:100%;border:1px solid #ddd;margin:6px 0}
"""


def render_html(report: Report) -> str:
    """One static HTML file: inline CSS, plots embedded as base64 PNG, no scripts."""
    out = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
           f"<title>{html.escape(report.title)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{html.escape(report.title)}</h1>"]  # fmt: skip
    for w in report.warnings:
        out.append(f"<div class='warn'>warning: {html.escape(w)}</div>")
    for t in report.tables:
        out.append(html_table(t))
    for name, png in report.plots.items():
        data = base64.b64encode(png).decode("ascii")
        out.append(f"<h2>{html.escape(name)}</h2><img alt='{html.escape(name)}' src='data:image/png;base64,{data}'>")
        if report.captions.get(name):
            out.append(f"<p class='note'>{html.escape(report.captions[name])}</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def html_table(t: Table) -> str:
    parts = [f"<h2>{html.escape(t.title)}</h2><table><thead><tr>"]
    parts += [f"<th>{html.escape(h)}</th>" for h in t.headers]
    parts.append("</tr></thead><tbody>")
    for rec, row in zip(t.records, t.display_rows()):
        parts.append("<tr>")
        for (key, _), cell in zip(t.columns, row):
            cls = []
            if isinstance(rec.get(key), (int, float)) and not isinstance(rec.get(key), bool):
                cls.append("num")
            if key == "status" and rec.get("status") in ("regressed", "missing"):
                cls.append("worse")
            if key == "status" and rec.get("status") == "improved":
                cls.append("better")
            attr = f" class='{' '.join(cls)}'" if cls else ""
            parts.append(f"<td{attr}>{html.escape(cell)}</td>")
        parts.append("</tr>")
    parts.append("</tbody></table>")
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in t.notes]
    return "".join(parts)


def _plain(v):
    if isinstance(v, (list, tuple)):
        return "; ".join(str(x) for x in v)
    return v


def render_csv(report: Report) -> str:
    """One long CSV: a ``table`` column, then the union of all tables' record keys (raw values)."""
    keys: list[str] = []
    for t in report.tables:
        for k, _ in t.columns:
            if k not in keys:
                keys.append(k)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["table", *keys])
    for t in report.tables:
        for rec in t.records:
            w.writerow([t.name, *("" if rec.get(k) is None else _plain(rec.get(k)) for k in keys)])
    return buf.getvalue()


def render_json(report: Report, plot_files: dict[str, str] | None = None) -> str:
    obj = {
        "schema": REPORT_SCHEMA,
        "schema_version": REPORT_SCHEMA_VERSION,
        "title": report.title,
        "inputs": list(report.inputs),
        "warnings": list(report.warnings),
        "tables": [
            {"name": t.name, "title": t.title, "columns": [{"key": k, "header": h} for k, h in t.columns],
             "records": [{k: (list(v) if isinstance(v, tuple) else v) for k, v in r.items()} for r in t.records],
             "notes": list(t.notes)}
            for t in report.tables
        ],  # fmt: skip
        "plots": {name: {"path": (plot_files or {}).get(name), "caption": report.captions.get(name)} for name in report.plots},
    }
    return json.dumps(obj, indent=2, default=str) + "\n"
