"""The FD_DINOv2 extractor against the goldens of the unmodified dinov2 + EDM2 code (tests/fixtures/dinov2/, made by
tests/fixtures/make_dinov2.py from ../shared/fixtures/dinov2; tolerances from that README).

Every level is checked: PIL resize (exact), torch-mode resize and model input, the resampled position embedding,
the hidden state after block 0, features of both resize modes, EDM2's float64 mu/sigma and its FD (end to end and
from its own statistics, whose covariances are singular).  Weights: the tiny fixture checkpoint regenerated from
its recipe (checked against the recipe's per-key sums; bit for bit against the shared file when it is present), and
the full-size ViT-L/14 recipe (``-m slow``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import FIXTURES, SHARED
from varbench.errors import VarbenchError
from varbench.features import dinov2, inception
from varbench.features.base import DINOV2, FeatureExtractor
from varbench.features.vit import DinoViT, ViTConfig, infer_config, resample_pos_embed
from varbench.metrics.fid import RunningMoments, feature_statistics, frechet_distance

HERE = FIXTURES / "dinov2"
SHARED_DINOV2 = SHARED / "fixtures" / "dinov2"
MODES = ("torch", "pil")
GROUPS = ("g256", "g512", "godd")
FEATURE_ATOL = 1e-5  # tiny features (README: the pre-2025 attention path alone moves them 9.5e-7)
VITL_ATOL = 2e-5  # ViT-L/14 recipe features over 24 blocks
INPUT_ATOL = 1e-5  # torch-mode model input
STATS_ATOL = 1e-6  # mu, sigma end to end
FD_RTOL_E2E = 1e-6
FD_RTOL_STATS = 1e-8  # FD from EDM2's own statistics


@pytest.fixture(scope="module")
def gold() -> dict[str, np.ndarray]:
    with np.load(HERE / "goldens.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def meta() -> dict:
    return json.loads((HERE / "goldens.json").read_text())


def image(name: str) -> np.ndarray:
    return np.asarray(Image.open(HERE / "images" / f"{name}.png").convert("RGB"))


def tiles(name: str, tile: int = 24) -> np.ndarray:
    """The FD set mosaics back to (N, tile, tile, 3) in row-major order."""
    m = image(name)
    rows, cols = m.shape[0] // tile, m.shape[1] // tile
    return m.reshape(rows, tile, cols, tile, 3).transpose(0, 2, 1, 3, 4).reshape(rows * cols, tile, tile, 3)


def group(g: str) -> np.ndarray:
    """The kept images of a fixture group, uint8 (n, H, W, 3)."""
    names = sorted(p.stem for p in (HERE / "images").glob(f"{g}_*.png"))
    return np.stack([image(n) for n in names])


@pytest.fixture(scope="module")
def tiny_sd(meta) -> dict:
    return dinov2.random_state_dict(meta["weights_recipe_seed"])


@pytest.fixture(scope="module")
def extractors(tiny_sd, meta) -> dict:
    sha = meta["source"]["dinov2_tiny_pretrain.pth"]["sha256"]
    heads = meta["config"]["num_heads"]
    return {m: dinov2.DINOv2Extractor(tiny_sd, weights_sha256=sha, heads=heads, resize=m) for m in MODES}


def check_recipe(sd: dict, recipe_check: dict) -> None:
    assert list(sd) == list(recipe_check)
    for key, check in recipe_check.items():
        t = sd[key]
        assert list(t.shape) == check["shape"], key
        assert t.flatten()[:4].tolist() == check["first"], key
        np.testing.assert_allclose(t.double().sum().item(), check["sum"], rtol=1e-9, atol=1e-9, err_msg=key)
        np.testing.assert_allclose(t.double().abs().sum().item(), check["abs_sum"], rtol=1e-9, err_msg=key)


def test_recipe_regenerates_the_tiny_checkpoint(tiny_sd, meta):
    assert list(tiny_sd) == meta["state_dict_keys"]
    assert sum(v.numel() for v in tiny_sd.values()) == meta["num_params"] == 225_856
    check_recipe(tiny_sd, meta["recipe_check"])


def test_network_has_the_official_vitl14_layout(meta):
    shapes = {k: v["shape"] for k, v in meta["vitl14_recipe"]["recipe_check"].items()}
    cfg = ViTConfig(width=1024, depth=24, heads=16, mlp_hidden=4096)
    with torch.device("meta"):
        ours = {k: list(v.shape) for k, v in DinoViT(cfg).state_dict().items()}
    assert ours == shapes and len(ours) == meta["vitl14_recipe"]["num_keys"] == 343
    assert sum(int(np.prod(s)) for s in ours.values()) == meta["vitl14_recipe"]["num_params"]
    fake = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    assert infer_config(fake) == cfg and dinov2.arch_name(cfg) == "vitl14"


def test_config_is_read_from_the_state_dict(tiny_sd):
    assert infer_config(tiny_sd, heads=2) == ViTConfig(width=64, depth=2, heads=2, mlp_hidden=256, pos_grid=37)
    assert infer_config(tiny_sd).heads == 1  # width / 64, the released rule; the tiny model needs heads=2
    with pytest.raises(VarbenchError, match="3 heads do not divide the width 64"):
        infer_config(tiny_sd, heads=3)
    narrow = {**tiny_sd, "patch_embed.proj.weight": torch.empty(48, 3, 14, 14)}
    with pytest.raises(VarbenchError, match="--dinov2-heads"):
        infer_config(narrow)


def test_pos_embed_is_resampled_the_official_way(extractors, tiny_sd, gold):
    got = extractors["torch"].net.pos_embed_input
    want = torch.from_numpy(gold["internals/pos_embed_224"])
    assert got.shape == want.shape == (1, 257, 64)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert torch.equal(got[:, 0], tiny_sd["pos_embed"][:, 0])  # the CLS row is not resampled
    # the size-16 resampling (timm, register models) is far off: the comparison above discriminates
    sized = torch.nn.functional.interpolate(
        tiny_sd["pos_embed"][:, 1:].reshape(1, 37, 37, 64).permute(0, 3, 1, 2), size=(16, 16), mode="bicubic")
    assert (sized.permute(0, 2, 3, 1).reshape(1, 256, 64) - want[:, 1:]).abs().max() > 0.1
    # an already matching grid is used as is, and the output dtype is the input's
    assert resample_pos_embed(want, 16) is want
    assert resample_pos_embed(tiny_sd["pos_embed"].double(), 16).dtype == torch.float64


def test_pil_resize_is_exact(gold):
    for g in GROUPS:
        resized = dinov2.resize(group(g), "pil").numpy()
        assert resized.dtype == np.uint8 and resized.shape[1:] == (3, 224, 224)
        np.testing.assert_array_equal(resized[:, :, 112], gold[f"summary/pil/{g}/resized_uint8/row112"], err_msg=g)
        if f"summary/pil/{g}/resized_uint8/sum_per_channel" in gold:
            sums = resized.astype(np.float64).sum(axis=(0, 2, 3))
            np.testing.assert_array_equal(sums, gold[f"summary/pil/{g}/resized_uint8/sum_per_channel"], err_msg=g)
    np.testing.assert_array_equal(dinov2.resize(group("godd"), "pil").numpy(), gold["pil_resized_uint8/godd_0"])


@pytest.mark.parametrize("mode", MODES)
def test_model_input_matches_edm2(mode, gold):
    for g in GROUPS:
        imgs = group(g)
        x = dinov2.preprocess(imgs, mode).numpy()
        assert x.dtype == np.float32 and x.shape == (len(imgs), 3, 224, 224)
        np.testing.assert_allclose(x[:, :, 112], gold[f"summary/{mode}/{g}/model_input/row112"], rtol=0,
                                   atol=INPUT_ATOL, err_msg=g)
        key = f"summary/{mode}/{g}/model_input/"
        if key + "sum_per_channel" in gold:  # whole-group statistics
            np.testing.assert_allclose(x.astype(np.float64).sum(axis=(0, 2, 3)), gold[key + "sum_per_channel"],
                                       rtol=1e-7, err_msg=g)
            np.testing.assert_allclose([x.min(), x.max()], [gold[key + "min"], gold[key + "max"]], atol=INPUT_ATOL)
        if mode == "torch":
            resized = dinov2.resize(imgs, "torch").numpy()
            np.testing.assert_allclose(resized[:, :, 112], gold[f"summary/torch/{g}/resized/row112"], rtol=0,
                                       atol=255 * INPUT_ATOL, err_msg=g)
            if g == "godd":  # no clamp and no rounding: the bicubic overshoot survives (-14.6 ... 274.3 here)
                want = [gold["summary/torch/godd/resized/min"], gold["summary/torch/godd/resized/max"]]
                np.testing.assert_allclose([resized.min(), resized.max()], want, atol=255 * INPUT_ATOL)
                assert resized.min() < 0 and resized.max() > 255


def test_hidden_state_after_block0(extractors, gold):
    net = extractors["torch"].net
    with torch.no_grad():
        x = net.blocks[0](net.tokens(dinov2.preprocess(group("g256")[:1], "torch")))
    torch.testing.assert_close(x, torch.from_numpy(gold["internals/hidden_after_block0"]), atol=FEATURE_ATOL, rtol=0)


@pytest.mark.parametrize("mode", MODES)
def test_features_match_edm2(mode, extractors, gold, one_thread):
    ex = extractors[mode]
    for g in GROUPS:
        imgs = group(g)
        feats = ex.extract(imgs)[DINOV2]
        want = gold[f"features/{mode}/{g}"]
        assert feats.dtype == np.float32 and feats.shape == want.shape == (len(imgs), 64)
        np.testing.assert_allclose(feats, want, rtol=0, atol=FEATURE_ATOL, err_msg=f"{mode} {g}")
        singles = np.concatenate([ex.extract(imgs[i:i + 1])[DINOV2] for i in range(len(imgs))])
        np.testing.assert_array_equal(singles, feats, err_msg=f"{mode} {g}: rows depend on the batch")


def test_resize_mode_and_heads_change_the_features(extractors, tiny_sd, gold, one_thread):
    """The feature tolerance separates the variants (README: pil vs torch 4.7e-3), so the checks above can fail."""
    imgs = group("g256")
    pil_on_torch_gold = np.abs(extractors["pil"].extract(imgs)[DINOV2] - gold["features/torch/g256"]).max()
    assert pil_on_torch_gold > 100 * FEATURE_ATOL
    one_head = dinov2.DINOv2Extractor(tiny_sd, weights_sha256="0" * 64, resize="torch")
    assert np.abs(one_head.extract(imgs)[DINOV2] - gold["features/torch/g256"]).max() > 100 * FEATURE_ATOL
    assert len({extractors["torch"].id, extractors["pil"].id, one_head.id}) == 3


@pytest.mark.parametrize("mode", MODES)
def test_fd_end_to_end_matches_edm2(mode, extractors, gold, meta, one_thread):
    stats = {}
    for s in "AB":
        imgs = tiles(f"fd_{s}")
        assert imgs.shape == (96, 24, 24, 3)
        moments = RunningMoments(64)
        parts = []
        for chunk in np.array_split(imgs, len(gold["fd/batch_sizes"])):  # EDM2's batches for N=96: [48, 48]
            parts.append(extractors[mode].extract(chunk)[DINOV2])
            moments.update(parts[-1])
        feats = np.concatenate(parts)
        np.testing.assert_allclose(feats, gold[f"fd/{mode}/features/{s}"], rtol=0, atol=FEATURE_ATOL)
        mu, sigma = feature_statistics(feats)
        for m, c in ((mu, sigma), (moments.mean, moments.cov)):
            np.testing.assert_allclose(m, gold[f"fd/{mode}/mu/{s}"], rtol=0, atol=STATS_ATOL)
            np.testing.assert_allclose(c, gold[f"fd/{mode}/sigma/{s}"], rtol=0, atol=STATS_ATOL)
        stats[s] = (moments.mean, moments.cov)
    fd = frechet_distance(*stats["A"], *stats["B"])
    np.testing.assert_allclose(fd, meta["fd"][mode]["fd"], rtol=FD_RTOL_E2E)


@pytest.mark.parametrize("method", ["eig", "sqrtm"])
@pytest.mark.parametrize("mode", MODES)
def test_fd_of_edm2_statistics_with_singular_covariances(mode, method, gold, meta):
    a = gold[f"fd/{mode}/mu/A"], gold[f"fd/{mode}/sigma/A"]
    b = gold[f"fd/{mode}/mu/B"], gold[f"fd/{mode}/sigma/B"]
    # the final LayerNorm makes every covariance singular (rank D - 1): the case Cholesky-based FD code fails on
    assert np.linalg.matrix_rank(a[1]) == meta["fd"][mode]["sigma_A_rank_numpy"] == 63
    np.testing.assert_allclose(frechet_distance(*a, *b, method=method), meta["fd"][mode]["fd"], rtol=FD_RTOL_STATS)
    np.testing.assert_allclose(frechet_distance(*b, *a, method=method), meta["fd"][mode]["fd_B_as_stats_A_as_ref"],
                               rtol=FD_RTOL_STATS)


def test_extractor_protocol_id_and_description(extractors, meta):
    ex = extractors["torch"]
    assert isinstance(ex, FeatureExtractor)
    assert ex.dims == {DINOV2: 64}
    sha = meta["source"]["dinov2_tiny_pretrain.pth"]["sha256"]
    assert ex.id == f"dinov2-vit64x2h2p14g37m256-torch-{sha[:12]}@{dinov2.FEATURE_VERSION}"
    assert extractors["pil"].id == ex.id.replace("-torch-", "-pil-")
    desc = ex.describe()
    assert desc["id"] == ex.id and desc["weights_sha256"] == sha and desc["resize_mode"] == "torch"
    assert desc["architecture"] == {"width": 64, "depth": 2, "heads": 2, "patch_size": 14, "mlp_hidden": 256,
                                    "pos_grid": 37}
    json.dumps(desc)  # goes into stats files and results as is


def test_extract_refuses_bad_input_and_options(extractors, tiny_sd):
    with pytest.raises(VarbenchError, match="uint8"):
        extractors["torch"].extract(np.zeros((1, 32, 32, 3), dtype=np.float32))
    with pytest.raises(VarbenchError, match="uint8"):
        extractors["torch"].extract(np.zeros((1, 3, 32, 32), dtype=np.uint8))
    with pytest.raises(VarbenchError, match="unknown DINOv2 resize mode 'bilinear'"):
        dinov2.DINOv2Extractor(tiny_sd, weights_sha256="0" * 64, heads=2, resize="bilinear")
    with pytest.raises(VarbenchError, match="feature dtype"):
        dinov2.DINOv2Extractor(tiny_sd, weights_sha256="0" * 64, heads=2, dtype="fp16")


def test_extraction_runs_with_tf32_off(extractors):
    seen = []
    hook = extractors["torch"].net.register_forward_pre_hook(lambda m, a: seen.append(inception.precision_settings()))
    try:
        extractors["torch"].extract(group("godd"))
    finally:
        hook.remove()
    assert seen and seen[0]["cuda_matmul_fp32_precision"] == "ieee" and seen[0]["cudnn_conv_fp32_precision"] == "ieee"


def test_fp64_features_agree(tiny_sd, gold, one_thread):
    ex = dinov2.DINOv2Extractor(tiny_sd, weights_sha256="0" * 64, heads=2, dtype="fp64")
    feats = ex.extract(group("g256"))[DINOV2]
    assert feats.dtype == np.float64
    np.testing.assert_allclose(feats, gold["features/torch/g256"], rtol=0, atol=FEATURE_ATOL)


def test_from_file_loads_strictly(tmp_path, tiny_sd, extractors):
    path = tmp_path / "dinov2_tiny_pretrain.pth"
    torch.save(tiny_sd, path)
    ex = dinov2.DINOv2Extractor.from_file(path, heads=2, resize="pil")
    assert ex.weights_path == str(path) and ex.id == extractors["pil"].id.replace(
        extractors["pil"].weights_sha256[:12], ex.weights_sha256[:12])
    np.testing.assert_array_equal(ex.extract(group("godd"))[DINOV2], extractors["pil"].extract(group("godd"))[DINOV2])
    reg = {**tiny_sd, "register_tokens": torch.zeros(1, 4, 64)}  # a *_reg4 checkpoint
    del reg["mask_token"]
    torch.save(reg, path)
    with pytest.raises(VarbenchError, match=r"1 missing keys: mask_token; 1 unexpected keys: register_tokens"):
        dinov2.DINOv2Extractor.from_file(path, heads=2)


def test_damaged_weight_files_give_one_line(tmp_path, tiny_sd):
    good = tmp_path / "good.pth"
    torch.save(tiny_sd, good)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "page.pth"
    text.write_text("<html>404</html>")
    for path, why in ((truncated, "truncated"), (text, "not a torch file")):
        with pytest.raises(VarbenchError, match=why) as e:
            dinov2.DINOv2Extractor.from_file(path, heads=2)
        assert "\n" not in str(e.value)


def test_offline_missing_weights_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(tmp_path / "dnnlib"))
    with pytest.raises(VarbenchError) as e:
        dinov2.resolve_weights(None)
    msg = str(e.value)
    assert "\n" not in msg and "VARBENCH_OFFLINE" in msg
    assert dinov2.OFFICIAL_URL in msg and dinov2.OFFICIAL_FILENAME in msg and "--dinov2-weights PATH" in msg
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / dinov2.OFFICIAL_FILENAME) in msg
    with pytest.raises(VarbenchError, match="not found.*--dinov2-weights"):
        dinov2.resolve_weights(tmp_path / "nope.pth")


def test_no_network_is_one_clear_line_without_waiting(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(tmp_path / "dnnlib"))
    monkeypatch.setenv("VARBENCH_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with pytest.raises(VarbenchError, match=r"dl.fbaipublicfiles.com cannot be reached .*: download https://"):
        dinov2.resolve_weights(None)  # conftest blocks sockets: the probe fails at once
    assert not dinov2.hub_weights_path().exists()  # nothing half-downloaded


def test_weights_come_from_the_torch_hub_cache_then_edm2s(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(tmp_path / "dnnlib"))
    edm2 = tmp_path / "dnnlib" / "torch_hub" / "checkpoints" / dinov2.OFFICIAL_FILENAME
    edm2.parent.mkdir(parents=True)
    edm2.write_bytes(b"x")
    assert dinov2.resolve_weights(None) == edm2 == dinov2.edm2_cache_path()
    hub = tmp_path / "torch" / "hub" / "checkpoints" / dinov2.OFFICIAL_FILENAME
    hub.parent.mkdir(parents=True)
    hub.write_bytes(b"x")
    assert dinov2.resolve_weights(None) == hub == dinov2.hub_weights_path()
    assert dinov2.resolve_weights(edm2) == edm2  # an explicit path wins


@pytest.mark.slow
def test_vitl14_recipe_features_match_edm2(gold, meta):
    """Full-size ViT-L/14 with the fixtures' recipe weights (seed 1014, 1.2 GB; ~45 s on 2 shared cores)."""
    recipe = meta["vitl14_recipe"]
    sd = dinov2.random_state_dict(recipe["weights_recipe_seed"], 1024, 24, 16)
    check_recipe(sd, recipe["recipe_check"])
    ex = dinov2.DINOv2Extractor(sd, weights_sha256="0" * 64)
    assert ex.cfg.heads == 16 and ex.dims == {DINOV2: 1024} and ex.name.startswith("dinov2-vitl14-torch-")
    pos = ex.net.pos_embed_input.double()
    summary = recipe["pos_embed_224_summary"]
    np.testing.assert_allclose([pos.sum().item(), pos.abs().sum().item()], [summary["sum"], summary["abs_sum"]],
                               rtol=1e-9)
    assert pos[0, 1, :4].tolist() == pytest.approx(summary["first"], abs=1e-7)  # the first resampled row
    del sd
    for mode in MODES:
        ex.resize = mode
        for g in ("g256", "g512"):
            feats = ex.extract(group(g))[DINOV2]
            np.testing.assert_allclose(feats, gold[f"vitl14/{mode}/{g}"], rtol=0, atol=VITL_ATOL, err_msg=f"{mode} {g}")


