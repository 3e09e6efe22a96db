"""``varbench compare``: exit 1 on a regression beyond the thresholds, 0 otherwise, by each metric's direction."""

from __future__ import annotations

import copy
import json

import pytest
from typer.testing import CliRunner

from test_report import _envelope, _one_line_error, fid_result, speed_result, write
from varbench import report
from varbench.cli.app import app
from varbench.errors import VarbenchError
from varbench.metrics import registry

runner = CliRunner()


def _pair(metric: str, base_value: float, new_value: float) -> tuple[dict, dict]:
    """Two results of the kind that holds ``metric``, identical except for that metric."""
    if metric in report.QUALITY_METRICS:
        base = fid_result()
        base["results"]["backends"] = {}
        new = copy.deepcopy(base)
        base["results"]["metrics"][metric], new["results"]["metrics"][metric] = base_value, new_value
    elif metric == "images_per_second":
        base = _envelope("generate", {"model": "var_test"}, {"num_samples": 8, "images_per_second": base_value})
        new = copy.deepcopy(base)
        new["results"]["images_per_second"] = new_value
    else:
        row = {"model": "var_test", "mode": "var_kv", "resolution": 64, "batch_size": 1, "latency_s": 1.0,
               "throughput_img_s": 1.0, "peak_mem_bytes": 1000}  # fmt: skip
        base = speed_result(rows=[{**row, metric: base_value}], fits=[])
        new = speed_result(rows=[{**row, metric: new_value}], fits=[])
    return base, new


@pytest.mark.parametrize("metric", sorted(registry.METRICS))
def test_every_metric_is_judged_by_its_direction(metric):
    higher = registry.get(metric).higher_is_better
    better, worse = (11.0, 9.0) if higher else (9.0, 11.0)
    tol = {metric: report.Threshold(0.5)}
    base, new = _pair(metric, 10.0, worse)
    cmp = report.compare(base, new, tol)
    assert [(c.metric, c.status) for c in cmp.regressions] == [(metric, "regressed")]
    base, new = _pair(metric, 10.0, better)
    cmp = report.compare(base, new, tol)
    assert cmp.regressions == [] and next(c for c in cmp.changes if c.metric == metric).status == "improved"
    base, new = _pair(metric, 10.0, 10.4 if not higher else 9.6)  # worse, but within 0.5
    assert report.compare(base, new, tol).regressions == []


def test_thresholds_parse_keys_aliases_and_percent():
    t = report.parse_thresholds("fid=0.05, is=2,kid=0.001,latency=10%,throughput=5%,*=inf")
    assert set(t) == {"fid", "is_mean", "kid_mean", "latency_s", "throughput_img_s", "*"}
    assert t["latency_s"] == report.Threshold(0.10, relative=True) and t["is_mean"] == report.Threshold(2.0)
    assert t["latency_s"].limit(2.0) == pytest.approx(0.2)
    for bad, msg in (("fid", "not METRIC=VALUE"), ("fid=x", "not a number"), ("fid=-1", ">= 0"),
                     ("fidd=1", "did you mean fid")):  # fmt: skip
        with pytest.raises(VarbenchError, match=msg):
            report.parse_thresholds(bad)


def _cli(tmp_path, base, new, *args):
    b, n = write(tmp_path, "base", base), write(tmp_path, "new", new)
    return runner.invoke(app, ["compare", str(b), str(n), *args])


def test_cli_exit_codes_on_crafted_regressions_and_improvements(tmp_path):
    base = fid_result(fid=10.0, is_mean=100.0, precision=0.7)
    # improvement in every direction: FID down, IS and precision up -> 0
    res = _cli(tmp_path, base, fid_result(fid=9.0, is_mean=110.0, precision=0.8))
    assert res.exit_code == 0, res.output
    assert "no regressions" in res.output and "improved" in res.output
    # FID up by 0.2: a regression at the default (0) and at fid=0.1, not at fid=0.5 -> 1, 1, 0
    worse = fid_result(fid=10.2, is_mean=100.0, precision=0.7)
    assert _cli(tmp_path, base, worse).exit_code == 1
    res = _cli(tmp_path, base, worse, "--max-regression", "fid=0.1")
    assert res.exit_code == 1 and "regression(s): fid +0.200 (allowed 0.1)" in res.output
    assert _cli(tmp_path, base, worse, "--max-regression", "fid=0.5").exit_code == 0
    assert _cli(tmp_path, base, worse, "--max-regression", "fid=3%").exit_code == 0
    # IS is higher-is-better: falling by 3 fails with is=2; rising by 3 passes
    assert _cli(tmp_path, base, fid_result(fid=10.0, is_mean=97.0, precision=0.7), "-t", "is=2").exit_code == 1
    assert _cli(tmp_path, base, fid_result(fid=10.0, is_mean=103.0, precision=0.7), "-t", "is=2").exit_code == 0
    # '*=inf' gates only the metrics named
    assert _cli(tmp_path, base, fid_result(fid=10.0, is_mean=50.0, precision=0.1), "-t", "*=inf,fid=0").exit_code == 0


