"""Report tables and the log-log figure of ``varbench scaling`` results, from the result files alone.

Inputs are ``(run name, result, path)`` tuples (``varbench.results.frame.load_inputs``); kind "scaling" results are
told apart by ``results["what"]``: "model" (one model's validation loss) or "fits" (the power laws).  When the
inputs hold model results but no fits result, the fits are computed here from those models.

Tables
    scaling_models     one row per model: N, images, L_avg, L_last, acc, err, the paper's law at that N
    scaling_per_scale  CE and accuracy of every scale of every model (the trainer's L_<reso> / acc_<reso>)
    scaling_fits       per metric: our alpha, c, r (with 95 % intervals) next to the paper's
Figure
    ``loglog(runs)``: PNG, one panel per metric, our points and fitted line, the paper's law dashed.
"""

from __future__ import annotations

from collections.abc import Sequence

from varbench.report.tables import Table
from varbench.results import scaling as fields
from varbench.scaling import fit

LABELS = {"l_avg": "L_avg (nats)", "l_last": "L_last (nats)", "err_avg": "Err_avg (fraction)",
          "err_last": "Err_last (fraction)"}
PAPER_SIZES = (0.0185, 2.0)  # N range (billions) of the paper's 12 models, depth 6-30
_FORMATS = {"params_billions": ".4g", "l_avg": ".4f", "l_last": ".4f", "acc_avg": ".3f", "acc_last": ".3f",
            "err_avg": ".3f", "err_last": ".3f", "paper_l_avg": ".4f", "paper_l_last": ".4f", "paper_err_avg": ".4f",
            "paper_err_last": ".4f", "ce": ".4f", "acc": ".3f", "alpha": ".4f", "alpha_lo": ".4f", "alpha_hi": ".4f",
            "c": ".4g", "r": ".4f", "r_lo": ".4f", "r_hi": ".4f", "paper_alpha": "g", "paper_c": "g", "paper_r": "g"}


def _models(runs: Sequence[tuple]) -> list[tuple[str, dict, object]]:
    return [(n, r, p) for n, r, p in runs if r["kind"] == "scaling" and r["results"].get("what") == "model"]


def _make(name: str, title: str, records: list[dict], headers: dict, notes=()) -> Table | None:
    import pandas as pd

    if not records:
        return None
    return Table(name, title, pd.DataFrame(records, columns=list(headers)), headers, tuple(notes), dict(_FORMATS))


def models_table(runs: Sequence[tuple]) -> Table | None:
    records = []
    for name, result, _ in _models(runs):
        r = result["results"]
        records.append({"run": name, "model": r["model"], "params_billions": r["params_billions"],
                        "num_images": r["num_images"], "l_avg": r["l_avg"], "l_last": r["l_last"],
                        "acc_avg": r["acc_avg"], "acc_last": r["acc_last"], "err_avg": r["err_avg"],
                        "err_last": r["err_last"], **{f"paper_{m}": r["paper_law"][m] for m in fields.METRICS},
                        "data": r["data"]["content_sha256"][:12], "random_weights": result["random_weights"]})
    headers = {"model": "model", "params_billions": "N (B)", "num_images": "images", "l_avg": "L_avg",
               "l_last": "L_last", "acc_avg": "acc_avg %", "acc_last": "acc_last %", "err_avg": "err_avg %",
               "err_last": "err_last %", "paper_l_avg": "paper L_avg(N)", "paper_l_last": "paper L_last(N)",
               "paper_err_avg": "paper Err_avg(N)", "paper_err_last": "paper Err_last(N)", "data": "data sha256",
               "random_weights": "random weights", "run": "run"}
    notes = ("teacher-forced validation (the VAR trainer's eval_ep): L = cross-entropy in nats over all tokens (avg) "
             "or the last scale (last); acc = argmax accuracy, err = 100 - acc; paper X(N) = the paper's fitted law "
             "at this N (Err as a fraction)",)
    return _make("scaling_models", "Scaling: validation loss per model", records, headers, notes)


def per_scale_table(runs: Sequence[tuple]) -> Table | None:
    records = [{"run": name, "model": result["results"]["model"], **s}
               for name, result, _ in _models(runs) for s in result["results"]["per_scale"]]
    headers = {"model": "model", "scale": "scale", "side": "side", "resolution": "reso", "tokens": "tokens",
               "ce": "CE", "acc": "acc %", "run": "run"}
    return _make("scaling_per_scale", "Scaling: loss and accuracy per scale", records, headers)


