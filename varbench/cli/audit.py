"""``varbench audit``: check that a sample set is what the protocol asks for, before it is scored."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from varbench.cli.options import guard

PROTOCOL_NAMES = ("adm", "none")  # = varbench.evaluate.audit_checks.PROTOCOLS (checked by a test)


def audit(
    samples: Path = typer.Argument(..., help="An ADM npz (arr_0), a varbench generate directory or a PNG/JPEG folder."),
    protocol: str = typer.Option("adm", "--protocol", help="adm (50,000 images, 50 per class, 256/512 px, shuffled "
                                 "rows) | none (only the integrity checks)."),
    reference: Optional[str] = typer.Option(None, "--reference", help="A reference name or .npz: the samples must "
                                            "have its resolution (default: adm allows 256 or 512)."),
    batch_size: int = typer.Option(256, "--batch-size", help="Images per batch of the one pass over the images."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the audit result JSON here (a new file)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --json file."),
) -> None:
    """Check count, resolution, format, labels, class balance, order, duplicates and (generate directories) chunks,
    samples.npz and seeds.  Exit code 1 when the set breaks the protocol (a fail), 0 otherwise, 2 on bad input.

    Example: varbench audit runs/var_d16 --reference imagenet256 --json runs/var_d16/audit.json
    """
    from varbench import files
    from varbench.cli import render
    from varbench.evaluate.audit import audit_path, get_protocol, reference_resolution
    from varbench.results import schema

    files.check_output(json_out, "--json", overwrite)
    proto = get_protocol(protocol)
    side = reference_resolution(reference) if reference else None
    with render.progress() as progress:
        report = audit_path(samples, proto, resolution=side, reference=reference, batch_size=batch_size,
                            progress=progress)
    result = report.to_result()
    if json_out is not None:
        schema.save(json_out, result)
    show(result)
    if json_out is not None:
        render.info(f"results: {json_out}")
    if report.failed:
        raise typer.Exit(1)


def show(result: dict) -> None:
    """The verdict table: one row per check."""
    from varbench.cli import render

    res = result["results"]
    rows = [[key, c["status"].upper(), _text(c["value"]), _text(c["expected"]), c["message"]]
            for key, c in res["checks"].items()]
    samples = result["protocol"]["samples"]
    what = f"{samples['count']:,} images {samples['height']}x{samples['width']} ({samples['kind']})" if samples \
        else result["config"]["samples"]
    caption = f"{what}; protocol {res['protocol']['name']}; {res['seconds']:.1f} s"
    render.table(f"varbench audit: {res['verdict'].upper()}", ["check", "status", "value", "expected", "note"], rows,
                 caption=caption)
    if res["failed"]:
        render.warn(f"the samples break the {res['protocol']['name']} protocol: {', '.join(res['failed'])}")


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list):
        return ", ".join(_text(v) or "–" for v in value)
    return str(value)


def register(app: typer.Typer) -> None:
    app.command("audit")(guard(audit))
