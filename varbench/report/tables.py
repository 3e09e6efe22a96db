"""Report tables built with pandas from result files alone (plus the published tables), like lm-eval's
``make_table``: ``reports/`` can always be rebuilt from the JSON files.

Tables
    runs        one row per input file: kind, model, guidance, samples, reference, random weights, git sha
    quality     one row per (fid run, metric, published row): reproduced next to published, delta, protocol
                differences between the run and the published row
    cfg_sweep   FID/IS/P/R per (model, guidance rule, cfg) when a model has fid runs at several guidance scales
    generate    throughput and settings of ``generate`` runs
    speed       the rows of ``speed`` runs (latency, throughput, FLOPs, memory); speed_fits: fitted exponents
    published:* a published table verbatim (on request)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from varbench.metrics import registry
from varbench.report import protocol as protocol_diff
from varbench.results import frame as frames
from varbench.results import published

_FORMATS = {"cfg": "g", "top_p": "g", "last_step_weight": "g", "exponent": ".3f", "seconds": ".4g",
            "gflops_analytic": ".4g", "gflops_counted": ".4g", "vq_decode_s": ".4g"}
_BY_METRIC = ("reproduced", "published", "base", "new", "delta")  # columns formatted by the row's metric


@dataclass(frozen=True)
class Table:
    """A report table: ``frame`` holds raw values (CSV/JSON); ``display()`` formats them (Markdown/HTML/terminal)."""

    name: str
    title: str
    frame: object  # pandas.DataFrame; its columns are the record keys
    headers: dict  # record key -> column header (the order of the table)
    notes: tuple[str, ...] = ()
    formats: dict = field(default_factory=dict)  # record key -> format spec overriding the defaults

    @property
    def columns(self) -> list[str]:
        return list(self.headers)

    def records(self) -> list[dict]:
        """Raw rows (every column of the frame) as plain Python values (NaN -> None)."""
        return [{k: _plain(v) for k, v in rec.items()} for rec in self.frame.to_dict("records")]

    def display(self):
        """The table as strings, one column per header (a pandas DataFrame)."""
        import pandas as pd

        rows = [[format_cell(k, rec.get(k), rec, self.formats.get(k)) for k in self.columns] for rec in self.records()]
        return pd.DataFrame(rows, columns=[self.headers[k] for k in self.columns])


def format_cell(key: str, value, record: dict | None = None, fmt: str | None = None) -> str:
    """Display form of one cell; the by-metric columns of long tables are formatted by the row's ``metric``.
    A key listed in the record's ``approx`` is shown with a leading "~" (published "~45")."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        if key == "ci" and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
            spec = registry.METRICS.get((record or {}).get("metric"))
            f = fmt or (spec.fmt if spec else ".3f")
            return f"[{value[0]:{f}}, {value[1]:{f}}]"
        return "; ".join(str(v) for v in value)
    metric = record.get("metric") if record and key in _BY_METRIC else key
    spec = registry.METRICS.get(metric)
    if metric == "peak_mem_bytes" and isinstance(value, (int, float)):
        text = f"{value / 2**20:.1f} MiB"
        return "+" + text if key == "delta" and value > 0 else text
    if isinstance(value, float):
        text = format(value, fmt or (spec.fmt if spec else _FORMATS.get(key, ".4g")))
        if record and key in (record.get("approx") or ()):
            text = "~" + text
        return ("+" + text if value > 0 else text) if key == "delta" else text
    return str(value)


def _plain(v):
    if isinstance(v, float) and math.isnan(v):
        return None
    if hasattr(v, "item") and not isinstance(v, (list, tuple, dict, str)):  # numpy scalars
        return v.item()
    return v


def _table(name, title, records: list[dict], headers: dict, notes=(), formats=None) -> Table | None:
    import pandas as pd

    if not records:
        return None
    extra = [k for k in dict.fromkeys(k for r in records for k in r) if k not in headers]
    return Table(name, title, pd.DataFrame(records, columns=[*headers, *extra]), headers, tuple(notes), formats or {})


