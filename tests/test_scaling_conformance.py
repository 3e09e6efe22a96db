"""``varbench scaling`` against the official trainer's ``eval_ep`` (``tests/fixtures/scaling``, extracted from
``shared/fixtures/var/zeroshot_and_eval.pt`` by ``tests/fixtures/make_scaling.py``) on the recipe tiny d2 model:
validation geometry and crops, tokens, per-token CE, argmax, the four numbers, per image and per scale; and the
pipeline's batch-size independence.

Tolerances (the fixture README's): tokens, argmax, crops exact; CE per token atol 1e-4; L_mean / L_tail rtol 1e-5;
accuracies exact up to float32 rounding (1e-4).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from conftest import FIXTURES, SHARED
from var_helpers import models
from varbench import preprocess
from varbench.generators.var import VarGenerator
from varbench.generators.zoo import VAR_FID_SAMPLING
from varbench.scaling import data, loss, run

HERE = FIXTURES / "scaling"
GOLDEN = json.loads((HERE / "eval_golden.json").read_text())
NPZ = dict(np.load(HERE / "eval_golden.npz", allow_pickle=False))
PATCH_NUMS = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)


@pytest.fixture(scope="module")
def recipe():
    return models("256")  # the var_tiny_d2.pt weights, rebuilt from their recipe


@pytest.fixture(scope="module")
def validation():
    return data.open_validation(HERE / "images")


def _fixture_order(ds) -> list[int]:
    """Our positions of the fixture's images, in the fixture's batch order."""
    return [ds.files.index(f"{label}/{name}") for name, label in zip(GOLDEN["names"], GOLDEN["labels"])]


@pytest.fixture(scope="module")
def forward(recipe, validation):
    var, vae = recipe
    crops, _ = validation.load(_fixture_order(validation), 256)
    x = preprocess.to_model_input(crops)
    return crops, x, loss.batch_stats(var, vae, x, torch.tensor(GOLDEN["labels"]), keep_tokens=True)


def test_geometry_crops_and_inputs_match_the_official_transform(validation):
    order = _fixture_order(validation)
    for k, i in enumerate(order):
        crop, _, geometry = validation.crop(i, 256)
        g = NPZ["geometry"][k]
        assert (*geometry.original, *geometry.resized, *geometry.crop_top_left) == tuple(g.tolist())
        assert hashlib.sha256(crop.tobytes()).hexdigest() == NPZ["crop_sha256"][k].decode()  # bit for bit
    assert validation.labels[order].tolist() == GOLDEN["labels"]


def test_tokens_ce_and_argmax_per_token(forward):
    _, x, stats = forward
    assert x.double().sum(dim=(1, 2, 3)).numpy().tolist() == NPZ["input_sum_f64"].tolist()
    assert np.array_equal(stats.tokens.numpy(), NPZ["gt_idx"].astype(np.int64))
    assert np.array_equal(stats.argmax.numpy(), NPZ["argmax"].astype(np.int64))
    assert np.abs(stats.ce.numpy() - NPZ["ce_per_token"]).max() < 1e-4
    # the per-scale sums are sums of those per-token values
    ends = np.cumsum([p * p for p in PATCH_NUMS])
    expected = np.stack([s.sum(axis=1) for s in np.split(stats.ce.double().numpy(), ends[:-1], axis=1)], axis=1)
    assert np.allclose(stats.ce_sum, expected, rtol=0, atol=1e-9)


def _close(ours: dict, official: dict) -> None:
    assert ours["l_avg"] == pytest.approx(official["L_mean"], rel=1e-5)
    assert ours["l_last"] == pytest.approx(official["L_tail"], rel=1e-5)
    assert ours["acc_avg"] == pytest.approx(official["acc_mean"], abs=1e-4)
    assert ours["acc_last"] == pytest.approx(official["acc_tail"], abs=1e-4)
    assert ours["err_avg"] == 100 - ours["acc_avg"] and ours["err_last"] == 100 - ours["acc_last"]


def test_the_four_numbers_per_scale_and_per_image(forward):
    _, _, stats = forward
    total = loss.summarize(stats.ce_sum, stats.hits, PATCH_NUMS)
    _close(total, GOLDEN["eval_ep_batches"])
    _close(total, GOLDEN["eval_ep_one_batch"])
    counts = GOLDEN["from_tokens"]
    assert int(stats.hits.sum()) == counts["n_correct"] and int(stats.hits[:, -1].sum()) == counts["n_correct_tail"]
    assert total["tokens_per_image"] == 680 and total["last_scale_tokens"] == GOLDEN["last_l"] == 256
    for ours, official in zip(total["per_scale"], GOLDEN["per_scale_batch"]):
        assert ours["resolution"] == official["reso"]
        assert ours["ce"] == pytest.approx(official["ce"], rel=1e-5)
        assert ours["acc"] == pytest.approx(official["acc"], abs=1e-4)
    for k, official in enumerate(GOLDEN["eval_ep_per_image"]):
        _close(loss.summarize(stats.ce_sum[k:k + 1], stats.hits[k:k + 1], PATCH_NUMS), official)


def _pipeline(recipe, validation, tmp_path, batch_size: int, chunk_size: int) -> dict:
    var, vae = recipe
    gen = VarGenerator("recipe_d2", var, vae, VAR_FID_SAMPLING, random_weights=True)
    job = run.ScalingJob(out=tmp_path / f"b{batch_size}c{chunk_size}", model="recipe_d2", batch_size=batch_size,
                         chunk_size=chunk_size, workers=2)
    outcome = run.run(gen, validation, job)
    return json.loads(outcome.result_path.read_text())["results"]


def test_pipeline_matches_eval_ep_and_does_not_depend_on_batch_size(recipe, validation, tmp_path):
    two = _pipeline(recipe, validation, tmp_path, batch_size=2, chunk_size=4)  # batches of 2, chunks of 4 and 2
    six = _pipeline(recipe, validation, tmp_path, batch_size=6, chunk_size=6)
    _close(two, GOLDEN["eval_ep_batches"])
    _close(six, GOLDEN["eval_ep_batches"])
    for key in ("l_avg", "l_last"):
        assert six[key] == pytest.approx(two[key], rel=1e-6)  # only the float32 logits of other batch shapes differ
    for key in ("acc_avg", "acc_last", "num_images"):
        assert six[key] == two[key]  # hit counts: exact
    assert [s["acc"] for s in six["per_scale"]] == [s["acc"] for s in two["per_scale"]]
    assert two["data"]["content_sha256"] == six["data"]["content_sha256"]
    assert two["random_weights"] is True and two["params"] == models("256")[0].cfg.num_params


@pytest.mark.skipif(not (SHARED / "fixtures" / "var" / "zeroshot_and_eval.pt").is_file(),
                    reason="needs ../shared (the extraction source)")
def test_extracted_fixture_matches_its_shared_source():
    fx = torch.load(SHARED / "fixtures" / "var" / "zeroshot_and_eval.pt", map_location="cpu", weights_only=True)
    ev = fx["eval"]
    assert GOLDEN["eval_ep_batches"] == ev["eval_ep_batches"] and GOLDEN["per_scale_batch"] == ev["per_scale_batch"]
    assert np.array_equal(NPZ["gt_idx"], ev["gt_idx_concat"].numpy())
    assert np.array_equal(NPZ["ce_per_token"], ev["ce_per_token"].numpy())
    for name, label in zip(GOLDEN["names"], GOLDEN["labels"]):
        assert (HERE / "images" / str(label) / name).read_bytes() == ev["images"][name]["png_bytes"].numpy().tobytes()
