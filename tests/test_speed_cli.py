"""The speed study: plan, FLOP counter vs formula, KV = no-KV tokens, VAR loop = sampler, and the CLI (--quick)."""

from __future__ import annotations

import dataclasses
import functools
import json
import math

import pytest
import torch
from typer.testing import CliRunner

from varbench.cli.app import app
from varbench.errors import VarbenchError
from varbench.generators import zoo
from varbench.models.sample import sample
from varbench.models.var import SCHEDULES, VAR, VARConfig, patch_schedule
from varbench.models.vqvae import VQVAE, VQVAEConfig
from varbench.results import read
from varbench.speed import decoders, timing
from varbench.speed import plan as speed_plan
from varbench.speed import run as speed_run

PATCH_NUMS_256, PATCH_NUMS_512, PATCH_NUMS_1024 = SCHEDULES[16], SCHEDULES[32], SCHEDULES[64]

runner = CliRunner()
ROW_KEYS = {"model", "family", "mode", "resolution", "grid", "batch_size", "steps", "tokens", "latency_s", "latency_ci",
            "throughput_img_s", "flops_analytic", "flops_counted", "peak_mem_bytes", "vq_decode_s", "kv_cache_bytes",
            "random_weights"}
FIT_KEYS = {"mode", "quantity", "exponent", "ci_low", "ci_high", "n_values"}


pytestmark = pytest.mark.usefixtures("one_thread")


def test_schedules():
    assert patch_schedule(16) == PATCH_NUMS_256
    assert patch_schedule(32) == PATCH_NUMS_512
    assert patch_schedule(64) == PATCH_NUMS_1024
    assert patch_schedule(8) == (1, 2, 3, 4, 6, 8)
    lengths = []
    for n in (2, 3, 5, 6, 12, 20, 100, 128, 1000):
        pn = patch_schedule(n)
        assert pn[0] == 1 and pn[-1] == n and all(a < b for a, b in zip(pn, pn[1:])), (n, pn)
        lengths.append(len(pn))
    assert lengths == sorted(lengths) and lengths[-1] <= 30  # O(log n) steps


def test_plan_steps_tokens_and_facts_flops():
    cfg = speed_plan.SpeedConfig(resolutions=(256, 512, 1024), batch_sizes=(1,))
    jobs = {(j.mode, j.resolution): j for j in speed_plan.plan(cfg)}
    assert {m for m, _ in jobs} == {"var_kv", "var_nokv", "raster_kv", "raster_nokv"}
    assert (jobs["var_kv", 256].steps, jobs["var_kv", 256].tokens) == (10, 680)
    assert (jobs["var_kv", 512].steps, jobs["var_kv", 512].tokens) == (10, 2240)
    assert jobs["var_kv", 1024].patch_nums == PATCH_NUMS_1024 and jobs["var_kv", 1024].steps == 14
    assert (jobs["raster_kv", 512].steps, jobs["raster_kv", 512].tokens) == (1024, 1024)
    assert jobs["var_kv", 256].flops(False).total / 1e9 == pytest.approx(300.3, rel=0.005)
    assert jobs["var_kv", 512].flops(False).total / 1e9 == pytest.approx(1137.1, rel=0.005)
    assert jobs["var_kv", 256].flops(True).total == 2 * jobs["var_kv", 256].flops(False).total
    # the twin's SwiGLU is 2816 wide (8/3 w rounded up to 256): 2-3% above the 24 w^2 convention of the facts
    assert jobs["raster_kv", 256].arch.mlp_flops == 6 * 1024 * 2816
    assert 1.0 < jobs["raster_kv", 256].flops(False).total / 107.4e9 < 1.03
    # KV cache: VAR-d16 at 256 with CFG in bf16 is the facts' 89 MB
    assert jobs["var_kv", 256].kv_cache_bytes(1, True, "bf16") == pytest.approx(89e6, rel=0.01)
    assert jobs["var_nokv", 256].kv_cache_bytes(1, True, "bf16") == 0


