"""``varbench report``: tables from result JSONs alone, published numbers side by side, plots, sample grid, HTML."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from varbench import plots, report, results
from varbench.cli.app import app

runner = CliRunner()


# ------------------------------------------------------------------------------------------- crafted result files
def _envelope(kind: str, config: dict, res: dict, random_weights: bool = False) -> dict:
    r = results.make(kind, config, res, random_weights=random_weights)
    r["created"] = "2026-01-01T00:00:00+00:00"
    return r


def fid_result(model="var_d16", cfg=1.5, *, fid=3.41, is_mean=280.5, precision=0.83, recall=0.52, n=50000,
               reference="VIRTUAL_imagenet256_labeled", resolution=256, per_class=50, random_weights=False,
               extra=None) -> dict:  # fmt: skip
    metrics = {"fid": fid, "sfid": 5.1, "is_mean": is_mean, "is_std": 3.2, "precision": precision, "recall": recall,
               "kid_mean": 0.0012, "kid_std": 0.0001, **(extra or {})}  # fmt: skip
    config = {"samples": "samples.npz", "model": model, "sampling": {"cfg": cfg, "top_k": 900, "top_p": 0.96},
              "plan": {"num_samples": n, "per_class": per_class, "labels": None}, "backends": ["adm"]}  # fmt: skip
    if model is None:
        del config["model"]
    res = {"metrics": metrics, "backends": {"adm": dict(metrics)},
           "reference": {"name": reference, "sha256": "ab" * 32, "extractor": "inception_v3_adm@1", "n": 50000,
                         "resolution": resolution},
           "samples": {"path": "samples.npz", "n": n, "sha256": "cd" * 32, "resolution": resolution}}  # fmt: skip
    return _envelope("fid", config, res, random_weights)


def speed_result(rows=None, fits=None) -> dict:
    if rows is None:
        rows = []
        for mode, k in (("var_kv", 1.6), ("raster_kv", 2.1), ("raster_nokv", 3.9)):
            for res in (64, 128, 256):
                lat = 0.01 * (res / 64) ** k
                rows.append({"model": "var_test" if mode == "var_kv" else "raster_test", "family": mode.split("_")[0],
                             "mode": mode, "resolution": res, "batch_size": 1, "steps": (res // 16) ** 2,
                             "tokens": (res // 16) ** 2, "latency_s": lat, "throughput_img_s": 1 / lat,
                             "flops_analytic": 1e9 * res, "flops_counted": 1.01e9 * res,
                             "peak_mem_bytes": 2**20 * res, "vq_decode_s": 0.001})  # fmt: skip
        fits = [{"model": "var_test" if m == "var_kv" else "raster_test", "mode": m, "quantity": "time", "batch_size": 1,
                 "exponent": k, "ci_low": k - 0.1, "ci_high": k + 0.1, "method": "bootstrap"}
                for m, k in (("var_kv", 1.6), ("raster_kv", 2.1))]  # as varbench.speed writes them
    return _envelope("speed", {"models": ["var_test", "raster_test"], "resolutions": [64, 128, 256]},
                     {"rows": rows, "fits": fits or []}, random_weights=True)  # fmt: skip


def generate_dir(tmp_path, classes=(3, 7, 11), per_class=4, size=8, compressed=False):
    """A generate output directory: samples.npz (image i is filled with value i) + result.json."""
    labels = np.array([c for _ in range(per_class) for c in classes], dtype=np.int64)  # interleaved like the sampler
    images = np.stack([np.full((size, size, 3), i, dtype=np.uint8) for i in range(len(labels))])
    out = tmp_path / "gen"
    out.mkdir()
    (np.savez_compressed if compressed else np.savez)(out / "samples.npz", arr_0=images, labels=labels)
    res = {"num_samples": len(labels), "resolution": size, "samples_npz": "elsewhere/gen/samples.npz",
           "samples_sha256": "00" * 32, "wall_seconds": 2.0, "images_per_second": 6.0}  # fmt: skip
    cfg = {"model": "var_test", "sampling": {"cfg": 1.5, "top_k": 900, "top_p": 0.96, "more_smooth": False}, "seed": 0,
           "plan": {"num_samples": len(labels), "per_class": per_class, "labels": None}, "out": str(out)}  # fmt: skip
    results.save(out / "result.json", _envelope("generate", cfg, res, random_weights=True))
    return out, images, labels


def write(tmp_path, name, obj):
    p = tmp_path / f"{name}.json"
    results.save(p, obj)
    return p


# ------------------------------------------------------------------------------------------------------ tables
def test_quality_table_puts_reproduced_next_to_each_published_version(tmp_path):
    p = write(tmp_path, "d16", fid_result())
    rep = report.build(report.load_inputs([p]))
    recs = [r for r in rep.table("quality").records if r["metric"] == "fid"]
    by_source = {r["paper_version"]: r for r in recs}
    neurips, readme = by_source["VAR NeurIPS 2024 (arXiv v2+)"], by_source["VAR arXiv v1"]
    assert (neurips["published"], readme["published"]) == (3.30, 3.55)
    assert neurips["delta"] == pytest.approx(0.11) and readme["delta"] == pytest.approx(-0.14)
    # README protocol matches this run (cfg 1.5, 50/class, 50k, VIRTUAL ref); the NeurIPS table prints no cfg
    assert readme["differences"] == []
    assert neurips["differences"] == ["published cfg not stated"]
    is_rows = [r for r in rep.table("quality").records if r["metric"] == "is_mean"]
    assert [r["published"] for r in is_rows] == [274.4]  # the README has no IS for d16
    # metrics without published values still appear, once
    assert [r["published"] for r in rep.table("quality").records if r["metric"] == "sfid"] == [None]


def test_protocol_differences_are_flagged(tmp_path):
    r = fid_result(cfg=2.0, n=10000, per_class=10, reference="imagenet_val_10k", random_weights=True)
    rep = report.build(report.load_inputs([write(tmp_path, "x", r)]))
    readme = next(x for x in rep.table("quality").records if x["metric"] == "fid" and x["paper_version"] == "VAR arXiv v1")
    assert readme["differences"] == [
        "random weights", "reference imagenet_val_10k vs VIRTUAL_imagenet256_labeled", "10000 samples vs 50000",
        "labels 10_per_class vs 50_per_class", "cfg 2 vs 1.5",
    ]  # fmt: skip
    assert any("random weights in x" in w for w in rep.warnings)
    lg = fid_result(model="llamagen_xl", cfg=1.75)
    rec = next(x for x in report.build([("lg", lg)]).table("quality").records if x["metric"] == "fid")
    assert rec["published"] == 2.62
    assert "labels 50_per_class vs uniform_random" in rec["differences"]
    assert "published generated at 384 and resized to 256; the run does not record its generation size" in rec["differences"]
    lg["config"]["generator"] = {"image_size": 384, "resolution": 256}  # generated at 384, resized to 256: same
    rec = next(x for x in report.build([("lg", lg)]).table("quality").records if x["metric"] == "fid")
    assert not any("generat" in d for d in rec["differences"])
    assert not any(d.startswith("cfg") for d in rec["differences"])


def test_run_without_model_gets_no_published_numbers(tmp_path):
    rep = report.build(report.load_inputs([write(tmp_path, "anon", fid_result(model=None))]))
    assert {r["published"] for r in rep.table("quality").records} == {None}
    assert any("no model recorded in anon" in w for w in rep.warnings)


def test_tables_come_from_the_json_files_alone(tmp_path):
    """Only the JSONs exist (no samples, no stats, no zoo weights); the report is complete and reproducible."""
    paths = [write(tmp_path, f"cfg{c}", fid_result(cfg=c, fid=3 + abs(c - 1.5))) for c in (1.0, 1.5, 2.0)]
    paths.append(write(tmp_path, "speed", speed_result()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfg1.0.json", "cfg1.5.json", "cfg2.0.json", "speed.json"]
    a = report.build(report.load_inputs(paths))
    b = report.build(report.load_inputs(list(reversed(paths))[::-1]))
    assert report.render_markdown(a) == report.render_markdown(b)
    assert [t.name for t in a.tables] == ["runs", "quality", "cfg_sweep", "speed", "speed_fits"]
    sweep = a.table("cfg_sweep").records
    assert [(r["cfg"], r["fid"]) for r in sweep] == [(1.0, 3.5), (1.5, 3.0), (2.0, 3.5)]
    speed = a.table("speed").records
    assert len(speed) == 9 and speed[0]["gflops_analytic"] == pytest.approx(64.0)
    fits = a.table("speed_fits").records
    assert [(f["mode"], f["exponent"]) for f in fits] == [("var_kv", 1.6), ("raster_kv", 2.1)]
    assert fits[1]["ci"] == pytest.approx([2.0, 2.2])
    assert a.table("speed_fits").display_rows()[0][-1] == "[1.500, 1.700]"
    # JSON output round-trips every record; CSV has one row per record
    js = json.loads(report.render_json(a))
    assert js["schema"] == "varbench.report" and js["tables"][1]["records"] == json.loads(json.dumps(list(a.tables[1].records)))
    rows = list(csv.DictReader(io.StringIO(report.render_csv(a))))
    assert len(rows) == sum(len(t.records) for t in a.tables)
    assert {r["table"] for r in rows} == {t.name for t in a.tables}


def test_markdown_and_html_escape_cells():
    t = report.Table("t", "a | b", (("x", "x|y"),), ({"x": "<b>|</b>"},))
    md = "\n".join(report.markdown_table(t))
    assert "| x\\|y |" in md and "| <b>\\|</b> |" in md
    html = report.html_table(t)
    assert "&lt;b&gt;|&lt;/b&gt;" in html and "<b>" not in html


def test_published_tables_render_as_printed():
    t = report.published_table("var_neurips_table1")
    rows = {r[0]: r for r in t.display_rows()}
    assert rows["VAR-d30-re"][1:5] == ["1.73", "350.2", "0.82", "0.60"]
    assert rows["VQVAE-2†"][2] == "~45.0"
    assert rows["VQGAN† (the AR baseline)"][1] == "18.65"


# ------------------------------------------------------------------------------------------------------- plots
def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(data)).size


def test_plots_need_several_runs():
    runs = [("a", fid_result(cfg=1.5), report.describe(fid_result(cfg=1.5)))]
    assert plots.fid_vs_cfg(report.cfg_points(runs)) is None
    pts = [{"model": "var_d16", "cfg": c, "fid": f, "is_mean": 250.0} for c, f in ((1.0, 4.0), (2.0, 3.5))]
    assert _png_size(plots.fid_vs_cfg(pts, [{"model": "var_d16", "fid": 3.3, "label": "NeurIPS"}]))[0] > 500
    sp = speed_result()
    assert _png_size(plots.speed_loglog(sp["results"]["rows"], sp["results"]["fits"]))[0] > 500
    assert plots.speed_loglog(sp["results"]["rows"][:1]) is None


def test_speed_plot_is_one_function_with_an_optional_flop_panel():
    """The CLI's --plot and the report draw with plots.speed_loglog; a FLOP sweep adds the right-hand panel."""
    from varbench import speed

    assert not hasattr(speed, "plot_png")
    sp = speed_result()
    rows = sp["results"]["rows"]
    sweep = [{"model": "raster_test", "mode": "raster_nokv", "grid": n, "flops_analytic": 1e6 * n**6} for n in (4, 8, 16)]
    fits = [*sp["results"]["fits"], {"model": "raster_test", "mode": "raster_nokv", "quantity": "flops",
                                     "exponent": 6.0, "local_exponent_last": 6.0}]
    cross = [{"model": "raster_test", "nokv_attention_dominates_grid": 8.0}]
    one, two = plots.speed_loglog(rows, fits), plots.speed_loglog(rows, fits, sweep, cross, title="cpu, fp32")
    assert _png_size(two)[0] > 1.5 * _png_size(one)[0]
    assert plots.speed_loglog(rows[:1], fits, sweep) is not None  # one resolution: the FLOP sweep is still worth a plot


