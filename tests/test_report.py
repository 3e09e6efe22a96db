"""``varbench report`` on real outputs of generate -> ref -> fid -> speed (tests/pipeline.py): tables from the result
files alone, published numbers side by side with their protocol differences, plots, sample grid, formats, CLI."""

from __future__ import annotations

import copy
import csv
import io
import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pipeline import CFGS
from varbench import report as rp
from varbench.cli.app import app
from varbench.errors import VarbenchError
from varbench.generators import zoo
from varbench.report import plots, protocol, render, tables
from varbench.results import frame, published
from varbench.results import read

runner = CliRunner()


def inputs(*paths):
    return frame.load_inputs(list(paths))


def row(table: str, model: str, paper_version: str | None = None) -> dict:
    return next(r for r in published.load(table) if r["zoo"] == model
                and (paper_version is None or r["paper_version"] == paper_version))


README_D16 = ("var_readme_zoo", "var_d16")
NEURIPS_D16 = ("var_neurips_table1", "var_d16")


# ------------------------------------------------------------------------------------------------------ tables
def test_fid_results_carry_the_protocol_of_their_samples(real_runs):
    result = read.load(real_runs.fid[1.5])
    p = result["protocol"]
    assert p["model"]["name"] == "var_test" and p["sampling"]["guidance_rule"] == "var_ramp"
    assert p["sampling"]["last_step_weight"] == 2.5 and p["labels"]["scheme"] == "1_per_class"
    assert p["samples"]["count"] == 8 and p["reference"]["name"] == "ci_noise16"
    gen = read.load(real_runs.generate[1.5] / "result.json")
    assert gen["protocol"]["samples"]["sha256"] == p["samples"]["sha256"]  # the same images, by content


def test_quality_table_flags_random_weights_and_has_no_published_numbers_for_test_models(real_runs):
    rep = rp.build(inputs(real_runs.fid[1.5]))
    recs = rep.table("quality").records()
    assert {r["metric"] for r in recs} == {"fid", "sfid", "is_mean", "is_std", "precision", "recall", "kid_mean",
                                          "kid_std"}
    assert all(r["published"] is None and r["differences"] == ["random weights"] for r in recs)
    assert any("random weights in " in w for w in rep.warnings)


def test_protocol_differences_on_real_results(real_runs):
    """Every flag, read from real outputs: random weights, reference batch, official Inception, sample count, label
    scheme, cfg value, generated and scored resolution."""
    result = read.load(real_runs.fid[2.0])
    diffs = protocol.differences(result, row(*README_D16))
    assert diffs == [
        "random weights", "reference ci_noise16 (computed statistics) vs VIRTUAL_imagenet256_labeled",
        "Inception weights not the official file", "8 samples vs 50000", "labels 1_per_class vs 50_per_class",
        "cfg 2 vs 1.5", "generated at 64 vs 256", "scored at 64 vs 256",
    ]
    assert "published cfg not stated" in protocol.differences(result, row(*NEURIPS_D16))


def test_var_ramp_and_constant_guidance_are_told_apart(real_runs):
    lg = read.load(real_runs.llamagen_fid)
    assert lg["protocol"]["sampling"]["guidance_rule"] == "constant" and lg["protocol"]["sampling"]["cfg"] == 2.0
    diffs = protocol.differences(lg, row(*README_D16))
    assert "cfg rule constant vs var_ramp (last-step weight 2; the published rule gives 2.5)" in diffs
    assert "cfg 2 vs 1.5" in diffs and "labels explicit vs 50_per_class" in diffs
    llamagen_row = row("llamagen_readme", "llamagen_l")
    assert not any(d.startswith("cfg rule") for d in protocol.differences(lg, llamagen_row))
    assert "labels explicit vs uniform_random" in protocol.differences(lg, llamagen_row)


def test_paper_version_of_the_weights_is_checked(real_runs):
    """A var_d16 run (the identity its generator records for released weights) against both published versions."""
    result = copy.deepcopy(read.load(real_runs.fid[1.5]))
    spec = zoo.get("var_d16")
    result["random_weights"] = False
    result["protocol"]["model"].update(name="var_d16", random_weights=False, paper_version=spec.paper_version)
    readme = protocol.differences(result, row(*README_D16))
    assert f"weights match {spec.paper_version}, published VAR arXiv v1" in readme
    assert not any("paper version" in d or "weights match" in d
                   for d in protocol.differences(result, row(*NEURIPS_D16)))
    result["protocol"]["model"]["paper_version"] = None  # var_d20: which version its file matches is not known
    assert any(d.startswith("paper version of the weights not known")
               for d in protocol.differences(result, row(*README_D16)))
    # the quality table pairs a run only with rows scored at its resolution (64 px here: none of var_d16's)
    rep_rows = tables.quality_table([("d16", result, real_runs.fid[1.5])]).records()
    assert {r["published"] for r in rep_rows} == {None}
    result["protocol"]["samples"]["resolution"] = 256
    rep_rows = tables.quality_table([("d16", result, real_runs.fid[1.5])]).records()
    assert {r["paper_version"] for r in rep_rows if r["metric"] == "fid"} == {"VAR arXiv v1",
                                                                               "VAR NeurIPS 2024 (arXiv v2+)"}


