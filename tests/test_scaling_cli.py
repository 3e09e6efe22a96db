"""``varbench scaling`` end to end on two tiny random-weight VAR sizes (``var_test`` and a custom depth-2 checkpoint)
over a folder of synthetic PNGs in class subfolders and over an npz: results and fits, resume after an interruption,
torchrun-style sharding (simulated by running the ranks' shares one after the other), bad input -> exit 2, one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from pipeline import ok, one_line_error
from varbench.cli.app import app
from varbench.dist import DistInfo
from varbench.generate.plan import assign
from varbench.generators import zoo
from varbench.generators.protocol import build
from varbench.models.var import VAR, VARConfig
from varbench.models.vqvae import VQVAE, VQVAEConfig
from varbench.recipe import fill_with_recipe
from varbench.results import read
from varbench.scaling import data, loss, run

LABELS = [3, 3, 3, 17, 17, 980, 980]  # class folders "3", "17", "980"
SIZES = [(48, 64), (64, 64), (70, 50), (40, 90), (64, 80), (66, 66), (30, 44)]


def invoke(*args):
    return CliRunner().invoke(app, ["scaling", *map(str, args)])




@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A folder of PNGs (class subfolders), an npz of the same images in the folder's order, custom checkpoints."""
    root = tmp_path_factory.mktemp("scaling_inputs")
    rng = np.random.default_rng(3)
    arrays = []
    for i, ((h, w), label) in enumerate(zip(SIZES, LABELS)):
        small = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((w, h), Image.BICUBIC)
        (root / "folder" / str(label)).mkdir(parents=True, exist_ok=True)
        img.save(root / "folder" / str(label) / f"im{i}.png")
        arrays.append(np.asarray(img.resize((64, 48), Image.BICUBIC)))
    folder = data.open_validation(root / "folder")
    same = [int(f.split("/im")[1].split(".")[0]) for f in folder.files]  # the folder's (interleaved) order
    np.savez(root / "val.npz", np.stack([arrays[i] for i in same]), labels=np.array([LABELS[i] for i in same]))
    for i in same:  # the npz's images as PNGs too (lossless): the same crops as the npz
        (root / "npz_as_pngs" / str(LABELS[i])).mkdir(parents=True, exist_ok=True)
        Image.fromarray(arrays[i]).save(root / "npz_as_pngs" / str(LABELS[i]) / f"im{i}.png")
    var = fill_with_recipe(VAR(VARConfig(depth=2, patch_nums=(1, 2, 4))), 11)
    vae = fill_with_recipe(VQVAE(VQVAEConfig(patch_nums=(1, 2, 4), ch=32)), 12)
    torch.save(var.state_dict(), root / "tiny_d2.pth")
    torch.save(vae.state_dict(), root / "tiny_vae.pth")
    return root


def custom_args(root):
    return ["--var-ckpt", root / "tiny_d2.pth", "--vae-ckpt", root / "tiny_vae.pth", "--patch-nums", "1,2,4"]


