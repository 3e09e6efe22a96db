"""Bootstrap intervals over cached features: weighted statistics equal the statistics of the repeated rows, every
interval holds the full-set value and shrinks as the set grows, and `varbench fid --bootstrap` reports them without
recomputing a feature."""

from __future__ import annotations

import numpy as np
import pytest

from varbench.evaluate.compute import FeatureSet, metric_values
from varbench.evaluate.config import EvalConfig
from varbench.evaluate import bootstrap
from varbench.metrics import bootstrap as boot
from varbench.metrics.fid import feature_statistics


def test_weighted_statistics_equal_those_of_the_repeated_rows():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(5000, 48)) * 3 + 7).astype(np.float32)
    w = boot.counts(rng, len(x))
    mu, sigma = boot.weighted_statistics(x, w)
    ref_mu, ref_sigma = feature_statistics(np.repeat(x, w, axis=0).astype(np.float64))
    assert np.abs(mu - ref_mu).max() < 1e-6
    assert np.abs(sigma - ref_sigma).max() < 1e-5 * np.abs(ref_sigma).max()


def test_interval_rules():
    reps = np.random.default_rng(1).normal(10.0, 2.0, size=4000)
    pct = boot.interval(10.0, reps, "percentile")
    assert pct.low == pytest.approx(10 - 1.96 * 2, abs=0.2) and pct.high == pytest.approx(10 + 1.96 * 2, abs=0.2)
    normal = boot.interval(11.0, reps, "normal")  # centred on the full-set value; the shift is the bias
    assert normal.low + normal.high == pytest.approx(22.0) and normal.bias == pytest.approx(-1.0, abs=0.1)
    with pytest.raises(ValueError):
        boot.interval(1.0, reps[:1], "normal")


class _Ref:
    def __init__(self, features):
        self.features = features
        self.mu, self.sigma = feature_statistics(features)
        self.mu_s, self.sigma_s = feature_statistics(features[:, :8])


def _sets(n, seed, d=16):
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(600, d))
    pool3 = rng.normal(size=(n, d)) * 1.1 + 0.1
    logits = rng.normal(size=(n, 30)) * 3
    return {"inception": FeatureSet({"pool3": pool3, "logits": logits, "spatial": pool3[:, :8]}, _Ref(ref))}


def _intervals(n, replicates=40, seed=0):
    config = EvalConfig(metrics=("fid", "sfid", "is", "pr", "dc", "kid"), is_splits=2, kid_subsets=4,
                        kid_subset_size=50, bootstrap=replicates, bootstrap_seed=seed)
    sets = _sets(n, seed=n)
    values, _, _, items = metric_values(sets, config)
    return values, bootstrap.intervals(values, sets, items, config)


def test_intervals_hold_the_full_set_value_and_shrink_with_the_set_size():
    values, small = _intervals(200)
    _, large = _intervals(2000)
    keys = {"fid", "sfid", "is_mean", "precision", "recall", "density", "coverage", "kid_mean"}
    assert set(small["metrics"]) == keys  # spreads (is_std, kid_std) get no interval
    for key, iv in small["metrics"].items():
        assert iv["low"] <= values[key] <= iv["high"], key
        assert iv["method"] == ("percentile" if key in {"precision", "recall", "density", "coverage"} else "normal")
    for key in keys - {"recall", "coverage"}:  # those resample the (fixed-size) reference points
        width = lambda r: r["metrics"][key]["high"] - r["metrics"][key]["low"]  # noqa: E731
        assert width(large) < width(small), key
    assert small["replicates"] == 40 and small["level"] == 0.95


def test_intervals_are_seeded():
    assert _intervals(200, 5, seed=3)[1] == _intervals(200, 5, seed=3)[1]
    assert _intervals(200, 5, seed=3)[1] != _intervals(200, 5, seed=4)[1]


def test_fid_cli_bootstrap_reuses_the_cached_features(real_runs, tmp_path, monkeypatch):
    import json

    from pipeline import FID, cli
    from varbench.features import inception

    def no_extraction(self, images):
        raise AssertionError("features were recomputed")

    monkeypatch.setattr(inception.InceptionExtractor, "extract", no_extraction)  # real_runs scored them already
    out = tmp_path / "boot.json"
    shown = cli("fid", real_runs.generate[1.5], "--ref", "ci_noise16", "--inception-weights", real_runs.weights, *FID,
                "--bootstrap", 20, "--json", out)
    res = json.loads(out.read_text())["results"]
    base = json.loads(real_runs.fid[1.5].read_text())["results"]
    assert res["metrics"] == base["metrics"]  # the same numbers, now with intervals
    ivs = res["intervals"]["metrics"]
    assert set(ivs) == {"fid", "sfid", "is_mean", "precision", "recall", "kid_mean"}
    assert all(iv["low"] <= res["metrics"][k] <= iv["high"] and iv["replicates"] == 20 for k, iv in ivs.items())
    assert "95% interval (20 bootstrap replicates)" in shown and base["intervals"] is None


def test_report_shows_the_intervals(real_runs, tmp_path):
    import json

    from pipeline import FID, cli
    from varbench.report import build
    from varbench.results.frame import load_inputs

    out = tmp_path / "boot.json"
    cli("fid", real_runs.generate[2.0], "--ref", "ci_noise16", "--inception-weights", real_runs.weights, *FID,
        "--bootstrap", 5, "--json", out)
    ivs = json.loads(out.read_text())["results"]["intervals"]["metrics"]
    quality = build(load_inputs([out])).table("quality")
    rec = {r["metric"]: r for r in quality.records()}
    assert rec["fid"]["ci"] == [ivs["fid"]["low"], ivs["fid"]["high"]] and rec["is_std"]["ci"] is None
    shown = quality.display()
    assert f"[{ivs['fid']['low']:.3f}, {ivs['fid']['high']:.3f}]" in shown["95% interval (bootstrap)"].tolist()