def test_speed_regressions_use_relative_thresholds(tmp_path):
    base = speed_result()
    slower = copy.deepcopy(base)
    row = slower["results"]["rows"][4]
    row["latency_s"] *= 1.2
    row["throughput_img_s"] /= 1.2
    res = _cli(tmp_path, base, slower, "--max-regression", "latency=10%,throughput=10%", "--json")
    assert res.exit_code == 1, res.output
    out = json.loads(res.output)
    bad = [(c["item"], c["metric"]) for c in out["changes"] if c["status"] == "regressed"]
    assert bad == [("raster_test raster_kv 128px b1", "latency_s"), ("raster_test raster_kv 128px b1", "throughput_img_s")]
    assert _cli(tmp_path, base, slower, "--max-regression", "latency=25%,throughput=25%").exit_code == 0
    faster = copy.deepcopy(base)
    for r in faster["results"]["rows"]:
        r["latency_s"] /= 2
        r["throughput_img_s"] *= 2
    assert _cli(tmp_path, base, faster).exit_code == 0


def test_a_metric_missing_in_new_is_a_regression(tmp_path):
    new = fid_result()
    del new["results"]["metrics"]["precision"]
    res = _cli(tmp_path, fid_result(), new, "--out", str(tmp_path / "cmp.md"))
    assert res.exit_code == 1 and "precision missing in new" in res.output
    md = (tmp_path / "cmp.md").read_text()
    assert "| precision | higher |" in md and "| missing |" in md


def test_config_differences_are_warned_not_failed(tmp_path):
    res = _cli(tmp_path, fid_result(cfg=1.5), fid_result(cfg=2.0))
    assert res.exit_code == 0 and "config sampling.cfg: 1.5 vs 2.0" in res.output


def test_bad_inputs_exit_2_with_one_line(tmp_path):
    line = _one_line_error(_cli(tmp_path, fid_result(), speed_result()))
    assert "cannot compare a 'fid' result" in line
    v2 = tmp_path / "v2.json"
    v2.write_text(json.dumps({**fid_result(), "schema_version": 2}))
    res = runner.invoke(app, ["compare", str(write(tmp_path, "b", fid_result())), str(v2)])
    assert "schema_version 2" in _one_line_error(res)
    assert "did you mean" in _one_line_error(_cli(tmp_path, fid_result(), fid_result(), "-t", "fdi=1"))
    assert "--out must end in" in _one_line_error(_cli(tmp_path, fid_result(), fid_result(), "--out", str(tmp_path / "x.txt")))


def test_committed_baseline_is_a_fid_result_that_passes_against_itself():
    from conftest import ROOT

    path = ROOT / "reports" / "baseline.json"
    base = report.results.load(path, kind="fid")
    assert base["random_weights"] is True  # tiny random-weight model and Inception: never a quality claim
    assert {"fid", "sfid", "kid_mean"} <= set(base["results"]["metrics"])
    res = runner.invoke(app, ["compare", str(path), str(path), "--max-regression", "*=inf,fid=1%,sfid=1%,kid=1%"])
    assert res.exit_code == 0 and "no regressions" in res.output, res.output


@pytest.mark.slow
def test_ci_regression_script_passes_against_the_committed_baseline(tmp_path):
    """.ci/regression end to end (about 2 minutes on 2 cores): generate -> fid -> report -> compare, exit 0."""
    import subprocess

    from conftest import ROOT

    proc = subprocess.run([str(ROOT / ".ci" / "regression"), str(tmp_path / "ci")], capture_output=True, text=True,
                          timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "no regressions" in proc.stdout
    assert (tmp_path / "ci" / "report.html").is_file() and (tmp_path / "ci" / "compare.md").is_file()
