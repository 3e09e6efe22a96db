"""The VAR transformer: next-scale prediction over VQVAE token maps.

Paper: Tian et al., "Visual Autoregressive Modeling: Scalable Image Generation via Next-Scale Prediction",
NeurIPS 2024 (arXiv 2404.02905).  Mirrors FoundationVision/VAR ``models/var.py`` (inference and teacher-forced
forward; no training-time label dropout).  Parameter and buffer names follow the official state dict, so released
``var_d*.pth`` files load strictly.  Pure torch: no IO, no printing, no global state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from varbench.errors import VarbenchError
from varbench.models.blocks import AdaLNBeforeHead, AdaLNSelfAttn, KVCache, SharedAdaLin

# The released scale schedules by last grid side (utils/arg_util.py --pn 256 / 512 / 1024; no 1024 model exists).
SCHEDULES: dict[int, tuple[int, ...]] = {
    16: (1, 2, 3, 4, 5, 6, 8, 10, 13, 16),
    32: (1, 2, 3, 4, 6, 9, 13, 18, 24, 32),
    64: (1, 2, 3, 4, 5, 7, 9, 12, 16, 21, 27, 36, 48, 64),
}


def patch_schedule(grid: int) -> tuple[int, ...]:
    """The scale schedule ending at side ``grid``: the released one for 16/32/64, else a geometric one.

    The geometric schedule has K = round(1 + ln(n) / ln(4/3)) scales (O(log n) steps, as the paper's lemma D.2),
    sides rounded from n^(i / (K - 1)) with repeats dropped (n = 8 gives 1, 2, 3, 4, 6, 8).
    """
    if grid < 1:
        raise VarbenchError(f"token grid side must be >= 1, got {grid}")
    if grid in SCHEDULES:
        return SCHEDULES[grid]
    if grid == 1:
        return (1,)
    k = max(2, round(1 + math.log(grid) / math.log(4 / 3)))
    out: list[int] = []
    for i in range(k):
        p = max(1, round(grid ** (i / (k - 1))))
        if not out or p > out[-1]:
            out.append(p)
    out[-1] = grid
    return tuple(out)


@dataclass(frozen=True)
class VARConfig:
    depth: int
    patch_nums: tuple[int, ...] = SCHEDULES[16]
    width: int | None = None  # None: 64 * depth (the released size rule)
    num_heads: int | None = None  # None: depth (head dim 64)
    shared_aln: bool = False  # one shared AdaLN projection (VAR-d36)
    num_classes: int = 1000  # class index num_classes is the null (unconditional) class
    vocab_size: int = 4096
    latent_dim: int = 32  # VQVAE code dimension ("Cvae")
    mlp_ratio: float = 4.0
    norm_eps: float = 1e-6
    attn_l2_norm: bool = True  # all released checkpoints

    @property
    def C(self) -> int:
        return self.width if self.width is not None else 64 * self.depth

    @property
    def heads(self) -> int:
        return self.num_heads if self.num_heads is not None else self.depth

    @property
    def num_tokens(self) -> int:
        return sum(p * p for p in self.patch_nums)

    @property
    def resolution(self) -> int:
        """Image side in pixels (the VQVAE downsamples by 16)."""
        return 16 * self.patch_nums[-1]

    @property
    def num_params(self) -> int:
        """Exact parameter count of ``VAR(self)`` (closed form; buffers and the VQVAE excluded)."""
        c, h, s, v, z = self.C, self.heads, len(self.patch_nums), self.vocab_size, self.latent_dim
        hidden = round(c * self.mlp_ratio)
        attn = 3 * c * c + 2 * c + (c * c + c) + (h if self.attn_l2_norm else 0)  # qkv, q/v bias, proj, temperature
        ffn = c * hidden + hidden + hidden * c + c
        per_block = attn + ffn + (6 * c if self.shared_aln else 6 * c * c + 6 * c)  # ada_gss or ada_lin
        shared = 6 * c * c + 6 * c if self.shared_aln else 0
        embeddings = c + self.num_tokens * c + (z * c + c) + (self.num_classes + 1) * c + s * c
        head = (2 * c * c + 2 * c) + (c * v + v)
        return self.depth * per_block + shared + embeddings + head

    @property
    def begin_ends(self) -> list[tuple[int, int]]:
        out, cur = [], 0
        for p in self.patch_nums:
            out.append((cur, cur + p * p))
            cur += p * p
        return out


def level_ids_and_mask(patch_nums: tuple[int, ...], device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale index of every token (L,) and the block-causal additive mask (L, L): 0 where a query may see a key
    (its own scale and every coarser one), -inf elsewhere."""
    lvl = torch.cat([torch.full((p * p,), i, dtype=torch.long, device=device) for i, p in enumerate(patch_nums)])
    allowed = lvl.view(-1, 1) >= lvl.view(1, -1)
    mask = torch.zeros(allowed.shape, device=device).masked_fill_(~allowed, float("-inf"))
    return lvl, mask


class VAR(nn.Module):
    def __init__(self, cfg: VARConfig):
        super().__init__()
        self.cfg = cfg
        C, L, S = cfg.C, cfg.num_tokens, len(cfg.patch_nums)
        std = math.sqrt(1 / C / 3)
        self.pos_start = nn.Parameter(torch.empty(1, 1, C))
        self.pos_1LC = nn.Parameter(torch.empty(1, L, C))
        lvl, mask = level_ids_and_mask(cfg.patch_nums)
        self.register_buffer("lvl_1L", lvl.view(1, L))
        self.register_buffer("attn_bias_for_masking", mask.view(1, 1, L, L))  # teacher forcing only
        self.word_embed = nn.Linear(cfg.latent_dim, C)
        self.class_emb = nn.Embedding(cfg.num_classes + 1, C)
        self.lvl_embed = nn.Embedding(S, C)
        self.shared_ada_lin = (
            nn.Sequential(nn.SiLU(inplace=False), SharedAdaLin(C, 6 * C)) if cfg.shared_aln else nn.Identity()
        )
        self.blocks = nn.ModuleList(
            AdaLNSelfAttn(C, cfg.heads, cfg.mlp_ratio, cfg.norm_eps, cfg.shared_aln, cfg.attn_l2_norm)
            for _ in range(cfg.depth)
        )
        self.head_nm = AdaLNBeforeHead(C, cfg.norm_eps)
        self.head = nn.Linear(C, cfg.vocab_size)
        for p in (self.pos_start, self.pos_1LC, self.class_emb.weight, self.lvl_embed.weight):
            if not p.is_meta:
                nn.init.trunc_normal_(p, mean=0, std=std)

    @property
    def null_class(self) -> int:
        return self.cfg.num_classes

    def logits(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """(B, L, C) hidden states -> float32 logits (B, L, V)."""
        return self.head(self.head_nm(h.float(), cond).float()).float()

    def level_pos(self) -> torch.Tensor:
        """Level embedding + absolute position of every token, (1, L, C)."""
        return self.lvl_embed(self.lvl_1L) + self.pos_1LC

    def forward(self, labels: torch.Tensor, x_next_scales: torch.Tensor, return_hidden: bool = False):
        """Teacher-forced logits.

        labels (B,) int64 (use ``null_class`` for unconditional); x_next_scales (B, L-1, Cvae) from
        ``MultiScaleQuantizer.teacher_forcing_input``.  Returns logits (B, L, V) and optionally the hidden states
        [block-0 input, output of each block].
        """
        B = x_next_scales.shape[0]
        L = self.cfg.num_tokens
        cond = self.class_emb(labels)  # (B, C): start-token content and AdaLN condition
        sos = cond.unsqueeze(1) + self.pos_start.expand(B, 1, -1)
        x = torch.cat((sos, self.word_embed(x_next_scales.float())), dim=1)
        x = x + self.level_pos()[:, :L]
        mod = self.shared_ada_lin(cond)
        bias = self.attn_bias_for_masking[:, :, :L, :L]
        hidden = [x]
        for block in self.blocks:
            x = block(x, mod, bias, None)
            hidden.append(x)
        logits = self.logits(x, cond)
        return (logits, hidden) if return_hidden else logits

    def new_cache(self, capacity: int | None = None) -> list[KVCache]:
        """One KV cache per block, preallocated for ``capacity`` tokens (default: the whole schedule)."""
        return [KVCache(capacity or self.cfg.num_tokens) for _ in self.blocks]

    def step(self, x: torch.Tensor, cond: torch.Tensor, cache: list[KVCache]) -> torch.Tensor:
        """One next-scale step with a KV cache: inputs of the current scale (B, l, C) -> logits (B, l, V)."""
        mod = self.shared_ada_lin(cond)
        for block, c in zip(self.blocks, cache):
            x = block(x, mod, None, c)
        return self.logits(x, cond)

    def step_no_cache(self, prefix: torch.Tensor, cond: torch.Tensor, num_new: int) -> torch.Tensor:
        """Recompute the whole prefix (B, T, C) under the block-causal mask; logits of its last ``num_new`` tokens."""
        T = prefix.shape[1]
        mod = self.shared_ada_lin(cond)
        bias = self.attn_bias_for_masking[:, :, :T, :T]
        x = prefix
        for block in self.blocks:
            x = block(x, mod, bias, None)
        return self.logits(x[:, T - num_new :], cond)
