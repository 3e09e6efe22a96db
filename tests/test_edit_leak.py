"""--no-leak: the image is encoded with the generated region mid-grey, so kept tokens (and the edit) no longer depend
on the pixels inside the box; without it they do (the coarse scales are always the image's)."""

from __future__ import annotations

import functools
import json

import numpy as np
import torch
from typer.testing import CliRunner

from varbench.cli.app import app
from varbench.edit.editor import Editor
from varbench.edit.spec import EditSpec
from varbench.generators import zoo
from varbench.generators.protocol import build
from varbench.models.edit import blank_generated, keep_mask

BOX = (0.25, 0.25, 0.75, 0.75)  # var_test: 4x4 tokens of 16 px -> tokens 1:3, pixels 16:48


@functools.lru_cache(maxsize=None)
def var_test():
    return build(zoo.get("var_test"))


def two_images() -> np.ndarray:
    """Two 64x64 images that differ only inside the box's pixels."""
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    b = a.copy()
    b[16:48, 16:48] = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    return np.stack([a, b])


def kept_tokens_differ(editor: Editor, images: np.ndarray) -> bool:
    tokens = editor.tokens(images)
    from varbench.models.edit import scale_masks

    _, kept = scale_masks(editor.keep, editor.var.cfg.patch_nums, 2)
    return any(not torch.equal(t[0][k[0].flatten()], t[1][k[1].flatten()]) for t, k in zip(tokens, kept))


def test_kept_tokens_leak_without_no_leak_and_not_with_it(one_thread):
    images = two_images()
    leaky = Editor(var_test(), EditSpec(BOX))
    assert kept_tokens_differ(leaky, images)  # the leak is real: kept tokens see the box's pixels
    clean = Editor(var_test(), EditSpec(BOX, no_leak=True))
    assert not kept_tokens_differ(clean, images)
    tokens = clean.tokens(images)
    assert all(torch.equal(t[0], t[1]) for t in tokens)  # every token, kept or not
    out, _, _ = clean.edit(images, "per-sample", [11, 11])
    assert np.array_equal(out[0], out[1])  # so the whole edit is the same
    out_leaky, _, _ = leaky.edit(images, "per-sample", [11, 11])
    assert not np.array_equal(out_leaky[0], out_leaky[1])


def test_no_leak_outpaint_blanks_the_outside():
    images = two_images()
    images[1, :16] = 255 - images[1, :16]  # differ outside the box too
    images[1, 16:48, 16:48] = images[0, 16:48, 16:48]
    clean = Editor(var_test(), EditSpec(BOX, outpaint=True, no_leak=True))
    assert all(torch.equal(t[0], t[1]) for t in clean.tokens(images))
    assert kept_tokens_differ(Editor(var_test(), EditSpec(BOX, outpaint=True)), images)


def test_blank_sets_exactly_the_generated_token_pixels_to_mid_grey():
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    keep = keep_mask(BOX, 4)
    y = blank_generated(x, keep)
    assert torch.equal(y[:, :, 16:48, 16:48], torch.zeros(2, 3, 32, 32))
    outside = torch.ones(64, 64, dtype=torch.bool)
    outside[16:48, 16:48] = False
    assert torch.equal(y[:, :, outside], x[:, :, outside])


def test_leak_ring_widens_the_generated_region():
    plain = keep_mask((0.25, 0.25, 0.75, 0.75), 16)  # generated rows/cols 4:12
    ring = keep_mask((0.25, 0.25, 0.75, 0.75), 16, ring=1)
    want = torch.ones(16, 16)
    want[3:13, 3:13] = 0
    assert torch.equal(ring, want) and plain.sum() - ring.sum() == 10 * 10 - 8 * 8
    out = keep_mask((0.25, 0.25, 0.75, 0.75), 16, outpaint=True, ring=2)  # keep rows 4:12, eroded by 2
    want = torch.zeros(16, 16)
    want[6:10, 6:10] = 1
    assert torch.equal(out, want)
    edge = keep_mask((0.0, 0.0, 0.25, 0.25), 16, ring=1)  # clipped at the border
    assert edge[:5, :5].sum() == 0 and edge.sum() == 256 - 25


def test_cli_no_leak_records_the_rule(tmp_path, one_thread):
    from PIL import Image

    Image.fromarray(two_images()[0]).save(tmp_path / "a.png")
    out = tmp_path / "o"
    result = CliRunner().invoke(app, ["edit", str(tmp_path / "a.png"), "--model", "var_test", "--box",
                                      "0.25,0.25,0.75,0.75", "--no-leak", "--leak-ring", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert "mid-grey" in manifest["blank_rule"] and manifest["edit"]["no_leak"]
    assert manifest["edit"]["generated_tokens"] == 16  # 2x2 box + a ring of 1 on a 4x4 grid: everything
