"""LlamaGen's class-conditional GPT (c2i), re-implemented in plain torch.

Paper: Sun et al., "Autoregressive Model Beats Diffusion: Llama for Scalable Image Generation" (arXiv 2406.06525).
Mirrors the behaviour of FoundationVision/LlamaGen ``autoregressive/models/gpt.py`` (written from
``shared/facts/llamagen.md``, not copied): Llama blocks (pre-norm RMSNorm, SwiGLU, no biases), 2D RoPE over the
token grid, one class token in front (row 1000 of the class table is the null class used for CFG), untied head.
The state_dict keys are the official ones, so released checkpoints load strictly.

The same module, with another width/depth/vocabulary, is the raster twin of VAR (``baselines.raster``).
Inference only: there is no dropout and no label dropout (the official model drops neither in eval mode).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class GPTConfig:
    dim: int
    n_layer: int
    n_head: int
    vocab_size: int = 16384
    num_classes: int = 1000  # the class table has num_classes + 1 rows; the last one is the null class
    grid: int = 16  # token-grid side: 16 for 256 px, 24 for 384 px (VQ-16 downsamples by 16)
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    multiple_of: int = 256
    ffn_hidden_override: int | None = None  # None: LlamaGen's rule (see ffn_hidden)

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_head

    @property
    def ffn_hidden(self) -> int:
        """SwiGLU width: int(2/3 * 4 * dim), rounded up to a multiple of 256 (768 -> 2048, 3200 -> 8704)."""
        if self.ffn_hidden_override is not None:
            return self.ffn_hidden_override
        hidden = int(2 * (4 * self.dim) / 3)
        return self.multiple_of * math.ceil(hidden / self.multiple_of)

    @property
    def num_tokens(self) -> int:
        """Image tokens per sample (the official ``block_size``)."""
        return self.grid * self.grid

    @property
    def null_class(self) -> int:
        return self.num_classes

    @property
    def num_params(self) -> int:
        d, h = self.dim, self.ffn_hidden
        per_layer = 4 * d * d + 3 * d * h + 2 * d
        return 2 * self.vocab_size * d + (self.num_classes + 1) * d + self.n_layer * per_layer + d


# The released c2i sizes (GPT_models in the official code): dim, layers, heads.
GPT_SIZES = {
    "B": (768, 12, 12),
    "L": (1024, 24, 16),
    "XL": (1280, 36, 20),
    "XXL": (1536, 48, 24),
    "3B": (3200, 24, 32),
}


def gpt_config(size: str, grid: int = 16) -> GPTConfig:
    dim, n_layer, n_head = GPT_SIZES[size]
    return GPTConfig(dim=dim, n_layer=n_layer, n_head=n_head, grid=grid)


def rope_cos_sin(positions: torch.Tensor, grid: int, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin (L, head_dim/2) float32 of the 2D RoPE for sequence ``positions`` (L,).

    Position 0 is the class token: cos = sin = 0 there, which zeroes its q and k (as the official table does).
    Position p >= 1 is image token n = p - 1 at row n // grid, column n % grid; the first head_dim/4 pairs rotate
    with the row, the last head_dim/4 with the column, with frequencies 1 / base^(2j / (head_dim/2)).
    """
    half = head_dim // 2
    freqs = 1.0 / (base ** (torch.arange(0, half, 2, device=positions.device)[: half // 2].float() / half))
    n = (positions - 1).clamp(min=0)
    rows = torch.div(n, grid, rounding_mode="floor").float()
    cols = (n % grid).float()
    angles = torch.cat([torch.outer(rows, freqs), torch.outer(cols, freqs)], dim=-1)  # (L, hd/2)
    cos, sin = torch.cos(angles), torch.sin(angles)
    is_class = (positions == 0).unsqueeze(-1)
    return cos.masked_fill(is_class, 0.0), sin.masked_fill(is_class, 0.0)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent pairs (x[2m], x[2m+1]) of x (B, L, H, hd) by angle m, in float32; returns x's dtype."""
    xf = x.float().reshape(*x.shape[:-1], -1, 2)
    x0, x1 = xf[..., 0], xf[..., 1]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    out = torch.stack([x0 * c - x1 * s, x1 * c + x0 * s], dim=-1)
    return out.flatten(3).type_as(x)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


class KVCache:
    """Per-layer key/value buffers (B, H, max_len, hd), filled left to right; ``length`` positions are valid.

    Attention reads only the filled prefix, so a step costs what a growing cache costs (no padded mask).
    """

    def __init__(self, n_layer: int, batch: int, n_head: int, max_len: int, head_dim: int, device, dtype):
        shape = (batch, n_head, max_len, head_dim)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.length = 0
        self.max_len = max_len

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        end = start + k.shape[2]
        self.k[layer][:, :, start:end] = k
        self.v[layer][:, :, start:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]


class Attention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head, self.head_dim = cfg.n_head, cfg.head_dim
        self.wqkv = nn.Linear(cfg.dim, 3 * cfg.dim, bias=False)
        self.wo = nn.Linear(cfg.dim, cfg.dim, bias=False)

    def forward(self, x, cos, sin, layer: int, cache: KVCache | None, start: int):
        B, L, D = x.shape
        q, k, v = self.wqkv(x).split(D, dim=-1)
        q = apply_rope(q.view(B, L, self.n_head, self.head_dim), cos, sin).transpose(1, 2)  # (B, H, L, hd)
        k = apply_rope(k.view(B, L, self.n_head, self.head_dim), cos, sin).transpose(1, 2)
        v = v.view(B, L, self.n_head, self.head_dim).transpose(1, 2)
        if cache is not None:
            k, v = cache.update(layer, k, v, start)
        # A query block that starts after the cached prefix needs a causal mask offset by `start`.
        if L == 1:
            out = F.scaled_dot_product_attention(q, k, v)
        elif start == 0:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            keep = torch.ones(L, k.shape[2], dtype=torch.bool, device=x.device).tril(diagonal=start)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        return self.wo(out.transpose(1, 2).reshape(B, L, D))


class FeedForward(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.w1 = nn.Linear(cfg.dim, cfg.ffn_hidden, bias=False)
        self.w3 = nn.Linear(cfg.dim, cfg.ffn_hidden, bias=False)
        self.w2 = nn.Linear(cfg.ffn_hidden, cfg.dim, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.attention = Attention(cfg)
        self.feed_forward = FeedForward(cfg)
        self.attention_norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.ffn_norm = RMSNorm(cfg.dim, cfg.norm_eps)

    def forward(self, x, cos, sin, layer, cache, start):
        h = x + self.attention(self.attention_norm(x), cos, sin, layer, cache, start)
        return h + self.feed_forward(self.ffn_norm(h))


class ClassEmbedding(nn.Module):
    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + 1, dim)

    def forward(self, labels):
        return self.embedding_table(labels)


class GPT(nn.Module):
    """c2i GPT.  Sequence = [class token, image tokens in raster order]; logit p predicts image token p."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.config = cfg
        self.cls_embedding = ClassEmbedding(cfg.num_classes, cfg.dim)
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.output = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)

    def embed(self, labels: torch.Tensor | None, tokens: torch.Tensor | None) -> torch.Tensor:
        """(B, L, dim): the class embedding (if labels) followed by the token embeddings (if tokens)."""
        parts = []
        if labels is not None:
            parts.append(self.cls_embedding(labels).unsqueeze(1))
        if tokens is not None:
            parts.append(self.tok_embeddings(tokens))
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def hidden(self, x: torch.Tensor, start: int = 0, cache: KVCache | None = None) -> torch.Tensor:
        """Run the blocks on x (B, L, dim) at sequence positions start..start+L-1; returns the final-normed states."""
        cfg = self.config
        positions = torch.arange(start, start + x.shape[1], device=x.device)
        cos, sin = rope_cos_sin(positions, cfg.grid, cfg.head_dim, cfg.rope_base)
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, i, cache, start)
        if cache is not None:
            cache.length = start + x.shape[1]
        return self.norm(x)

    def forward(self, labels: torch.Tensor, tokens: torch.Tensor | None = None, last_only: bool = False) -> torch.Tensor:
        """Teacher forcing without cache: float32 logits (B, 1 + T, vocab) for labels (B,) and tokens (B, T),
        or only the last position's (B, vocab) with ``last_only``."""
        if tokens is not None and tokens.shape[1] > self.config.num_tokens:
            raise ValueError(f"{tokens.shape[1]} tokens exceed the grid's {self.config.num_tokens}")
        h = self.hidden(self.embed(labels, tokens))
        return self.output(h[:, -1] if last_only else h).float()

    def new_cache(self, batch: int, max_len: int | None = None, dtype: torch.dtype | None = None) -> KVCache:
        """An empty KV cache for ``batch`` rows and up to ``max_len`` positions (default: class + all tokens)."""
        cfg = self.config
        weight = self.tok_embeddings.weight
        return KVCache(cfg.n_layer, batch, cfg.n_head, max_len or 1 + cfg.num_tokens, cfg.head_dim,
                       weight.device, dtype or weight.dtype)

    def step(self, cache: KVCache, labels: torch.Tensor | None = None, tokens: torch.Tensor | None = None) -> torch.Tensor:
        """Cached forward: append labels (prefill, only on an empty cache) and/or tokens (B, t); returns the
        float32 logits (B, vocab) of the last position."""
        if labels is not None and cache.length != 0:
            raise ValueError("the class token goes first: prefill an empty cache")
        x = self.embed(labels, tokens)
        h = self.hidden(x, start=cache.length, cache=cache)
        return self.output(h[:, -1]).float()
