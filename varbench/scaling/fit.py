"""Power laws y = (c * N)^alpha over model sizes, as the VAR paper fits them (Fig. 5), and the fits result.

Fit: ordinary least squares of ln y on ln N, ln y = alpha * ln N + b, so alpha is the slope and c = exp(b / alpha).
Pearson r is that of (ln N, ln y).  Its 95 % interval is Fisher's: z = atanh(r), tanh(z -+ 1.959964 / sqrt(n - 3)),
which needs n >= 4 models (with n = 3 the standard error 1 / sqrt(n - 3) is infinite: no interval exists; with
n = 2 the line passes through both points and r is +-1 by construction).  The slope's 95 % interval is the t
interval with n - 2 degrees of freedom (n >= 3).  N is in billions of transformer parameters; the errors are
fractions (``err / 100``), so c is comparable with the paper's printed constants; alpha does not depend on units.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from varbench.results import scaling as fields

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile
INTERVAL_RULE = ("r: Fisher z, tanh(atanh(r) +- 1.96 / sqrt(n - 3)), n >= 4 models; alpha: t interval of the "
                 "least-squares slope of ln y on ln N, n - 2 degrees of freedom, n >= 3")
X_DEFINITION = "N: transformer parameters in billions (VQVAE excluded), as the paper's model sizes"
ERR_UNIT = "fraction: (100 - acc) / 100"


def fit_power_law(n_billions: Sequence[float], y: Sequence[float]) -> dict:
    """{n_models, alpha, c, log_c, r, r_ci95, alpha_ci95, note} of y = (c * N)^alpha; None where it does not
    exist."""
    x, y = np.asarray(n_billions, dtype=np.float64), np.asarray(y, dtype=np.float64)
    out = {"n_models": int(len(x)), "alpha": None, "c": None, "log_c": None, "r": None, "r_ci95": None,
           "alpha_ci95": None}
    if len(x) < 2:
        return {**out, "note": "one model: no fit (give two or more sizes)"}
    if (x <= 0).any() or (y <= 0).any():
        return {**out, "note": "a size or value is not positive: no log-log fit"}
    lx, ly = np.log(x), np.log(y)
    dx, dy = lx - lx.mean(), ly - ly.mean()
    sxx, syy = float(dx @ dx), float(dy @ dy)
    if sxx == 0:
        return {**out, "note": "every model has the same size: no fit"}
    alpha = float(dx @ dy) / sxx
    b = float(ly.mean() - alpha * lx.mean())
    notes = []
    out["alpha"] = alpha
    if alpha != 0:
        out["log_c"] = log_c = b / alpha
        if -700 < log_c < 700:
            out["c"] = math.exp(log_c)
        else:
            notes.append(f"c = exp({log_c:.4g}) is out of float range (alpha near 0); see log_c")
    if syy > 0:
        out["r"] = r = max(-1.0, min(1.0, float(dx @ dy) / math.sqrt(sxx * syy)))
        if len(x) >= 4:
            out["r_ci95"] = fisher_interval(r, len(x))
        elif len(x) == 3:
            notes.append(f"{len(x)} models: no interval for r exists (Fisher z needs n >= 4)")
    else:
        notes.append("the values are all equal: r is undefined")
    if len(x) >= 3:
        from scipy import stats

        resid = dy - alpha * dx
        se = math.sqrt(float(resid @ resid) / (len(x) - 2) / sxx)
        t = float(stats.t.ppf(0.975, len(x) - 2))
        out["alpha_ci95"] = [alpha - t * se, alpha + t * se]
    else:
        notes.append("2 models: the line passes through both points (no intervals)")
    if alpha == 0:
        notes.append("alpha is 0: c is undefined")
    return {**out, "note": "; ".join(notes)}


def fisher_interval(r: float, n: int, z: float = Z95) -> list[float]:
    """The 95 % interval of a Pearson r over n >= 4 points (an exact |r| = 1 gives [r, r])."""
    if abs(r) >= 1.0:
        return [r, r]
    centre, half = math.atanh(r), z / math.sqrt(n - 3)
    return [math.tanh(centre - half), math.tanh(centre + half)]


def point(section: dict, result_path: str | None = None) -> fields.FitPoint:
    """One model's ``results`` section (``ScalingResults``) as a fit point: l_* in nats, err_* as fractions."""
    return fields.FitPoint(
        model=section["model"], params_billions=float(section["params_billions"]), l_avg=float(section["l_avg"]),
        l_last=float(section["l_last"]), err_avg=float(section["err_avg"]) / 100.0,
        err_last=float(section["err_last"]) / 100.0, random_weights=bool(section["random_weights"]),
        result=result_path)


def fits(points: Sequence[dict], data_sha256: Sequence[str] = ()) -> fields.ScalingFitsResults:
    """Fits of every metric over ``points`` (``FitPoint``, sorted here by N), with the paper's laws beside them."""
    points = sorted(points, key=lambda p: (p["params_billions"], p["model"]))
    laws = fields.paper_laws()
    sizes = [p["params_billions"] for p in points]
    rows = []
    for metric in fields.METRICS:
        law = laws[metric]
        rows.append(fields.PowerLawFit(metric=metric, **fit_power_law(sizes, [p[metric] for p in points]),
                                       paper_alpha=law["alpha"], paper_c=law["c"], paper_r=law["pearson_r"]))
    return fields.ScalingFitsResults(
        what="fits", models=[p["model"] for p in points], points=list(points), fits=rows, x=X_DEFINITION,
        err_unit=ERR_UNIT, interval_rule=INTERVAL_RULE, data_content_sha256=sorted(set(data_sha256)),
        random_weights=any(p["random_weights"] for p in points))


def fits_result(model_results: Sequence[tuple[dict, str | None]]) -> dict:
    """The fits as a kind "scaling" result (``results["what"] == "fits"``) from (per-model result, its path)."""
    from varbench.results import schema

    sections = [r["results"] for r, _ in model_results]
    results = fits([point(s, None if p is None else str(p)) for s, (_, p) in zip(sections, model_results)],
                   [s["data"]["content_sha256"] for s in sections])
    warnings = [f"{m['model']} has random weights: the fits test the pipeline, not the paper's law"
                for m in sections if m["random_weights"]]
    if len(results["data_content_sha256"]) > 1:
        warnings.append("the models were evaluated on different images (data content sha256 differ)")
    if len(sections) < 4:
        warnings.append(f"{len(sections)} model(s): no interval for Pearson r (Fisher z needs 4 or more)")
    protocol = schema.empty_protocol()
    protocol["arithmetic"] = {"fit": "least squares of ln y on ln N (float64)", "interval": INTERVAL_RULE}
    config = {"models": results["models"], "inputs": [p["result"] for p in results["points"]]}
    return schema.make("scaling", config, results, protocol, random_weights=results["random_weights"],
                       warnings=warnings)