def test_tables_come_from_the_json_files_alone(real_runs, tmp_path):
    """Copies of the JSON files alone (no samples, no statistics, no weights) give the same report."""
    paths = []
    for cfg in CFGS:
        paths.append(tmp_path / f"fid{cfg}.json")
        shutil.copy(real_runs.fid[cfg], paths[-1])
    paths.append(tmp_path / "speed.json")
    shutil.copy(real_runs.speed, paths[-1])
    a = rp.build(inputs(*paths))
    b = rp.build(inputs(*[real_runs.fid[c] for c in CFGS], real_runs.speed))
    assert [t.name for t in a.tables] == ["runs", "quality", "cfg_sweep", "speed", "speed_fits"]
    strip = [{k: v for k, v in r.items() if k != "run"} for r in a.table("quality").records()]
    assert strip == [{k: v for k, v in r.items() if k != "run"} for r in b.table("quality").records()]
    sweep = a.table("cfg_sweep").records()
    assert [(r["cfg"], r["last_step_weight"], r["guidance_rule"]) for r in sweep] == [
        (1.0, 2.0, "var_ramp"), (1.5, 2.5, "var_ramp"), (2.0, 3.0, "var_ramp")]
    assert [r["fid"] for r in sweep] == [r["fid"] for r in b.table("cfg_sweep").records()]
    speed = a.table("speed").records()
    assert len(speed) == 2 * 4 and all(r["latency_s"] > 0 for r in speed)
    assert {r["quantity"] for r in a.table("speed_fits").records()} == {"time", "flops"}
    js = json.loads(render.render_json(a))
    assert js["schema"] == "varbench.report" and len(js["tables"][2]["records"]) == 3
    csv_rows = list(csv.DictReader(io.StringIO(render.render_csv(a))))
    assert len(csv_rows) == sum(len(t.records()) for t in a.tables)


def test_generate_runs_and_the_runs_table(real_runs):
    rep = rp.build(inputs(*[real_runs.generate[c] / "result.json" for c in CFGS], real_runs.llamagen / "result.json"))
    gen = rep.table("generate").records()
    assert [(r["model"], r["cfg"], r["guidance_rule"]) for r in gen] == [
        ("var_test", 1.0, "var_ramp"), ("var_test", 1.5, "var_ramp"), ("var_test", 2.0, "var_ramp"),
        ("llamagen_test", 2.0, "constant")]
    assert all(r["images_per_second"] > 0 and r["random_weights"] for r in gen)
    assert [r["samples"] for r in rep.table("runs").records()] == [8, 8, 8, 4]


def test_load_frame_is_one_row_per_result(real_runs):
    df = frame.load_frame([real_runs.generate[1.0], real_runs.fid[1.0], real_runs.speed])
    assert sorted(df.kind) == ["fid", "generate", "speed"]  # the directory's fid.json and result.json, once each
    fid = df[df.kind == "fid"].iloc[0]
    assert fid.model == "var_test" and fid.guidance_rule == "var_ramp" and fid.fid > 0 and fid.samples == 8


def test_a_directory_and_its_file_count_once(real_runs):
    """`varbench report DIR DIR/fid.json` (the README's layout): each file once."""
    d = real_runs.generate[1.5]
    loaded = inputs(d, d / "fid.json", d / "fid.json")
    assert sorted(r["kind"] for _, r, _ in loaded) == ["fid", "generate"]
    assert len([r for r in rp.build(loaded).table("quality").records() if r["metric"] == "fid"]) == 1


def test_a_stale_score_beside_new_samples_is_warned(real_runs, tmp_path):
    from pipeline import FID, cli

    d = tmp_path / "run"
    shutil.copytree(real_runs.generate[1.0], d)
    (d / "fid.json").unlink()
    cli("fid", d, "--ref", "ci_noise16", "--inception-weights", real_runs.weights, *FID, "--json", d / "fid.json")
    assert not any("scored other samples" in w for w in rp.build(inputs(d)).warnings)
    res = runner.invoke(app, ["generate", "--model", "var_test", "--num-samples", "8", "--per-class", "1",
                              "--seed", "9", "--overwrite", "--out", str(d)])
    assert res.exit_code == 0, res.output
    assert (d / "fid.json").is_file()  # a file varbench generate did not write: left alone
    warned = [w for w in rp.build(inputs(d)).warnings if "scored other samples" in w]
    assert len(warned) == 1 and "score them again" in warned[0]


