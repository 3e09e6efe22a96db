"""``varbench edit --benchmark``: folder rules, resume after an interruption (byte-identical outputs), the scores
against an independent recomputation, the Inception class map, and the report table."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import inception_random
from varbench.edit import scores
from varbench.edit.benchmark import STAGE, BenchmarkJob, run_benchmark
from varbench.edit.protocol import discover, target_label
from varbench.edit.inception_classes import TF_LOGIT
from varbench.errors import VarbenchError
from varbench.generators import zoo
from varbench.generators.protocol import build
from varbench.report.edit import zero_shot_table

STREAMS = ("original", "recon", "inpaint", "outpaint", "class_edit")


def make_folder(root, sizes=((64, 64), (70, 90))):
    rng = np.random.default_rng(7)
    for cls in ("3", "1"):
        (root / cls).mkdir(parents=True)
        for k, (h, w) in enumerate(sizes):
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / cls / f"img{k}.png")
    return root


def test_folder_rules(tmp_path):
    folder = make_folder(tmp_path / "data")
    paths, labels = discover(folder)
    assert labels == [1, 3, 1, 3]  # interleaved over classes in class order
    assert [p.name for p in paths] == ["img0.png", "img0.png", "img1.png", "img1.png"]
    assert discover(folder, 3)[1] == [1, 3, 1]
    synset = tmp_path / "synsets" / "n01443537"
    synset.mkdir(parents=True)
    (synset / "x.png").write_bytes((folder / "3" / "img0.png").read_bytes())
    assert discover(tmp_path / "synsets")[1] == [1]  # WordNet ids map through the one ImageNet list
    (folder / "loose.png").write_bytes((folder / "3" / "img0.png").read_bytes())
    with pytest.raises(VarbenchError, match="mixes images"):
        discover(folder)
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "b.png").write_bytes((folder / "3" / "img0.png").read_bytes())
    (flat / "a.jpg").write_bytes(b"")  # listed by name; unreadable files fail later, with one line
    assert [p.name for p in discover(flat)[0]] == ["a.jpg", "b.png"] and discover(flat)[1] == [-1, -1]
    (tmp_path / "bad" / "dogs").mkdir(parents=True)
    with pytest.raises(VarbenchError, match="not a class folder"):
        discover(tmp_path / "bad")


def test_target_label_rule_never_the_source():
    for i in range(200):
        for source in (0, 1, 998, 999):
            t = target_label(i, source, seed=5)
            assert 0 <= t < 1000 and t != source
    assert len({target_label(i, -1, 0) for i in range(100)}) > 50


def test_inception_class_map():
    from varbench.scaling.data import synsets

    wnids = synsets()  # the ImageNet order TF_LOGIT is listed in: the ids sorted
    assert len(wnids) == 1000 and list(wnids) == sorted(wnids)
    assert sorted(TF_LOGIT) == list(range(1, 1001))  # outputs 0 and 1001..1007 are never an ImageNet class
    label_map = {"n01440764": 449, "n02099601": 125, "n02510455": 169}  # entries of the 2015 graph's label map
    assert {w: TF_LOGIT[wnids.index(w)] for w in label_map} == label_map
    logits = np.full((2, 1008), -5.0)
    logits[0, TF_LOGIT[207]] = 5.0  # class 207 on top
    logits[1, TF_LOGIT[207]] = -1.0
    logits[1, [TF_LOGIT[c] for c in range(6)]] = 3.0  # six classes above it
    logits[:, 0] = 100.0  # an unused output never counts
    assert scores.target_ranks(logits, np.array([207, 207])).tolist() == [1, 7]


def test_region_errors_known_answer():
    a = np.full((2, 4, 4, 3), 100, np.uint8)
    b = a.copy()
    b[:, :2] += 2
    region = np.zeros((4, 4), bool)
    region[:2] = True
    mse, psnr = scores.region_errors(a, b, region)
    assert mse == 4.0 and psnr == pytest.approx(10 * np.log10(255 ** 2 / 4))
    assert scores.region_errors(a, b, ~region) == (0.0, 100.0)  # identical: the cap


class Interrupt(Exception):
    pass


def stop_after_first_chunk(event):
    if event.stage == STAGE and event.detail.startswith("chunks 1/"):
        raise Interrupt


def arrays(out, stream, key="arr_0"):
    with np.load(out / stream / "samples.npz", allow_pickle=False) as z:
        return z[key]


def test_benchmark_resumes_and_scores(tmp_path_factory, tmp_path, one_thread):
    folder = make_folder(tmp_path / "data")
    weights = inception_random.weights_file(tmp_path_factory)
    gen = build(zoo.get("var_test"))
    job = BenchmarkJob(out=tmp_path / "run", folder=folder, model="var_test", seed=3, chunk_size=2, batch_size=2,
                       inception_weights=weights)
    with pytest.raises(Interrupt):
        run_benchmark(gen, job, progress=stop_after_first_chunk)
    assert not (tmp_path / "run" / "result.json").exists()
    resumed = run_benchmark(gen, job)
    assert (resumed.chunks_reused, resumed.chunks_generated) == (5, 5)  # chunk 0 of every stream was kept
    fresh = run_benchmark(gen, BenchmarkJob(**{**vars(job), "out": tmp_path / "fresh"}))
    assert fresh.chunks_generated == 10
    for s in STREAMS:
        a, b = (tmp_path / run / s / "samples.npz" for run in ("run", "fresh"))
        assert a.read_bytes() == b.read_bytes(), s
    res = resumed.result
    assert res["kind"] == "edit" and res["random_weights"] and res["results"]["mode"] == "benchmark"
    assert any("not the official file" in w for w in res["warnings"])
    assert res["results"]["preprocessed"] == 2 and res["protocol"]["extractor"]["official_weights"] is False
    assert [t["task"] for t in res["results"]["tasks"]] == ["inpaint", "outpaint", "class_edit"]
    assert [t["scores"] for t in res["results"]["tasks"]] == [t["scores"] for t in fresh.result["results"]["tasks"]]
    check_scores(tmp_path / "run", res)
    again = run_benchmark(gen, job)
    assert again.already_complete and again.chunks_generated == 0
    table = zero_shot_table([("run", res, tmp_path / "run")])
    assert table.name == "zero-shot" and [r["task"] for r in table.records()][-1] == "reconstruction"
    assert len(table.display()) == 4


def check_scores(out, res):
    """Pixel scores recomputed here from the packed arrays (plain numpy), and the class-edit labels."""
    original, recon = arrays(out, "original"), arrays(out, "recon")
    inside = np.zeros((64, 64), bool)
    inside[16:48, 16:48] = True  # the centre box: tokens 1:3 of 4
    for entry in res["results"]["tasks"]:
        edited = arrays(out, entry["task"])
        region = ~inside if entry["outpaint"] else inside
        diff = (edited.astype(float) - original.astype(float))[:, region]
        assert entry["scores"]["mse_edited"] == pytest.approx(np.mean((diff ** 2).mean(axis=(1, 2))))
        kept = (edited.astype(float) - recon.astype(float))[:, ~region]
        assert entry["scores"]["mse_kept_vs_recon"] == pytest.approx(np.mean((kept ** 2).mean(axis=(1, 2))))
        assert np.isfinite(entry["scores"]["fid"]) and entry["scores"]["kid_subset_size"] == 4
    labels = arrays(out, "class_edit", "labels")
    assert all(t != s for t, s in zip(labels, arrays(out, "original", "labels")))
    assert arrays(out, "inpaint", "labels").tolist() == [1000] * 4
    ce = res["results"]["tasks"][2]["scores"]
    assert 1 <= ce["target_rank_mean"] <= 1000 and 0 <= ce["target_top5"] <= 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["tasks"]["outpaint"]["box_tokens"] == [1, 3, 1, 3]


def test_cli_benchmark_end_to_end_and_bad_input(tmp_path_factory, tmp_path, one_thread):
    from typer.testing import CliRunner

    from test_edit_cli import one_line_error
    from varbench.cli.app import app

    flat = tmp_path / "flat"
    flat.mkdir()
    rng = np.random.default_rng(1)
    for k in range(2):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(flat / f"{k}.png")
    weights = inception_random.weights_file(tmp_path_factory)
    args = ["edit", "--benchmark", str(flat), "--model", "var_test", "--inception-weights", str(weights),
            "--out", str(tmp_path / "b")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Zero-shot editing" in result.stdout and "reconstruction" in result.stdout
    assert "random weights" in result.stderr and "not the official file" in result.stderr
    assert json.loads((tmp_path / "b" / "result.json").read_text())["results"]["num_images"] == 2
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "nothing to do" in again.stdout
    one_line_error(CliRunner().invoke(app, [*args[:5], "--box", "0,0,1,1"]), "--box does not apply")
    one_line_error(CliRunner().invoke(app, [*args, "--seed", "1"]), "finished edit run")
    one_line_error(CliRunner().invoke(app, ["edit", "--benchmark", str(tmp_path / "nope"), "--model", "var_test"]),
                   "not a directory")
