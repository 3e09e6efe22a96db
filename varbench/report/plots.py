"""Report figures as PNG bytes: FID vs CFG, the speed log-log plot, and a sample grid from a ``samples.npz``.

Matplotlib is used through ``Figure`` + the Agg canvas directly (no pyplot, no global backend switch), so importing
or calling this module changes no global state.  Inputs are the plain records of ``varbench.report.tables``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from varbench.errors import VarbenchError
from varbench.evaluate import samples as sample_sets


def new_figure(width: float = 6.4, height: float = 4.4):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def fid_vs_cfg(points: Sequence[dict], published: Sequence[dict] = ()) -> bytes | None:
    """The PNG of ``fid_vs_cfg_figure`` (None when there is nothing to plot)."""
    fig = fid_vs_cfg_figure(points, published)
    return None if fig is None else to_png(fig)


def fid_vs_cfg_figure(points: Sequence[dict], published: Sequence[dict] = ()):
    """FID (left) and IS (right) against the CFG scale, one line per model; published FIDs as dashed lines.

    ``points``: {model, cfg, fid, is_mean, random_weights}; ``published``: {model (zoo name), fid, label}.
    None when no model has runs at two or more CFG scales.
    """
    by_model: dict[str, list[dict]] = {}
    for p in points:
        if p.get("fid") is not None:
            by_model.setdefault(p["model"], []).append(p)
    by_model = {m: sorted(ps, key=lambda p: p["cfg"]) for m, ps in by_model.items() if len({p["cfg"] for p in ps}) > 1}
    if not by_model:
        return None
    fig = new_figure(10, 4.2)
    ax_fid, ax_is = fig.subplots(1, 2)
    colors = {}
    for i, (model, ps) in enumerate(sorted(by_model.items())):
        color = colors.setdefault(model, f"C{i % 10}")
        rule = ps[0].get("guidance_rule")
        label = model + (f" ({rule})" if rule else "") + (" (random weights)" if any(p.get("random_weights") for p in ps) else "")
        ax_fid.plot([p["cfg"] for p in ps], [p["fid"] for p in ps], "o-", color=color, label=label)
        is_pts = [p for p in ps if p.get("is_mean") is not None]
        if is_pts:
            ax_is.plot([p["cfg"] for p in is_pts], [p["is_mean"] for p in is_pts], "o-", color=color, label=label)
    for row in published:
        if row.get("model") in colors and row.get("fid") is not None:
            ax_fid.axhline(row["fid"], color=colors[row["model"]], ls="--", lw=0.8, alpha=0.7)
            ax_fid.annotate(row.get("label", "published"), (ax_fid.get_xlim()[0], row["fid"]), fontsize=7,
                            color=colors[row["model"]], va="bottom")  # fmt: skip
    ax_fid.set(xlabel="CFG scale (as given; rule in the legend)", ylabel="FID (lower is better)", title="FID vs CFG")
    ax_is.set(xlabel="CFG scale (as given; rule in the legend)", ylabel="Inception Score (higher is better)",
              title="IS vs CFG")
    for ax in (ax_fid, ax_is):
        ax.grid(alpha=0.3)
        ax.ticklabel_format(axis="y", style="plain", useOffset=False)  # no "+1e0" offset the reader must add
    ax_fid.legend(fontsize=8)
    return fig


def speed_loglog(rows: Sequence[dict], fits: Sequence[dict] = (), flop_sweep: Sequence[dict] = (),
                 crossovers: Sequence[dict] = (), title: str = "") -> bytes | None:
    """Log-log PNG of the speed study: time per decode call vs token-grid side n, and (given a FLOP sweep) a second
    panel of analytic FLOPs per image vs n.

    ``rows``: speed rows {model, mode, resolution, grid, batch_size, latency_s}; ``fits``: speed fits {model, mode,
    quantity, batch_size, exponent, local_exponent_last} (exponents go into the legends); ``flop_sweep``:
    {model, mode, grid, flops_analytic}; ``crossovers``: where cache-free raster attention (n^6) overtakes the dense
    recompute, marked on the FLOP panel; ``title``: appended to the time panel's title (device, dtype).
    One colour per mode, one line style per batch size.  None when no (model, mode, batch) has two or more n and
    there is no FLOP sweep.
    """
    series: dict[tuple, list[tuple[int, float]]] = {}
    for r in rows:
        lat, grid = r.get("latency_s"), r.get("grid") or (r.get("resolution") or 0) // 16
        if grid and isinstance(lat, (int, float)) and lat > 0:
            series.setdefault((r.get("model"), r.get("mode"), r.get("batch_size") or 1), []).append((grid, float(lat)))
    if not flop_sweep and not any(len({n for n, _ in pts}) > 1 for pts in series.values()):
        return None
    fig = new_figure(12, 4.8) if flop_sweep else new_figure(6.8, 4.6)
    ax_t, ax_f = fig.subplots(1, 2) if flop_sweep else (fig.subplots(), None)
    modes = sorted({str(s["mode"]) for s in flop_sweep} | {str(key[1]) for key in series})
    color = {m: f"C{i % 10}" for i, m in enumerate(modes)}
    pairs = {(s["model"], s["mode"]) for s in flop_sweep} | {key[:2] for key in series}
    several = any(len({m for m, md in pairs if md == mode}) > 1 for mode in modes)  # name models when ambiguous
    _time_panel(ax_t, series, fits, color, several, title)
    axes = [ax_t]
    if ax_f is not None:
        _flop_panel(ax_f, flop_sweep, fits, crossovers, color, several)
        axes.append(ax_f)
    for ax, loc in zip(axes, ("upper left", "lower right")):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc=loc)
    return to_png(fig)


def _loglog(ax) -> None:
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")


def _time_panel(ax, series: dict, fits: Sequence[dict], color: dict, several: bool, title: str) -> None:
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    k_time = {(f.get("model"), f["mode"], f.get("batch_size")): f["exponent"] for f in fits
              if f.get("quantity", "time") == "time" and isinstance(f.get("exponent"), (int, float))}
    batches = sorted({key[2] for key in series})
    styles = ["-", "--", ":", "-."]
    for key, pts in sorted(series.items(), key=lambda kv: tuple(map(str, kv[0]))):
        pts.sort()
        k = k_time.get(key)
        label = (f"{key[0]} " if several else "") + f"{key[1]} b{key[2]}" + ("" if k is None else f" (k={k:.2f})")
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ls=styles[batches.index(key[2]) % 4],
                color=color[str(key[1])], label=label)
    ax.set(xlabel="token-grid side n (image = 16 n px)", ylabel="seconds per decode call",
           title="Measured decode time" + (f" ({title})" if title else ""))
    _loglog(ax)
    measured_n = sorted({n for pts in series.values() for n, _ in pts})
    if measured_n:
        ax.set_xticks(measured_n)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())


def _flop_panel(ax, flop_sweep: Sequence[dict], fits: Sequence[dict], crossovers: Sequence[dict], color: dict,
                several: bool) -> None:
    k_flops = {(f.get("model"), f["mode"]): f for f in fits if f.get("quantity") == "flops"}
    curves: dict[tuple, list[tuple[int, float]]] = {}
    for s in flop_sweep:
        curves.setdefault((s["model"], s["mode"]), []).append((s["grid"], s["flops_analytic"]))
    for key, pts in sorted(curves.items()):
        pts.sort()
        f = k_flops.get(key)
        label = f"{key[0]} {key[1]}" if several else key[1]
        if f:
            last = f.get("local_exponent_last")
            label += f" (k={f['exponent']:.2f}" + (")" if last is None else f", at n max {last:.2f})")
        ax.plot([p[0] for p in pts], [p[1] for p in pts], ".-", color=color[str(key[1])], label=label)
    ax.set(xlabel="token-grid side n (image = 16 n px)", ylabel="FLOPs per image (formula)", title="Analytic FLOPs")
    _loglog(ax)
    ymax = ax.get_ylim()[1]
    for c in crossovers:
        n6 = c["nokv_attention_dominates_grid"]
        ax.axvline(n6, color="grey", ls=":", lw=1)
        ax.text(n6, ymax, f" no-KV: n^6 attention > dense\n beyond n = {n6:.0f} ({c['model']})", fontsize=7,
                color="grey", va="top")


# ------------------------------------------------------------------------------------------------------ sample grid
def read_labels(npz_path: str | Path) -> np.ndarray | None:
    """The class labels stored next to the images (``sample_sets.LABEL_KEYS``), or None."""
    path = Path(npz_path)
    keys = sample_sets.npz_keys(path)
    for key in sample_sets.LABEL_KEYS:
        if key in keys:
            return np.asarray(sample_sets.npz_array(path, key)).reshape(-1).astype(np.int64)
    return None


def sample_grid(
    npz_path: str | Path,
    *,
    labels: Sequence[int] | None = None,
    max_classes: int = 8,
    per_class: int = 8,
    cell: int = 96,
) -> tuple[bytes, list[int | None]]:
    """A PNG grid, one row per class (first ``max_classes`` classes in sorted order), ``per_class`` samples each.

    Labels come from ``labels`` or from the npz (``labels``/``arr_1``); without labels the rows are consecutive
    samples (row class None).  Returns (PNG bytes, class of each row).  Images are read memory-mapped, so a 50k
    ``samples.npz`` costs only the cells drawn.
    """
    from PIL import Image, ImageDraw

    path = Path(npz_path)
    if not path.is_file():
        raise VarbenchError(f"samples file not found: {path}")
    arr = sample_sets.npz_array(path, "arr_0")  # memory-mapped when stored uncompressed; one-line error when unreadable
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise VarbenchError(f"{path}: expected arr_0 as uint8 (N, H, W, 3) images, got {arr.dtype} {tuple(arr.shape)}")
    n = arr.shape[0]
    lab = np.asarray(labels, dtype=np.int64) if labels is not None else read_labels(path)
    if lab is not None and len(lab) != n:
        raise VarbenchError(f"{path}: {len(lab)} labels for {n} images")
    if lab is None:
        rows = [list(range(i, min(i + per_class, n))) for i in range(0, min(n, max_classes * per_class), per_class)]
        classes: list[int | None] = [None] * len(rows)
    else:
        classes = [int(c) for c in np.unique(lab)[:max_classes]]
        rows = [list(np.flatnonzero(lab == c)[:per_class]) for c in classes]
    ncols = max(len(r) for r in rows)
    margin = 0 if all(c is None for c in classes) else 56  # a label column: the class of each row, in the image
    grid = Image.new("RGB", (margin + ncols * cell, len(rows) * cell), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for ri, idx in enumerate(rows):
        if classes[ri] is not None:
            draw.text((6, ri * cell + cell // 2 - 6), f"class\n{classes[ri]}", fill=(0, 0, 0))
        for ci, i in enumerate(idx):
            img = Image.fromarray(np.ascontiguousarray(arr[int(i)]))
            if img.size != (cell, cell):
                img = img.resize((cell, cell), Image.Resampling.BICUBIC)
            grid.paste(img, (margin + ci * cell, ri * cell))
    buf = io.BytesIO()
    grid.save(buf, format="PNG")
    return buf.getvalue(), classes


def grid_caption(classes: Sequence[int | None]) -> str:
    if not classes or all(c is None for c in classes):
        return "rows: consecutive samples (no labels recorded)"
    return "rows: classes " + ", ".join(str(c) for c in classes)



# ------------------------------------------------------------------------------------------------------- for reports
def samples_path(result: dict, json_path: str | Path | None) -> Path | None:
    """The ``samples.npz`` of a generate result: first beside its JSON (a copied or moved run directory shows its own
    samples), then the recorded path."""
    recorded = Path(result["results"]["samples_npz"])
    cands = ([Path(json_path).parent / recorded.name] if json_path is not None else []) + [recorded]
    return next((p for p in cands if p.is_file()), None)


def for_report(inputs: Sequence[tuple], *, max_classes: int = 8,
               per_class: int = 8) -> tuple[dict[str, bytes], dict[str, str], list[str]]:
    """All figures a report gets from its inputs ``(run, result, json_path)``: (name -> PNG, name -> caption, notes)."""
    from varbench.report import tables
    from varbench.results import published

    figs: dict[str, bytes] = {}
    captions: dict[str, str] = {}
    notes: list[str] = []
    points = tables.cfg_points(list(inputs))
    pub = [{"model": model, "fid": row["fid"], "label": f"{row['model']} ({row['paper_version']})"}
           for model in sorted({p["model"] for p in points}) for row in published.for_model(model)
           if row["fid"] is not None]
    png = fid_vs_cfg(points, pub)
    if png:
        figs["fid_vs_cfg"] = png
        captions["fid_vs_cfg"] = "dashed: published FID of the same model (paper version in the label)"
    speed = [r for name, res, _ in inputs if res["kind"] == "speed" for r in res["results"]["rows"]]
    random = any(r.get("random_weights") for r in speed)
    png = speed_loglog(speed, tables.speed_fits(list(inputs)), title="random weights" if random else "")
    if png:
        figs["speed_loglog"] = png
        captions["speed_loglog"] = "k: fitted exponent of latency vs resolution from the speed results"
    for name, res, path in inputs:
        if res["kind"] != "generate":
            continue
        npz = samples_path(res, path)
        if npz is None:
            notes.append(f"{name}: samples.npz not found next to the result; no sample grid")
            continue
        png, classes = sample_grid(npz, max_classes=max_classes, per_class=per_class)
        key = "samples_" + name.replace("/", "_")
        figs[key] = png
        model = (res["protocol"]["model"] or {}).get("name", "model?")
        captions[key] = f"{name} ({model}): {grid_caption(classes)}"
    return figs, captions, notes