@pytest.mark.parametrize("compressed", [False, True])
def test_sample_grid_is_classes_by_samples(tmp_path, compressed):
    out, images, labels = generate_dir(tmp_path, compressed=compressed)
    png, classes = plots.sample_grid(out / "samples.npz", max_classes=2, per_class=3, cell=8)
    assert classes == [3, 7]
    grid = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert grid.shape == (2 * 8, 3 * 8, 3)
    for r, c in enumerate(classes):
        want = np.flatnonzero(labels == c)[:3]  # image i is filled with value i
        got = [int(grid[r * 8 + 4, j * 8 + 4, 0]) for j in range(3)]
        assert got == list(want), (c, got)


def test_sample_grid_rejects_non_images(tmp_path):
    np.savez(tmp_path / "bad.npz", arr_0=np.zeros((4, 8, 8), dtype=np.float32))
    with pytest.raises(results.VarbenchError, match="expected arr_0 as uint8"):
        plots.sample_grid(tmp_path / "bad.npz")


def test_sample_grid_reads_labels_as_varbench_images_does(tmp_path):
    """Only images.LABEL_KEYS are labels (a stray 'y' array is not), read through images.npz_array."""
    from varbench import images

    arr = np.stack([np.full((8, 8, 3), i, dtype=np.uint8) for i in range(4)])
    np.savez(tmp_path / "y.npz", arr_0=arr, y=np.array([5, 5, 6, 6]))
    np.savez(tmp_path / "arr1.npz", arr_0=arr, arr_1=np.array([5, 5, 6, 6]))
    assert images.open_samples(tmp_path / "y.npz").labels is None and plots.read_labels(tmp_path / "y.npz") is None
    assert plots.sample_grid(tmp_path / "y.npz", per_class=2, cell=8)[1] == [None, None]
    assert plots.read_labels(tmp_path / "arr1.npz").tolist() == [5, 5, 6, 6]
    assert plots.sample_grid(tmp_path / "arr1.npz", per_class=2, cell=8)[1] == [5, 6]
    np.savez(tmp_path / "none.npz", labels=np.arange(4))
    with pytest.raises(results.VarbenchError, match="has no 'arr_0' array"):
        plots.sample_grid(tmp_path / "none.npz")


