"""``varbench generate`` end to end: README quickstart, bad input (exit 2, one line), SIGKILL + resume, torchrun."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pipeline import ok, one_line_error
from varbench.cli.app import app

ROOT = Path(__file__).resolve().parent.parent
NOISE = ["--model", "noise_test", "--num-samples", "12", "--per-class", "2", "--chunk-size", "4", "--batch-size", "2"]


def invoke(*args):
    return CliRunner().invoke(app, ["generate", *map(str, args)])




def files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file() and p.name != ".lock"}


# ---------------------------------------------------------------------------------------------- README and var_test


def test_readme_quickstart_command_runs_as_written(tmp_path, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    command = "varbench generate --model var_test --labels 1,207,980,999 --out runs/quickstart"
    assert command in readme
    monkeypatch.chdir(tmp_path)
    result = ok(CliRunner().invoke(app, command.split()[1:]))
    assert "runs/quickstart/samples.npz" in result.stdout and "random weights" in result.stderr
    with np.load(tmp_path / "runs" / "quickstart" / "samples.npz", allow_pickle=False) as f:
        assert f["arr_0"].dtype == np.uint8 and f["arr_0"].shape == (4, 64, 64, 3)
        assert f["labels"].tolist() == [1, 207, 980, 999] and f["indices"].tolist() == [0, 1, 2, 3]
        assert f["arr_0"].std() > 0
    manifest = json.loads((tmp_path / "runs" / "quickstart" / "manifest.json").read_text())
    assert manifest["random_weights"] is True and manifest["model"]["name"] == "var_test"
    assert manifest["sampling"]["settings"] == {"cfg": 1.5, "more_smooth": False, "top_k": 900, "top_p": 0.96}
    assert manifest["sampling"]["guidance_rule"] == "var_ramp" and manifest["sampling"]["last_step_weight"] == 2.5
    result = json.loads((tmp_path / "runs" / "quickstart" / "result.json").read_text())
    assert result["kind"] == "generate" and result["random_weights"] is True


def test_var_test_per_sample_mode_is_batch_size_independent(tmp_path):
    common = ["--model", "var_test", "--num-samples", "6", "--chunk-size", "3", "--seed", "1"]
    ok(invoke(*common, "--batch-size", "2", "--out", tmp_path / "b2"))
    ok(invoke(*common, "--batch-size", "5", "--out", tmp_path / "b5"))
    assert (tmp_path / "b2" / "samples.npz").read_bytes() == (tmp_path / "b5" / "samples.npz").read_bytes()


def test_var_test_official_mode_uses_one_batch_per_chunk(tmp_path):
    args = ["--model", "var_test", "--num-samples", "4", "--rng", "official", "--batch-size", "2", "--cfg", "3"]
    ok(invoke(*args, "--out", tmp_path / "a"))
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["rng"] == "official" and manifest["plan"]["chunk_size"] == 2 and manifest["sampling"]["cfg"] == 3
    assert [c["batch_size"] for c in manifest["chunks"]] == [2, 2]
    ok(invoke(*args, "--out", tmp_path / "b"))
    assert (tmp_path / "a" / "samples.npz").read_bytes() == (tmp_path / "b" / "samples.npz").read_bytes()


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--model", "var_d31"], ["unknown model 'var_d31'", "var_d30"]),
        (["--model", "noise_test", "--num-samples", "130", "--per-class", "50"], ["not divisible by --per-class 50"]),
        (["--model", "noise_test", "--labels", "1,x"], ["--labels must be comma-separated integers"]),
        (["--model", "noise_test", "--labels", "1,1000"], ["0..999"]),
        (["--model", "noise_test", "--rng", "global"], ["unknown --rng"]),
        (["--model", "noise_test", "--dtype", "fp8"], ["unknown --dtype"]),
        (["--model", "var_test", "--top-p", "2"], ["--top-p must be in [0, 1]"]),
        (["--model", "noise_test", "--cfg", "2"], ["--cfg does not apply to noise_test"]),
        (["--model", "noise_test", "--image-size", "128"], ["--image-size applies to LlamaGen models; noise_test"]),
        (["--model", "noise_test", "--no-more-smooth"], ["--more-smooth does not apply to noise_test"]),
        (["--model", "var_test", "--temperature", "0.9"], ["--temperature does not apply to var_test",
                                                            "var models take --cfg, --top-k"]),
        (["--model", "var_test", "--patch-nums", "1,2,4"], ["--patch-nums describes a custom VAR"]),
        (["--model", "llamagen_test", "--more-smooth"], ["--more-smooth does not apply to llamagen_test"]),
        (["--model", "var_test", "--top-k", "-1"], ["--top-k must be an integer >= 0"]),
        (["--model", "var_test", "--labels", ""], ["--labels is empty"]),
        (["--model", "var_test", "--labels", "1,,2"], ["--labels is empty or has an empty item"]),
        (["--model", "var_test", "--threads", "0"], ["--threads must be at least 1"]),
        (["--model", "var_test", "--image-size", "256"], ["--image-size applies to LlamaGen"]),
        (["--model", "var_test", "--var-ckpt", "x.pth"], ["--var-ckpt does not apply to var_test"]),
        (["--var-ckpt", "x.pth"], ["--var-ckpt needs --vae-ckpt"]),
        (["--gpt-ckpt", "a.pt", "--vq-ckpt", "b.pt"], ["--gpt-ckpt a.pt is not a file"]),
        ([], ["choose a model"]),
        (["--model", "noise_test", "--nproc", "0"], ["--nproc must be at least 1"]),
        (["--model", "noise_test", "--device", "cuda"], ["CUDA is not available"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, needles):
    one_line_error(invoke(*args, "--out", tmp_path / "out"), *needles)
    assert not (tmp_path / "out").exists()


def test_missing_weights_offline_is_one_line(tmp_path):
    line = one_line_error(invoke("--model", "var_d16", "--out", tmp_path / "new" / "out"), "var_d16.pth",
                          "VARBENCH_OFFLINE")
    assert "--var-ckpt" in line
    assert not (tmp_path / "new").exists()  # a run that failed before any chunk leaves no directory behind
    (tmp_path / "mine").mkdir()
    one_line_error(invoke("--model", "var_d16", "--out", tmp_path / "mine"), "VARBENCH_OFFLINE")
    assert (tmp_path / "mine").is_dir()  # a directory that was there stays


def test_adding_png_to_a_finished_run_keeps_its_result(tmp_path):
    out = tmp_path / "run"
    ok(invoke(*NOISE, "--out", out))
    before = json.loads((out / "result.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    npz = (out / "samples.npz").read_bytes()
    shown = ok(invoke(*NOISE, "--png", "--out", out))
    assert "wrote 12 samples" not in shown.stdout and "already complete" in shown.stdout and "PNGs" in shown.stdout
    after = json.loads((out / "result.json").read_text())
    assert after["results"] == {**before["results"], "png_dir": str(out / "png")}
    assert after["results"]["images_per_second"] is not None and after["results"]["chunks_generated"] == 3
    m = json.loads((out / "manifest.json").read_text())
    assert m["artefacts"] == {**manifest["artefacts"], "png": m["artefacts"]["png"]} and m["artefacts"]["png"]
    assert m["chunks"] == manifest["chunks"] and m["timings"] == manifest["timings"]
    assert (out / "samples.npz").read_bytes() == npz and len(list((out / "png").glob("*.png"))) == 12


def test_other_run_in_out_dir_is_refused_and_overwrite_replaces_it(tmp_path):
    out = tmp_path / "out"
    ok(invoke(*NOISE, "--out", out))
    before = files(out)
    one_line_error(invoke(*NOISE, "--seed", "1", "--out", out), "holds a different run", "seed 0 -> 1", "--overwrite")
    one_line_error(invoke(*NOISE, "--dtype", "bf16", "--out", out), "dtype fp32 -> bf16")
    assert files(out) == before  # nothing touched
    result = ok(invoke(*NOISE, "--out", out, "--batch-size", "4"))  # same run, other batch size: nothing to do
    assert "already complete" in result.stdout and files(out) == before
    ok(invoke(*NOISE, "--seed", "1", "--overwrite", "--out", out))
    assert json.loads((out / "manifest.json").read_text())["seed"] == 1


def test_read_only_out_dir_is_one_line_and_keeps_finished_work(tmp_path, monkeypatch):
    out = tmp_path / "out"
    ok(invoke(*NOISE, "--out", out))
    before = files(out)
    if os.geteuid() == 0:  # root ignores permission bits: make every write into out fail as EACCES would
        real_open, real_mkstemp = os.open, tempfile.mkstemp

        def refuse(path):
            if str(path).startswith(str(out)):
                raise PermissionError(errno.EACCES, "Permission denied", str(path))

        monkeypatch.setattr(os, "open", lambda path, *a, **k: refuse(path) or real_open(path, *a, **k))
        monkeypatch.setattr(tempfile, "mkstemp", lambda *a, dir=None, **k: refuse(dir) or real_mkstemp(*a, dir=dir, **k))
    for p in [out, *out.rglob("*")]:
        if p.is_dir():
            p.chmod(0o555)
    try:
        one_line_error(invoke(*NOISE, "--png", "--out", out), "Permission denied", "--out")
        one_line_error(invoke(*NOISE, "--out", out / "sub"), "Permission denied")
    finally:
        for p in [out, *out.rglob("*")]:
            if p.is_dir():
                p.chmod(0o755)
    assert files(out) == before


def test_disk_full_is_one_line_and_resume_completes(tmp_path, monkeypatch):
    ok(invoke(*NOISE, "--out", tmp_path / "ref"))
    out = tmp_path / "out"
    real_fsync, calls = os.fsync, []

    def fsync(fd):  # manifest, chunk 0 (.npy + record), then ENOSPC
        calls.append(fd)
        if len(calls) > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    one_line_error(invoke(*NOISE, "--out", out), "no space left", "finished work is kept")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert sorted(p.name for p in (out / "chunks").iterdir()) == ["000000.json", "000000.npy"]
    assert not list(out.rglob("*.tmp"))
    result = ok(invoke(*NOISE, "--out", out))
    assert "2 chunk(s) made, 1 reused" in result.stdout
    assert (out / "samples.npz").read_bytes() == (tmp_path / "ref" / "samples.npz").read_bytes()


# ---------------------------------------------------------------------------------------------- SIGKILL and resume

KILLER = r"""
import os, signal, sys

