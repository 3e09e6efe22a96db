"""Loading LlamaGen checkpoints: every official wrapping, architecture inference, and bad files as one clear line."""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import pytest
import torch

from varbench.baselines.convert import clean_gpt_state_dict, infer_gpt_config, infer_vq_config
from varbench.generators.protocol import build
from varbench.generators.sampling import resolve
from varbench.baselines.llamagen import GPT, GPT_SIZES, GPTConfig, gpt_config
from varbench.recipe import fill_with_recipe
from varbench.baselines.vq16 import VQConfig, VQModel
from varbench.generators import zoo
from varbench.errors import VarbenchError

TINY = GPTConfig(dim=64, n_layer=2, n_head=4)
REDUCED_VQ = VQConfig(ch=32, z_channels=64)


pytestmark = pytest.mark.usefixtures("one_thread")


class Evil:
    """Any class outside the safe loader's allowlist is refused (weights_only=True)."""


def custom_spec() -> zoo.GeneratorSpec:
    """The spec `varbench generate --gpt-ckpt F --vq-ckpt F` builds."""
    return zoo.custom_llamagen(256)


def build_llamagen(spec, paths, *, n_head=None, image_size=None, dtype="fp32", use_kv_cache=True, **sampling):
    """As `varbench generate` builds it: sampling options checked against the spec's defaults."""
    options = {"image_size": image_size, "use_kv_cache": use_kv_cache}
    if spec.config is None:
        options["num_heads"] = n_head
    return build(spec, paths, dtype=dtype, sampling=resolve(spec, sampling), **options)


def recipe_sd(cls, cfg, seed) -> dict:
    with torch.device("meta"):
        model = cls(cfg)
    return fill_with_recipe(model, seed).state_dict()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("llamagen_ckpt")
    gpt, vq = recipe_sd(GPT, TINY, 1), recipe_sd(VQModel, REDUCED_VQ, 3)
    out = {"gpt_sd": gpt, "vq_sd": vq, "dir": d}
    for name, obj in {
        # DDP run, as train_c2i.py saves it: {model, optimizer, steps, args (an argparse.Namespace)}
        "gpt_model": {"model": gpt, "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "params": [0, 1]}]},
                      "steps": 7, "args": argparse.Namespace(gpt_model="GPT-B", image_size=256)},
        "gpt_module": {"module": gpt},
        "gpt_state_dict": {"state_dict": gpt},
        "gpt_raw": gpt,  # FSDP consolidated (XXL, 3B)
        "gpt_ddp_prefix": {"model": {f"module.{k}": v for k, v in gpt.items()}},
        "gpt_with_extras": {**gpt, "freqs_cis": torch.zeros(257, 8, 2),
                            "layers.0.attention.kv_cache.k_cache": torch.zeros(2, 4, 264, 16)},
        "vq": {"model": vq},
    }.items():
        torch.save(obj, d / f"{name}.pt")
        out[name] = d / f"{name}.pt"
    return out


def save(files, name: str, obj) -> Path:
    path = files["dir"] / f"{name}.pt"
    torch.save(obj, path)
    return path


def error_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg and msg  # one line
    return msg


@pytest.mark.parametrize("wrapping", ["gpt_model", "gpt_module", "gpt_state_dict", "gpt_raw", "gpt_ddp_prefix",
                                      "gpt_with_extras"])
def test_every_official_wrapping_loads_strictly(files, wrapping):
    g = build_llamagen(custom_spec(), {"gpt": files[wrapping], "vq": files["vq"]}, n_head=4, image_size=256)
    sd = g.gpt.state_dict()
    assert sd.keys() == files["gpt_sd"].keys()
    assert all(torch.equal(sd[k], files["gpt_sd"][k]) for k in sd)
    d = g.describe()
    assert d["random_weights"] is False and d["checkpoints"]["gpt"]["path"] == str(files[wrapping])
    assert len(d["checkpoints"]["vq"]["sha256"]) == 64


def test_custom_files_reproduce_the_fixture_images(files):
    """Architecture inferred from the files (+ n_head, which shapes cannot tell): same images as the official code."""
    ref = torch.load(Path(__file__).parent / "fixtures" / "llamagen" / "goldens_vq.pt", weights_only=True)
    g = build_llamagen(custom_spec(), {"gpt": files["gpt_model"], "vq": files["vq"]}, n_head=4, image_size=256,
                       cfg=4.0, top_k=2000)
    assert g.gpt.config == TINY and g.vq.config == REDUCED_VQ and g.resolution == 256
    images = g.generate_official([3, 980], 0)
    diff = abs(images.astype(int) - ref["reduced"]["gpt_tiny_cfg4_uint8_hwc"].numpy())
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