@pytest.mark.skipif(not SHARED_DINOV2.is_dir(), reason="../shared/fixtures/dinov2 not present")
def test_full_shared_fixture(extractors, one_thread):
    """The files the lean goldens came from: the checkpoint bit for bit, full tensors, all four g256 images."""
    from varbench import checkpoint

    full = torch.load(SHARED_DINOV2 / "dinov2_tiny.pt", map_location="cpu", weights_only=True)
    stored = checkpoint.load_state_dict(SHARED_DINOV2 / "dinov2_tiny_pretrain.pth")
    ours = dinov2.random_state_dict(full["weights_recipe_seed"])
    assert list(stored) == list(ours) and all(torch.equal(stored[k], ours[k]) for k in stored)
    for s in "AB":  # the PNG copies are lossless
        np.testing.assert_array_equal(tiles(f"fd_{s}"), full["fd"]["images"][s].permute(0, 2, 3, 1).numpy())
    for g in GROUPS:
        kept = group(g)
        np.testing.assert_array_equal(kept, full["images"][g][: len(kept)].permute(0, 2, 3, 1).numpy())
    pre = full["preprocess"]
    g256 = full["images"]["g256"].permute(0, 2, 3, 1).numpy()
    torch.testing.assert_close(dinov2.preprocess(g256[:1], "torch"), pre["model_input/torch/g256_0"],
                               atol=INPUT_ATOL, rtol=0)
    for g in GROUPS:
        imgs = full["images"][g].permute(0, 2, 3, 1).numpy()
        assert torch.equal(dinov2.resize(imgs[:1], "pil"), pre[f"pil_resized_uint8/{g}_0"]), g
        for mode in MODES:
            np.testing.assert_allclose(extractors[mode].extract(imgs)[DINOV2], full["features"][mode][g].numpy(),
                                       rtol=0, atol=FEATURE_ATOL, err_msg=f"{mode} {g}")
    ex = dinov2.DINOv2Extractor.from_file(SHARED_DINOV2 / "dinov2_tiny_pretrain.pth", heads=2)
    assert ex.weights_sha256 == full["checkpoint_sha256"] and ex.id == extractors["torch"].id
