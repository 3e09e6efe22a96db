"""What a new user hit (issue 12), one test per item: each failed before its fix."""

from __future__ import annotations

import json
import os
import re

import pytest
from typer.testing import CliRunner

from conftest import ROOT
from test_generate_cli import NOISE, invoke, ok, one_line_error
from varbench.cli.app import app

runner = CliRunner()


def test_no_default_test_needs_the_shared_folder():
    """A user's clone has no ../shared: every test that reads it is skipped without it."""
    import ast

    for path in (ROOT / "tests").glob("test_*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and "SHARED" in ast.unparse(node) and node.name != (
                    "test_no_default_test_needs_the_shared_folder"):
                marks = " ".join(ast.unparse(d) for d in node.decorator_list)
                assert "skipif" in marks and "SHARED" in marks, f"{path.name}::{node.name} reads ../shared"


@pytest.mark.parametrize("model, top_k", [("var_test", 4097), ("llamagen_test", 16385)])
def test_top_k_at_or_above_the_vocabulary_is_off_for_every_family(tmp_path, model, top_k):
    ok(invoke("--model", model, "--labels", "1", "--top-k", top_k, "--out", tmp_path / "k"))
    manifest = json.loads((tmp_path / "k" / "manifest.json").read_text())
    assert manifest["sampling"]["top_k"] == 0  # recorded as what it is: no top-k
    ok(invoke("--model", model, "--labels", "1", "--top-k", 0, "--out", tmp_path / "k"))  # the same run


def test_sampling_settings_are_checked_before_any_weights(tmp_path):
    """var_d16's weights are not here (offline); a bad setting is reported first, then the missing files."""
    one_line_error(invoke("--model", "var_d16", "--top-p", "1.5", "--out", tmp_path / "o"), "--top-p must be in")
    one_line_error(invoke("--model", "llamagen_b", "--top-p", "0", "--temperature", "0", "--out", tmp_path / "o"),
                   "--temperature must be > 0")
    one_line_error(invoke("--model", "var_d16", "--out", tmp_path / "o"), "var_d16.pth", "vae_ch160v4096z32.pth")


def test_overwrite_removes_only_what_varbench_wrote(tmp_path):
    out = tmp_path / "run"
    ok(invoke(*NOISE, "--png", "--out", out))
    (out / "png" / "my_notes.txt").write_text("mine")
    (out / "chunks" / "keep.npy").write_bytes(b"mine")
    (out / "fid.json").write_text("{}")
    ok(invoke(*NOISE, "--seed", "5", "--png", "--overwrite", "--out", out))
    assert (out / "png" / "my_notes.txt").read_text() == "mine" and (out / "chunks" / "keep.npy").read_bytes() == b"mine"
    assert (out / "fid.json").read_text() == "{}"  # never ours to delete (the report warns that it is stale)
    assert len(list((out / "png").glob("*.png"))) == 12
    assert json.loads((out / "manifest.json").read_text())["seed"] == 5


def test_a_foreign_manifest_is_not_replaced_even_with_overwrite(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "manifest.json").write_text('{"something": "else"}')
    line = one_line_error(invoke(*NOISE, "--overwrite", "--out", out), "not a varbench generate manifest")
    assert "pass --overwrite" not in line and "choose another --out" in line
    assert (out / "manifest.json").read_text() == '{"something": "else"}'


def test_progress_reaches_a_log_file_when_not_a_terminal(tmp_path):
    """Under slurm, nohup, CI or `| tee` (CliRunner's stderr is not a terminal): plain progress lines."""
    res = ok(invoke(*NOISE, "--out", tmp_path / "p"))
    lines = [line for line in res.stderr.splitlines() if line.startswith("sampling:")]
    assert lines and lines[-1].startswith("sampling: 12/12 img (100.0%)") and "img/s" in lines[-1]
    assert "ETA" in lines[-1] and "chunks 3/3" in lines[-1]


def test_ctrl_c_says_how_to_resume(tmp_path, monkeypatch):
    from varbench.generators.noise import NoiseGenerator

    real, calls = NoiseGenerator.generate, []

    def interrupted(self, labels, seeds):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, labels, seeds)

    monkeypatch.setattr(NoiseGenerator, "generate", interrupted)
    res = invoke(*NOISE, "--out", tmp_path / "c")
    assert res.exit_code == 130 and "rerun the same command to resume" in res.stderr
    assert "Traceback" not in res.output
    monkeypatch.setattr(NoiseGenerator, "generate", real)
    assert "1 reused" in ok(invoke(*NOISE, "--out", tmp_path / "c")).stdout


def test_speed_refuses_an_hours_long_cpu_study_before_starting():
    res = runner.invoke(app, ["speed", "--resolutions", "256,512"])
    assert res.exit_code == 2, res.output
    errors = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "--quick" in errors[0] and "--device cuda" in errors[0] and "TFLOP" in errors[0]


def test_help_shows_the_defaults():
    for command in ("generate", "speed", "fid", "report", "compare"):
        res = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert res.exit_code == 0
        assert not re.search(r"\w \.(\s|$)", res.output), f"{command}: a default swallowed by markup"
    assert "(default: 1000 x per-class)" in runner.invoke(app, ["generate", "--help"], env={"COLUMNS": "200"}).output