def runs_table(runs: list[tuple]) -> Table | None:
    headers = {"run": "run", "kind": "kind", "model": "model", "guidance_rule": "cfg rule", "cfg": "cfg",
               "top_k": "top-k", "top_p": "top-p", "seed": "seed", "samples": "samples", "resolution": "res",
               "reference": "reference", "extractor": "extractor", "random_weights": "random weights",
               "created": "created", "git_sha": "git"}
    df = frames.frame(runs)
    return _table("runs", "Inputs", df[list(headers)].to_dict("records"), headers)


def quality_table(runs: list[tuple]) -> Table | None:
    records = []
    for name, result, _ in runs:
        if result["kind"] != "fid":
            continue
        model = (result["protocol"]["model"] or {}).get("name")
        scored = (result["protocol"]["samples"] or {}).get("resolution")
        rows = published.for_model(model, scored) if model else []
        intervals = (result["results"]["intervals"] or {}).get("metrics", {})
        for metric, value in frames.metric_values(result).items():
            if not isinstance(value, (int, float)):
                continue
            matches = [r for r in rows if metric in registry.published_keys() and r[metric] is not None]
            iv = intervals.get(metric)
            base = {"run": name, "model": model, "metric": metric, "reproduced": float(value),
                    "ci": None if iv is None else [iv["low"], iv["high"]]}
            if not matches:
                records.append({**base, "published": None, "delta": None, "source": None, "paper_version": None,
                                "differences": ["random weights"] if result["random_weights"] else []})
            for r in matches:
                diffs = protocol_diff.differences(result, r)
                if metric in r["approx"]:
                    diffs.append("published value approximate")
                records.append({**base, "published": r[metric], "delta": float(value) - r[metric],
                                "source": r["source"], "paper_version": r["paper_version"], "differences": diffs,
                                "approx": [k for k in ("published", "delta") if metric in r["approx"]]})
    headers = {"run": "run", "model": "model", "metric": "metric", "reproduced": "reproduced",
               "ci": "95% interval (bootstrap)", "published": "published", "delta": "Δ", "source": "published source", "paper_version": "paper version",
               "differences": "protocol differences"}
    notes = ("Δ = reproduced − published; better: " + ", ".join(
        f"{k} {'↑' if registry.get(k).higher_is_better else '↓'}" for k in registry.published_keys()),)
    return _table("quality", "Quality: reproduced vs published", records, headers, notes)


def cfg_points(runs: list[tuple]) -> list[dict]:
    """(model, guidance rule, cfg, metrics) of every fid run that records its model and sampling."""
    df = frames.frame(runs)
    df = df[(df.kind == "fid") & df.model.notna() & df.cfg.notna()]
    keep = ["run", "model", "guidance_rule", "cfg", "last_step_weight", "random_weights",
            *[k for k in ("fid", "is_mean", "precision", "recall") if k in df]]
    return df[keep].sort_values(["model", "cfg", "run"]).to_dict("records")


def cfg_sweep_table(runs: list[tuple]) -> Table | None:
    pts = cfg_points(runs)
    scales: dict[str, set] = {}
    for p in pts:
        scales.setdefault(p["model"], set()).add(p["cfg"])
    pts = [p for p in pts if len(scales[p["model"]]) > 1]
    headers = {"model": "model", "guidance_rule": "cfg rule", "cfg": "cfg", "last_step_weight": "weight at last step",
               "fid": "FID", "is_mean": "IS", "precision": "precision", "recall": "recall", "run": "run"}
    for p in pts:
        for k in headers:
            p.setdefault(k, None)
    return _table("cfg_sweep", "FID vs guidance", pts, headers,
                  ("weight at last step: the weight on the conditional logits at the last step (VAR: 1 + cfg)",))


