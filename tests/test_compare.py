"""``varbench compare`` on real results: exit 1 on a regression beyond the thresholds, 0 otherwise, each metric by its
registered direction; defaults pass a faithful rerun and fail a real change; changed samples fail the gate."""

from __future__ import annotations

import copy
import json

import pytest
from typer.testing import CliRunner

from pipeline import FID, cli
from varbench.cli.app import app
from varbench.errors import VarbenchError
from varbench.metrics import registry
from varbench.report import compare as gate
from varbench.results import read, schema

runner = CliRunner()


def _holder(real_runs, metric: str) -> dict:
    """A real result that holds ``metric``: fid for quality metrics, generate, speed."""
    group = registry.get(metric).group
    path = {"quality": real_runs.fid[1.5], "generate": real_runs.generate[1.5] / "result.json",
            "speed": real_runs.speed}[group]
    return copy.deepcopy(read.load(path))


def _set(result: dict, metric: str, value: float) -> dict:
    res = result["results"]
    if result["kind"] == "fid":
        res["metrics"][metric] = value
    elif result["kind"] == "generate":
        res[metric] = value
    else:
        res["rows"][0][metric] = value
    return result


@pytest.mark.parametrize("metric", sorted(registry.METRICS))
def test_every_metric_is_judged_by_its_direction(real_runs, metric):
    higher = registry.get(metric).higher_is_better
    better, worse = (11.0, 9.0) if higher else (9.0, 11.0)
    tol = {metric: gate.Threshold(0.5)}
    base = _set(_holder(real_runs, metric), metric, 10.0)
    cmp = gate.compare(base, _set(copy.deepcopy(base), metric, worse), tol)
    assert [c.metric for c in cmp.regressions] == [metric]
    cmp = gate.compare(base, _set(copy.deepcopy(base), metric, better), tol)
    assert cmp.regressions == [] and any(c.metric == metric and c.status == "improved" for c in cmp.changes)
    within = _set(copy.deepcopy(base), metric, 10.4 if not higher else 9.6)
    assert gate.compare(base, within, tol).regressions == []


def test_defaults_pass_a_faithful_rerun_and_fail_a_real_change(real_runs, tmp_path):
    """A second scoring of the same samples (features from the cache) passes the defaults; FID 0.1% worse fails;
    spread metrics (is_std, kid_std) are not gated unless named."""
    again = tmp_path / "again.json"
    cli("fid", real_runs.generate[1.5], "--ref", "ci_noise16", "--inception-weights", real_runs.weights, *FID,
        "--json", again)
    base = read.load(real_runs.fid[1.5])
    assert gate.compare(base, read.load(again)).regressions == []
    res = runner.invoke(app, ["compare", str(real_runs.fid[1.5]), str(again), "--max-regression", "fid=0.01,is=0.05"])
    assert res.exit_code == 0 and "no regressions" in res.output, res.output
    worse = copy.deepcopy(base)
    worse["results"]["metrics"]["fid"] *= 1.001
    worse["results"]["metrics"]["is_std"] *= 10
    worse["results"]["metrics"]["kid_std"] *= 10
    cmp = gate.compare(base, worse)
    assert [c.metric for c in cmp.regressions] == ["fid"]
    assert {c.metric: str(c.threshold) for c in cmp.changes}["is_std"] == "not gated"
    assert [c.metric for c in gate.compare(base, worse, gate.parse_thresholds("is_std=0")).regressions] == [
        "fid", "is_std"]
    assert [c.metric for c in gate.compare(base, worse, gate.parse_thresholds("*=1")).regressions] == []


def test_changed_samples_fail_the_gate_unless_allowed(real_runs, tmp_path):
    base = read.load(real_runs.fid[1.5])
    other = read.load(real_runs.fid[2.0])  # other samples (another cfg); compare the same metric values
    other["results"]["metrics"] = dict(base["results"]["metrics"])
    other["results"]["backends"] = {"adm": dict(base["results"]["metrics"])}
    cmp = gate.compare(base, other)
    assert [c.metric for c in cmp.regressions] == ["samples"]
    assert gate.compare(base, other, allow_changed_samples=True).regressions == []
    b, n = tmp_path / "b.json", tmp_path / "n.json"
    schema.save(b, base)
    schema.save(n, other)
    res = runner.invoke(app, ["compare", str(b), str(n)])
    assert res.exit_code == 1 and "the scored samples changed" in res.output
    assert "protocol sampling.cfg: 1.5 vs 2.0" in res.output  # what differs is printed
    assert runner.invoke(app, ["compare", str(b), str(n), "--allow-changed-samples"]).exit_code == 0


def test_thresholds_parse_keys_aliases_and_percent():
    t = gate.parse_thresholds("fid=0.05, is=2,kid=0.001,latency=10%,throughput=5%,*=inf")
    assert set(t) == {"fid", "is_mean", "kid_mean", "latency_s", "throughput_img_s", "*"}
    assert t["latency_s"] == gate.Threshold(0.10, relative=True) and t["is_mean"] == gate.Threshold(2.0)
    assert t["latency_s"].limit(2.0) == pytest.approx(0.2)
    for bad, msg in (("fid", "not METRIC=VALUE"), ("fid=x", "not a number"), ("fid=-1", ">= 0"),
                     ("fidd=1", "did you mean fid")):
        with pytest.raises(VarbenchError, match=msg):
            gate.parse_thresholds(bad)


