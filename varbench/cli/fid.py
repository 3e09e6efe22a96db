"""``varbench fid``: FID, sFID, IS, precision/recall and KID of a sample set in the ADM-evaluator protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from varbench.cli.options import guard, str_list

from varbench.metrics.registry import ADM_SUITE

DEFAULT_METRICS = ",".join(ADM_SUITE)


def fid(
    samples: Path = typer.Argument(..., help="An ADM npz (arr_0), a varbench generate directory or a PNG/JPEG folder."),
    ref: str = typer.Option("imagenet256", "--ref", help="A built Inception reference name (varbench ref list) or its .npz path."),
    metrics: str = typer.Option(DEFAULT_METRICS, "--metrics", help="Comma-separated: fid, sfid, is, pr, kid (ADM's); dc (density/coverage), fd_dinov2, dc_dinov2."),
    backend: str = typer.Option("adm", "--backend", help="adm | torch-fidelity | clean-fid | all (one table)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images per Inception batch (features do not depend on it)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
    dtype: str = typer.Option("fp32", "--dtype", help="Inception arithmetic: fp32 (TF32 off) or fp64."),
    inception_weights: Optional[Path] = typer.Option(
        None, "--inception-weights", help="torch-fidelity's weights-inception-2015-12-05-6726825d.pth (default: "
        "the torch hub cache, downloaded when online)."),
    dinov2_ref: Optional[str] = typer.Option(None, "--dinov2-ref", help="A reference built with --extractor dinov2 (for fd_dinov2, dc_dinov2)."),
    dinov2_weights: Optional[Path] = typer.Option(None, "--dinov2-weights", help="dinov2_vitl14_pretrain.pth (default: the torch hub cache, downloaded when online)."),
    dinov2_heads: Optional[int] = typer.Option(None, "--dinov2-heads", help="Heads of the ViT (default: width / 64, as released)."),
    dinov2_resize: str = typer.Option("torch", "--dinov2-resize", help="torch (EDM2's bicubic + antialias) | pil (dgm-eval's PIL bicubic)."),
    fid_method: str = typer.Option("eig", "--fid-method", help="eig (eigenvalue trace) | sqrtm (SciPy, slow)."),
    is_splits: Optional[int] = typer.Option(None, "--is-splits", help="torch-fidelity's K IS splits (default: ADM's consecutive chunks of 5,000 rows)."),
    pr_distance: str = typer.Option("fp16", "--pr-distance", help="P&R distance arithmetic: fp16 (ADM's float16, "
                                    "the default) | fp32 | fp64."),
    bootstrap: int = typer.Option(0, "--bootstrap", help="95% bootstrap intervals from N replicates over the cached features (0: off)."),
    bootstrap_seed: int = typer.Option(0, "--bootstrap-seed", help="Seed of the bootstrap draws."),
    kid_subsets: int = typer.Option(100, "--kid-subsets", help="KID subsets."),
    kid_subset_size: int = typer.Option(1000, "--kid-subset-size", help="Rows per KID subset."),
    kid_seed: int = typer.Option(2020, "--kid-seed", help="Seed of the KID subsets (torch-fidelity's default)."),
    audit: str = typer.Option("adm", "--audit", help="Audit the set first: adm (the ADM protocol) | none (its checks, lenient) | off; failures become warnings."),
    no_feature_cache: bool = typer.Option(False, "--no-feature-cache", help="Recompute sample features."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the results JSON here (a new file)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --json file."),
) -> None:
    """Score SAMPLES against a reference with the ADM evaluator's protocol (PyTorch, TF32 off).

    Example: varbench fid runs/var_d16/samples.npz --ref imagenet256 --json runs/var_d16/fid.json
    """
    from varbench import dist, files
    from varbench.cli import render
    from varbench.evaluate.score import EvalConfig, evaluate
    from varbench.results import schema

    files.check_output(json_out, "--json", overwrite)
    config = EvalConfig(
        metrics=tuple(str_list(metrics, "--metrics")), backend=backend, batch_size=batch_size,
        device=dist.resolve_device(device, dist.DistInfo.from_env()), dtype=dtype, fid_method=fid_method,
        is_splits=is_splits,
        dinov2_ref=dinov2_ref, dinov2_heads=dinov2_heads, dinov2_resize=dinov2_resize,
        pr_distance=pr_distance, bootstrap=bootstrap, bootstrap_seed=bootstrap_seed, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, kid_seed=kid_seed,
        feature_cache=not no_feature_cache, audit=audit,
    )
    with render.progress() as progress:
        result = evaluate(samples, ref if config.needs_inception else None, config, weights=inception_weights,
                          dinov2_weights=dinov2_weights, progress=progress)
    if json_out is not None:
        schema.save(json_out, result)
    show(result)
    if json_out is not None:
        render.info(f"results: {json_out}")


def show(result: dict) -> None:
    """The metrics table (one column per backend, with differences to the ADM backend) and the warnings."""
    from varbench.cli import render
    from varbench.metrics import registry

    res, protocol = result["results"], result["protocol"]
    for w in result["warnings"]:
        render.warn(w)
    backends = res["backends"]
    names = list(backends)
    keys = [k for k in registry.METRICS if any(k in v for v in backends.values())]
    columns = ["metric"] + [n if n != "adm" else "adm (varbench)" for n in names]
    diffs = res["differences"]
    columns += [f"Δ {n}" for n in diffs]
    intervals = (res["intervals"] or {}).get("metrics", {})
    if intervals:
        columns.append(f"95% interval ({res['intervals']['replicates']} bootstrap replicates)")
    def fmt(value, signed=False):
        return None if value is None else format(value, "+.3g" if signed else ".6g")

    rows = []
    for key in keys:
        row = [registry.get(key).label + f" ({key})"] + [fmt(backends[n].get(key)) for n in names]
        row += [fmt(diffs[n].get(key), signed=True) for n in diffs]
        if intervals:
            iv = intervals.get(key)
            row.append(None if iv is None else f"[{iv['low']:.6g}, {iv['high']:.6g}] ({iv['method']})")
        rows.append(row)
    samples = protocol["samples"]
    caption = f"{samples['count']} samples {samples['height']}x{samples['width']}"
    for ref in (protocol["reference"], (res["dinov2"] or {}).get("reference")):
        if ref is not None:
            caption += (f"; reference {ref['name']} ({ref['n_features']} images for the k-NN metrics/KID, "
                        f"extractor {ref['extractor_id']})")
    if res["features"]:
        caption += f"; features {'from cache' if res['features']['cached'] else 'computed'}"
    if res["audit"] is not None:
        caption += f"; audit: {res['audit']['verdict']}"
    if "is" in res["details"]:
        caption += f"; IS over a seeded shuffle: {res['details']['is']['shuffled_mean']:.4f}"
    render.table("varbench fid", columns, rows, caption=caption)


def register(app: typer.Typer) -> None:
    app.command("fid")(guard(fid))
