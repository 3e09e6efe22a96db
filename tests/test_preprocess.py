"""The VAR validation transform against torchvision's Resize + CenterCrop (the official code's own transform) on odd
sizes, modes and half-pixel crop offsets."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from varbench import preprocess
from varbench.errors import VarbenchError


def _png(h, w, mode, seed):
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    small = rng.integers(0, 256, (max(2, h // 16), max(2, w // 16), channels), dtype=np.uint8)
    img = Image.fromarray(small.squeeze(-1) if channels == 1 else small, mode).resize((w, h), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("h,w,mode,size", [(300, 402, "RGBA", 256), (200, 240, "L", 256), (256, 256, "RGB", 256),
                                           (512, 384, "RGB", 256), (288, 288, "RGB", 256), (700, 513, "RGB", 512),
                                           (576, 1000, "RGB", 512)])
def test_validation_crop_equals_torchvision(h, w, mode, size):
    tv = pytest.importorskip("torchvision.transforms")
    data = _png(h, w, mode, seed=h * w)
    img = preprocess.open_rgb(data)
    crop, geometry = preprocess.validation_crop(img, size)
    official = tv.Compose([tv.Resize(round(1.125 * size), interpolation=tv.InterpolationMode.LANCZOS),
                           tv.CenterCrop((size, size)), tv.ToTensor()])
    x01 = official(Image.open(io.BytesIO(data)).convert("RGB"))
    assert crop.shape == (size, size, 3) and geometry.original == (h, w)
    ours = preprocess.to_model_input(crop[None])[0]
    assert torch.equal(ours, x01 + x01 - 1)  # bit for bit, float32
    assert min(geometry.resized) == round(1.125 * size)


def test_half_pixel_offsets_round_half_to_even():
    # 300 x 402 -> 288 x 385 (385.92 truncated); left offset (385 - 256) / 2 = 64.5 -> 64
    _, geometry = preprocess.validation_crop(preprocess.open_rgb(_png(300, 402, "RGB", 1)), 256)
    assert geometry.resized == (288, 385) and geometry.crop_top_left == (16, 64)


def test_unreadable_image_is_one_clear_error(tmp_path):
    bad = tmp_path / "x.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(VarbenchError, match="cannot read .*x.png as an image"):
        preprocess.open_rgb(bad)


def test_adm_center_crop_geometry():
    """guided-diffusion's center_crop_arr (checked identical to the official function side by side on 14 sizes):
    BOX halving while the short side >= 2 * size, BICUBIC to a short side of size (sides rounded), floor offsets."""
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (600, 1100, 3), dtype=np.uint8))
    crop = preprocess.adm_center_crop(img, 256)
    half = img.resize((550, 300), Image.BOX)  # 600 >= 512: halved once
    scaled = np.asarray(half.resize((round(550 * 256 / 300), 256), Image.BICUBIC))  # 469 x 256
    assert crop.shape == (256, 256, 3) and np.array_equal(crop, scaled[:, (469 - 256) // 2:][:, :256])


def test_ref_build_center_crop_reads_a_class_tree_of_any_size(tmp_path, real_runs):
    from pipeline import cli

    from varbench.evaluate import reference as references
    from varbench.evaluate.samples import open_samples

    sizes = [(300, 400), (500, 375), (256, 256), (700, 520)]
    for i, (h, w) in enumerate(sizes):
        folder = tmp_path / "train" / f"n0000000{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.open(io.BytesIO(_png(h, w, "RGB" if i != 1 else "L", seed=i))).save(folder / f"img{i}.png")
    samples = open_samples(tmp_path / "train", center_crop=64)
    assert (samples.n, samples.height, samples.width) == (4, 64, 64)
    first = sorted((tmp_path / "train").rglob("*.png"))[0]
    assert np.array_equal(samples.image(0), preprocess.adm_center_crop(Image.open(first).convert("RGB"), 64))
    cli("ref", "build", "tree64", "--from", tmp_path / "train", "--center-crop", 64, "--inception-weights",
        real_runs.weights, "--device", "cpu", "--force")
    ref = references.resolve("tree64")[0]
    assert ref.n == 4 and ref.resolution == [64, 64] and "center_crop_arr" in ref.extra["center_crop"]
