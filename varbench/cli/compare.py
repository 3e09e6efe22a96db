"""``varbench compare``: the regression gate for CI (two results of one kind -> exit 1 on a regression)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from varbench.cli.options import guard
from varbench.errors import VarbenchError


def compare(
    base: Path = typer.Argument(..., help="The baseline result JSON."),
    new: Path = typer.Argument(..., help="The new result JSON (same kind)."),
    max_regression: str = typer.Option(
        "", "--max-regression", "-t",
        help="Allowed worsening per metric: fid=0.05,is=2,latency=10%; '*=X' sets every unnamed non-spread metric. "
        "Default: each metric's registry tolerance (0.01% for quality metrics, 10% for timings); is_std and "
        "kid_std only when named.",
    ),
    allow_changed_samples: bool = typer.Option(
        False, "--allow-changed-samples", help="Do not fail when the scored samples' sha256 differs."),
    json_out: bool = typer.Option(False, "--json", help="Print the comparison as JSON instead of a table."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Also write the comparison to a .md or .json file."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
) -> None:
    """Gate a new result against a baseline: exit 1 on a regression beyond thresholds, else 0.

    Both files must be results of one kind; every shared metric is judged by its registered direction (FID lower,
    IS higher, ...).  Changed samples (sha256) fail the gate unless --allow-changed-samples.  Bad input exits 2.

    Example (runs/ci/fid.json is written by .ci/regression, which runs this same gate):
    varbench compare reports/baseline.json runs/ci/fid.json --max-regression fid=0.01,is=0.05
    """
    import json

    from varbench import files
    from varbench.cli import render
    from varbench.report import compare as gate
    from varbench.report.render import markdown_table
    from varbench.results import frame, read

    if out is not None and out.suffix not in (".md", ".json"):
        raise VarbenchError(f"--out must end in .md or .json, got {out}")
    files.check_output(out, "--out", overwrite)
    thresholds = gate.parse_thresholds(max_regression)
    names = frame.run_names([base, new])
    cmp = gate.compare(read.load(base), read.load(new), thresholds, base_name=names[0], new_name=names[1],
                       allow_changed_samples=allow_changed_samples)
    table = cmp.table()
    if out is not None:
        if out.suffix == ".json":
            files.write_json(out, cmp.to_json())
        else:
            files.write_text(out, "\n".join(markdown_table(table) + [verdict(cmp), ""]))
    if json_out:
        render.raw(json.dumps(cmp.to_json(), indent=2, default=str))
    else:
        for w in cmp.warnings:
            render.warn(w)
        shown = table.display()
        render.table(table.title, list(shown.columns), shown.itertuples(index=False))
        render.info(verdict(cmp))
    if cmp.regressions:
        raise typer.Exit(1)


def verdict(cmp) -> str:
    from varbench.report.tables import format_cell

    if not cmp.regressions:
        return "no regressions"
    parts = []
    for c in cmp.regressions:
        what = f"{c.item} {c.metric}".strip()
        if c.status == "missing":
            parts.append(f"{what} missing in {cmp.new_name}")
        elif c.status == "changed":
            parts.append(f"the scored samples changed ({c.base} -> {c.new}): update the baseline on purpose or pass "
                         "--allow-changed-samples")
        else:
            parts.append(f"{what} {format_cell('delta', c.delta, {'metric': c.metric})} (allowed {c.threshold})")
    return f"{len(parts)} regression(s): " + "; ".join(parts)


def register(app: typer.Typer) -> None:
    app.command("compare")(guard(compare))