@functools.lru_cache(maxsize=None)
def _tiny_decoders(models: tuple[str, ...] = ("var_d16",)):
    cfg = speed_plan.SpeedConfig(models=models, resolutions=(64,), width=64, depth=2, vae_ch=32, batch_sizes=(1,))
    jobs = speed_plan.plan(cfg)
    built = {}
    for j in jobs:
        if j.build_key not in built:
            built[j.build_key] = decoders.build_decoder(j, cfg, "cpu", "fp32")
    return cfg, [(j, built[j.build_key]) for j in jobs]


@pytest.mark.parametrize("models,cfg_on", [(("var_d16",), False), (("var_d16",), True),
                                            (("var_d36",), False)])  # var_d36: shared AdaLN
def test_flop_counter_agrees_with_formula(models, cfg_on):
    _, jobs = _tiny_decoders(models)
    assert {j.shared_adaln for j, _ in jobs if j.family == "var"} == {models == ("var_d36",)}
    for job, dec in jobs:
        counter = timing.FlopCounter()
        dec.run(job, 1, cfg_on, 0, flops=counter)
        useful, executed = job.flops(cfg_on).total, job.flops(cfg_on, "executed").total
        assert counter.total == pytest.approx(useful, rel=0.02), (job.mode, counter.by_op)
        assert counter.total == executed, (job.mode, counter.by_op)  # exact once masked attention is counted
        if job.kv:
            assert counter.total == useful


def test_flops_scale_with_batch():
    _, jobs = _tiny_decoders()
    job, dec = next((j, d) for j, d in jobs if j.mode == "raster_kv")
    one, three = timing.FlopCounter(), timing.FlopCounter()
    dec.run(job, 1, False, 0, flops=one)
    dec.run(job, 3, False, 0, flops=three)
    assert three.total == 3 * one.total


def test_kv_and_no_kv_give_the_same_tokens():
    _, jobs = _tiny_decoders()
    by_mode = {j.mode: (j, d) for j, d in jobs}
    for kv, nokv in (("raster_kv", "raster_nokv"), ("var_kv", "var_nokv")):
        (jk, dec), (jn, _) = by_mode[kv], by_mode[nokv]
        for cfg_on in (False, True):
            a, b = dec.run(jk, 2, cfg_on, 5), dec.run(jn, 2, cfg_on, 5)
            assert same_tokens(a, b), (kv, cfg_on)
    # and the seed matters (the comparison is not vacuous)
    jk, dec = by_mode["raster_kv"]
    assert not same_tokens(dec.run(jk, 2, False, 5), dec.run(jk, 2, False, 6))


def same_tokens(a, b) -> bool:
    """VAR decodes return a SampleOutput (per-scale tokens), raster decodes a token tensor."""
    a, b = (getattr(x, "tokens", [x]) for x in (a, b))
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_var_decoder_runs_the_sampler_itself():
    """The study times VAR's own loop (models.sample) with the zoo's FID sampling: the same tokens and f_hat; without
    guidance only the conditional rows run, which draws the tokens the sampler draws at cfg 0."""
    import dataclasses

    _, jobs = _tiny_decoders()
    job, dec = next((j, d) for j, d in jobs if j.mode == "var_kv")
    labels = decoders._labels(3, "cpu")
    ref = sample(dec.var, dec.vae, labels, 3, zoo.VAR_FID_SAMPLING, torch.Generator().manual_seed(4))
    out = dec.run(job, 3, True, 4)
    assert job.sampling == zoo.VAR_FID_SAMPLING
    assert all(torch.equal(a, b) for a, b in zip(ref.tokens, out.tokens)) and torch.equal(ref.f_hat, out.f_hat)
    cfg0 = dataclasses.replace(zoo.VAR_FID_SAMPLING, cfg=0.0)
    ref0 = sample(dec.var, dec.vae, labels, 3, cfg0, torch.Generator().manual_seed(4))
    out0 = dec.run(job, 3, False, 4)
    assert all(torch.equal(a, b) for a, b in zip(ref0.tokens, out0.tokens))
    assert not all(torch.equal(a, b) for a, b in zip(out.tokens, out0.tokens))  # guidance changes the draw


