"""``varbench ref``: build, list and show reference statistics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from varbench.cli.options import guard

ref_app = typer.Typer(
    help="Reference statistics for varbench fid: build, list, show.\n\n"
    "Example: varbench ref build imagenet256 --from VIRTUAL_imagenet256_labeled.npz && varbench ref list",
    no_args_is_help=True,
)


def build(
    name: str = typer.Argument(..., help="Reference name, e.g. imagenet256."),
    source: Path = typer.Option(..., "--from", help="An ADM reference npz, an npz of real images (arr_0) or an "
                                "image folder."),
    extractor: str = typer.Option("inception", "--extractor", help="inception (FID, sFID, P&R, KID) | dinov2 (FD_DINOv2, EDM2's protocol)."),
    inception_weights: Optional[Path] = typer.Option(None, "--inception-weights", help="Inception weights file."),
    dinov2_weights: Optional[Path] = typer.Option(None, "--dinov2-weights", help="DINOv2 weights (dinov2_vitl14_pretrain.pth)."),
    dinov2_heads: Optional[int] = typer.Option(None, "--dinov2-heads", help="Heads of the ViT (default: width / 64)."),
    dinov2_resize: str = typer.Option("torch", "--dinov2-resize", help="torch (EDM2's default) | pil."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images per Inception batch."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
    dtype: str = typer.Option("fp32", "--dtype", help="Inception arithmetic: fp32 or fp64."),
    center_crop: Optional[int] = typer.Option(None, "--center-crop", help="A folder tree of real images of any size (e.g. ImageNet train) through ADM's centre crop to N px."),
    recompute: bool = typer.Option(False, "--recompute", help="Ignore mu/sigma stored in an ADM npz; compute all."),
    pr_images: int = typer.Option(10_000, "--pr-images", help="At most this many images keep pool3 features for "
                                  "P&R/KID (a seeded random subset when there are more)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing reference of this name."),
) -> None:
    """Build reference statistics into the user cache.

    From an ADM reference npz the stored mu, sigma, mu_s, sigma_s are kept and pool3 features of its images are
    computed for precision/recall and KID; from real images everything is computed.  With --extractor dinov2 the
    DINOv2 statistics (FD_DINOv2) are computed from the images; they are a reference of their own.

    Example: varbench ref build imagenet256 --from VIRTUAL_imagenet256_labeled.npz
    Example: varbench ref build imagenet256_dinov2 --from VIRTUAL_imagenet256_labeled.npz --extractor dinov2
    Example: varbench ref build train256_dinov2 --from ILSVRC2012/train --center-crop 256 --extractor dinov2
    """
    from varbench import dist
    from varbench.cli import render
    from varbench.errors import VarbenchError
    from varbench.evaluate import reference as references

    path = references.path_for(name)
    if path.exists() and not force:
        raise VarbenchError(f"reference {name!r} already exists at {path}; pass --force to replace it")
    known = references.known().get(name)
    if known is not None and Path(source).name != known["file"]:
        render.warn(f"{name} is a known reference built from {known['file']}; building it from {Path(source).name}")
    with render.progress() as progress:
        ref = references.build(name, source, weights=dinov2_weights if extractor == "dinov2" else inception_weights,
                          extractor=extractor, dinov2_heads=dinov2_heads, dinov2_resize=dinov2_resize,
                          center_crop=center_crop,
                          device=dist.resolve_device(device, dist.DistInfo.from_env()), dtype=dtype,
                          batch_size=batch_size, recompute=recompute, pr_images=pr_images, progress=progress)
    for w in ref.extra.get("warnings", []):
        render.warn(w)
    references.save(ref, path)
    _show(ref.meta(), path)


def list_refs(json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List known and built references.

    Example: varbench ref list
    """
    from varbench.cli import render
    from varbench.evaluate import reference as references

    known, built = references.known(), references.built()
    rows = []
    for name in sorted(set(known) | set(built)):
        entry = {"name": name, "built": name in built, "path": str(references.path_for(name)) if name in built else None}
        if name in built:
            meta = references.load(references.path_for(name)).meta()
            entry.update(resolution=meta["resolution"], extractor_id=meta["extractor_id"],
                         n_features=meta["n_features"], source=meta["source"])
        if name in known:
            entry.update(url=known[name]["url"], file=known[name]["file"])
        rows.append(entry)
    if json_out:
        render.raw(json.dumps(rows, indent=2))
        return
    render.table(
        "varbench references",
        ["name", "status", "resolution", "extractor", "P&R images", "source"],
        [
            (r["name"], "built" if r["built"] else "not built",
             "x".join(map(str, r["resolution"])) if r.get("resolution") else "",
             r.get("extractor_id", ""), r.get("n_features", ""), r["source"] if r["built"] else r["file"])
            for r in rows
        ],
        caption=f"cache: {references.cache_dir()}",
    )
    for r in rows:
        if not r["built"]:
            render.info(f"{r['name']}: download {r['url']}, then varbench ref build {r['name']} --from {r['file']}")


def show(name: str = typer.Argument(..., help="A built reference name or its .npz path."),
         json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Show one reference's metadata.

    Example: varbench ref show imagenet256
    """
    from varbench.cli import render
    from varbench.evaluate import reference as references

    ref, path = references.resolve(name)
    if json_out:
        render.raw(json.dumps({**ref.meta(), "path": str(path)}, indent=2))
        return
    _show(ref.meta(), path)


def _show(meta: dict, path: Path) -> None:
    from varbench.cli import render

    rows = [(k, json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in meta.items()]
    render.table(f"reference {meta['name']}", ["field", "value"], rows, caption=str(path))


def register(app: typer.Typer) -> None:
    ref_app.command("build")(guard(build))
    ref_app.command("list")(guard(list_refs))
    ref_app.command("show")(guard(show))
    app.add_typer(ref_app, name="ref")
