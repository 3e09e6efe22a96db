"""benchmarks/gpu_acceptance.py runs end to end on the CPU with --tiny (so the GPU script never rots), and its
figures, memory checks, budget and out-of-memory skips do what they say."""

from __future__ import annotations

import importlib.util
import json
import math
import sys

import pytest

from conftest import ROOT
from varbench.errors import VarbenchError

STEPS = ("environment", "var_sampling", "raster_llamagen", "speed_study", "inception", "prec_recall", "cpu_vs_gpu")


def _module():
    spec = importlib.util.spec_from_file_location("gpu_acceptance", ROOT / "benchmarks" / "gpu_acceptance.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses resolve their module's namespace
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    import contextlib
    import io

    out = tmp_path_factory.mktemp("gpu_acceptance") / "tiny.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = _module().main(["--tiny", "--device", "cpu", "--json", str(out)])
    return result, json.loads(out.read_text()), printed.getvalue()


def test_tiny_run_covers_every_step(tiny_run):
    result, saved, printed = tiny_run
    assert saved["benchmark"] == "gpu_acceptance" and saved["tiny"] is True and saved["device"] == "cpu"
    assert {k: v["status"] for k, v in saved["steps"].items()} == {s: "ok" for s in STEPS}
    assert saved["elapsed_s"] < 180  # the test's budget on a loaded 2-core machine (about 35 s when quiet)
    # one table: a header and a line per row, every row also in the JSON
    lines = printed.split("\n")
    head = next(i for i, line in enumerate(lines) if line.startswith("step") and "measurement" in line)
    assert len(saved["table"]) > 20 and lines[head + 1:head + 1 + len(saved["table"])][-1].startswith("cpu_vs_gpu")
    assert any("CPU run: none of these are GPU numbers" in r[-1] for r in saved["table"])
    assert result["steps"].keys() == saved["steps"].keys()


def test_sampling_rows_are_consistent(tiny_run):
    steps = tiny_run[1]["steps"]
    peaks = steps["environment"]["result"]["matmul_peaks_flops_s"]
    assert set(peaks) == {"fp32", "bf16"} and all(v > 0 for v in peaks.values())
    rows = steps["var_sampling"]["result"]["rows"] + steps["raster_llamagen"]["result"]["rows"]
    assert {(r["model"], r["dtype"], r["batch"]) for r in rows} == {
        (m, dt, b) for m in ("var_w64d2", "raster_w64d2", "llamagen_tiny") for dt in ("fp32", "bf16") for b in (1, 2)}
    for r in rows:
        assert r["img_s"] == pytest.approx(r["batch"] / r["transformer_s"])
        assert r["with_decode_s"] == pytest.approx(r["transformer_s"] + r["decode_s"])
        assert r["transformer"]["efficiency"] == pytest.approx(
            r["flops_per_call"] / r["transformer_s"] / peaks[r["dtype"]])
        assert r["decode"]["efficiency"] == pytest.approx(
            r["decode_flops_per_call"] / r["decode_s"] / peaks[r["decode_dtype"]])
        assert r["attention_kernels"] and all("scaled_dot_product" in k for k in r["attention_kernels"])
    # VAR's decode follows its autocast, the raster tokenizer stays float32
    assert {(r["model"], r["dtype"], r["decode_dtype"]) for r in rows if r["model"] != "llamagen_tiny"} == {
        ("var_w64d2", "fp32", "fp32"), ("var_w64d2", "bf16", "bf16"),
        ("raster_w64d2", "fp32", "fp32"), ("raster_w64d2", "bf16", "fp32")}
    pub = steps["raster_llamagen"]["result"]["published_setting"]
    assert pub["batch"] == 2 and pub["resolution"] == 48 and pub["dtype"] == "bf16"
    skipped = [r for r in tiny_run[1]["table"] if r[0] == "var_sampling" and "largest batch" in r[1]]
    assert len(skipped) == 2 and all(r[2] == "skipped" for r in skipped)


def test_speed_inception_pr_and_device_comparison(tiny_run):
    steps = tiny_run[1]["steps"]
    (study,) = steps["speed_study"]["result"]["studies"]
    assert len(study["rows"]) == 4 * 2 * 2  # modes x resolutions x batches
    assert all(r["latency_s"] > 0 and r["efficiency"] is not None for r in study["rows"])
    assert len(study["time_fits"]) == 8 and all(math.isfinite(f["exponent"]) for f in study["time_fits"])
    inc = steps["inception"]["result"]
    # varbench's pipeline and torch-fidelity's agree on the same images (the independent reference)
    assert inc["images"] == 16 and inc["pool3_max_rel_diff"] < 1e-4
    assert inc["ratio_torch_fidelity_over_varbench"] > 0 and "random" in inc["weights"]
    pr = steps["prec_recall"]["result"]
    assert 0 <= pr["precision"] <= 1 and 0 <= pr["recall"] <= 1 and pr["peak_rss_bytes"] > 0
    assert pr["gpu_peak_bytes_added"] is None
    rows = steps["cpu_vs_gpu"]["result"]["rows"]
    assert {r["model"] for r in rows} == {"var_w64d2", "raster_w64d2"}
    # greedy decoding on one device twice: every token equal (var: 1 + 4 tokens of (1, 2), raster: 2 x 2 grid)
    assert all(r["all_equal"] and r["tokens_equal"] == r["tokens"] for r in rows)
    assert {r["model"]: r["tokens"] for r in rows} == {"var_w64d2": 2 * 5, "raster_w64d2": 2 * 4}


def test_spent_budget_and_missing_memory_skip_with_a_line(tmp_path, monkeypatch, capsys):
    mod = _module()
    res = mod.main(["--tiny", "--device", "cpu", "--budget-s", "0", "--json", str(tmp_path / "a.json")])
    assert all(v["status"] == "skipped" and "time budget" in v["reason"] for v in res["steps"].values())
    assert capsys.readouterr().out.count("skipped: time budget of 0 s spent") == len(STEPS)
    monkeypatch.setattr(mod, "free_bytes", lambda device: 0)
    res = mod.main(["--tiny", "--device", "cpu", "--steps", "environment,var_sampling",
                    "--json", str(tmp_path / "b.json")])
    assert set(res["steps"]) == {"environment", "var_sampling"}
    assert res["steps"]["environment"]["status"] == "ok"  # needs no memory
    assert res["steps"]["var_sampling"]["reason"] == "needs ~1.0 GiB, 0.0 GiB free"
    with pytest.raises(VarbenchError, match="already exists"):
        mod.main(["--tiny", "--device", "cpu", "--json", str(tmp_path / "b.json")])


def test_out_of_memory_skips_the_step_other_errors_propagate():
    mod = _module()
    ctx = mod.Ctx(mod.parse(["--tiny", "--device", "cpu"]), "cpu")

    def oom(_):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    mod.run_step(ctx, "var_sampling", 0, oom)
    assert ctx.steps["var_sampling"]["status"] == "skipped"
    assert ctx.steps["var_sampling"]["reason"].startswith("out of memory: CUDA out of memory")
    with pytest.raises(RuntimeError, match="shape mismatch"):
        mod.run_step(ctx, "inception", 0, lambda _: (_ for _ in ()).throw(RuntimeError("shape mismatch")))
