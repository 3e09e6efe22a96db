"""``varbench report`` (results -> tables and plots) and ``varbench compare`` (regression gate for CI)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from varbench.cli.options import guard
from varbench.errors import VarbenchError

FORMATS = ("md", "html", "csv", "json")


def report(
    results: Optional[list[Path]] = typer.Argument(None, help="Result JSON files of generate/fid/speed, or directories holding them."),
    fmt: str = typer.Option("md", "--format", "-f", help="md | html | csv | json."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write OUT.<format> (plots as OUT_plots/*.png; HTML embeds them). Without it: print."),
    published: str = typer.Option("", "--published", help="Append published tables: 'all' or names, comma-separated (see baselines/published/README.md)."),
    title: str = typer.Option("varbench report", "--title", help="Report title."),
    max_classes: int = typer.Option(8, "--grid-classes", min=1, help="Sample grid: classes (rows)."),
    per_class: int = typer.Option(8, "--grid-samples", min=1, help="Sample grid: samples per class (columns)."),
) -> None:
    """Tables and plots from result JSONs: reproduced vs published numbers, deltas, protocol differences.

    Tables are built from the JSON files alone (plus baselines/published). With --out: FID-vs-CFG and speed log-log
    plots and a classes x samples grid for each generate run; HTML is one static file with the plots embedded.

    Example (after the README's `varbench generate --model var_test ... --out runs/quickstart`):
    varbench report runs/quickstart --format html --out reports/quickstart
    """
    from varbench import atomic, plots
    from varbench import published as pub
    from varbench import report as rp
    from varbench.cli import render

    if fmt not in FORMATS:
        raise VarbenchError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    tables = list(pub.TABLES) if published.strip() == "all" else [t.strip() for t in published.split(",") if t.strip()]
    for t in tables:
        if t not in pub.TABLES:
            pub.load(t)  # raises the unknown-name error with close matches
    if not results and not tables:
        raise VarbenchError("give result JSON files (or --published all to print the published tables)")
    inputs = rp.load_inputs(results) if results else []
    rep = rp.build(inputs, published_tables=tables, title=title)
    want_plots = out is not None or fmt == "html"
    figs, captions, notes = (
        plots.for_report(inputs, max_classes=max_classes, per_class=per_class) if want_plots and inputs else ({}, {}, [])
    )
    rep = rp.Report(rep.title, rep.inputs, rep.tables, rep.warnings + tuple(notes), figs, captions)

    if out is None:
        if fmt == "md":
            for w in rep.warnings:
                render.warn(w)
            for t in rep.tables:
                render.table(t.title, t.headers, t.display_rows(), caption=" ".join(t.notes) or None)
        else:
            render.raw({"html": rp.render_html, "csv": rp.render_csv, "json": rp.render_json}[fmt](rep))
        return

    stem = out.with_suffix("") if out.suffix == f".{fmt}" else out
    target = stem.parent / f"{stem.name}.{fmt}"
    plot_files: dict[str, str] = {}
    if fmt != "html":
        for name, png in figs.items():
            rel = f"{stem.name}_plots/{name}.png"
            atomic.write_bytes(stem.parent / rel, png)
            plot_files[name] = rel
    text = {
        "md": lambda: rp.render_markdown(rep, plot_files),
        "html": lambda: rp.render_html(rep),
        "csv": lambda: rp.render_csv(rep),
        "json": lambda: rp.render_json(rep, plot_files),
    }[fmt]()
    atomic.write_text(target, text)
    render.info(f"wrote {target}" + (f" and {len(plot_files)} plot(s) in {stem.parent / (stem.name + '_plots')}" if plot_files else ""))


def compare(
    base: Path = typer.Argument(..., help="The baseline result JSON."),
    new: Path = typer.Argument(..., help="The new result JSON (same kind)."),
    max_regression: str = typer.Option(
        "", "--max-regression", "-t",
        help="Allowed worsening per metric: fid=0.05,is=2,latency=10%; '*=inf' leaves unnamed metrics ungated. "
        "Default: quality metrics 0, timings 10%.",
    ),  # fmt: skip
    json_out: bool = typer.Option(False, "--json", help="Print the comparison as JSON instead of a table."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Also write the comparison to a .md or .json file."),
) -> None:
    """Gate a new result against a baseline: exit 1 on a regression beyond thresholds, else 0.

    Both files must be results of one kind; every shared metric is judged by its registered direction (FID lower,
    IS higher, ...). Bad input exits 2.

    Example (runs/ci/fid.json is written by .ci/regression, which runs this same gate):
    varbench compare reports/baseline.json runs/ci/fid.json --max-regression fid=0.01,is=0.05
    """
    import json

    from varbench import atomic, results
    from varbench import report as rp
    from varbench.cli import render

    thresholds = rp.parse_thresholds(max_regression)
    names = rp.run_names([base, new])
    cmp = rp.compare(results.load(base), results.load(new), thresholds, base_name=names[0], new_name=names[1])
    table = cmp.table()
    if out is not None:
        if out.suffix == ".json":
            atomic.write_json(out, cmp.to_json())
        elif out.suffix == ".md":
            verdict = _verdict(cmp)
            atomic.write_text(out, "\n".join(rp.markdown_table(table) + [verdict, ""]))
        else:
            raise VarbenchError(f"--out must end in .md or .json, got {out}")
    if json_out:
        render.raw(json.dumps(cmp.to_json(), indent=2))
    else:
        for w in cmp.warnings:
            render.warn(w)
        render.table(table.title, table.headers, table.display_rows())
        render.info(_verdict(cmp))
    if cmp.regressions:
        raise typer.Exit(1)


def _verdict(cmp) -> str:
    from varbench import report as rp

    if not cmp.regressions:
        return "no regressions"
    parts = []
    for c in cmp.regressions:
        what = f"{c.item} {c.metric}".strip()
        if c.status == "missing":
            parts.append(f"{what} missing in {cmp.new_name}")
        else:
            parts.append(f"{what} {rp.format_cell('delta', c.delta, {'metric': c.metric})} (allowed {c.threshold})")
    return f"{len(parts)} regression(s): " + "; ".join(parts)


def register(app: typer.Typer) -> None:
    app.command("report")(guard(report))
    app.command("compare")(guard(compare))
