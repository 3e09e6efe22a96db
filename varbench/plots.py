"""Report figures as PNG bytes: FID vs CFG, the speed log-log plot, and a sample grid from a ``samples.npz``.

Matplotlib is used through ``Figure`` + the Agg canvas directly (no pyplot, no global backend switch), so importing
or calling this module changes no global state.  Inputs are the plain records built by ``varbench.report``.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from varbench.errors import VarbenchError

_LABEL_KEYS = ("labels", "arr_1", "label", "y")


def _figure(width: float = 6.4, height: float = 4.4):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def fid_vs_cfg(points: Sequence[dict], published: Sequence[dict] = ()) -> bytes | None:
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
    fig = _figure(10, 4.2)
    ax_fid, ax_is = fig.subplots(1, 2)
    colors = {}
    for i, (model, ps) in enumerate(sorted(by_model.items())):
        color = colors.setdefault(model, f"C{i % 10}")
        label = model + (" (random weights)" if any(p.get("random_weights") for p in ps) else "")
        ax_fid.plot([p["cfg"] for p in ps], [p["fid"] for p in ps], "o-", color=color, label=label)
        is_pts = [p for p in ps if p.get("is_mean") is not None]
        if is_pts:
            ax_is.plot([p["cfg"] for p in is_pts], [p["is_mean"] for p in is_pts], "o-", color=color, label=label)
    for row in published:
        if row.get("model") in colors and row.get("fid") is not None:
            ax_fid.axhline(row["fid"], color=colors[row["model"]], ls="--", lw=0.8, alpha=0.7)
            ax_fid.annotate(row.get("label", "published"), (ax_fid.get_xlim()[0], row["fid"]), fontsize=7,
                            color=colors[row["model"]], va="bottom")  # fmt: skip
    ax_fid.set(xlabel="CFG scale", ylabel="FID (lower is better)", title="FID vs CFG")
    ax_is.set(xlabel="CFG scale", ylabel="Inception Score (higher is better)", title="IS vs CFG")
    for ax in (ax_fid, ax_is):
        ax.grid(alpha=0.3)
    ax_fid.legend(fontsize=8)
    return _png(fig)


def speed_loglog(rows: Sequence[dict], fits: Sequence[dict] = ()) -> bytes | None:
    """Latency per image against resolution on log-log axes, one line per (model, mode); fitted exponents in the legend.

    ``rows``: speed rows {model, mode, resolution, batch_size, latency_s}; ``fits``: report.speed_fits records.
    None when no (model, mode) has two or more resolutions.
    """
    series: dict[tuple, list[tuple[float, float]]] = {}
    for r in rows:
        res, lat, bs = r.get("resolution"), r.get("latency_s"), r.get("batch_size") or 1
        if not res or lat is None or not (isinstance(lat, (int, float)) and lat > 0):
            continue
        series.setdefault((r.get("model"), r.get("mode"), bs), []).append((float(res), float(lat)))
    series = {k: sorted(v) for k, v in series.items() if len({x for x, _ in v}) > 1}
    if not series:
        return None
    exps: dict[tuple, float] = {}  # (model, mode, batch) of time fits; (None, mode, None) for fits without them
    for f in fits:
        k = f.get("exponent", f.get("k"))
        if f.get("quantity", "time") == "time" and f.get("mode") is not None and isinstance(k, (int, float)):
            exps[(f.get("model"), f["mode"], f.get("batch_size"))] = k
    fig = _figure(6.8, 4.6)
    ax = fig.subplots()
    for i, ((model, mode, bs), pts) in enumerate(sorted(series.items(), key=lambda kv: tuple(map(str, kv[0])))):
        k = exps.get((model, mode, bs), exps.get((None, mode, None)))
        label = f"{model} {mode} b{bs}" + (f" (k={k:.2f})" if k is not None else "")
        ax.plot([x for x, _ in pts], [y for _, y in pts], "o-", color=f"C{i % 10}", label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set(xlabel="resolution (px)", ylabel="latency per call (s)", title="Decoding time vs resolution (log-log)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return _png(fig)


# ------------------------------------------------------------------------------------------------------ sample grid
def _npz_member(zf: zipfile.ZipFile, key: str) -> zipfile.ZipInfo | None:
    try:
        return zf.getinfo(f"{key}.npy")
    except KeyError:
        return None


def _open_array(path: Path, key: str):
    """``key`` of an ``.npz`` memory-mapped when stored uncompressed (np.savez), else read fully; None if absent."""
    with zipfile.ZipFile(path) as zf:
        info = _npz_member(zf, key)
        if info is None:
            return None
        if info.compress_type == zipfile.ZIP_STORED:
            with open(path, "rb") as f:
                f.seek(info.header_offset)
                local = f.read(30)
                name_len, extra_len = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
                start = info.header_offset + 30 + name_len + extra_len
                f.seek(start)
                version = np.lib.format.read_magic(f)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, fortran, dtype = read_header(f)
                offset = f.tell()
            if dtype.hasobject:
                raise VarbenchError(f"{path}: {key} holds Python objects; expected uint8 images")
            return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
        with zf.open(info) as member:
            return np.lib.format.read_array(io.BytesIO(member.read()), allow_pickle=False)


def read_labels(npz_path: str | Path) -> np.ndarray | None:
    path = Path(npz_path)
    for key in _LABEL_KEYS:
        arr = _open_array(path, key)
        if arr is not None:
            return np.asarray(arr).reshape(-1).astype(np.int64)
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
    from PIL import Image

    path = Path(npz_path)
    if not path.is_file():
        raise VarbenchError(f"samples file not found: {path}")
    try:
        images = _open_array(path, "arr_0")
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise VarbenchError(f"{path} is not a readable .npz: {e}") from None
    if images is None or images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        got = "no arr_0" if images is None else f"{images.dtype} {tuple(images.shape)}"
        raise VarbenchError(f"{path}: expected arr_0 as uint8 (N, H, W, 3) images, got {got}")
    n = images.shape[0]
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
    grid = Image.new("RGB", (ncols * cell, len(rows) * cell), (255, 255, 255))
    for ri, idx in enumerate(rows):
        for ci, i in enumerate(idx):
            img = Image.fromarray(np.ascontiguousarray(images[int(i)]))
            if img.size != (cell, cell):
                img = img.resize((cell, cell), Image.Resampling.BICUBIC)
            grid.paste(img, (ci * cell, ri * cell))
    buf = io.BytesIO()
    grid.save(buf, format="PNG")
    return buf.getvalue(), classes


def grid_caption(classes: Sequence[int | None]) -> str:
    if not classes or all(c is None for c in classes):
        return "rows: consecutive samples (no labels recorded)"
    return "rows: classes " + ", ".join(str(c) for c in classes)



# ------------------------------------------------------------------------------------------------------- for reports
def samples_path(result: dict, json_path: str | Path | None) -> Path | None:
    """The ``samples.npz`` a generate result points to (relative paths are taken from the JSON's directory)."""
    res, cfg = result.get("results") or {}, result.get("config") or {}
    cands = []
    for v in (res.get("samples_npz"), res.get("npz"), res.get("npz_path"), res.get("samples")):
        if isinstance(v, dict):
            v = v.get("path")
        if isinstance(v, str) and v:
            cands.append(Path(v))
    base = Path(json_path).parent if json_path is not None else None
    if base is not None:
        cands.append(base / "samples.npz")
    out_dir = cfg.get("out") or cfg.get("out_dir")
    if isinstance(out_dir, str):
        cands.append(Path(out_dir) / "samples.npz")
    for c in cands:
        for p in ([c] if c.is_absolute() or base is None else [base / c, c, base / c.name]):
            if p.is_file():
                return p
    return None


def for_report(
    inputs: Sequence[tuple], *, max_classes: int = 8, per_class: int = 8
) -> tuple[dict[str, bytes], dict[str, str], list[str]]:
    """All figures a report gets from its inputs ``(run, result, json_path)``: (name -> PNG, name -> caption, warnings)."""
    from varbench import published, report

    paths = {name: rest[0] for name, _, *rest in inputs if rest}
    runs = report.link_runs([(name, res, report.describe(res)) for name, res, *_ in inputs], paths)
    figs: dict[str, bytes] = {}
    captions: dict[str, str] = {}
    notes: list[str] = []
    points = report.cfg_points(runs)
    pub = []
    for model in sorted({p["model"] for p in points}):
        for row in published.for_model(model):
            if row["fid"] is not None:
                pub.append({"model": model, "fid": row["fid"], "label": f"{row['model']} ({row['paper_version']})"})
    png = fid_vs_cfg(points, pub)
    if png:
        figs["fid_vs_cfg"] = png
        captions["fid_vs_cfg"] = "dashed: published FID of the same model (paper version in the label)"
    png = speed_loglog(report.speed_rows(runs), report.speed_fits(runs))  # time fits label the lines
    if png:
        figs["speed_loglog"] = png
        captions["speed_loglog"] = "k: fitted exponent of latency vs resolution from the speed results"
    for name, res, *rest in inputs:
        if res.get("kind") != "generate":
            continue
        npz = samples_path(res, rest[0] if rest else None)
        if npz is None:
            notes.append(f"{name}: samples.npz not found next to the result; no sample grid")
            continue
        png, classes = sample_grid(npz, max_classes=max_classes, per_class=per_class)
        key = "samples_" + name.replace("/", "_")
        figs[key] = png
        captions[key] = f"{name} ({res.get('config', {}).get('model', 'model?')}): {grid_caption(classes)}"
    return figs, captions, notes
