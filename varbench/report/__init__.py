"""Reports from result files: tables (pandas) next to the published numbers with their protocol differences,
renderers (Markdown, HTML, CSV, JSON), plots, and the ``compare`` regression gate."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from varbench.report.tables import Table, all_tables


@dataclass(frozen=True)
class Report:
    title: str
    inputs: tuple[dict, ...]  # {run, kind, model, created, random_weights}
    tables: tuple[Table, ...]
    warnings: tuple[str, ...] = ()
    plots: dict = field(default_factory=dict)  # name -> PNG bytes (varbench.report.plots)
    captions: dict = field(default_factory=dict)  # plot name -> caption

    def table(self, name: str) -> Table:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(name)


def build(inputs: Sequence[tuple], *, published_tables: Iterable[str] = (), title: str = "varbench report") -> Report:
    """Every table of ``inputs`` (``(run name, result, path)``, see ``varbench.results.frame.load_inputs``)."""
    from varbench.report import edit, scaling

    runs = list(inputs)
    tables = all_tables(runs, published_tables) + scaling.scaling_tables(runs)
    zero_shot = edit.zero_shot_table(runs)
    if zero_shot is not None:
        tables.append(zero_shot)
    warnings = []
    random = [name for name, result, _ in runs if result["random_weights"]]
    if random:
        warnings.append(f"random weights in {', '.join(random)}: numbers test the pipeline, not a model")
    for name, result, _ in runs:
        warnings += [f"{name}: {w}" for w in result["warnings"]]
    unknown = [name for name, result, _ in runs if result["kind"] == "fid" and result["protocol"]["model"] is None]
    if unknown:
        warnings.append(f"no model recorded in {', '.join(unknown)}: no published numbers to compare with")
    warnings += stale_scores(runs)
    inputs_info = tuple({"run": name, "kind": r["kind"], "model": (r["protocol"]["model"] or {}).get("name"),
                         "created": r["created"], "random_weights": r["random_weights"]} for name, r, _ in runs)
    return Report(title=title, inputs=inputs_info, tables=tuple(tables), warnings=tuple(warnings))


def figures(inputs: Sequence[tuple], *, max_classes: int = 8,
            per_class: int = 8) -> tuple[dict[str, bytes], dict[str, str], list[str]]:
    """Every figure of a report: (name -> PNG, name -> caption, notes) from ``plots`` and the scaling fits."""
    from varbench.report import plots, scaling

    figs, captions, notes = plots.for_report(inputs, max_classes=max_classes, per_class=per_class)
    png = scaling.loglog(list(inputs))
    if png:
        figs["scaling_loglog"] = png
        captions["scaling_loglog"] = "test loss and token error vs parameters: ours (solid) and the paper's laws (dashed)"
    return figs, captions, notes


def stale_scores(runs: Sequence[tuple]) -> list[str]:
    """fid results whose scored samples are not the ones a generate result of the same directory holds now (a
    ``fid.json`` kept beside samples that were made again)."""
    import os

    def where(path) -> str:
        return os.path.normpath(os.path.abspath(str(path)))

    made = {}
    for name, r, _ in runs:
        if r["kind"] == "generate" and r["protocol"]["samples"]:
            s = r["protocol"]["samples"]
            made[where(os.path.dirname(s["path"]))] = (name, s["sha256"])
            made[where(s["path"])] = (name, s["sha256"])
    out = []
    for name, r, _ in runs:
        s = r["protocol"]["samples"]
        if r["kind"] == "fid" and s and where(s["path"]) in made and made[where(s["path"])][1] != s["sha256"]:
            out.append(f"{name} scored other samples than {made[where(s['path'])][0]} holds now (sha256 differs): "
                       "score them again")
    return out