def test_a_copied_run_directory_shows_its_own_samples(tmp_path):
    """samples_path prefers the samples.npz next to the JSON over the recorded (original run's) absolute path."""
    out, _, _ = generate_dir(tmp_path)
    obj = results.load(out / "result.json")
    obj["results"]["samples_npz"] = str((out / "samples.npz").resolve())  # as generate records it
    copy = tmp_path / "copy"
    copy.mkdir()
    np.savez(copy / "samples.npz", arr_0=np.zeros((2, 8, 8, 3), dtype=np.uint8), labels=np.array([0, 1]))
    results.save(copy / "result.json", obj)
    assert plots.samples_path(obj, copy / "result.json") == copy / "samples.npz"
    assert plots.samples_path(obj, tmp_path / "elsewhere" / "result.json") == (out / "samples.npz").resolve()


def test_report_finds_the_generate_dirs_samples(tmp_path):
    out, _, _ = generate_dir(tmp_path)
    inputs = report.load_inputs([out])  # a directory stands for its result JSON
    figs, captions, notes = plots.for_report(inputs)
    assert list(figs) == ["samples_gen"] and notes == []
    assert captions == {"samples_gen": "gen (var_test): rows: classes 3, 7, 11"}
    assert report.build(inputs).table("generate").records[0]["images_per_second"] == 6.0