def fits_sections(runs: Sequence[tuple]) -> list[tuple[str, dict]]:
    """(run name, ``ScalingFitsResults``) of the fits results in ``runs``; if there are none, fits computed from the
    model results (when two or more)."""
    found = [(n, r["results"]) for n, r, _ in runs if r["kind"] == "scaling" and r["results"].get("what") == "fits"]
    models = _models(runs)
    if found or len(models) < 2:
        return found
    shas = [r["results"]["data"]["content_sha256"] for _, r, _ in models]
    return [("(computed)", fit.fits([fit.point(r["results"], str(p)) for _, r, p in models], shas))]


def fits_table(runs: Sequence[tuple]) -> Table | None:
    records = []
    for name, section in fits_sections(runs):
        for f in section["fits"]:
            a_ci, r_ci = f["alpha_ci95"] or [None, None], f["r_ci95"] or [None, None]
            records.append({"run": name, "metric": f["metric"], "n_models": f["n_models"], "alpha": f["alpha"],
                            "alpha_lo": a_ci[0], "alpha_hi": a_ci[1], "c": f["c"], "r": f["r"], "r_lo": r_ci[0],
                            "r_hi": r_ci[1], "paper_alpha": f["paper_alpha"], "paper_c": f["paper_c"],
                            "paper_r": f["paper_r"], "note": f["note"] or None,
                            "random_weights": section["random_weights"]})
    headers = {"metric": "metric", "n_models": "models", "alpha": "α", "alpha_lo": "α 95% low",
               "alpha_hi": "α 95% high", "c": "c", "r": "Pearson r", "r_lo": "r 95% low", "r_hi": "r 95% high",
               "paper_alpha": "paper α", "paper_c": "paper c", "paper_r": "paper r", "note": "note",
               "random_weights": "random weights", "run": "run"}
    notes = ("metric = (c·N)^α, N = transformer parameters in billions, fitted by least squares in log-log space; "
             "Err as a fraction (100 − acc)/100; α is unit-free, c depends on the metric's units",
             "intervals: " + fit.INTERVAL_RULE,
             "paper: VAR NeurIPS 2024 scaling laws vs model parameters (Fig. 5)")
    return _make("scaling_fits", "Scaling laws: fitted vs the paper's", records, headers, notes)


def scaling_tables(runs: Sequence[tuple]) -> list[Table]:
    """Every scaling table the inputs give (empty when they hold no scaling results)."""
    return [t for t in (models_table(runs), fits_table(runs), per_scale_table(runs)) if t is not None]


def loglog(runs: Sequence[tuple]) -> bytes | None:
    """PNG of ``loglog_figure`` for the first fits in ``runs`` (None without two or more models)."""
    from varbench.report.plots import to_png

    sections = fits_sections(runs)
    fig = loglog_figure(sections[0][1]) if sections else None
    return None if fig is None else to_png(fig)


def loglog_figure(section: dict):
    """2 x 2 log-log panels (L_avg, L_last, Err_avg, Err_last vs N): points, our fitted line (solid) and the paper's
    law (dashed), each drawn only over the sizes it was fitted on (ours; the paper's 18.5M-2.0B).  None when there
    are fewer than 2 points."""
    import numpy as np

    from varbench.report.plots import new_figure

    points = section["points"]
    if len(points) < 2:
        return None
    fig = new_figure(10, 7.2)
    axes = fig.subplots(2, 2).ravel()
    n = np.array([p["params_billions"] for p in points])
    ours, theirs = np.geomspace(n.min() / 1.3, n.max() * 1.3, 32), np.geomspace(*PAPER_SIZES, 32)
    laws = fields.paper_laws()
    for ax, f in zip(axes, section["fits"]):
        metric = f["metric"]
        ax.plot(n, [p[metric] for p in points], "o", color="C0", label="measured")
        for p in points:
            ax.annotate(p["model"], (p["params_billions"], p[metric]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        if f["alpha"] is not None and f["log_c"] is not None:
            c = f"{f['c']:.3g}" if f["c"] is not None else f"e^{f['log_c']:.3g}"
            ax.plot(ours, np.exp(f["alpha"] * (f["log_c"] + np.log(ours))), "-", color="C0", lw=1,
                    label=f"fit ({c}·N)^{f['alpha']:.3f}" + (f", r={f['r']:.3f}" if f["r"] is not None else ""))
        law = laws[metric]
        ax.plot(theirs, (law["c"] * theirs) ** law["alpha"], "--", color="C3", lw=1,
                label=f"paper ({law['c']:g}·N)^{law['alpha']:g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.set(xlabel="N (transformer parameters, billions)", ylabel=LABELS[metric], title=LABELS[metric])
        ax.legend(fontsize=7)
    if section["random_weights"]:
        fig.suptitle("random weights: pipeline test, not the paper's law", color="C3")
    return fig
