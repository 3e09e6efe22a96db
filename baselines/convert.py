"""Official LlamaGen checkpoints -> our modules: key clean-up, architecture inference, strict loading.

The released files are plain state dicts under ``model`` (DDP runs), ``module`` or ``state_dict``, or raw consolidated
dicts (FSDP runs: XXL, 3B); ``varbench.checkpoint.load_state_dict`` unwraps all of them.  Our key names are the official
ones, so conversion only drops entries that are not weights (a RoPE table or causal mask saved as an attribute,
KV-cache buffers left by ``setup_caches``) and then checks every remaining key and shape strictly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch
from torch import nn

from varbench.baselines.llamagen import GPT, GPTConfig
from varbench.baselines.vq16 import VQConfig, VQModel
from varbench.errors import VarbenchError, check_state_dict

# Entries some GPT checkpoints may carry that are not weights of the model.
_GPT_NON_WEIGHTS = re.compile(r"(^|\.)(freqs_cis|causal_mask)$|\.kv_cache\.[kv]_cache$")
# Heads of the released sizes (head_dim 64 except GPT-3B's 100); other widths fall back to head_dim 64.
_KNOWN_HEADS = {768: 12, 1024: 16, 1280: 20, 1536: 24, 3200: 32}


def clean_gpt_state_dict(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop non-weight entries (``freqs_cis``, ``causal_mask``, KV-cache buffers) from an official GPT state dict."""
    return {k: v for k, v in sd.items() if not _GPT_NON_WEIGHTS.search(k)}


def _require(sd: Mapping, key: str, what: str, kind: str) -> torch.Tensor:
    if key not in sd:
        sample = ", ".join(list(sd)[:3])
        raise VarbenchError(f"{what} has no {key!r} (first keys: {sample}); is it a LlamaGen {kind} checkpoint?")
    return sd[key]


def infer_gpt_config(sd: Mapping[str, torch.Tensor], grid: int, what: str = "GPT checkpoint",
                     n_head: int | None = None) -> GPTConfig:
    """Width, depth, vocabulary, classes and FFN width from the shapes.

    Shapes do not fix the number of heads: unless ``n_head`` is given, it is the released size's for a released width
    (GPT-3B: 32 heads of 100) and width / 64 otherwise (every released size but 3B has head_dim 64).
    """
    tok = _require(sd, "tok_embeddings.weight", what, "c2i GPT")
    cls = _require(sd, "cls_embedding.embedding_table.weight", what, "c2i GPT")
    w1 = _require(sd, "layers.0.feed_forward.w1.weight", what, "c2i GPT")
    vocab, dim = tok.shape
    layer_ids = {int(m.group(1)) for k in sd if (m := re.match(r"layers\.(\d+)\.", k))}
    n_layer = max(layer_ids) + 1
    n_head = n_head or _KNOWN_HEADS.get(dim)
    if n_head is not None and dim % n_head:
        raise VarbenchError(f"{what}: width {dim} is not divisible by {n_head} heads; pass --num-heads N with N "
                            f"dividing {dim}")
    if n_head is None:
        if dim % 64:
            raise VarbenchError(f"{what}: cannot infer the number of heads for width {dim} (not a released size "
                                "and not a multiple of 64); pass --num-heads N")
        n_head = dim // 64
    cfg = GPTConfig(dim=dim, n_layer=n_layer, n_head=n_head, vocab_size=vocab, num_classes=cls.shape[0] - 1, grid=grid)
    if w1.shape[0] != cfg.ffn_hidden:
        cfg = GPTConfig(**{**cfg.__dict__, "ffn_hidden_override": int(w1.shape[0])})
    return cfg


def infer_vq_config(sd: Mapping[str, torch.Tensor], what: str = "VQ checkpoint") -> VQConfig:
    """Base width, channel multipliers, res blocks, z channels and codebook from the shapes."""
    conv_in = _require(sd, "encoder.conv_in.weight", what, "VQ tokenizer")
    emb = _require(sd, "quantize.embedding.weight", what, "VQ tokenizer")
    z = _require(sd, "encoder.conv_out.weight", what, "VQ tokenizer").shape[0]
    ch = conv_in.shape[0]
    levels = sorted({int(m.group(1)) for k in sd if (m := re.match(r"encoder\.conv_blocks\.(\d+)\.", k))})
    n_res = len({m.group(1) for k in sd if (m := re.match(r"encoder\.conv_blocks\.0\.res\.(\d+)\.", k))})
    if not levels or not n_res:
        raise VarbenchError(f"{what} has no encoder.conv_blocks.*.res.* keys; is it a LlamaGen VQ tokenizer checkpoint?")
    mult = []
    for level in levels:
        width = _require(sd, f"encoder.conv_blocks.{level}.res.0.conv1.weight", what, "VQ tokenizer").shape[0]
        if width % ch:
            raise VarbenchError(f"{what}: level {level} width {width} is not a multiple of the base width {ch}")
        mult.append(width // ch)
    if any((ch * m) % 32 for m in mult):
        raise VarbenchError(f"{what}: channel widths {[ch * m for m in mult]} are not multiples of 32 (GroupNorm groups)")
    used = sd.get("quantize.codebook_used")
    return VQConfig(codebook_size=emb.shape[0], embed_dim=emb.shape[1], z_channels=z, ch=ch, ch_mult=tuple(mult),
                    num_res_blocks=n_res, codebook_used_len=0 if used is None else used.shape[0])


def load_into(model: nn.Module, sd: Mapping[str, torch.Tensor], what: str) -> nn.Module:
    """Strictly put ``sd`` (as float32, on the CPU) into ``model`` built on the meta device; returns ``model``.

    Keys and shapes are checked first, so a bad file fails with one line listing missing/unexpected/mis-shaped keys.
    """
    check_state_dict(model.state_dict(), sd, what)
    model.load_state_dict({k: v.to("cpu", torch.float32) for k, v in sd.items()}, strict=True, assign=True)
    return model


def gpt_from_state_dict(sd: Mapping[str, torch.Tensor], cfg: GPTConfig, what: str) -> GPT:
    with torch.device("meta"):
        model = GPT(cfg)
    return load_into(model, clean_gpt_state_dict(sd), what)


def vq_from_state_dict(sd: Mapping[str, torch.Tensor], cfg: VQConfig, what: str) -> VQModel:
    with torch.device("meta"):
        model = VQModel(cfg)
    return load_into(model, sd, what)
