"""``varbench.report.scaling``: tables and the log-log figure from scaling results alone (synthetic results whose
losses follow the paper's laws exactly, so the fitted columns must equal the paper's)."""

from __future__ import annotations

import numpy as np
import pytest

from varbench.report import scaling as report
from varbench.results import schema
from varbench.results import scaling as fields
from varbench.scaling import fit

SIZES = {"var_d16": 0.31028, "var_d20": 0.60092, "var_d24": 1.0334, "var_d30": 2.0100}


def _model_result(model: str, n: float, random: bool = False) -> dict:
    laws = fields.paper_laws()
    value = {m: (laws[m]["c"] * n) ** laws[m]["alpha"] for m in fields.METRICS}
    section = {"what": "model", "model": model, "params": int(n * 1e9), "params_billions": n, "num_images": 50000,
               "l_avg": value["l_avg"], "l_last": value["l_last"], "acc_avg": 100 * (1 - value["err_avg"]),
               "acc_last": 100 * (1 - value["err_last"]), "err_avg": 100 * value["err_avg"],
               "err_last": 100 * value["err_last"], "paper_law": value, "random_weights": random,
               "data": {"content_sha256": "ab" * 32},
               "per_scale": [{"scale": s, "side": p, "resolution": 16 * p, "tokens": p * p, "ce": 5.0, "acc": 1.0}
                             for s, p in enumerate((1, 2, 4))]}
    return schema.make("scaling", {"model": model}, section, schema.empty_protocol(), random_weights=random)


def _runs(random: bool = False) -> list[tuple]:
    return [(m, _model_result(m, n, random), f"runs/scaling/{m}/result.json") for m, n in SIZES.items()]


def test_models_and_per_scale_tables():
    runs = _runs()
    models = report.models_table(runs)
    assert models.name == "scaling_models" and len(models.records()) == 4
    rec = models.records()[0]
    assert rec["l_avg"] == pytest.approx(rec["paper_l_avg"]) and rec["random_weights"] is False
    shown = models.display()
    assert list(shown.columns)[:3] == ["model", "N (B)", "images"] and shown.iloc[0]["L_avg"] == f"{rec['l_avg']:.4f}"
    assert len(report.per_scale_table(runs).records()) == 12


def test_fits_table_computed_from_models_equals_the_paper_on_exact_laws():
    runs = _runs()
    table = report.fits_table(runs)  # no fits result among the inputs: computed from the four models
    records = {r["metric"]: r for r in table.records()}
    assert list(records) == list(fields.METRICS)
    for r in records.values():
        assert r["alpha"] == pytest.approx(r["paper_alpha"], rel=1e-9) and r["c"] == pytest.approx(r["paper_c"])
        assert r["n_models"] == 4 and r["r_lo"] is not None and r["run"] == "(computed)"


def test_a_fits_result_is_used_as_it_is_and_the_figure_is_a_png():
    runs = _runs(random=True)
    fits = fit.fits_result([(r, p) for _, r, p in runs[:3]])  # three models only
    assert fits["results"]["random_weights"] and any("Fisher z needs 4" in w for w in fits["warnings"])
    inputs = [*runs, ("fits", fits, "runs/scaling/fits.json")]
    records = report.fits_table(inputs).records()
    assert {r["run"] for r in records} == {"fits"} and all(r["n_models"] == 3 and r["r_lo"] is None for r in records)
    png = report.loglog(inputs)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    fig = report.loglog_figure(fits["results"])
    ax = fig.axes[0]
    measured = ax.lines[0].get_ydata()
    assert np.allclose(measured, [p["l_avg"] for p in fits["results"]["points"]])
    assert [t.name for t in report.scaling_tables(inputs)] == ["scaling_models", "scaling_fits", "scaling_per_scale"]


def test_nothing_to_show_without_scaling_results():
    other = [("gen", schema.make("generate", {}, {}, schema.empty_protocol()), "x.json")]
    assert report.scaling_tables(other) == [] and report.loglog(other) is None
    assert report.loglog(_runs()[:1]) is None  # one model: no fit, no figure
