"""``varbench models``: the model zoo table."""

from __future__ import annotations

import json

import typer

from varbench.cli.options import guard


def models(json_out: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table.")) -> None:
    """List the zoo: resolution, parameters, decoding steps, tokens, weights present, reported FID.

    Example: varbench models --json
    """
    import dataclasses

    from varbench.cli import render
    from varbench.generators import weights, zoo
    from varbench.results import published

    rows = []
    for name in zoo.names():
        spec = zoo.get(name)
        present = all(weights.is_cached(w) for w in spec.weights) if spec.weights else None
        best = next(iter(published.for_model(name)), {})
        rows.append(
            {
                "name": name,
                "family": spec.family,
                "resolution": spec.resolution,
                "generated_resolution": spec.generated_resolution,
                "params": spec.params,
                "patch_nums": list(spec.tokenizer.patch_nums) if spec.family == "var" else None,
                "steps": spec.steps,
                "tokens": spec.tokens,
                "weights": [w.filename for w in spec.weights],
                "weights_present": present,
                "random_init": spec.random_init,
                "paper_version": spec.paper_version,
                "reported_fid": best.get("fid"),
                "reported_is": best.get("is_mean"),
                "reported_source": best.get("source"),
                "sampling": None if spec.sampling is None else dataclasses.asdict(spec.sampling),
                "guidance_rule": None if spec.sampling is None else spec.sampling.guidance_rule,
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
                "–" if r["params"] is None else f"{r['params']:,}",
                r["steps"],
                r["tokens"],
                "random init" if r["random_init"] else {True: "present", False: "missing", None: "none"}[r["weights_present"]],
                "" if r["reported_fid"] is None else f"{r['reported_fid']}" + (f" ({r['reported_is']})" if r["reported_is"] else ""),
                r["reported_source"] or "",
            )
            for r in rows
        ],
        caption=f"weights directory: {weights.weights_dir()}",
    )


def register(app: typer.Typer) -> None:
    app.command("models")(guard(models))