@pytest.mark.parametrize("size", list(GPT_SIZES))
def test_inference_recovers_every_released_gpt(size):
    with torch.device("meta"):
        sd = GPT(gpt_config(size)).state_dict()
    assert infer_gpt_config(sd, grid=24) == gpt_config(size, grid=24)


def test_inference_recovers_vq16_and_nonstandard_widths():
    with torch.device("meta"):
        assert infer_vq_config(VQModel(VQConfig()).state_dict()) == VQConfig()
        odd = VQConfig(codebook_size=4096, embed_dim=32, z_channels=32, ch=64, ch_mult=(1, 2, 4), num_res_blocks=1,
                       codebook_used_len=0)
        assert infer_vq_config(VQModel(odd).state_dict()) == odd
        wide = GPTConfig(dim=512, n_layer=3, n_head=8, vocab_size=4096, num_classes=10)
        assert infer_gpt_config(GPT(wide).state_dict(), grid=16) == wide  # width/64 heads when not a released size
    assert clean_gpt_state_dict({"freqs_cis": 1, "causal_mask": 2, "a.kv_cache.v_cache": 3, "norm.weight": 4}) == {
        "norm.weight": 4}


def test_missing_unexpected_and_misshaped_keys_are_listed(files):
    gpt = dict(files["gpt_sd"])
    del gpt["layers.1.ffn_norm.weight"]
    gpt["layers.0.attention.wo.bias"] = torch.zeros(64)
    gpt["norm.weight"] = torch.ones(65)
    path = save(files, "bad_keys", {"model": gpt})
    with pytest.raises(VarbenchError) as e:
        build_llamagen(custom_spec(), {"gpt": path, "vq": files["vq"]})
    msg = error_line(e)
    assert str(path) in msg
    assert "1 missing keys: layers.1.ffn_norm.weight" in msg
    assert "1 unexpected keys: layers.0.attention.wo.bias" in msg
    assert "norm.weight (65,) vs expected (64,)" in msg


def test_vq_missing_key(files):
    vq = {k: v for k, v in files["vq_sd"].items() if k != "decoder.conv_out.bias"}
    path = save(files, "vq_missing", {"model": vq})
    with pytest.raises(VarbenchError) as e:
        build_llamagen(custom_spec(), {"gpt": files["gpt_raw"], "vq": path})
    assert "missing keys: decoder.conv_out.bias" in error_line(e)


def test_zoo_model_with_a_wrong_file_fails_on_shapes(files):
    with pytest.raises(VarbenchError) as e:
        build_llamagen(zoo.get("llamagen_b"), {"gpt": files["gpt_model"], "vq": files["vq"]})
    msg = error_line(e)
    assert "shape mismatches" in msg and "tok_embeddings.weight (16384, 64) vs expected (16384, 768)" in msg
    assert "missing keys: layers.2." in msg


def test_swapped_or_foreign_files(files):
    with pytest.raises(VarbenchError, match="has no 'tok_embeddings.weight'.*LlamaGen c2i GPT") as e:
        build_llamagen(custom_spec(), {"gpt": files["vq"], "vq": files["gpt_raw"]})
    error_line(e)
    var_like = save(files, "var_like", {"class_emb.weight": torch.zeros(1001, 64), "head.weight": torch.zeros(4096, 64)})
    with pytest.raises(VarbenchError, match="is it a LlamaGen"):
        build_llamagen(custom_spec(), {"gpt": var_like, "vq": files["vq"]})
    with pytest.raises(VarbenchError, match="is it a LlamaGen VQ tokenizer"):
        build_llamagen(custom_spec(), {"gpt": files["gpt_raw"], "vq": var_like})


def test_vocabulary_mismatch(files):
    vq = dict(files["vq_sd"])
    vq["quantize.embedding.weight"] = torch.randn(4096, 8)
    path = save(files, "vq_4096", vq)
    with pytest.raises(VarbenchError, match="predicts 16384 tokens but .* has 4096 codes") as e:
        build_llamagen(custom_spec(), {"gpt": files["gpt_raw"], "vq": path})
    error_line(e)