# --------------------------------------------------------------------------------------------------------- CLI
@pytest.mark.parametrize("fmt", ["md", "html", "csv", "json"])
def test_cli_writes_each_format(tmp_path, fmt):
    paths = [str(write(tmp_path, f"cfg{c}", fid_result(cfg=c))) for c in (1.0, 2.0)]
    out, _, _ = generate_dir(tmp_path)
    res = runner.invoke(app, ["report", *paths, str(out), "--format", fmt, "--out", str(tmp_path / "reports" / "r")])
    assert res.exit_code == 0, res.output
    text = (tmp_path / "reports" / f"r.{fmt}").read_text()
    plots_dir = tmp_path / "reports" / "r_plots"
    if fmt == "html":
        assert text.startswith("<!DOCTYPE html>") and text.count("data:image/png;base64,") == 2
        assert "<script" not in text and not plots_dir.exists()
    else:
        assert sorted(p.name for p in plots_dir.iterdir()) == ["fid_vs_cfg.png", "samples_gen.png"]
    if fmt == "md":
        assert "![fid_vs_cfg](r_plots/fid_vs_cfg.png)" in text and "| cfg1.0 | var_d16 | fid | 3.410 | 3.300 | +0.110 |" in text


def test_cli_prints_tables_without_out(tmp_path):
    res = runner.invoke(app, ["report", str(write(tmp_path, "d16", fid_result()))])
    assert res.exit_code == 0, res.output
    assert "Quality: reproduced vs published" in res.output and "3.300" in res.output
    res = runner.invoke(app, ["report", "--published", "var_neurips_table2", "--format", "csv"])
    assert res.exit_code == 0 and "VAR-d36-s" in res.output