point, args = sys.argv[1], sys.argv[2:]
kind, _, arg = point.partition(":")


def die():
    os.kill(os.getpid(), signal.SIGKILL)


if kind == "batch":  # killed inside generate() of the arg-th batch
    from varbench.generators.noise import NoiseGenerator

    real_generate, calls = NoiseGenerator.generate, []

    def generate(self, labels, seeds):
        calls.append(1)
        if len(calls) == int(arg):
            die()
        return real_generate(self, labels, seeds)

    NoiseGenerator.generate = generate
else:  # killed just before ("before") or just after ("after") the rename that publishes file `arg`
    real_replace = os.replace

    def replace(src, dst, *a, **k):
        if kind == "before" and os.path.basename(str(dst)) == arg:
            die()
        real_replace(src, dst, *a, **k)
        if kind == "after" and os.path.basename(str(dst)) == arg:
            die()

    os.replace = replace

sys.argv = ["varbench", "generate", *args]
from varbench.cli.app import main

main()
"""


def test_sigkill_at_many_points_then_resume_is_byte_identical(tmp_path):
    ok(invoke(*NOISE, "--png", "--out", tmp_path / "ref"))
    reference = files(tmp_path / "ref")
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    out = tmp_path / "out"
    points = [
        ("batch:3", []),  # inside chunk 1 (chunk 0 finished)
        ("before:000001.json", []),  # chunk 1 published, its record not
        ("after:000002.json", []),  # every chunk done, nothing packed
        ("before:samples.npz", []),  # packed into a temp file, not renamed
        ("after:samples.npz", []),  # packed, manifest not yet complete
        ("after:000005.png", ["--png"]),  # half the PNGs written
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for point, extra in points:
        proc = subprocess.run([sys.executable, str(script), point, *NOISE, *extra, "--out", str(out)], env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == -signal.SIGKILL, (point, proc.returncode, proc.stderr[-2000:])
    assert not (out / "png" / "000011.png").exists()
    ok(invoke(*NOISE, "--png", "--out", out))
    final = files(out)
    assert not [name for name in final if name.endswith(".tmp")]
    assert final["samples.npz"] == reference["samples.npz"]
    for name in reference:  # chunks, records (bar timings) and PNGs
        if name.startswith("png/") or name.endswith(".npy"):
            assert final[name] == reference[name], name
    with np.load(out / "samples.npz", allow_pickle=False) as f:
        assert sorted(f["indices"].tolist()) == list(range(12))  # nothing lost or duplicated
    manifest = json.loads(final["manifest.json"])
    assert manifest["status"] == "complete" and len(manifest["sessions"]) == 7
    assert [(c["start"], c["stop"]) for c in manifest["chunks"]] == [(0, 4), (4, 8), (8, 12)]


# ---------------------------------------------------------------------------------------------- torchrun


def test_nproc_2_torchrun_gloo_matches_one_process(tmp_path):
    ok(invoke(*NOISE, "--out", tmp_path / "one"))
    threads = os.environ.get("OMP_NUM_THREADS")
    ok(invoke(*NOISE, "--nproc", "2", "--batch-size", "3", "--out", tmp_path / "two"))
    assert os.environ.get("OMP_NUM_THREADS") == threads  # the launcher leaves this process's environment as it was
    assert (tmp_path / "two" / "samples.npz").read_bytes() == (tmp_path / "one" / "samples.npz").read_bytes()
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert sorted({c["rank"] for c in manifest["chunks"]}) == [0, 1]
    assert manifest["sessions"][-1]["world_size"] == 2


def test_nproc_refuses_other_run_before_launching(tmp_path):
    ok(invoke(*NOISE, "--out", tmp_path / "o"))
    one_line_error(invoke(*NOISE, "--seed", "4", "--nproc", "2", "--out", tmp_path / "o"), "holds a different run")


def test_under_raw_torchrun_only_rank_0_reports_a_refusal(tmp_path):
    ok(invoke(*NOISE, "--out", tmp_path / "o"))
    before = files(tmp_path / "o")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "varbench",
           "generate", *NOISE, "--seed", "9", "--out", str(tmp_path / "o")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "holds a different run" in errors[0], proc.stderr[-3000:]
    assert files(tmp_path / "o") == before


def test_nproc_inside_torchrun_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    one_line_error(invoke(*NOISE, "--nproc", "2", "--out", tmp_path / "o"), "--nproc launches torchrun itself")


@pytest.mark.slow
def test_torchrun_var_test_matches_one_process_with_same_threads(tmp_path):
    """VAR on CPU: bytes also depend on the thread count (VAE conv reductions), so both sides use one thread."""
    args = ["--model", "var_test", "--num-samples", "8", "--chunk-size", "2", "--batch-size", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run = [sys.executable, "-m", "varbench", "generate", *args]
    subprocess.run([*run, "--out", str(tmp_path / "one")], env=env, check=True, capture_output=True, timeout=300)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "varbench",
                "generate", *args, "--out", str(tmp_path / "two")]
    subprocess.run(torchrun, env=env, check=True, capture_output=True, timeout=300)
    assert (tmp_path / "two" / "samples.npz").read_bytes() == (tmp_path / "one" / "samples.npz").read_bytes()