def test_markdown_and_html_escape_cells():
    import pandas as pd

    t = tables.Table("t", "a | b", pd.DataFrame([{"x": "<b>|</b>"}]), {"x": "x|y"})
    md = "\n".join(render.markdown_table(t))
    assert "| x\\|y |" in md and "| <b>\\|</b> |" in md
    html = render.html_table(t)
    assert "&lt;b&gt;|&lt;/b&gt;" in html and "<b>" not in html


def test_published_tables_render_as_printed():
    shown = tables.published_table("var_neurips_table1").display()
    rows = {r[0]: list(r) for r in shown.itertuples(index=False)}
    assert rows["VAR-d30-re"][1:5] == ["1.73", "350.2", "0.82", "0.60"]
    assert rows["VQVAE-2†"][2] == "~45.0"
    assert rows["VQGAN† (the AR baseline)"][1] == "18.65"


# ------------------------------------------------------------------------------------------------------- plots
def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(data)).size


def test_plots_from_real_results(real_runs):
    runs = inputs(*[real_runs.fid[c] for c in CFGS])
    assert plots.fid_vs_cfg(tables.cfg_points(runs[:1])) is None  # one scale: nothing to plot
    assert _png_size(plots.fid_vs_cfg(tables.cfg_points(runs)))[0] > 500
    speed = read.load(real_runs.speed)["results"]
    one = plots.speed_loglog(speed["rows"], speed["fits"])
    two = plots.speed_loglog(speed["rows"], speed["fits"], speed["flop_sweep"], speed["crossovers"], title="cpu")
    assert _png_size(two)[0] > 1.5 * _png_size(one)[0]
    assert plots.speed_loglog(speed["rows"][:1]) is None


def test_sample_grid_labels_its_rows(real_runs):
    npz = real_runs.generate[1.5] / "samples.npz"
    png, classes = plots.sample_grid(npz, max_classes=3, per_class=1, cell=16)
    with np.load(npz) as z:
        arr, labels = z["arr_0"], z["labels"]
    assert classes == sorted(labels.tolist())[:3]
    grid = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    margin = grid.shape[1] - 16  # the label column
    assert grid.shape[0] == 3 * 16 and margin > 0
    assert (grid[:, :margin] < 128).any()  # text in the label column
    for r, c in enumerate(classes):
        want = np.asarray(Image.fromarray(arr[int(np.flatnonzero(labels == c)[0])]).resize((16, 16),
                                                                                          Image.Resampling.BICUBIC))
        assert np.array_equal(grid[r * 16:(r + 1) * 16, margin:], want)


def test_sample_grid_rejects_non_images(tmp_path):
    np.savez(tmp_path / "bad.npz", arr_0=np.zeros((4, 8, 8), dtype=np.float32))
    with pytest.raises(VarbenchError, match="expected arr_0 as uint8"):
        plots.sample_grid(tmp_path / "bad.npz")
    np.savez(tmp_path / "none.npz", labels=np.arange(4))
    with pytest.raises(VarbenchError, match="has no 'arr_0' array"):
        plots.sample_grid(tmp_path / "none.npz")


def test_a_copied_run_directory_shows_its_own_samples(real_runs, tmp_path):
    copy_dir = tmp_path / "copy"
    shutil.copytree(real_runs.generate[1.0], copy_dir)
    obj = read.load(copy_dir / "result.json")
    assert plots.samples_path(obj, copy_dir / "result.json") == copy_dir / "samples.npz"
    figs, captions, notes = plots.for_report(inputs(copy_dir / "result.json"))
    assert list(figs) == ["samples_copy"] and notes == [] and "var_test" in captions["samples_copy"]