def _one_line_error(res) -> str:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1, res.output
    return lines[0]


def test_cli_bad_inputs_exit_2_with_one_line(tmp_path):
    r = fid_result()
    bad_version = tmp_path / "v2.json"
    bad_version.write_text(json.dumps({**r, "schema_version": 2}))
    assert "schema_version 2" in _one_line_error(runner.invoke(app, ["report", str(bad_version)]))
    bad_kind = tmp_path / "k.json"
    bad_kind.write_text(json.dumps({**r, "kind": "eval"}))
    assert "unknown kind 'eval'" in _one_line_error(runner.invoke(app, ["report", str(bad_kind)]))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"results": {"arc_easy": {"acc": 0.5}}}))
    assert "not a varbench result" in _one_line_error(runner.invoke(app, ["report", str(other)]))
    assert "not found" in _one_line_error(runner.invoke(app, ["report", str(tmp_path / "missing.json")]))
    assert "--format must be one of" in _one_line_error(runner.invoke(app, ["report", str(bad_version), "-f", "pdf"]))
    assert "give result JSON files" in _one_line_error(runner.invoke(app, ["report"]))
    line = _one_line_error(runner.invoke(app, ["report", "--published", "var_table1"]))
    assert re.search(r"unknown published table 'var_table1'; did you mean .*var_neurips_table1", line)


@pytest.mark.slow
def test_html_report_renders_in_headless_chromium(tmp_path):
    """benchmarks/screenshot_report.py: the static HTML renders (tables + 3 embedded plots) into a non-blank page."""
    import importlib.util
    import shutil

    if not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")):
        pytest.skip("no chromium binary (Debian: apt-get install chromium)")
    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("screenshot_report", ROOT / "benchmarks" / "screenshot_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    info = mod.main(["--out", str(tmp_path / "shot"), "--height", "6000"])
    assert info["plots"] == ["fid_vs_cfg", "samples_generate_var_test", "speed_loglog"]
    img = np.asarray(Image.open(info["png"]).convert("L"))
    assert img.shape == (6000, 1400)
    inked_rows = np.flatnonzero(img.min(axis=1) < 230)
    assert info["inked_fraction"] > 0.03 and inked_rows.max() > 4000  # tables and all three images were laid out


def test_run_names_are_short_and_unique():
    from pathlib import Path

    names = report.run_names([Path("a/x.json"), Path("b/x.json"), Path("runs/gen/result.json")])
    assert names == ["a/x", "b/x", "runs/gen"]
    assert report.run_names([Path("runs/gen/result.json"), Path("fid.json")]) == ["gen", "fid"]


def test_fid_run_inherits_model_and_settings_from_its_generate_result(tmp_path):
    out, _, _ = generate_dir(tmp_path)
    gen = results.load(out / "result.json")
    gen["config"]["model"] = "var_d16"
    fid = fid_result(model=None)
    del fid["config"]["sampling"], fid["config"]["plan"]
    fid["results"]["samples"]["sha256"] = gen["results"]["samples_sha256"]
    rep = report.build([("gen", gen), ("fid", fid)])
    rec = next(r for r in rep.table("quality").records if r["metric"] == "fid" and r["paper_version"] == "VAR arXiv v1")
    assert rec["model"] == "var_d16" and rec["published"] == 3.55
    assert rec["differences"] == ["random weights", "labels 4_per_class vs 50_per_class", "generated at 8 vs 256"]
    fid["results"]["samples"]["sha256"] = "ff" * 32  # other samples: nothing is inherited
    assert {r["published"] for r in report.build([("gen", gen), ("fid", fid)]).table("quality").records} == {None}
