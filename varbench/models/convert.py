"""Official checkpoint -> varbench modules: infer the architecture from a state dict, check every key and shape,
then load strictly (like nanoGPT's ``from_pretrained``).

varbench's VAR/VQVAE modules use the official parameter names, so the mapping is the identity except for:
* ``attn_bias_for_masking`` (VAR): a buffer fully determined by ``patch_nums``; rebuilt when a file omits it and
  checked when present;
* ``quantize.ema_vocab_hit_SV`` (VAE): a training statistic shaped (num_scales, vocab); upstream silently resizes it,
  we keep our own zeros when the number of scales differs.
No file IO here: callers pass state dicts (``varbench.checkpoint.load_state_dict`` reads them).
"""

from __future__ import annotations

import re

import torch

from varbench.errors import VarbenchError, check_state_dict
from varbench.models.var import VAR, VARConfig, level_ids_and_mask
from varbench.models.vqvae import VQVAE, VQVAEConfig

_VAR_MARKERS = ("class_emb.weight", "pos_1LC", "head.weight")
_VAE_MARKERS = ("encoder.conv_in.weight", "quantize.embedding.weight")
_LLAMAGEN_MARKERS = ("tok_embeddings.weight", "cls_embedding.embedding_table.weight")


def _looks_like(sd: dict, markers) -> bool:
    return any(m in sd for m in markers)


def _wrong_file(sd: dict, what: str, expect: str) -> VarbenchError | None:
    if expect != "var" and _looks_like(sd, _VAR_MARKERS):
        return VarbenchError(f"{what} is a VAR transformer checkpoint, not a {expect.upper()}; pass it with --var-ckpt")
    if expect != "vae" and _looks_like(sd, _VAE_MARKERS):
        return VarbenchError(f"{what} is a VQVAE tokenizer checkpoint, not a {expect.upper()}; pass it with --vae-ckpt")
    if _looks_like(sd, _LLAMAGEN_MARKERS):
        return VarbenchError(f"{what} is a LlamaGen GPT checkpoint; pass it with --gpt-ckpt")
    return None


def infer_var_config(sd: dict, patch_nums: tuple[int, ...], what: str = "VAR checkpoint",
                     num_heads: int | None = None) -> VARConfig:
    """Depth, width, heads and shared AdaLN from shapes; the patch schedule is given (zoo or --patch-nums).

    Heads: the per-head temperature's shape tells them (every released file); without it ``num_heads``
    (``--num-heads``) or width / 64 (the released head size) when the width is a multiple of 64.
    """
    err = _wrong_file(sd, what, "var")
    if err:
        raise err
    for key in ("class_emb.weight", "pos_1LC", "head.weight", "word_embed.weight"):
        if key not in sd:
            raise VarbenchError(f"{what} lacks {key!r}: not a VAR transformer state dict")
    depth = 1 + max((int(m.group(1)) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k))), default=-1)
    if depth == 0:
        raise VarbenchError(f"{what} has no 'blocks.N.*' keys: not a VAR transformer state dict")
    width = sd["class_emb.weight"].shape[1]
    heads_key = "blocks.0.attn.scale_mul_1H11"
    heads = _heads(sd[heads_key].shape[1] if heads_key in sd else None, width, num_heads, what)
    num_tokens = sd["pos_1LC"].shape[1]
    want = sum(p * p for p in patch_nums)
    if num_tokens != want:
        raise VarbenchError(
            f"{what} has {num_tokens} positions but patch_nums {','.join(map(str, patch_nums))} give {want}; "
            "pass the schedule the model was trained with (--patch-nums)"
        )
    return VARConfig(
        depth=depth,
        patch_nums=tuple(patch_nums),
        width=width,
        num_heads=heads,
        shared_aln="shared_ada_lin.1.weight" in sd,
        num_classes=sd["class_emb.weight"].shape[0] - 1,
        vocab_size=sd["head.weight"].shape[0],
        latent_dim=sd["word_embed.weight"].shape[1],
        attn_l2_norm=heads_key in sd,
    )


def _heads(from_shape: int | None, width: int, num_heads: int | None, what: str) -> int:
    if num_heads is not None:
        if num_heads < 1 or width % num_heads:
            raise VarbenchError(f"--num-heads {num_heads} does not divide the width {width} of {what}")
        if from_shape is not None and from_shape != num_heads:
            raise VarbenchError(f"{what} has {from_shape} heads (its attention temperatures say so), not "
                                f"--num-heads {num_heads}; drop --num-heads")
        return num_heads
    if from_shape is not None:
        return from_shape
    if width % 64:
        raise VarbenchError(f"{what}: width {width} is not a multiple of 64, so the head count cannot be inferred; "
                            "pass --num-heads N")
    return width // 64


def infer_vae_config(sd: dict, patch_nums: tuple[int, ...], what: str = "VAE checkpoint") -> VQVAEConfig:
    err = _wrong_file(sd, what, "vae")
    if err:
        raise err
    for key in ("encoder.conv_in.weight", "quantize.embedding.weight"):
        if key not in sd:
            raise VarbenchError(f"{what} lacks {key!r}: not a VAR VQVAE state dict")
    n_phi = len({k.split(".")[3] for k in sd if k.startswith("quantize.quant_resi.qresi_ls.")})
    vocab, dim = sd["quantize.embedding.weight"].shape
    return VQVAEConfig(
        patch_nums=tuple(patch_nums),
        vocab_size=vocab,
        latent_dim=dim,
        ch=sd["encoder.conv_in.weight"].shape[0],
        share_quant_resi=n_phi or 4,
    )


def load_var(sd: dict, cfg: VARConfig, device: str | torch.device = "cpu", what: str = "VAR checkpoint") -> VAR:
    sd = dict(sd)
    with torch.device("meta"):
        expected = VAR(cfg).state_dict()
    lvl, mask = level_ids_and_mask(cfg.patch_nums)
    mask = mask.view(1, 1, *mask.shape)
    if "attn_bias_for_masking" not in sd:  # some exports drop this 20 MB buffer; it follows from patch_nums
        sd["attn_bias_for_masking"] = mask
    check_state_dict(expected, sd, what)
    for key, want in (("lvl_1L", lvl.view(1, -1)), ("attn_bias_for_masking", mask)):
        if not torch.equal(sd[key].cpu(), want):
            raise VarbenchError(f"{what}: {key} does not match patch_nums {cfg.patch_nums}; check --patch-nums")
    return _instantiate(VAR, cfg, sd, device)


def load_vae(sd: dict, cfg: VQVAEConfig, device: str | torch.device = "cpu", what: str = "VAE checkpoint") -> VQVAE:
    sd = dict(sd)
    with torch.device("meta"):
        expected = VQVAE(cfg).state_dict()
    usage = "quantize.ema_vocab_hit_SV"
    if usage in sd and tuple(sd[usage].shape) != tuple(expected[usage].shape):
        sd[usage] = torch.zeros(expected[usage].shape)  # per-scale training statistic; unused at inference
    check_state_dict(expected, sd, what)
    return _instantiate(VQVAE, cfg, sd, device)


def _instantiate(cls, cfg, sd: dict, device):
    """Build on the meta device (no time spent on random init), then load every tensor strictly."""
    with torch.device("meta"):
        model = cls(cfg)
    model = model.to_empty(device=device)
    model.load_state_dict(sd, strict=True)
    return model.eval().requires_grad_(False)