def test_dry_run_json(tmp_path):
    out = tmp_path / "dry.json"
    res = runner.invoke(app, ["speed", "--dry-run", "--resolutions", "256,512", "--batch-sizes", "1",
                              "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "var_kv" in res.stdout and "n^6" in res.stdout
    obj = read.load(out, kind="speed")
    rows = obj["results"]["rows"]
    assert obj["results"]["dry_run"] is True and len(rows) == 8
    assert all(ROW_KEYS <= set(r) for r in rows) and all(r["latency_s"] is None for r in rows)
    assert all(r["efficiency"] is None and r["vq_decode_efficiency"] is None for r in rows)  # nothing was timed
    flops = {(r["mode"], r["resolution"]): r["flops_analytic"] / 1e9 for r in rows}
    assert flops["var_kv", 256] == pytest.approx(300.3, rel=0.005)
    assert flops["var_kv", 512] == pytest.approx(1137.1, rel=0.005)
    fits = [f for f in obj["results"]["fits"] if f["quantity"] == "flops"]
    assert {f["mode"] for f in fits} == {"var_kv", "var_nokv", "raster_kv", "raster_nokv"}
    assert all(FIT_KEYS <= set(f) for f in fits)
    last = {f["mode"]: f["local_exponent_last"] for f in fits}
    assert last["var_kv"] == pytest.approx(4, abs=0.1) and last["raster_kv"] == pytest.approx(4, abs=0.1)
    assert last["raster_nokv"] == pytest.approx(6, abs=0.1)


@pytest.mark.parametrize("args,needle", [
    (["--baselines", "raster_kvv"], "did you mean raster_kv"),
    (["--resolutions", "100"], "multiple of 16"),
    (["--resolutions", "256,abc"], "comma-separated integers"),
    (["--models", "raster_d16_256"], "takes VAR models"),
    (["--models", "var_d17"], "unknown model"),
    (["--width", "100"], "multiple of 64"),
    (["--batch-sizes", "0"], "positive"),
    (["--models", "var_d16,var_d16"], "--models has duplicates"),
    (["--resolutions", "256,256"], "--resolutions has duplicates"),
    (["--baselines", "raster_kv,raster_kv"], "--baselines has duplicates"),
    (["--models", "var_d16,var_d20", "--depth", "4"], "second var_w256d4"),
    (["--baselines", ""], "--baselines is empty"),
    (["--baselines", ","], "--baselines is empty"),
    (["--models", ""], "--models is empty"),
    (["--max-seconds", "0"], "--max-seconds must be > 0"),
    (["--max-seconds", "-1"], "--max-seconds must be > 0"),
    (["--repeats", "0"], "--repeats must be >= 1"),
    (["--warmup", "-1"], "--warmup must be >= 0"),
    (["--device", "tpu"], "unknown --device"),
])
def test_bad_input_is_one_line_exit_2(args, needle):
    res = runner.invoke(app, ["speed", "--dry-run", *args])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], res.stderr


def _one_error(res) -> str:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and "varbench speed" not in res.stdout  # nothing ran, no table printed
    errors = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error:"), res.stderr
    return errors[0]


def test_output_paths_are_checked_before_the_study_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(speed_run, "run", lambda *a, **k: pytest.fail("the study ran before the outputs were checked"))
    monkeypatch.setattr(speed_run, "dry_run", lambda *a, **k: pytest.fail("the dry run ran before the outputs were checked"))
    quick = ["speed", "--quick"]
    assert "is a directory" in _one_error(runner.invoke(app, [*quick, "--json", str(tmp_path)]))
    assert "is a directory" in _one_error(runner.invoke(app, [*quick, "--dry-run", "--plot", str(tmp_path)]))
    done_json, done_png = tmp_path / "done.json", tmp_path / "done.png"
    done_json.write_text("finished")
    done_png.write_bytes(b"finished")
    for flag, path in (("--json", done_json), ("--plot", done_png)):
        assert "already exists" in _one_error(runner.invoke(app, [*quick, flag, str(path)]))
    assert done_json.read_text() == "finished" and done_png.read_bytes() == b"finished"
    same = str(tmp_path / "x.out")
    assert "same file" in _one_error(runner.invoke(app, [*quick, "--json", same, "--plot", same]))
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert "not a writable directory" in _one_error(runner.invoke(app, [*quick, "--json", str(blocker / "a.json")]))


def test_overwrite_replaces_finished_outputs(tmp_path):
    out, png = tmp_path / "s.json", tmp_path / "s.png"
    out.write_text("old")
    png.write_bytes(b"old")
    args = ["speed", "--dry-run", "--json", str(out), "--plot", str(png)]
    assert runner.invoke(app, args).exit_code == 2 and out.read_text() == "old"
    res = runner.invoke(app, [*args, "--overwrite"])
    assert res.exit_code == 0, res.output
    assert read.load(out, kind="speed")["results"]["dry_run"] is True
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_device_check_with_the_gpu_index(monkeypatch):
    """dist.check_device is the only resolver: build_var and the speed study refuse a cuda:N beyond the GPUs."""
    from varbench import dist
    from varbench.generators import var as var_generator

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert dist.check_device("cuda") == "cuda:0" and dist.check_device("cuda", local_rank=0) == "cuda:0"
    assert dist.check_device("auto") == "cuda:0" and dist.check_device(" CPU ") == "cpu"
    with pytest.raises(VarbenchError, match="cuda:3 does not exist"):
        dist.check_device("cuda:3")
    with pytest.raises(VarbenchError, match="cuda:3 does not exist"):
        var_generator.build_var(zoo.get("var_test"), {}, device="cuda:3")
    with pytest.raises(VarbenchError, match="cuda:3 does not exist"):
        speed_run.dry_run(speed_plan.SpeedConfig(device="cuda:3"))
    with pytest.raises(VarbenchError, match="unsupported --device"):
        speed_run.dry_run(speed_plan.SpeedConfig(device="meta"))
    assert not hasattr(var_generator, "check_device") and not hasattr(speed_run, "resolve_device")


def test_readme_quick_command_writes_json_and_png(tmp_path, monkeypatch):
    """The README's main job, run as written: the whole --quick study on CPU (about a minute on one core)."""
    from pathlib import Path

    command = "varbench speed --quick --json runs/quick_speed.json --plot runs/quick_speed.png --overwrite"
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert f"pip install -e . && {command}\n" in readme.split("```")[1]  # the first command of the quickstart
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, command.split()[1:])
    assert res.exit_code == 0, res.output
    out, png = tmp_path / "runs" / "quick_speed.json", tmp_path / "runs" / "quick_speed.png"
    obj = read.load(out, kind="speed")
    assert obj["random_weights"] is True and obj["env"]["device"] == "cpu"
    assert obj["config"]["quick"] is True and obj["config"]["dtype"] == "fp32"
    rows = obj["results"]["rows"]
    assert len(rows) == 3 * 4 * 2 and {r["batch_size"] for r in rows} == {1, 2} and all(ROW_KEYS <= set(r) for r in rows)
    for r in rows:
        assert r["latency_s"] > 0 and r["latency_ci"][0] <= r["latency_s"] <= r["latency_ci"][1]
        assert r["throughput_img_s"] == pytest.approx(r["batch_size"] / r["latency_s"])
        assert r["vq_decode_s"] > 0 and r["peak_mem_bytes"] > 0 and r["random_weights"] is True
        assert r["flops_counted"] == r["flops_analytic_executed"]  # the counter, exactly
        if not r["mode"].endswith("nokv"):
            assert r["flops_counted"] == r["flops_analytic"]
        else:  # no-KV: the kernel also computes the masked part of attention
            assert r["flops_analytic"] < r["flops_counted"] < 1.05 * r["flops_analytic"]
        assert (r["kv_cache_bytes"] > 0) == (not r["mode"].endswith("nokv"))
        # efficiency: executed FLOPs / latency over the fp32 matmul peak measured at the start of the run
        assert r["matmul_peak_flops_s"] == obj["config"]["matmul_peaks_flops_s"]["fp32"] > 0
        assert r["achieved_flops_s"] == pytest.approx(r["flops_analytic_executed"] * r["batch_size"] / r["latency_s"])
        assert r["efficiency"] == pytest.approx(r["achieved_flops_s"] / r["matmul_peak_flops_s"])
        assert r["vq_decode_dtype"] == "fp32" and r["vq_decode_peak_flops_s"] == r["matmul_peak_flops_s"]
        assert r["vq_decode_efficiency"] == pytest.approx(
            r["vq_decode_flops"] / r["vq_decode_s"] / r["vq_decode_peak_flops_s"])
        assert 0 < r["efficiency"] < 3 and 0 < r["vq_decode_efficiency"] < 3  # a plain matmul is the practical top
    decode = {(r["mode"], r["resolution"], r["batch_size"]): r["vq_decode_flops"] for r in rows}
    assert all(decode[m, res, 2] == 2 * decode[m, res, 1] > 0 for m, res, b in decode if b == 1)
    assert "% peak" in res.stdout and "a plain matmul measured in this run (fp32" in res.stdout
    # latency (batch 1): VAR < raster with KV cache < raster without, at every resolution
    latency = [o for o in obj["results"]["ordering"] if o["batch_size"] == 1]
    assert len(latency) == 3 and all(o["holds"] for o in latency), latency
    assert "as expected" in res.stdout
    fits = obj["results"]["fits"]
    time_fits = [f for f in fits if f["quantity"] == "time"]
    assert len(time_fits) == 8 and all(FIT_KEYS <= set(f) and f["ci_low"] <= f["ci_high"] for f in time_fits)
    assert all(math.isfinite(f["exponent"]) for f in fits)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    # the report's readers accept the file
    from varbench.report import tables

    assert tables.speed_tables([("quick", obj, out)])[0] is not None and json.loads(out.read_text())["kind"] == "speed"