def test_unreadable_files(files):
    empty = files["dir"] / "empty.pt"
    empty.write_bytes(b"")
    garbage = files["dir"] / "garbage.pt"
    garbage.write_bytes(b"not a torch file at all" * 10)
    listing = save(files, "a_list", [1, 2, 3])

    evil = files["dir"] / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"model": Evil()}, f, protocol=2)
    for path, pattern in [(empty, "empty"), (garbage, "garbage.pt"), (listing, "not a state dict"),
                          (evil, "refused by the safe loader"), (files["dir"] / "nope.pt", "not found")]:
        with pytest.raises(VarbenchError, match=pattern) as e:
            build_llamagen(custom_spec(), {"gpt": path, "vq": files["vq"]})
        error_line(e)


def test_custom_needs_both_files_and_good_options(files):
    with pytest.raises(VarbenchError, match="--vq-ckpt"):
        build_llamagen(custom_spec(), {"gpt": files["gpt_raw"]})
    with pytest.raises(VarbenchError, match="multiple of 16"):
        build_llamagen(custom_spec(), {"gpt": files["gpt_raw"], "vq": files["vq"]}, image_size=250)
    with pytest.raises(VarbenchError, match="--foo does not apply"):
        build_llamagen(custom_spec(), {"gpt": files["gpt_raw"], "vq": files["vq"]}, foo=1)
    with pytest.raises(VarbenchError, match="--more-smooth does not apply"):
        build_llamagen(custom_spec(), {"gpt": files["gpt_raw"], "vq": files["vq"]}, more_smooth=True)
    with pytest.raises(VarbenchError, match=r"--top-p must be in \[0, 1\]"):
        build_llamagen(custom_spec(), {"gpt": files["gpt_raw"], "vq": files["vq"]}, top_p=1.5)
    with pytest.raises(VarbenchError, match="--cfg must be a number"):
        build_llamagen(custom_spec(), {"gpt": files["gpt_raw"], "vq": files["vq"]}, cfg="strong")
    with pytest.raises(VarbenchError, match="not divisible by 5 heads.*--num-heads"):
        build_llamagen(custom_spec(), {"gpt": files["gpt_raw"], "vq": files["vq"]}, n_head=5)
    with pytest.raises(VarbenchError, match="cannot infer the number of heads.*--num-heads"):
        narrow = {k: v for k, v in torch.load(files["gpt_raw"], weights_only=True).items()}
        narrow = {k: (v[:, :40] if k.endswith("tok_embeddings.weight") else v) for k, v in narrow.items()}
        odd = files["dir"] / "gpt_width40.pt"
        torch.save(narrow, odd)
        build_llamagen(custom_spec(), {"gpt": odd, "vq": files["vq"]})


def test_zoo_weights_offline_miss_names_every_file():
    with pytest.raises(VarbenchError, match="c2i_XL_384.pt, vq_ds16_c2i.pt not in .*--gpt-ckpt PATH --vq-ckpt PATH") as e:
        build_llamagen(zoo.get("llamagen_xl"), {})
    error_line(e)


def test_bf16_and_options_pass_through(files):
    g = build_llamagen(custom_spec(), {"gpt": files["gpt_raw"], "vq": files["vq"]}, n_head=4, dtype="bf16",
                       image_size=64, use_kv_cache=False, cfg=None, top_k=5)
    d = g.describe()
    assert d["dtype"] == "bf16" and d["tokenizer"]["ch"] == 32 and d["use_kv_cache"] is False
    assert g.gpt.tok_embeddings.weight.dtype == torch.bfloat16
    assert d["sampling"]["top_k"] == 5 and d["grid"] == 4 and d["resize"].startswith("bicubic 64->256")
    assert d["sampling"]["cfg"] == 1.5  # custom files: sample_c2i_ddp.py's default cfg
    images = g.generate([1, 2], [11, 12])
    assert images.shape == (2, 256, 256, 3)


def test_zoo_entries():
    b, xl = zoo.get("llamagen_b"), zoo.get("llamagen_xl")
    assert (b.resolution, b.steps, b.generated_resolution) == (256, 256, 256)
    assert (xl.resolution, xl.steps, xl.generated_resolution) == (256, 576, 384)
    assert [w.filename for w in xl.weights] == ["c2i_XL_384.pt", "vq_ds16_c2i.pt"]
    cfgs = {n: zoo.get(f"llamagen_{n}").sampling.cfg for n in ("b", "l", "xl", "xxl", "3b")}
    assert cfgs == {"b": 2.0, "l": 2.0, "xl": 1.75, "xxl": 1.75, "3b": 1.65}
    assert all(zoo.get(f"llamagen_{n}").sampling.guidance_rule == "constant" for n in cfgs)
    assert zoo.get("llamagen_test").random_init and not zoo.get("llamagen_b").random_init