def _cli(tmp_path, base, new, *args):
    b, n = tmp_path / "base.json", tmp_path / "new.json"
    schema.save(b, base)
    schema.save(n, new)
    return runner.invoke(app, ["compare", str(b), str(n), *args])


def test_cli_exit_codes_on_regressions_and_improvements(real_runs, tmp_path):
    base = read.load(real_runs.fid[1.5])
    m = base["results"]["metrics"]

    def variant(**changes):
        new = copy.deepcopy(base)
        new["results"]["metrics"].update(changes)
        return new

    res = _cli(tmp_path, base, variant(fid=m["fid"] - 1, is_mean=m["is_mean"] + 1))
    assert res.exit_code == 0 and "no regressions" in res.output and "improved" in res.output
    worse = variant(fid=m["fid"] + 0.2)
    assert _cli(tmp_path, base, worse).exit_code == 1
    res = _cli(tmp_path, base, worse, "--max-regression", "fid=0.1")
    assert res.exit_code == 1 and "regression(s): fid +0.200 (allowed 0.1)" in res.output
    assert _cli(tmp_path, base, worse, "--max-regression", "fid=0.5").exit_code == 0
    assert _cli(tmp_path, base, variant(is_mean=m["is_mean"] - 3), "-t", "is=2").exit_code == 1
    assert _cli(tmp_path, base, variant(is_mean=m["is_mean"] + 3), "-t", "is=2").exit_code == 0
    assert _cli(tmp_path, base, variant(is_mean=0.5), "-t", "*=inf,fid=0").exit_code == 0


def test_speed_regressions_use_relative_thresholds(real_runs, tmp_path):
    base = read.load(real_runs.speed)
    slower = copy.deepcopy(base)
    row = slower["results"]["rows"][1]
    row["latency_s"] *= 1.2
    row["throughput_img_s"] /= 1.2
    res = _cli(tmp_path, base, slower, "--json")
    assert res.exit_code == 1, res.output
    bad = [(c["metric"], c["status"]) for c in json.loads(res.output)["changes"] if c["status"] == "regressed"]
    assert bad == [("latency_s", "regressed"), ("throughput_img_s", "regressed")]
    assert _cli(tmp_path, base, slower, "--max-regression", "latency=25%,throughput=25%").exit_code == 0


def test_a_metric_missing_in_new_is_a_regression(real_runs, tmp_path):
    base = read.load(real_runs.fid[1.5])
    new = copy.deepcopy(base)
    del new["results"]["metrics"]["precision"]
    res = _cli(tmp_path, base, new, "--out", str(tmp_path / "cmp.md"))
    assert res.exit_code == 1 and "precision missing in new" in res.output
    md = (tmp_path / "cmp.md").read_text()
    assert "| precision | higher |" in md and "| missing |" in md
    again = _cli(tmp_path, base, new, "--out", str(tmp_path / "cmp.md"))
    assert again.exit_code == 2 and "already exists" in again.output  # --out refuses to replace a file


def test_bad_inputs_exit_2_with_one_line(real_runs, tmp_path):
    from test_report import _one_line_error

    fid, speed = read.load(real_runs.fid[1.5]), read.load(real_runs.speed)
    assert "cannot compare a 'fid' result" in _one_line_error(_cli(tmp_path, fid, speed))
    future = tmp_path / "v9.json"
    future.write_text(json.dumps({**fid, "schema_version": 9}))
    res = runner.invoke(app, ["compare", str(real_runs.fid[1.5]), str(future)])
    assert "schema_version 9" in _one_line_error(res)
    assert "did you mean" in _one_line_error(_cli(tmp_path, fid, fid, "-t", "fdi=1"))
    assert "--out must end in" in _one_line_error(_cli(tmp_path, fid, fid, "--out", str(tmp_path / "x.txt")))


def test_committed_baseline_is_a_fid_result_that_passes_against_itself():
    from conftest import ROOT

    path = ROOT / "reports" / "baseline.json"
    base = read.load(path, kind="fid")
    assert base["random_weights"] is True  # tiny random-weight model and Inception: never a quality claim
    assert {"fid", "sfid", "kid_mean"} <= set(base["results"]["metrics"])
    res = runner.invoke(app, ["compare", str(path), str(path)])
    assert res.exit_code == 0 and "no regressions" in res.output, res.output


@pytest.mark.slow
def test_ci_regression_script_passes_against_the_committed_baseline(tmp_path):
    """.ci/regression end to end (about 2 minutes on 2 cores): generate -> fid -> report -> compare, exit 0."""
    import subprocess

    from conftest import ROOT

    proc = subprocess.run([str(ROOT / ".ci" / "regression"), str(tmp_path / "ci")], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "no regressions" in proc.stdout
    assert (tmp_path / "ci" / "report.html").is_file()
    gate_table = (tmp_path / "ci" / "compare.md").read_text()
    assert "differ" not in gate_table and "| changed |" not in gate_table  # a faithful rerun: nothing to warn about