def test_decode_dtype_follows_the_fast_mode():
    """The speed study decodes VAR under the transformer's autocast (as VarGenerator.decode); the raster tokenizer
    keeps its own dtype."""
    _, jobs = _tiny_decoders()
    by_mode = {j.mode: d for j, d in jobs}
    assert by_mode["var_kv"].decode_dtype == "fp32" and by_mode["raster_kv"].decode_dtype == "fp32"
    fast = decoders.VarDecoder(by_mode["var_kv"].var, by_mode["var_kv"].vae, random_weights=True,
                               autocast_dtype=torch.bfloat16, compile=False)
    assert fast.decode_dtype == "bf16"


def test_released_weights_used_only_when_cached_and_matching(monkeypatch):
    from types import SimpleNamespace

    import varbench.generators.protocol
    from varbench.generators import weights

    pn = (1, 2, 3, 4)
    tiny = SimpleNamespace(var=VAR(VARConfig(depth=1, patch_nums=pn, width=64, num_heads=1)),
                           vae=VQVAE(VQVAEConfig(patch_nums=pn, ch=32)))
    built = []
    monkeypatch.setattr(varbench.generators.protocol, "build", lambda spec, *a, **k: built.append(spec.name) or tiny)
    monkeypatch.setattr(weights, "is_cached", lambda wf: True)
    cfg = speed_plan.SpeedConfig(resolutions=(256, 512), batch_sizes=(1,))
    jobs = {(j.mode, j.resolution): j for j in speed_plan.plan(cfg)}
    dec = decoders.build_decoder(jobs["var_kv", 256], cfg, "cpu", "fp32")
    assert built == ["var_d16"] and dec.random_weights is False and dec.var is tiny.var
    # var_d16's checkpoint has the 256-px schedule: at 512 px (and with another tokenizer width) random weights
    for job, c in ((jobs["var_kv", 512], cfg), (jobs["var_kv", 256], dataclasses.replace(cfg, vae_ch=32))):
        monkeypatch.setattr(decoders, "_random_var", lambda *a: (tiny.var, tiny.vae))
        assert decoders.build_decoder(job, c, "cpu", "fp32").random_weights is True
    assert built == ["var_d16"]
    monkeypatch.setattr(weights, "is_cached", lambda wf: False)
    assert decoders._cached_spec("var_d16") is None
