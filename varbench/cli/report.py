"""``varbench report``: result JSONs -> tables and plots (Markdown, HTML, CSV or JSON), next to published numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from varbench.cli.options import guard, str_list
from varbench.errors import VarbenchError

FORMATS = ("md", "html", "csv", "json")


def report(
    results: Optional[list[Path]] = typer.Argument(None, help="Result JSON files of generate/fid/speed, or directories holding them."),
    fmt: str = typer.Option("md", "--format", "-f", help="md | html | csv | json."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write OUT.<format> (plots as OUT_plots/*.png; HTML embeds them). Without it: print."),
    published: Optional[str] = typer.Option(None, "--published", help="Append published tables: 'all' or names, comma-separated (see varbench/results/published/README.md)."),
    title: str = typer.Option("varbench report", "--title", help="Report title."),
    max_classes: int = typer.Option(8, "--grid-classes", min=1, help="Sample grid: classes (rows)."),
    per_class: int = typer.Option(8, "--grid-samples", min=1, help="Sample grid: samples per class (columns)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing OUT.<format>."),
) -> None:
    """Tables and plots from result JSONs: reproduced vs published numbers, deltas, protocol differences.

    Tables are built from the JSON files alone (plus the published tables). With --out: FID-vs-CFG and speed log-log
    plots and a classes x samples grid for each generate run; HTML is one static file with the plots embedded.

    Example (after the README's `varbench generate --model var_test ... --out runs/quickstart`):
    varbench report runs/quickstart --format html --out reports/quickstart
    """
    from varbench import files
    from varbench import report as rp
    from varbench.cli import render
    from varbench.report import render as renderers
    from varbench.results import frame
    from varbench.results import published as pub

    if fmt not in FORMATS:
        raise VarbenchError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    tables = list(pub.TABLES) if (published or "").strip() == "all" else (str_list(published, "--published") or [])
    for t in tables:
        pub.load(t)  # an unknown name: one line with close matches
    if not results and not tables:
        raise VarbenchError("give result JSON files (or --published all to print the published tables)")
    target = None
    if out is not None:
        stem = out.with_suffix("") if out.suffix == f".{fmt}" else out
        target = stem.parent / f"{stem.name}.{fmt}"
        files.check_output(target, "--out", overwrite)
    inputs = frame.load_inputs(results) if results else []
    rep = rp.build(inputs, published_tables=tables, title=title)
    figs, captions, notes = (rp.figures(inputs, max_classes=max_classes, per_class=per_class)
                             if (out is not None or fmt == "html") and inputs else ({}, {}, []))
    rep = rp.Report(rep.title, rep.inputs, rep.tables, rep.warnings + tuple(notes), figs, captions)
    if target is None:
        if fmt == "md":
            for w in rep.warnings:
                render.warn(w)
            for t in rep.tables:
                shown = t.display()
                render.table(t.title, list(shown.columns), shown.itertuples(index=False), " ".join(t.notes) or None)
        else:
            render.raw({"html": renderers.render_html, "csv": renderers.render_csv,
                        "json": renderers.render_json}[fmt](rep))
        return
    plot_files: dict[str, str] = {}
    if fmt != "html":
        for name, png in figs.items():
            rel = f"{target.stem}_plots/{name}.png"
            files.write_bytes(target.parent / rel, png)
            plot_files[name] = rel
    text = {"md": lambda: renderers.render_markdown(rep, plot_files), "html": lambda: renderers.render_html(rep),
            "csv": lambda: renderers.render_csv(rep), "json": lambda: renderers.render_json(rep, plot_files)}[fmt]()
    files.write_text(target, text)
    plots_dir = target.parent / f"{target.stem}_plots"
    render.info(f"wrote {target}" + (f" and {len(plot_files)} plot(s) in {plots_dir}" if plot_files else ""))


def register(app: typer.Typer) -> None:
    app.command("report")(guard(report))
