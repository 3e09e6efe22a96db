"""The Inception extractor against torch-fidelity's on the same random weights and images (offline, CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import inception_random
from varbench.errors import VarbenchError
from varbench.features import inception
from varbench.features.base import LOGITS, POOL3, SPATIAL


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return inception_random.weights_file(tmp_path_factory)


@pytest.fixture(scope="module")
def imgs():
    return inception_random.images(8, 80, 100, seed=1)  # non-square: both resize axes differ


@pytest.fixture(scope="module")
def ours(weights, imgs):
    ex = inception.InceptionExtractor.from_file(weights)
    return ex, ex.extract(imgs)  # batch of 8 = what --batch-size 32 gives for 8 images


def _torch_fidelity(weights, imgs, dtype="float32"):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    tf = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                     feature_extractor_weights_path=str(weights))
    if dtype == "float64":
        # torch-fidelity 0.4.0 maps feature_extractor_internal_dtype="float64" to float32 (helpers.text_to_dtype),
        # so cast its network by hand; its outputs are still rounded to float32 at the end
        tf = tf.double()
        tf.feature_extractor_internal_dtype = torch.float64
    captured = {}
    tf.Mixed_6d.branch1x1.register_forward_hook(lambda m, i, o: captured.update(out=o))
    with torch.no_grad():
        pool3, logits = tf(torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous())
    # ADM's mixed_6/conv: first 7 channels, flattened in H, W, C order
    spatial = captured["out"][:, :7].permute(0, 2, 3, 1).reshape(len(imgs), -1)
    return {POOL3: pool3.numpy(), LOGITS: logits.numpy(), SPATIAL: spatial.numpy()}


def test_resize_is_bit_identical_to_torch_fidelity():
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    g = torch.Generator().manual_seed(0)
    for shape, dtype in (((2, 37, 53, 3), torch.float32), ((1, 256, 256, 3), torch.float32),
                         ((1, 512, 384, 3), torch.float32), ((2, 40, 30, 3), torch.float64)):
        x = (torch.rand(shape, generator=g, dtype=dtype) * 255).round()
        theirs = interpolate_bilinear_2d_like_tensorflow1x(x.permute(0, 3, 1, 2), size=(299, 299), align_corners=False)
        mine = inception.resize_tf1_bilinear(x).permute(0, 3, 1, 2)
        assert mine.dtype == theirs.dtype and mine.shape == theirs.shape
        assert torch.equal(mine, theirs), shape


def test_features_match_torch_fidelity(weights, imgs, ours):
    ex, feats = ours
    ref = _torch_fidelity(weights, imgs)
    assert {k: v.shape for k, v in feats.items()} == {POOL3: (8, 2048), LOGITS: (8, 1008), SPATIAL: (8, 2023)}
    for key in (POOL3, LOGITS, SPATIAL):
        scale = np.abs(ref[key]).max()
        np.testing.assert_allclose(feats[key], ref[key], rtol=1e-5, atol=1e-5 * scale, err_msg=key)
        # perturbed BatchNorm statistics: features really vary with the image (else the check above is vacuous)
        assert feats[key].std(axis=0).mean() > 1e-3 * scale, key


def test_features_do_not_depend_on_batch_size(ours, imgs):
    ex, whole = ours  # one batch of 8 (what --batch-size 32 does with 8 images)
    for bs in (1, 7):
        parts = [ex.extract(imgs[i:i + bs]) for i in range(0, len(imgs), bs)]
        for key in whole:
            np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), whole[key], err_msg=f"{key} bs={bs}")


def test_fp64_features_match_torch_fidelity_float64(weights, imgs):
    ex = inception.InceptionExtractor.from_file(weights, dtype="fp64")
    feats = ex.extract(imgs[:1])
    ref = _torch_fidelity(weights, imgs[:1], dtype="float64")  # computed in float64, returned as float32
    for key in (POOL3, LOGITS, SPATIAL):
        assert feats[key].dtype == np.float64
        # equal up to torch-fidelity's final rounding to float32 (a few ulp of the largest feature)
        np.testing.assert_allclose(feats[key], ref[key], rtol=3e-7, atol=3e-7 * np.abs(ref[key]).max(), err_msg=key)


def test_extractor_id_and_description(weights, ours):
    ex, _ = ours
    assert not ex.official
    assert ex.id == f"inception-2015-12-05-weights-{ex.weights_sha256[:12]}@{inception.FEATURE_VERSION}"
    desc = ex.describe()
    assert desc["weights_sha256"] == ex.weights_sha256 and desc["official_weights"] is False


def test_official_url_is_torch_fidelitys():
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    assert inception.OFFICIAL_URL == URL_INCEPTION_V3
    assert inception.OFFICIAL_FILENAME.split("-")[-1].startswith(inception.OFFICIAL_SHA256_PREFIX)


def test_offline_missing_weights_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(VarbenchError) as e:
        inception.resolve_weights(None)
    msg = str(e.value)
    assert "\n" not in msg
    assert inception.OFFICIAL_URL in msg and str(tmp_path / "torch" / "hub" / "checkpoints") in msg
    with pytest.raises(VarbenchError, match="not found"):
        inception.resolve_weights(tmp_path / "nope.pth")


def test_weights_are_taken_from_the_torch_hub_cache(tmp_path, monkeypatch, weights):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    target = tmp_path / "torch" / "hub" / "checkpoints" / inception.OFFICIAL_FILENAME
    target.parent.mkdir(parents=True)
    target.symlink_to(weights)
    assert inception.resolve_weights(None) == target


def test_weights_with_wrong_keys_are_refused(tmp_path):
    sd = inception.random_state_dict(1)
    del sd["fc.bias"]
    sd["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(VarbenchError, match=r"1 missing keys: fc.bias; 1 unexpected keys: extra.weight"):
        inception.InceptionExtractor.from_file(path)


def test_extract_refuses_non_uint8(ours):
    ex, _ = ours
    with pytest.raises(VarbenchError, match="uint8"):
        ex.extract(np.zeros((1, 8, 8, 3), dtype=np.float32))


def test_precise_float32_restores_settings():
    before = inception.precision_settings()
    with inception.precise_float32() as inside:
        assert inside["cudnn_conv_fp32_precision"] == "ieee" and inside["cuda_matmul_fp32_precision"] == "ieee"
        assert inside["cudnn_deterministic"] is True and inside["cudnn_benchmark"] is False
    assert inception.precision_settings() == before