# --------------------------------------------------------------------------------------------------------- CLI
@pytest.mark.parametrize("fmt", ["md", "html", "csv", "json"])
def test_cli_writes_each_format(real_runs, tmp_path, fmt):
    paths = [str(real_runs.fid[c]) for c in CFGS] + [str(real_runs.generate[1.0])]
    target = tmp_path / "reports" / "r"
    res = runner.invoke(app, ["report", *paths, "--format", fmt, "--out", str(target)])
    assert res.exit_code == 0, res.output
    text = (tmp_path / "reports" / f"r.{fmt}").read_text()
    plots_dir = tmp_path / "reports" / "r_plots"
    if fmt == "html":
        assert text.startswith("<!DOCTYPE html>") and text.count("data:image/png;base64,") == 2
        assert "<script" not in text and not plots_dir.exists()
    else:
        names = sorted(p.name for p in plots_dir.iterdir())
        assert len(names) == 2 and names[0] == "fid_vs_cfg.png" and names[1].startswith("samples_")
    if fmt == "md":
        assert "![fid_vs_cfg](r_plots/fid_vs_cfg.png)" in text and "| var_ramp | 1.5 | 2.5 |" in text
    again = runner.invoke(app, ["report", *paths, "--format", fmt, "--out", str(target)])
    assert again.exit_code == 2 and "already exists" in again.output  # nothing is replaced without --overwrite
    assert runner.invoke(app, ["report", *paths, "--format", fmt, "--out", str(target), "--overwrite"]).exit_code == 0


def test_cli_prints_tables_without_out(real_runs):
    res = runner.invoke(app, ["report", str(real_runs.fid[1.5])])
    assert res.exit_code == 0, res.output
    assert "Quality: reproduced vs published" in res.output and "random weights" in res.output
    res = runner.invoke(app, ["report", "--published", "var_neurips_table2", "--format", "csv"])
    assert res.exit_code == 0 and "VAR-d36-s" in res.output


def _one_line_error(res) -> str:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1, res.output
    return lines[0]


def test_cli_bad_inputs_exit_2_with_one_line(real_runs, tmp_path):
    r = json.loads(real_runs.fid[1.5].read_text())
    future = tmp_path / "v9.json"
    future.write_text(json.dumps({**r, "schema_version": 9}))
    assert "schema_version 9" in _one_line_error(runner.invoke(app, ["report", str(future)]))
    bad_kind = tmp_path / "k.json"
    bad_kind.write_text(json.dumps({**r, "kind": "eval"}))
    assert "unknown kind 'eval'" in _one_line_error(runner.invoke(app, ["report", str(bad_kind)]))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"results": {"arc_easy": {"acc": 0.5}}}))
    assert "not a varbench result" in _one_line_error(runner.invoke(app, ["report", str(other)]))
    assert "not found" in _one_line_error(runner.invoke(app, ["report", str(tmp_path / "missing.json")]))
    assert "--format must be one of" in _one_line_error(runner.invoke(app, ["report", str(future), "-f", "pdf"]))
    assert "give result JSON files" in _one_line_error(runner.invoke(app, ["report"]))
    assert "--published is empty" in _one_line_error(runner.invoke(app, ["report", "--published", ""]))
    line = _one_line_error(runner.invoke(app, ["report", "--published", "var_table1"]))
    assert re.search(r"unknown published table 'var_table1'; did you mean .*var_neurips_table1", line)


def test_version_1_results_load_through_the_migration():
    from conftest import FIXTURES

    old = read.load(FIXTURES / "result_v1_fid.json")
    assert old["schema_version"] == 2 and old["kind"] == "fid"
    p = old["protocol"]
    assert p["reference"]["name"] == "ci_noise64" and p["extractor"]["official_weights"] is False
    assert p["samples"]["count"] == 64 and p["model"] is None
    assert any("migrated from a version-1 result" in w for w in old["warnings"])
    assert rp.build([("old", old, FIXTURES / "result_v1_fid.json")]).table("quality").records()


@pytest.mark.slow
def test_html_report_renders_in_headless_chromium(tmp_path):
    """benchmarks/screenshot_report.py: the static HTML renders (tables + embedded plots) into a non-blank page."""
    import importlib.util

    if not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")):
        pytest.skip("no chromium binary (Debian: apt-get install chromium)")
    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("screenshot_report", ROOT / "benchmarks" / "screenshot_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    info = mod.main(["--out", str(tmp_path / "shot"), "--height", "6000"])
    img = np.asarray(Image.open(info["png"]).convert("L"))
    assert img.shape == (6000, 1400) and info["inked_fraction"] > 0.03


def test_run_names_are_short_and_unique():
    from pathlib import Path

    names = frame.run_names([Path("a/x.json"), Path("b/x.json"), Path("runs/gen/result.json")])
    assert names == ["a/x", "b/x", "runs/gen"]
    assert frame.run_names([Path("runs/gen/result.json"), Path("fid.json")]) == ["gen", "fid"]
    assert frame.run_names([Path("/abs/f.json"), Path("/abs/f.json")]) == ["abs/f", "abs/f #2"]
