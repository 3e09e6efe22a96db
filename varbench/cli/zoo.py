"""``varbench models``: the model zoo table."""

from __future__ import annotations

import json

import typer

from varbench.cli.options import guard


def models(json_out: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table.")) -> None:
    """List the zoo: resolution, parameters, decoding steps, tokens, weights present, reported FID.

    Example: varbench models --json
    """
    from varbench import weights, zoo
    from varbench.cli import render

    rows = []
    for name in zoo.names():
        spec = zoo.get(name)
        present = all(weights.is_cached(w) for w in spec.weights) if spec.weights else None
        best = spec.reported[0] if spec.reported else {}
        rows.append(
            {
                "name": name,
                "family": spec.family,
                "resolution": spec.resolution,
                "params": spec.params,
                "patch_nums": list(spec.arch.get("patch_nums", ())),
                "steps": spec.steps,
                "tokens": spec.tokens,
                "weights": [w.filename for w in spec.weights],
                "weights_present": present,
                "random_init": spec.random_init,
                "reported_fid": best.get("fid"),
                "reported_is": best.get("is"),
                "reported_source": best.get("source"),
                "sampling": spec.sampling,
            }
        )
    if json_out:
        render.raw(json.dumps(rows, indent=2))
        return
    render.table(
        "varbench model zoo",
        ["name", "res", "params", "steps", "tokens", "weights", "reported FID (IS)", "source"],
        [
            (
                r["name"],
                r["resolution"],
                f"{r['params']:,}",
                r["steps"],
                r["tokens"],
                "random init" if r["random_init"] else ("present" if r["weights_present"] else "missing"),
                "" if r["reported_fid"] is None else f"{r['reported_fid']}" + (f" ({r['reported_is']})" if r["reported_is"] else ""),
                r["reported_source"] or "",
            )
            for r in rows
        ],
        caption=f"weights directory: {weights.weights_dir()}",
    )


def register(app: typer.Typer) -> None:
    app.command("models")(guard(models))
