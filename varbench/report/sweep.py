"""The guidance-sweep table and figures, from kind "sweep" results alone (``varbench.results.sweep``).

The table has one row per grid point: its guidance rule and last-step weight (so VAR's ramp and LlamaGen's
constant scale share an axis), the mean of every metric over the seeds, the minimum and the standard deviation of
the Fréchet distances when there are several seeds, and which point is the no-guidance, FID-optimal or
FD_DINOv2-optimal one (the optima are tuned on the evaluation reference).
"""

from __future__ import annotations

from collections.abc import Sequence

from varbench.metrics import registry
from varbench.report.plots import new_figure, to_png
from varbench.report.tables import Table
from varbench.results.sweep import SUMMARY_RULE

HEADERS = {"run": "run", "model": "model", "guidance_rule": "cfg rule", "cfg": "cfg", "top_k": "top-k",
           "top_p": "top-p", "last_step_weight": "weight at last step", "seeds": "seeds"}
SPREAD_OF = ("fid", "fd_dinov2")  # metrics whose min and std over seeds get their own columns
_OPTIMUM_LABEL = {"no_guidance": "no guidance", "fid": "FID-optimal", "fd_dinov2": "FD_DINOv2-optimal"}


def _sweeps(runs: Sequence[tuple]) -> list[tuple[str, dict]]:
    return [(name, result) for name, result, _ in runs if result["kind"] == "sweep"]


def sweep_table(runs: Sequence[tuple]) -> Table | None:
    import pandas as pd

    records, metrics, several = [], [], False
    for name, result in _sweeps(runs):
        res = result["results"]
        marks = {}
        for key, opt in res["optima"].items():
            if opt is not None:
                tuned = f" (tuned on {opt['reference']})" if opt["tuned_on_reference"] else ""
                marks.setdefault(opt["point"], []).append(_OPTIMUM_LABEL[key] + tuned)
        for i, p in enumerate(res["points"]):
            row = {"run": name, "model": res["model"], "guidance_rule": p["guidance_rule"], "cfg": p["cfg"],
                   "top_k": p["top_k"], "top_p": p["top_p"], "last_step_weight": p["last_step_weight"],
                   "seeds": len(p["runs"]), "optimum": "; ".join(marks.get(i, [])) or None}
            for key, s in p["summary"].items():
                row[key] = s["mean"]
                if key in SPREAD_OF and s["n"] > 1:
                    row[f"{key}_min"], row[f"{key}_std"] = s["min"], s["std"]
                    several = True
                metrics.append(key)
            records.append(row)
    if not records:
        return None
    keys = [k for k in registry.METRICS if k in metrics and not registry.get(k).spread]
    headers = dict(HEADERS)
    formats = {}
    for key in keys:
        headers[key] = registry.get(key).label + (" (mean)" if several else "")
        if several and key in SPREAD_OF:
            headers[f"{key}_min"], headers[f"{key}_std"] = f"{key} min", f"{key} std"
            formats[f"{key}_min"] = formats[f"{key}_std"] = registry.get(key).fmt
    headers["optimum"] = "optimum"
    frame = pd.DataFrame(records, columns=list(headers))
    return Table("sweep", "Guidance sweep", frame, headers, (SUMMARY_RULE,), formats)


def figures(result: dict) -> dict[str, bytes]:
    """name -> PNG: FID and FD_DINOv2 vs the last-step weight, FID vs IS, precision vs recall (each when its
    metrics were computed)."""
    points = result["results"]["points"]
    out = {}
    for key in ("fid", "fd_dinov2"):
        if any(key in p["summary"] for p in points):
            out[f"{key}_vs_guidance"] = to_png(_vs_weight(points, key))
    for x, y, name in (("is_mean", "fid", "fid_vs_is"), ("recall", "precision", "precision_vs_recall")):
        if all(x in p["summary"] and y in p["summary"] for p in points):
            out[name] = to_png(_scatter(points, x, y))
    return out


def _series(points):
    """(top_k, top_p) -> points of that filter, by weight."""
    groups: dict = {}
    for p in points:
        groups.setdefault((p["top_k"], p["top_p"]), []).append(p)
    return {k: sorted(v, key=lambda p: p["last_step_weight"]) for k, v in groups.items()}


def _vs_weight(points, key: str):
    fig = new_figure()
    ax = fig.add_subplot()
    for (k, p_), group in _series(points).items():
        group = [p for p in group if key in p["summary"]]
        ax.errorbar([p["last_step_weight"] for p in group], [p["summary"][key]["mean"] for p in group],
                    yerr=[p["summary"][key]["std"] for p in group], marker="o", capsize=3,
                    label=f"top-k {k or 'off'}, top-p {p_ or 'off'}")
    ax.axvline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("guidance weight on the conditional logits at the last step (1 = none)")
    ax.set_ylabel(registry.get(key).label + " (mean over seeds)")
    ax.legend(fontsize=8)
    return fig


def _scatter(points, x: str, y: str):
    fig = new_figure()
    ax = fig.add_subplot()
    for (k, p_), group in _series(points).items():
        ax.plot([p["summary"][x]["mean"] for p in group], [p["summary"][y]["mean"] for p in group], "o-",
                label=f"top-k {k or 'off'}, top-p {p_ or 'off'}")
        for p in group:
            ax.annotate(f"{p['last_step_weight']:g}", (p["summary"][x]["mean"], p["summary"][y]["mean"]),
                        fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(registry.get(x).label)
    ax.set_ylabel(registry.get(y).label)
    ax.legend(fontsize=8)
    return fig
