"""`varbench sweep` end to end on var_test: a grid over guidance scales and two seeds, one plan for all points, the
optima reported apart, resumable as a whole (nothing regenerated or rescored), another grid in the same --out
refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline import cli
from varbench.cli.app import app

SMALL = ["--metrics", "fid,is,pr,kid", "--is-splits", "2", "--kid-subsets", "3", "--kid-subset-size", "4",
         "--device", "cpu"]


@pytest.fixture(scope="module")
def swept(real_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "s"
    args = ["sweep", "--model", "var_test", "--cfg", "0,1.5", "--seeds", "0,1", "--num-samples", 8, "--per-class", 1,
            "--ref", "ci_noise16", "--inception-weights", real_runs.weights, *SMALL, "--out", out]
    shown = cli(*args)
    return out, args, shown


def test_sweep_result_points_seeds_and_optima(swept):
    out, _, shown = swept
    result = json.loads((out / "sweep.json").read_text())
    assert result["kind"] == "sweep" and result["random_weights"] is True
    res = result["results"]
    assert res["grid"] == {"cfg": [0.0, 1.5], "top_k": [900], "top_p": [0.96]} and res["seeds"] == [0, 1]
    assert [p["last_step_weight"] for p in res["points"]] == [1.0, 2.5]  # VAR's ramp: 1 + cfg at the last step
    assert all(p["guidance_rule"] == "var_ramp" for p in res["points"])
    for p in res["points"]:
        fids = [json.loads(open(r["fid_json"]).read())["results"]["metrics"]["fid"] for r in p["runs"]]
        s = p["summary"]["fid"]
        assert s["mean"] == pytest.approx(np.mean(fids)) and s["min"] == min(fids) and s["n"] == 2
        assert s["std"] == pytest.approx(np.std(fids, ddof=1)) and s["spread"] == pytest.approx(max(fids) - min(fids))
    opt = res["optima"]
    assert opt["no_guidance"]["cfg"] == 0.0 and opt["no_guidance"]["tuned_on_reference"] is False
    best = min(range(2), key=lambda i: res["points"][i]["summary"]["fid"]["mean"])
    assert opt["fid"]["point"] == best and opt["fid"]["tuned_on_reference"] and opt["fid"]["reference"] == "ci_noise16"
    assert opt["fd_dinov2"] is None  # not computed
    assert {p.name for p in (out / "sweep_plots").iterdir()} == {"fid_vs_guidance.png", "fid_vs_is.png",
                                                                 "precision_vs_recall.png"}
    assert "weight at last step" in shown and "FID-optimal (tuned on ci_noise16)" in shown and "no guidance" in shown


def test_every_point_shares_one_sampling_plan(swept):
    out, _, _ = swept
    res = json.loads((out / "sweep.json").read_text())["results"]
    manifests = {(p["cfg"], r["seed"]): json.loads(open(f"{r['out']}/manifest.json").read())
                 for p in res["points"] for r in p["runs"]}
    for seed in (0, 1):
        a, b = manifests[(0.0, seed)]["plan"], manifests[(1.5, seed)]["plan"]
        assert a == b and a["seed"] == seed
    assert manifests[(0.0, 0)]["plan"]["labels_sha256"] == manifests[(0.0, 1)]["plan"]["labels_sha256"]


def test_rerun_resumes_without_generating_or_scoring(swept, monkeypatch):
    out, args, _ = swept
    from varbench.evaluate import score
    from varbench.generators import protocol

    def refuse(*a, **k):
        raise AssertionError("work was redone")

    monkeypatch.setattr(protocol, "build", refuse)
    monkeypatch.setattr(score, "evaluate", refuse)
    before = json.loads((out / "sweep.json").read_text())["results"]["points"]
    cli(*args)
    assert json.loads((out / "sweep.json").read_text())["results"]["points"] == before


def test_another_grid_in_the_same_out_is_refused(swept):
    out, args, _ = swept
    changed = [str(a) for a in args]
    changed[changed.index("0,1.5")] = "0,2"
    res = CliRunner().invoke(app, changed)
    assert res.exit_code == 2 and "holds another sweep" in res.output and "Traceback" not in res.output
