"""Replaying official runs from the command line (issue 13): ``varbench generate --rng official --seed S`` with
custom checkpoint files gives what ``var.autoregressive_infer_cfg(B, label_B, g_seed=S + c, ...)`` and LlamaGen's
``torch.manual_seed(S + c)`` + ``generate(...)`` give for chunk c.

The checkpoints are the golden fixtures' recipe weights saved as files; the expected images are the official
code's (tests/fixtures/var_golden_*.pt, tests/fixtures/llamagen/goldens_vq.pt)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pipeline import cli
from var_helpers import golden, models
from varbench.baselines.llamagen import GPT, GPTConfig
from varbench.baselines.vq16 import VQConfig, VQModel
from varbench.recipe import fill_with_recipe
from varbench.models.var import SCHEDULES

pytestmark = pytest.mark.usefixtures("one_thread")

OFFICIAL_A = {"256": "A_cfg1.5_k900_p0.96", "512": "A_cfg1.5_k900_p0.96"}


def _images(out) -> np.ndarray:
    with np.load(out / "samples.npz", allow_pickle=False) as z:
        return z["arr_0"]


def _check_official_var_images(images: np.ndarray, run: dict, what: str) -> None:
    """uint8 images against the official float images: the top-left crop within rounding, the mean within 1e-4."""
    stats = run["image_stats"]
    crop = torch.from_numpy(images[:, :16, :16].astype(np.float64) / 255).permute(0, 3, 1, 2)
    ref = stats["crop_0_16"].double()
    assert (crop - ref).abs().max() <= 0.5 / 255 + 1e-4, what
    mean = torch.from_numpy(images.reshape(len(images), -1).astype(np.float64).mean(1) / 255)
    assert (mean - stats["mean"].double()).abs().max() <= 2e-3, what  # uint8 rounding of 196,608 values


@pytest.fixture(scope="module")
def var_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("official_var")
    paths = {}
    for which in ("256", "512"):
        var, vae = models(which)
        torch.save(var.state_dict(), d / f"var_{which}.pth")
        torch.save(vae.state_dict(), d / f"vae_{which}.pth")
        paths[which] = (d / f"var_{which}.pth", d / f"vae_{which}.pth")
    return paths


@pytest.mark.parametrize("which", ["256", "512"])
def test_var_official_seed_replays_autoregressive_infer_cfg(which, var_files, tmp_path):
    """Chunk 1 of a run with seed S - 1 is the official call with g_seed S (run A of the golden file), and chunk 0
    (seed S - 1) is something else: the chunk seed is the plain S + c."""
    run = golden(f"var_golden_{which}.pt")["infer"][OFFICIAL_A[which]]
    call = run["call"]
    labels = list(call["label_B"])
    var_ckpt, vae_ckpt = var_files[which]
    pn = ",".join(map(str, SCHEDULES[16 if which == "256" else 32]))
    out = tmp_path / "run"
    cli("generate", "--var-ckpt", var_ckpt, "--vae-ckpt", vae_ckpt, "--patch-nums", pn, "--rng", "official",
        "--seed", call["g_seed"] - 1, "--labels", ",".join(map(str, labels + labels)), "--batch-size", call["B"],
        "--cfg", call["cfg"], "--top-k", call["top_k"], "--top-p", call["top_p"], "--out", out, "--device", "cpu")
    images = _images(out)
    _check_official_var_images(images[call["B"]:], run, f"{which}: chunk 1 (seed {call['g_seed']})")
    assert not np.array_equal(images[: call["B"]], images[call["B"]:])  # same labels, seed S - 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert [c["seed"] for c in manifest["chunks"]] == manifest["plan"]["chunk_seeds"] == \
        [call["g_seed"] - 1, call["g_seed"]]


def test_var_official_seed_with_one_batch_equals_the_library(var_files, tmp_path):
    """The CLI's images equal the library's generate_official, whose tokens test_var_golden checks exactly."""
    from varbench.generators import zoo
    from varbench.generators.protocol import build
    from varbench.generators.sampling import resolve

    run = golden("var_golden_256.pt")["infer"][OFFICIAL_A["256"]]
    call = run["call"]
    var_ckpt, vae_ckpt = var_files["256"]
    out = tmp_path / "one"
    cli("generate", "--var-ckpt", var_ckpt, "--vae-ckpt", vae_ckpt, "--rng", "official", "--seed", call["g_seed"],
        "--labels", ",".join(map(str, call["label_B"])), "--batch-size", call["B"], "--cfg", call["cfg"],
        "--top-k", call["top_k"], "--top-p", call["top_p"], "--out", out)
    spec = zoo.custom_var(SCHEDULES[16])
    g = build(spec, {"var": var_ckpt, "vae": vae_ckpt}, sampling=resolve(spec, {"cfg": call["cfg"],
              "top_k": call["top_k"], "top_p": call["top_p"]}), patch_nums=SCHEDULES[16])
    assert np.array_equal(_images(out), g.generate_official(list(call["label_B"]), call["g_seed"]))


def test_llamagen_official_seed_replays_manual_seed_and_generate(tmp_path):
    """--gpt-ckpt/--vq-ckpt with a 16-wide-head GPT (needs --num-heads): seed 0 is the
    official generate() after torch.manual_seed(0) (fixture images, at most one uint8 level apart)."""
    ref = torch.load(__import__("pathlib").Path(__file__).parent / "fixtures" / "llamagen" / "goldens_vq.pt",
                     weights_only=True)["reduced"]["gpt_tiny_cfg4_uint8_hwc"].numpy()
    for cls, cfg, seed, name in ((GPT, GPTConfig(dim=64, n_layer=2, n_head=4), 1, "gpt"),
                                 (VQModel, VQConfig(ch=32, z_channels=64), 3, "vq")):
        with torch.device("meta"):
            model = cls(cfg)
        torch.save({"model": fill_with_recipe(model, seed).state_dict()}, tmp_path / f"{name}.pt")
    common = ["generate", "--gpt-ckpt", tmp_path / "gpt.pt", "--vq-ckpt", tmp_path / "vq.pt", "--rng", "official",
              "--cfg", 4, "--top-k", 2000, "--batch-size", 2]
    cli(*common, "--num-heads", 4, "--seed", 0, "--labels", "3,980", "--out", tmp_path / "a")
    diff = np.abs(_images(tmp_path / "a").astype(int) - ref)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    cli(*common, "--seed", 0, "--labels", "3,980", "--out", tmp_path / "b")  # default: width / 64 = 1 head
    assert not np.array_equal(_images(tmp_path / "a"), _images(tmp_path / "b"))


def test_llamagen_width_not_a_multiple_of_64_needs_num_heads(tmp_path):
    from typer.testing import CliRunner

    from varbench.cli.app import app

    for cls, cfg, name in ((GPT, GPTConfig(dim=96, n_layer=1, n_head=3), "gpt"),
                           (VQModel, VQConfig(ch=32, z_channels=64), "vq")):
        with torch.device("meta"):
            model = cls(cfg)
        torch.save(fill_with_recipe(model, 0).state_dict(), tmp_path / f"{name}.pt")
    common = ["generate", "--gpt-ckpt", tmp_path / "gpt.pt", "--vq-ckpt", tmp_path / "vq.pt", "--labels", "1",
              "--top-k", 10]
    res = CliRunner().invoke(app, [str(a) for a in [*common, "--out", tmp_path / "x"]])
    assert res.exit_code == 2 and "--num-heads" in res.output and "Traceback" not in res.output
    cli(*common, "--num-heads", 3, "--out", tmp_path / "y")
    assert _images(tmp_path / "y").shape == (1, 256, 256, 3)


def test_resume_with_another_cpu_thread_count_is_refused(tmp_path):
    """CPU bytes depend on the intra-op thread count: the manifest records it and a resume with another is refused."""
    from typer.testing import CliRunner

    from varbench.cli.app import app

    out = tmp_path / "run"
    args = ["generate", "--model", "var_test", "--num-samples", "4", "--chunk-size", "2", "--out", str(out)]
    cli(*args, "--threads", 1)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["identity"]["job"]["cpu_threads"] == 1
    res = CliRunner().invoke(app, [*args, "--threads", "2"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "made with 1 CPU thread(s)" in res.output and "--threads 1" in res.output
    cli(*args, "--threads", 1)  # the matching count resumes (here: finds it complete)