def generate_table(runs: list[tuple]) -> Table | None:
    records = []
    for name, result, _ in runs:
        if result["kind"] != "generate":
            continue
        row = frames.protocol_row(result)
        records.append({"run": name, **row, "seconds": result["results"].get("wall_seconds"),
                        "images_per_second": result["results"].get("images_per_second"),
                        "random_weights": result["random_weights"]})
    headers = {"run": "run", "model": "model", "samples": "samples", "guidance_rule": "cfg rule", "cfg": "cfg",
               "top_k": "top-k", "top_p": "top-p", "more_smooth": "more smooth", "seed": "seed", "rng": "rng",
               "seconds": "seconds", "images_per_second": "images/s", "random_weights": "random weights"}
    return _table("generate", "Generation runs", records, headers)


SPEED_HEADERS = {"run": "run", "model": "model", "mode": "mode", "resolution": "res", "batch_size": "batch",
                 "cfg": "cfg", "steps": "steps", "tokens": "tokens", "latency_s": "latency s",
                 "throughput_img_s": "img/s", "gflops_analytic": "GFLOPs (formula)",
                 "gflops_counted": "GFLOPs (counted)", "peak_mem_bytes": "peak memory", "vq_decode_s": "VQ decode s"}


def speed_fits(runs: list[tuple]) -> list[dict]:
    """Fitted exponents of speed results: {run, model, mode, quantity ("time"|"flops"), batch_size, exponent, ci}."""
    return [{"run": name, **{k: fit.get(k) for k in ("model", "mode", "quantity", "batch_size", "exponent", "ci")}}
            for name, result, _ in runs if result["kind"] == "speed" for fit in result["results"]["fits"]]


def speed_tables(runs: list[tuple]) -> list[Table | None]:
    df = frames.speed_frame(runs)
    if df.empty:
        return [None]
    df = df.assign(gflops_analytic=df.flops_analytic / 1e9, gflops_counted=df.flops_counted.astype(float) / 1e9)
    tables = [_table("speed", "Decoding speed", df[list(SPEED_HEADERS)].to_dict("records"), SPEED_HEADERS,
                     ("latency: median seconds per generate call of `batch` images; GFLOPs per image (both CFG rows "
                      "when cfg is on); peak memory: CUDA max allocated, or on CPU the process's peak RSS during the "
                      "call",))]
    headers = {"run": "run", "model": "model", "mode": "mode", "quantity": "quantity", "batch_size": "batch",
               "exponent": "k", "ci": "95% CI"}
    tables.append(_table("speed_fits", "Scaling exponents (quantity ∝ n^k, n = token grid side)", speed_fits(runs),
                         headers))
    return tables


PUBLISHED_FORMATS = {"fid": ".2f", "is_mean": ".1f", "precision": ".2f", "recall": ".2f", "cfg": "g"}


def published_table(name: str) -> Table:
    """One published table as printed, with its protocol columns."""
    rows = published.load(name)
    headers = {"model": "model", "fid": "FID", "is_mean": "IS", "precision": "precision", "recall": "recall",
               "params": "params", "steps": "steps", "time_rel": "time", "paper_version": "paper version",
               "reference_batch": "reference batch", "label_scheme": "labels", "cfg": "cfg",
               "cfg_semantics": "cfg rule", "resolution": "res", "eval_resolution": "scored at"}
    for r in rows:
        r["model"] = f"{r['model']} ({r['remark']})" if r["remark"] else r["model"]
        r["approx"] = list(r["approx"])
    sources = sorted({r["source"] for r in rows})
    table = _table(f"published:{name}", f"Published: {published.TABLES[name]}", rows, {**headers, "approx": "approx"},
                   tuple(f"source: {s}" for s in sources), PUBLISHED_FORMATS)
    return Table(table.name, table.title, table.frame, headers, table.notes, table.formats)


def all_tables(runs: Sequence[tuple], published_tables: Iterable[str] = ()) -> list[Table]:
    tables = [runs_table(list(runs)), quality_table(list(runs)), cfg_sweep_table(list(runs)),
              generate_table(list(runs)), *speed_tables(list(runs))]
    return [t for t in tables if t is not None] + [published_table(n) for n in published_tables]