def test_two_tiny_sizes_over_a_folder(inputs, tmp_path, one_thread):
    out = tmp_path / "out"
    result = ok(invoke("--models", "var_test", *custom_args(inputs), "--data", inputs / "folder", "--out", out,
                       "--batch-size", "3", "--chunk-size", "4"))
    assert "Scaling laws: fitted vs the paper's" in result.stdout and "random weights in var_test" in result.stderr
    test, custom = read.load(out / "var_test" / "result.json", "scaling"), read.load(out / "tiny_d2" / "result.json")
    for r in (test, custom):
        res = r["results"]
        assert res["what"] == "model" and res["num_images"] == 7 and res["tokens_per_image"] == 21
        assert res["err_avg"] == 100 - res["acc_avg"] and len(res["per_scale"]) == 3
        assert res["data"]["kind"] == "folder" and res["data"]["naming"] == "class_index"
        assert r["protocol"]["samples"]["count"] == 7 and r["config"]["chunk_size"] == 4
    assert test["random_weights"] is True and custom["random_weights"] is False
    assert custom["results"]["params"] == VARConfig(depth=2, patch_nums=(1, 2, 4)).num_params
    assert custom["protocol"]["model"]["checkpoint_sha256"].keys() == {"var", "vae"}
    fits = read.load(out / "fits.json", "scaling")["results"]
    assert fits["what"] == "fits" and fits["models"] == ["var_test", "tiny_d2"]  # by size
    assert [f["metric"] for f in fits["fits"]] == ["l_avg", "l_last", "err_avg", "err_last"]
    assert all(f["r_ci95"] is None and f["alpha_ci95"] is None for f in fits["fits"])
    assert (out / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the numbers, recomputed here in one batch from the data module and the model
    gen = build(zoo.get("var_test"))
    crops, _ = data.open_validation(inputs / "folder").load(range(7), 64)
    stats = loss.batch_stats(gen.var, gen.vae, torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 127.5 - 1,
                             torch.tensor(data.open_validation(inputs / "folder").labels))
    direct = loss.summarize(stats.ce_sum, stats.hits, (1, 2, 4))
    for key in ("l_avg", "l_last", "acc_avg", "acc_last"):
        assert test["results"][key] == pytest.approx(direct[key], rel=1e-6, abs=1e-9)
    again = ok(invoke("--models", "var_test", *custom_args(inputs), "--data", inputs / "folder", "--out", out,
                      "--batch-size", "3", "--chunk-size", "4"))
    assert again.stdout.count("already complete") == 2


def test_npz_equals_a_folder_of_the_same_pngs(inputs, tmp_path, one_thread):
    ok(invoke("-m", "var_test", "--data", inputs / "val.npz", "--out", tmp_path / "npz", "--limit", "5"))
    ok(invoke("-m", "var_test", "--data", inputs / "npz_as_pngs", "--out", tmp_path / "png", "--limit", "5"))
    a = read.load(tmp_path / "npz" / "var_test" / "result.json")["results"]
    b = read.load(tmp_path / "png" / "var_test" / "result.json")["results"]
    assert a["data"]["kind"] == "npz" and a["num_images"] == 5 and a["data"]["available"] == 7
    for key in ("l_avg", "l_last", "acc_avg", "acc_last", "per_scale"):
        assert a[key] == b[key]  # lossless PNGs of the npz rows, same order, same batches: the same bits
    assert a["data"]["content_sha256"] != b["data"]["content_sha256"]  # row bytes vs PNG file bytes
    assert not (tmp_path / "npz" / "fits.json").exists()  # one model: no fits


def test_interruption_then_resume_gives_the_uninterrupted_numbers(inputs, tmp_path, monkeypatch, one_thread):
    args = ["-m", "var_test", "--data", inputs / "folder", "--batch-size", "2", "--chunk-size", "2"]
    ok(invoke(*args, "--out", tmp_path / "ref"))
    real, calls = loss.batch_stats, []

    def interrupted(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(loss, "batch_stats", interrupted)
    result = invoke(*args, "--out", tmp_path / "out")
    assert result.exit_code == 130 and "rerun the same command to resume" in result.stderr
    chunks = tmp_path / "out" / "var_test" / "chunks"
    assert sorted(p.name for p in chunks.iterdir()) == ["000000.json", "000000.npz", "000001.json", "000001.npz"]
    monkeypatch.setattr(loss, "batch_stats", real)
    (chunks / "000001.npz").write_bytes(b"damaged")  # a damaged chunk is made again
    ok(invoke(*args, "--out", tmp_path / "out"))
    ref = read.load(tmp_path / "ref" / "var_test" / "result.json")["results"]
    new = read.load(tmp_path / "out" / "var_test" / "result.json")["results"]
    for key in ("l_avg", "l_last", "acc_avg", "acc_last", "per_scale", "data"):
        assert new[key] == ref[key]
    assert new["chunks_reused"] == 1 and new["chunks_evaluated"] == 3
    manifest = json.loads((tmp_path / "out" / "var_test" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and len(manifest["sessions"]) == 2 and manifest["sessions"][-1][
        "chunks_damaged"] == [1]


def test_sharding_over_world_sizes_gives_the_same_totals(inputs, tmp_path, one_thread):
    gen = build(zoo.get("var_test"))
    ds = data.open_validation(inputs / "folder")
    totals = {}
    for world in (1, 2, 3):
        job = run.ScalingJob(out=tmp_path / f"w{world}", model="var_test", batch_size=2, chunk_size=2)
        session = {"started": "now", "world_size": world, "batch_size": 2, "host": "test"}
        state = run.prepare(gen, ds, job, session)
        for rank in range(world):  # what each torchrun rank does between the two barriers
            mine = assign(state["pending"], rank, world)
            run.evaluate_chunks(gen, ds, job, state, mine, DistInfo(rank=rank, world_size=world))
        result = run.finish(gen, ds, job, state, session, {"t_start": 0.0, "eval_seconds": 1.0})["results"]
        totals[world] = {k: result[k] for k in ("l_avg", "l_last", "acc_avg", "acc_last", "per_scale")}
        ranks = [c["rank"] for c in json.loads((job.out / "manifest.json").read_text())["chunks"]]
        assert ranks == [i % world for i in range(4)]  # disjoint round-robin shares
    assert totals[1] == totals[2] == totals[3]


@pytest.mark.parametrize("args,needles", [
    ([], ["choose models"]),
    (["-m", "var_tset"], ["unknown model 'var_tset'", "var_test"]),
    (["-m", "raster_test"], ["raster model", "VAR models"]),
    (["-m", "var_test,var_test"], ["given twice"]),
    (["-m", "var_test", "--vae-ckpt", "x.pth"], ["--vae-ckpt describes custom checkpoints"]),
    (["-m", "var_test", "--limit", "0"], ["--limit must be at least 1"]),
    (["-m", "var_test", "--batch-size", "0"], ["must be at least 1"]),
    (["-m", "var_test", "--nproc", "0"], ["--nproc must be at least 1"]),
    (["-m", "var_test", "--device", "tpu"], ["unknown --device"]),
    (["-m", "var_d16,var_test"], ["var_d16.pth", "downloads are off"]),  # checked before any model is evaluated
])
def test_bad_options_are_one_line(inputs, tmp_path, args, needles):
    one_line_error(invoke(*args, "--data", inputs / "folder", "--out", tmp_path / "o"), *needles)


def test_bad_custom_and_data_inputs_are_one_line(inputs, tmp_path):
    folder, out = inputs / "folder", tmp_path / "o"
    ckpt, vae = inputs / "tiny_d2.pth", inputs / "tiny_vae.pth"
    one_line_error(invoke("--var-ckpt", ckpt, "--data", folder, "--out", out), "--var-ckpt needs --vae-ckpt")
    one_line_error(invoke("--var-ckpt", ckpt, "--var-ckpt", ckpt, "--var-ckpt", ckpt, "--vae-ckpt", vae,
                          "--vae-ckpt", vae, "--data", folder, "--out", out), "given 2 times for 3 --var-ckpt")
    one_line_error(invoke("--var-ckpt", tmp_path / "no.pth", "--vae-ckpt", vae, "--data", folder, "--out", out),
                   "is not a file")
    one_line_error(invoke("-m", "var_test", "--data", tmp_path / "missing", "--out", out), "does not exist")
    (tmp_path / "bad" / "dog").mkdir(parents=True)
    one_line_error(invoke("-m", "var_test", "--data", tmp_path / "bad", "--out", out), "is not a class folder")
    np.savez(tmp_path / "nolabels.npz", np.zeros((2, 8, 8, 3), np.uint8))
    one_line_error(invoke("-m", "var_test", "--data", tmp_path / "nolabels.npz", "--out", out), "no 'labels' array")


def test_other_runs_and_foreign_files_in_out_are_refused(inputs, tmp_path, one_thread):
    out = tmp_path / "out"
    ok(invoke("-m", "var_test", "--data", inputs / "folder", "--out", out, "--limit", "2"))
    one_line_error(invoke("-m", "var_test", "--data", inputs / "folder", "--out", out, "--limit", "3"),
                   "holds a different run")
    (tmp_path / "mine" / "var_test").mkdir(parents=True)
    (tmp_path / "mine" / "var_test" / "notes.txt").write_text("mine")
    one_line_error(invoke("-m", "var_test", "--data", inputs / "folder", "--out", tmp_path / "mine"),
                   "holds no varbench scaling run")
    (out / "fits.json").write_text("{}")
    one_line_error(invoke("-m", "var_test", "--data", inputs / "folder", "--out", out, "--limit", "2"),
                   "fits.json exists and is not a varbench scaling fits result")
    ok(invoke("-m", "var_test", "--data", inputs / "folder", "--out", out, "--limit", "3", "--overwrite"))
    assert read.load(out / "var_test" / "result.json")["results"]["num_images"] == 3


def test_fits_gather_every_model_evaluated_into_out_on_the_same_images(inputs, tmp_path, one_thread):
    out = tmp_path / "out"
    ok(invoke("-m", "var_test", "--data", inputs / "folder", "--out", out, "--limit", "4"))
    result = ok(invoke(*custom_args(inputs), "--data", inputs / "folder", "--out", out, "--limit", "4"))
    assert "fits over 2 models" in result.stdout
    fits = read.load(out / "fits.json", "scaling")
    assert fits["results"]["models"] == ["var_test", "tiny_d2"] and len(fits["results"]["data_content_sha256"]) == 1
    assert any("random weights" in w for w in fits["warnings"])


def test_nproc_2_under_torchrun_matches_one_process(inputs, tmp_path):
    args = ["-m", "var_test", "--data", inputs / "folder", "--batch-size", "2", "--chunk-size", "2"]
    ok(invoke(*args, "--out", tmp_path / "one"))
    ok(invoke(*args, "--nproc", "2", "--out", tmp_path / "two"))
    one = read.load(tmp_path / "one" / "var_test" / "result.json")["results"]
    two = read.load(tmp_path / "two" / "var_test" / "result.json")["results"]
    for key in ("l_avg", "l_last", "acc_avg", "acc_last", "per_scale"):
        assert two[key] == pytest.approx(one[key], rel=1e-6) if key.startswith("l_") else two[key] == one[key]
    manifest = json.loads((tmp_path / "two" / "var_test" / "manifest.json").read_text())
    assert sorted({c["rank"] for c in manifest["chunks"]}) == [0, 1] and manifest["sessions"][-1]["world_size"] == 2
