"""LlamaGen GPT and VQ-16: exact sizes and key layouts, and the official-code goldens (recipe random weights).

Goldens: tests/fixtures/llamagen (extracted from shared/fixtures/llamagen by make_fixtures.py there).  Tolerances are
the fixture README's: logits 1e-4, VQ decoded floats 1e-4, indices exact, uint8 within 1 at a few pixels.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from varbench.baselines.llamagen import GPT, GPT_SIZES, GPTConfig, gpt_config, rope_cos_sin
from varbench.recipe import fill_with_recipe
from varbench.baselines.vq16 import VQConfig, VQModel

HERE = Path(__file__).resolve().parent / "fixtures" / "llamagen"


pytestmark = pytest.mark.usefixtures("one_thread")
PARAMS = {"B": 110_888_448, "L": 342_910_976, "XL": 774_699_520, "XXL": 1_410_972_672, "3B": 3_096_659_200}


@pytest.fixture(scope="module")
def gold():
    return torch.load(HERE / "goldens_gpt.pt", weights_only=True)


@pytest.fixture(scope="module")
def vq_gold():
    return torch.load(HERE / "goldens_vq.pt", weights_only=True)


def recipe_model(cls, cfg, seed):
    with torch.device("meta"):
        model = cls(cfg)
    return fill_with_recipe(model, seed).eval()


def tiny_config(args: dict) -> GPTConfig:
    return GPTConfig(dim=args["dim"], n_layer=args["n_layer"], n_head=args["n_head"], vocab_size=args["vocab_size"],
                     num_classes=args["num_classes"], grid=int(args["block_size"] ** 0.5))


@pytest.fixture(scope="module")
def tiny(gold):
    return recipe_model(GPT, tiny_config(gold["tiny"]["model_args"]), gold["tiny"]["weights_recipe_seed"])


def assert_summary(logits: torch.Tensor, ref: dict, tokens: torch.Tensor, tol: float = 1e-4):
    """Compare logits (B, L, V) with a fixture 'logit summary' (see shared/fixtures/llamagen/README.md)."""
    proj = torch.randn(logits.shape[-1], 8, generator=torch.Generator().manual_seed(99))
    L = ref["logsumexp"].shape[1]
    assert logits.shape[1] == L
    torch.testing.assert_close(torch.logsumexp(logits.double(), -1), ref["logsumexp"], rtol=0, atol=tol)
    torch.testing.assert_close(logits.double() @ proj.double(), ref["proj"], rtol=tol, atol=tol * 10)
    assert torch.equal(logits.argmax(-1), ref["argmax"])
    n = ref["logit_at_target"].shape[1]
    at_target = logits[:, :n].gather(-1, tokens[:, :n, None])[..., 0]
    torch.testing.assert_close(at_target, ref["logit_at_target"], rtol=0, atol=tol)
    kept = ref["logits_at_positions"]
    torch.testing.assert_close(logits[:, ref["positions"], : kept.shape[-1]], kept, rtol=0, atol=tol)


# ---------------------------------------------------------------- sizes and keys (meta device)


@pytest.mark.parametrize("size", list(GPT_SIZES))
def test_gpt_sizes_and_keys_match_official(size):
    ref = json.loads((HERE / "keys" / f"keys_gpt_{size}.json").read_text())
    for grid in (16, 24):  # 256 and 384 px checkpoints share every shape
        cfg = gpt_config(size, grid=grid)
        with torch.device("meta"):
            model = GPT(cfg)
        sd = model.state_dict()
        assert list(sd) == list(ref["state_dict"])
        assert {k: list(v.shape) for k, v in sd.items()} == ref["state_dict"]
        assert sum(p.numel() for p in model.parameters()) == PARAMS[size] == ref["n_parameters"] == cfg.num_params
    assert (cfg.head_dim, cfg.ffn_hidden) == (ref["head_dim"], ref["ffn_hidden"])


def test_vq16_keys_and_size_match_official():
    ref = json.loads((HERE / "keys" / "keys_vq16.json").read_text())
    with torch.device("meta"):
        vq = VQModel(VQConfig())
    sd = vq.state_dict()
    assert list(sd) == list(ref["state_dict"])
    assert {k: list(v.shape) for k, v in sd.items()} == ref["state_dict"]
    assert sum(p.numel() for p in vq.parameters()) == ref["n_parameters"] == 71_883_403
    assert sum(p.numel() for p in vq.encoder.parameters()) == ref["n_parameters_encoder"]
    assert sum(p.numel() for p in vq.decoder.parameters()) == ref["n_parameters_decoder"]
    assert sum(v.numel() for v in sd.values()) == ref["n_state_dict_elements"]


def test_ffn_hidden_rule():
    for dim, hidden in {64: 256, 200: 768, 768: 2048, 1024: 2816, 1280: 3584, 1536: 4096, 3200: 8704}.items():
        assert GPTConfig(dim=dim, n_layer=1, n_head=1).ffn_hidden == hidden


# ---------------------------------------------------------------- recipe weights


def assert_recipe(model: torch.nn.Module, check: dict):
    sd = model.state_dict()
    assert sorted(sd) == sorted(check)
    for key, ref in check.items():
        t = sd[key]
        assert list(t.shape) == ref["shape"], key
        assert t.flatten()[:4].tolist() == ref["first"], key
        assert t.double().sum().item() == pytest.approx(ref["sum"], rel=1e-5, abs=1e-3), key
        assert t.double().abs().sum().item() == pytest.approx(ref["abs_sum"], rel=1e-5), key


# ---------------------------------------------------------------- tiny GPT (dim 64, 2 layers, 4 heads)


def test_rope_table_matches_official(gold):
    ref = gold["tiny"]["freqs_cis"]  # (257, 8, 2): [..., 0] = cos, [..., 1] = sin; row 0 = class token
    cos, sin = rope_cos_sin(torch.arange(257), 16, 16, 10000.0)
    torch.testing.assert_close(cos, ref[..., 0], rtol=0, atol=1e-6)
    torch.testing.assert_close(sin, ref[..., 1], rtol=0, atol=1e-6)
    assert not cos[0].any() and not sin[0].any()
    ref100 = gold["hd100"]["freqs_cis"]  # head_dim 100 (GPT-3B): 25 frequencies per axis
    cos, sin = rope_cos_sin(torch.arange(257), 16, 100, 10000.0)
    torch.testing.assert_close(torch.stack([cos, sin], -1), ref100, rtol=0, atol=1e-6)


@torch.no_grad()
def test_tiny_eval_forward(gold, tiny):
    g = gold["tiny"]
    ef = g["eval_forward"]
    logits = tiny(g["labels"], g["tokens"])
    assert logits.shape == (2, 257, 16384) and logits.dtype == torch.float32
    assert_summary(logits, ef, g["tokens"])
    # intermediate states at the kept positions
    pos = ef["hidden_positions"]
    x = tiny.embed(g["labels"], g["tokens"])
    torch.testing.assert_close(x[:, pos], ef["hidden"]["h_embed"], rtol=0, atol=1e-6)
    cos, sin = rope_cos_sin(torch.arange(257), 16, 16, 10000.0)
    states = []
    for i, layer in enumerate(tiny.layers):
        x = layer(x, cos, sin, i, None, 0)
        states.append(x)
    torch.testing.assert_close(states[0][:, pos], ef["hidden"]["h_after_layer0"], rtol=0, atol=1e-5)
    torch.testing.assert_close(states[1][:, pos], ef["hidden"]["h_after_layer1"], rtol=0, atol=1e-5)
    torch.testing.assert_close(tiny.norm(states[1])[:, pos], ef["hidden"]["h_final_norm"], rtol=0, atol=1e-5)


@torch.no_grad()
def test_tiny_layer0_rope_zeroes_class_token(gold, tiny):
    g = gold["tiny"]
    ef = g["eval_forward"]
    attn = tiny.layers[0].attention
    h = tiny.layers[0].attention_norm(tiny.embed(g["labels"], g["tokens"]))
    q, k, _ = attn.wqkv(h).split(64, dim=-1)
    cos, sin = rope_cos_sin(torch.arange(257), 16, 16, 10000.0)
    from varbench.baselines.llamagen import apply_rope

    q = apply_rope(q.view(2, 257, 4, 16), cos, sin)
    k = apply_rope(k.view(2, 257, 4, 16), cos, sin)
    pos = ef["hidden_positions"]
    torch.testing.assert_close(q[:, pos], ef["layer0_q_rope"], rtol=0, atol=1e-5)
    torch.testing.assert_close(k[:, pos], ef["layer0_k_rope"], rtol=0, atol=1e-5)
    assert not q[:, 0].any() and not k[:, 0].any()


@torch.no_grad()
def test_tiny_null_class_forward_and_loss(gold, tiny):
    g = gold["tiny"]
    logits = tiny(torch.tensor([1000, 1000]), g["tokens"])
    assert_summary(logits, g["eval_forward_null_class"], g["tokens"])
    # train-mode logits without dropout equal the eval logits; the loss is the mean CE over the 512 targets
    logits = tiny(g["labels"], g["tokens"][:, :-1])
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 16384), g["tokens"].reshape(-1))
    torch.testing.assert_close(loss, g["train_loss"], rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_tiny_kv_cache_teacher_forced(gold, tiny):
    g = gold["tiny"]
    cache = tiny.new_cache(2)
    steps = [tiny.step(cache, labels=g["labels"])]
    for t in range(255):
        steps.append(tiny.step(cache, tokens=g["tokens"][:, t : t + 1]))
    logits = torch.stack(steps, dim=1)  # (2, 256, V)
    assert_summary(logits, g["kv_cache_teacher_forced"], g["tokens"])
    # a multi-token chunk after the prefill (causal mask offset by the cached length) gives the same logits
    cache = tiny.new_cache(2)
    tiny.step(cache, labels=g["labels"])
    tiny.step(cache, tokens=g["tokens"][:, :100])
    chunk = tiny.step(cache, tokens=g["tokens"][:, 100:200])
    torch.testing.assert_close(chunk, logits[:, 200], rtol=0, atol=1e-4)


# ---------------------------------------------------------------- real-shape GPTs: head_dim 100 and GPT-B


@pytest.mark.parametrize("which", ["hd100", "B"])
@torch.no_grad()
def test_recipe_gpt_eval_forward(gold, which):
    g = gold[which]
    cfg = gpt_config("B") if which == "B" else GPTConfig(dim=200, n_layer=2, n_head=2)
    assert cfg.head_dim == (64 if which == "B" else 100)
    model = recipe_model(GPT, cfg, g["weights_recipe_seed"])
    assert_recipe(model, g["recipe_check"])
    assert_summary(model(g["labels"], g["tokens"]), g["eval_forward"], g["tokens"])


# ---------------------------------------------------------------- VQ tokenizer


def vq_input():
    return torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(4)) * 2 - 1


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    return torch.clamp(127.5 * images + 128.0, 0, 255).permute(0, 2, 3, 1).to(torch.uint8)


def assert_uint8_close(got: torch.Tensor, ref: torch.Tensor):
    diff = (got.int() - ref.int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 1e-3


@pytest.fixture(scope="module")
def reduced_vq(vq_gold):
    g = vq_gold["reduced"]
    cfg = VQConfig(ch=g["hidden_ch"], z_channels=g["config"]["z_channels"])
    return recipe_model(VQModel, cfg, g["weights_recipe_seed"])


@torch.no_grad()
def test_reduced_vq_encode_decode(vq_gold, reduced_vq):
    g, s = vq_gold["reduced"], vq_gold["pixel_stride"]
    x = vq_input()
    enc = reduced_vq.encoder(x)
    torch.testing.assert_close(enc, g["encoder_out"], rtol=0, atol=1e-4)
    torch.testing.assert_close(reduced_vq.quant_conv(enc), g["quant_conv_out"], rtol=0, atol=1e-5)
    quant, idx = reduced_vq.encode(x)
    assert torch.equal(idx, g["indices"])
    torch.testing.assert_close(quant, g["quant"], rtol=0, atol=1e-5)
    decoded = reduced_vq.decode_code(idx, 16)
    torch.testing.assert_close(decoded[..., ::s, ::s], g["decoded_sub"], rtol=0, atol=1e-4)
    assert_uint8_close(to_uint8(decoded), g["decoded_uint8_hwc"])


@torch.no_grad()
def test_reduced_vq_decodes_generated_tokens(vq_gold, reduced_vq):
    g, s = vq_gold["reduced"], vq_gold["pixel_stride"]
    decoded = reduced_vq.decode_code(g["gpt_tiny_cfg4_tokens"], 16)  # int32 (2, 256) as generate() returns
    torch.testing.assert_close(decoded[:1, :, ::s, ::s], g["gpt_tiny_cfg4_decoded_first_sub"], rtol=0, atol=1e-4)
    assert_uint8_close(to_uint8(decoded), g["gpt_tiny_cfg4_uint8_hwc"])


@torch.no_grad()
def test_vq16_recipe_encode_decode(vq_gold):
    g, s = vq_gold["vq16"], vq_gold["pixel_stride"]
    vq = recipe_model(VQModel, VQConfig(), g["weights_recipe_seed"])
    assert_recipe(vq, g["recipe_check"])
    quant, idx = vq.encode(vq_input())
    margin = g["dist_best_second"][:, 1] - g["dist_best_second"][:, 0]
    mismatched = (idx != g["indices"]).nonzero().flatten()
    assert all(margin[i] < 1e-4 for i in mismatched), "index differs where the nearest code is not a near-tie"
    torch.testing.assert_close(quant, g["quant"], rtol=0, atol=1e-5)
    decoded = vq.decode_code(g["indices"], 16)
    torch.testing.assert_close(decoded[..., ::s, ::s], g["decoded_sub"], rtol=0, atol=1e-4)
    assert_uint8_close(to_uint8(decoded), g["decoded_uint8_hwc"])