def test_bad_files_name_the_problem_without_internal_fragments(tmp_path):
    (tmp_path / "text.pth").write_text("hello\n")
    import torch

    torch.save({"a": torch.zeros(1000)}, tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "half.pth").write_bytes(data[: len(data) // 2])
    for name, needle in (("text.pth", "not a torch file"), ("half.pth", "is truncated")):
        line = one_line_error(invoke("--var-ckpt", tmp_path / name, "--vae-ckpt", tmp_path / name, "--labels", "1",
                                     "--out", tmp_path / "o"), needle)
        assert ": 101" not in line and "miniz" not in line
    folder = tmp_path / "pngs"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"not a png")
    res = runner.invoke(app, ["fid", str(folder), "--ref", str(tmp_path / "nope.npz")])
    assert res.exit_code == 2 and "BytesIO" not in res.output


def test_piped_tables_keep_one_row_per_line(real_runs):
    res = runner.invoke(app, ["report", str(real_runs.fid[1.5])], env={"COLUMNS": "80"})
    assert res.exit_code == 0
    row = next(line for line in res.stdout.splitlines() if "kid_mean" in line and "var_test" in line)
    assert "random weights" in row  # the last column on the same line: not wrapped into a cell


def test_the_is_axis_has_no_offset_and_the_speed_plot_says_random_weights(real_runs, tmp_path, monkeypatch):
    from varbench.report import plots, tables
    from varbench.results import frame

    fig = plots.fid_vs_cfg_figure(tables.cfg_points(frame.load_inputs([real_runs.fid[c] for c in (1.0, 2.0)])))
    ax_is = fig.axes[1]
    assert ax_is.yaxis.get_major_formatter().get_useOffset() is False
    titles = []
    real = plots.speed_loglog
    monkeypatch.setattr(plots, "speed_loglog", lambda *a, **k: titles.append(k.get("title")) or real(*a, **k))
    res = runner.invoke(app, ["speed", "--models", "var_d16", "--width", "64", "--depth", "1", "--vae-ch", "32",
                              "--resolutions", "32", "--batch-sizes", "1", "--repeats", "1", "--baselines", "raster_kv",
                              "--no-count-flops", "--plot", str(tmp_path / "s.png")])
    assert res.exit_code == 0, res.output
    assert titles and "random weights" in titles[0]


def test_small_models_sample_on_one_thread_by_default(tmp_path):
    ok(invoke("--model", "var_test", "--labels", "1,2", "--out", tmp_path / "t"))
    result = json.loads((tmp_path / "t" / "result.json").read_text())
    assert result["config"]["threads"] == 1
    ok(invoke("--model", "var_test", "--labels", "1,2", "--threads", "2", "--out", tmp_path / "t2"))
    assert json.loads((tmp_path / "t2" / "result.json").read_text())["config"]["threads"] == 2


def test_resuming_with_another_cpu_thread_count_is_refused(tmp_path):
    ok(invoke("--model", "var_test", "--labels", "1,2", "--out", tmp_path / "t"))
    line = one_line_error(invoke("--model", "var_test", "--labels", "1,2", "--threads", "2", "--out", tmp_path / "t"),
                          "1 CPU thread(s)", "--threads 1")
    assert "different run" not in line


def test_cli_tunes_the_cpu_allocator_unless_the_user_chose(monkeypatch):
    """With a stand-in for glibc's mallopt: the test process's own allocator is never changed."""
    from varbench import env

    calls = []

    class FakeLibc:
        def mallopt(self, param, value):
            calls.append((param, value))
            return 1

    monkeypatch.setattr(env.ctypes, "CDLL", lambda name: FakeLibc())
    for name in (env.HUGE_PAGES_VARIABLE, "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_",
                 "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(env, "_heap_kept", False)
    monkeypatch.setenv(env.KEEP_HEAP_VARIABLE, "0")  # opted out of the heap setting: huge pages only
    env.tune_cpu_allocator()
    assert os.environ[env.HUGE_PAGES_VARIABLE] == "1" and env.collect("cpu")["cpu_huge_pages"] is True
    assert env.collect("cpu")["cpu_heap_kept"] is False and calls == []
    monkeypatch.delenv(env.KEEP_HEAP_VARIABLE)
    monkeypatch.setenv(env.HUGE_PAGES_VARIABLE, "0")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000")  # the user's own malloc setting: left alone
    env.tune_cpu_allocator()
    assert os.environ[env.HUGE_PAGES_VARIABLE] == "0" and env.collect("cpu")["cpu_huge_pages"] is False
    assert env.collect("cpu")["cpu_heap_kept"] is False and calls == []
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_")
    env.tune_cpu_allocator()
    assert env.collect("cpu")["cpu_heap_kept"] is True
    assert calls == [(-4, 0), (-1, 2**31 - 1)]  # M_MMAP_MAX 0, M_TRIM_THRESHOLD 2 GB


def test_real_allocator_setting_in_a_fresh_process():
    import platform
    import subprocess
    import sys

    code = "from varbench import env; env.tune_cpu_allocator(); print(env._heap_kept)"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES", "VARBENCH_KEEP"))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=clean, check=True)
    assert out.stdout.strip() == str(platform.libc_ver()[0] == "glibc")
