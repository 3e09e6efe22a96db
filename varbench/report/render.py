"""A report as Markdown, HTML (one static file, plots embedded), CSV (one long table) or JSON: strings only; the CLI
writes them."""

from __future__ import annotations

import base64
import html
import io
import json

REPORT_SCHEMA = "varbench.report"
REPORT_SCHEMA_VERSION = 2


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(t) -> list[str]:
    shown = t.display()
    lines = [f"## {t.title}", "", "| " + " | ".join(_md_escape(h) for h in shown.columns) + " |",
             "|" + "|".join("---" for _ in shown.columns) + "|"]
    for row in shown.itertuples(index=False):
        lines.append("| " + " | ".join(_md_escape(c) for c in row) + " |")
    lines.append("")
    for note in t.notes:
        lines += [f"_{_md_escape(note)}_", ""]
    return lines


def render_markdown(report, plot_files: dict[str, str] | None = None) -> str:
    """Markdown; ``plot_files`` maps plot names to relative image paths to embed."""
    lines = [f"# {report.title}", ""]
    for w in report.warnings:
        lines += [f"> **warning:** {_md_escape(w)}", ""]
    for t in report.tables:
        lines += markdown_table(t)
    for name, rel in (plot_files or {}).items():
        lines += [f"### {name}", "", f"![{name}]({rel})", ""]
        if report.captions.get(name):
            lines += [f"_{_md_escape(report.captions[name])}_", ""]
    return "\n".join(lines).rstrip() + "\n"


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


def html_table(t) -> str:
    shown = t.display()
    parts = [f"<h2>{html.escape(t.title)}</h2><table><thead><tr>"]
    parts += [f"<th>{html.escape(h)}</th>" for h in shown.columns]
    parts.append("</tr></thead><tbody>")
    for rec, row in zip(t.records(), shown.itertuples(index=False)):
        parts.append("<tr>")
        for key, cell in zip(t.columns, row):
            value = rec.get(key)
            cls = ["num"] if isinstance(value, (int, float)) and not isinstance(value, bool) else []
            if key == "status" and value in ("regressed", "missing", "changed"):
                cls.append("worse")
            elif key == "status" and value == "improved":
                cls.append("better")
            attr = f" class='{' '.join(cls)}'" if cls else ""
            parts.append(f"<td{attr}>{html.escape(cell)}</td>")
        parts.append("</tr>")
    parts.append("</tbody></table>")
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in t.notes]
    return "".join(parts)


def render_html(report) -> str:
    """One static HTML file: inline CSS, plots embedded as base64 PNG, no scripts."""
    out = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
           f"<title>{html.escape(report.title)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{html.escape(report.title)}</h1>"]
    out += [f"<div class='warn'>warning: {html.escape(w)}</div>" for w in report.warnings]
    out += [html_table(t) for t in report.tables]
    for name, png in report.plots.items():
        data = base64.b64encode(png).decode("ascii")
        out.append(f"<h2>{html.escape(name)}</h2><img alt='{html.escape(name)}' src='data:image/png;base64,{data}'>")
        if report.captions.get(name):
            out.append(f"<p class='note'>{html.escape(report.captions[name])}</p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def render_csv(report) -> str:
    """One long CSV: a ``table`` column, then the union of every table's columns (raw values)."""
    import pandas as pd

    frames = []
    for t in report.tables:
        df = t.frame[t.columns].copy()
        for col in df.columns:
            if df[col].map(lambda v: isinstance(v, (list, tuple))).any():
                df[col] = df[col].map(lambda v: "; ".join(map(str, v)) if isinstance(v, (list, tuple)) else v)
        frames.append(df.assign(table=t.name))
    if not frames:
        return "table\n"
    combined = pd.concat(frames, ignore_index=True, sort=False)
    combined = combined[["table", *[c for c in combined.columns if c != "table"]]]
    buf = io.StringIO()
    combined.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


def render_json(report, plot_files: dict[str, str] | None = None) -> str:
    obj = {
        "schema": REPORT_SCHEMA, "schema_version": REPORT_SCHEMA_VERSION, "title": report.title,
        "inputs": list(report.inputs), "warnings": list(report.warnings),
        "tables": [{"name": t.name, "title": t.title, "columns": [{"key": k, "header": h} for k, h in t.headers.items()],
                    "records": t.records(), "notes": list(t.notes)} for t in report.tables],
        "plots": {name: {"path": (plot_files or {}).get(name), "caption": report.captions.get(name)}
                  for name in report.plots},
    }
    return json.dumps(obj, indent=2, default=str) + "\n"
