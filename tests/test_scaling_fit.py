"""Power-law fits of ``varbench.scaling.fit`` on synthetic data with known exponents, their intervals against scipy
(an independent implementation), the cases without an interval, and the paper's laws as package data."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy import stats

from conftest import SHARED
from varbench.results import scaling as fields
from varbench.scaling import fit

SIZES = np.array([0.0185, 0.05, 0.1, 0.31, 0.6, 1.03, 2.0])  # billions, the paper's span


@pytest.mark.parametrize("c,alpha", [(2.0, -0.23), (2.5, -0.20), (490.0, -0.016), (650.0, -0.010), (0.3, 0.5)])
def test_exact_power_laws_are_recovered(c, alpha):
    out = fit.fit_power_law(SIZES, (c * SIZES) ** alpha)
    assert out["alpha"] == pytest.approx(alpha, rel=1e-9) and out["c"] == pytest.approx(c, rel=1e-6)
    assert out["r"] == pytest.approx(math.copysign(1.0, alpha), abs=1e-12) and out["note"] == ""


def test_noisy_law_matches_scipy_regression_and_fisher_interval():
    rng = np.random.default_rng(7)
    y = (2.0 * SIZES) ** -0.23 * np.exp(rng.normal(0, 0.02, len(SIZES)))
    out = fit.fit_power_law(SIZES, y)
    ref = stats.linregress(np.log(SIZES), np.log(y))
    assert out["alpha"] == pytest.approx(ref.slope, rel=1e-10)
    assert out["c"] == pytest.approx(math.exp(ref.intercept / ref.slope), rel=1e-9)
    assert out["r"] == pytest.approx(ref.rvalue, rel=1e-10)
    t = stats.t.ppf(0.975, len(SIZES) - 2)
    assert out["alpha_ci95"] == pytest.approx([ref.slope - t * ref.stderr, ref.slope + t * ref.stderr], rel=1e-9)
    ci = stats.pearsonr(np.log(SIZES), np.log(y)).confidence_interval(0.95)  # scipy's Fisher-z interval
    assert out["r_ci95"] == pytest.approx([ci.low, ci.high], rel=1e-9)
    assert out["r_ci95"][0] < out["r"] < out["r_ci95"][1] and out["alpha"] == pytest.approx(-0.23, abs=0.02)


def test_interval_coverage_of_the_exponent_on_synthetic_data():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(400):
        y = (2.5 * SIZES) ** -0.20 * np.exp(rng.normal(0, 0.03, len(SIZES)))
        lo, hi = fit.fit_power_law(SIZES, y)["alpha_ci95"]
        hits += lo <= -0.20 <= hi
    assert 0.92 <= hits / 400 <= 0.98  # a 95 % interval


def test_few_models_say_which_intervals_do_not_exist():
    y = (2.0 * SIZES) ** -0.23
    three = fit.fit_power_law(SIZES[:3], y[:3])
    assert three["r_ci95"] is None and three["alpha_ci95"] is not None and "n >= 4" in three["note"]
    two = fit.fit_power_law(SIZES[:2], y[:2])
    assert two["alpha"] == pytest.approx(-0.23) and two["r_ci95"] is None and two["alpha_ci95"] is None
    assert "passes through both points" in two["note"]
    one = fit.fit_power_law(SIZES[:1], y[:1])
    assert one["alpha"] is None and "one model" in one["note"]
    flat = fit.fit_power_law(SIZES[:4], np.ones(4))
    assert flat["alpha"] == 0 and flat["c"] is None and flat["r"] is None and "undefined" in flat["note"]
    assert "same size" in fit.fit_power_law([0.3, 0.3], [1.0, 2.0])["note"]
    near_zero = fit.fit_power_law([1.0, 2.0, 3.0, 4.0], np.exp(50 + 1e-5 * np.log([1.0, 2.0, 3.0, 4.0])))
    assert near_zero["c"] is None and near_zero["log_c"] == pytest.approx(5e6) and "out of float range" in \
        near_zero["note"]
    assert "not positive" in fit.fit_power_law([0.3, 0.6], [0.0, 2.0])["note"]


def test_fits_over_model_sections_use_err_as_a_fraction_and_sort_by_size():
    sections = []
    for i, n in enumerate(SIZES[::-1]):
        sections.append({"model": f"m{i}", "params_billions": n, "l_avg": (2.5 * n) ** -0.2, "l_last": (2 * n) ** -0.23,
                         "err_avg": 100 * (650 * n) ** -0.01, "err_last": 100 * (490 * n) ** -0.016,
                         "random_weights": False})
    out = fit.fits([fit.point(s) for s in sections], ["abc"] * len(sections))
    assert [p["params_billions"] for p in out["points"]] == sorted(SIZES.tolist())
    for row in out["fits"]:
        assert row["alpha"] == pytest.approx(row["paper_alpha"], rel=1e-9)
        assert row["c"] == pytest.approx(row["paper_c"], rel=1e-6)
        assert row["r_ci95"] is not None
    assert out["data_content_sha256"] == ["abc"] and out["random_weights"] is False


def test_paper_laws_are_the_printed_ones():
    laws = fields.paper_laws()
    assert {m: (laws[m]["c"], laws[m]["alpha"]) for m in fields.METRICS} == {
        "l_last": (2.0, -0.23), "l_avg": (2.5, -0.20), "err_last": (490.0, -0.016), "err_avg": (650.0, -0.010)}
    assert all(laws[m]["pearson_r"] == -0.998 for m in fields.METRICS)
    assert fields.paper_value("l_last", 2.0) == pytest.approx(4.0 ** -0.23)


@pytest.mark.skipif(not (SHARED / "facts" / "baselines.md").is_file(), reason="needs ../shared/facts")
def test_paper_laws_match_the_shared_facts():
    text = (SHARED / "facts" / "baselines.md").read_text()
    line = next(s for s in text.splitlines() if s.startswith("- vs params N"))
    law = r"(L_last|L_avg|Err_last|Err_avg) = \(([^)]*)\)\^−(\d+(?:\.\d+)?)"
    found = {k: (c, e) for k, c, e in re.findall(law, line)}
    assert len(found) == 4, line
    laws = fields.paper_laws()
    for printed, metric in (("L_last", "l_last"), ("L_avg", "l_avg"), ("Err_last", "err_last"), ("Err_avg", "err_avg")):
        const, exponent = found[printed]
        mant, _, exp = const.replace("·N", "").partition("·10")
        c = float(mant) * (10 ** int(exp.replace("²", "2")) if exp else 1)
        assert (laws[metric]["c"], laws[metric]["alpha"]) == (pytest.approx(c), -float(exponent))
