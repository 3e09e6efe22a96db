"""``varbench edit IMAGES...`` end to end: var_test (files, refusal, --overwrite, bad input) and the official
notebook run Z3 through --var-ckpt/--vae-ckpt with --rng official."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from test_edit import check_uint8, golden, png
from var_helpers import models
from pipeline import ok, one_line_error
from varbench.cli.app import app

BOX = ["--box", "0.25,0.25,0.75,0.75"]


def invoke(*args):
    return CliRunner().invoke(app, ["edit", *map(str, args)])




@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(a)
    Image.fromarray(rng.integers(0, 256, (90, 70, 3), dtype=np.uint8)).save(b)  # not 64x64: validation transform
    return a, b


def test_var_test_end_to_end(tmp_path, images, one_thread):
    out = tmp_path / "out"
    result = ok(invoke(*images, "--model", "var_test", *BOX, "--out", out))
    assert "random weights" in result.stderr and "validation transform" in result.stderr
    with np.load(out / "samples.npz", allow_pickle=False) as z:
        assert z["arr_0"].dtype == np.uint8 and z["arr_0"].shape == (2, 64, 64, 3)
        assert z["labels"].tolist() == [1000, 1000] and z["indices"].tolist() == [0, 1]
        arr = z["arr_0"]
    assert sorted(p.name for p in (out / "png").iterdir()) == ["000000.png", "000001.png"]
    assert np.array_equal(np.asarray(Image.open(out / "png" / "000001.png")), arr[1])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["schema"] == "varbench.edit" and manifest["status"] == "complete" and manifest["random_weights"]
    assert [i["preprocessed"] for i in manifest["inputs"]] == [False, True]
    assert manifest["inputs"][1]["original_hw"] == [90, 70] and len(manifest["inputs"][0]["sha256"]) == 64
    assert manifest["edit"]["task"] == "inpaint" and manifest["edit"]["box_tokens"] == [1, 3, 1, 3]
    assert manifest["rng"] == "per-sample" and len(manifest["seeds"]) == 2
    res = json.loads((out / "result.json").read_text())
    assert res["kind"] == "edit" and res["random_weights"] and res["results"]["mode"] == "images"
    assert res["results"]["tasks"][0]["generated_tokens"] == 4 and res["results"]["preprocessed"] == 1
    assert res["protocol"]["seeds"]["rng"] == "per-sample"
    # per-sample randomness: each image alone gives the same bytes
    ok(invoke(images[1], "--model", "var_test", *BOX, "--out", tmp_path / "alone", "--batch-size", "1"))
    with np.load(tmp_path / "alone" / "samples.npz", allow_pickle=False) as z:
        alone = z["arr_0"][0]
    assert not np.array_equal(alone, arr[1])  # image 1 alone is input index 0: another seed
    ok(invoke(*images, "--model", "var_test", *BOX, "--out", tmp_path / "b1", "--batch-size", "1"))
    with np.load(tmp_path / "b1" / "samples.npz", allow_pickle=False) as z:
        assert np.array_equal(z["arr_0"], arr)


def test_rerun_refused_and_overwrite_removes_only_its_files(tmp_path, images, one_thread):
    out = tmp_path / "out"
    ok(invoke(*images, "--model", "var_test", *BOX, "--out", out))
    before = (out / "samples.npz").read_bytes()
    one_line_error(invoke(*images, "--model", "var_test", *BOX, "--out", out), "finished edit run", "--overwrite")
    assert (out / "samples.npz").read_bytes() == before
    (out / "notes.txt").write_text("mine")
    (out / "png" / "keep.txt").write_text("mine too")
    ok(invoke(images[0], "--model", "var_test", *BOX, "--label", "7", "--out", out, "--overwrite"))
    assert sorted(p.name for p in (out / "png").iterdir()) == ["000000.png", "keep.txt"]  # stale 000001.png gone
    assert (out / "notes.txt").read_text() == "mine"
    with np.load(out / "samples.npz", allow_pickle=False) as z:
        assert z["labels"].tolist() == [7]
    assert json.loads((out / "manifest.json").read_text())["edit"]["task"] == "class_edit"
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x.txt").write_text("x")
    one_line_error(invoke(images[0], "--model", "var_test", *BOX, "--out", foreign), "not empty")


@pytest.mark.parametrize("box, needle", [
    ("0.5,0.25,0.25,0.75", "Y0 < Y1"), ("0,0,1.5,1", "[0, 1]"), ("0.3,0.1,0.35,0.9", "covers no token"),
    ("0.1,0.2,0.3", "four comma-separated"), ("a,b,c,d", "four comma-separated"),
])
def test_bad_box_is_one_line(tmp_path, images, box, needle):
    one_line_error(invoke(images[0], "--model", "var_test", "--box", box, "--out", tmp_path / "o"), needle)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, needle", [
    (["--label", "1000"], "--label must be a class"), (["--leak-ring", "1"], "--no-leak"),
    (["--outpaint", "--box", "0,0,1,1"], "nothing to generate"), (["--model", "noise_test"], "needs a VAR model"),
    (["--rng", "bogus"], "--rng"), (["--num-images", "3"], "--benchmark only"),
])
def test_bad_options_are_one_line(tmp_path, images, args, needle):
    base = ["--model", "var_test", *BOX] if "--model" not in args else [*BOX]
    one_line_error(invoke(images[0], *base, *args, "--out", tmp_path / "o"), needle)


def test_official_rng_reproduces_notebook_run_z3_through_the_cli(tmp_path, one_thread):
    """Z3 (class edit towards 207, g_seed 42) with the recipe weights saved as checkpoints: the notebook's uint8."""
    var, vae = models("256")
    torch.save(var.state_dict(), tmp_path / "var.pth")
    torch.save(vae.state_dict(), tmp_path / "vae.pth")
    run = golden()["runs"]["Z3_class_edit"]
    src = tmp_path / "zs_a.png"
    src.write_bytes(golden()["inputs"]["zs_a.png"]["png_bytes"].numpy().tobytes())
    c, m = run["call"], run["call"]["get_edit_mask"]
    ok(invoke(src, "--var-ckpt", tmp_path / "var.pth", "--vae-ckpt", tmp_path / "vae.pth", "--rng", "official",
              "--seed", c["g_seed"], "--cfg", c["cfg"], "--top-k", c["top_k"], "--top-p", c["top_p"],
              "--label", c["label_B"][0], "--box", f"{m['y0']},{m['x0']},{m['y1']},{m['x1']}",
              "--out", tmp_path / "z3"))
    with np.load(tmp_path / "z3" / "samples.npz", allow_pickle=False) as z:
        check_uint8(z["arr_0"][0], png(run["image_png"][0]), "Z3 via the CLI")
    manifest = json.loads((tmp_path / "z3" / "manifest.json").read_text())
    assert manifest["seeds"] == [42] and not manifest["random_weights"]
