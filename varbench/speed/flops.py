"""Analytic FLOP and KV-cache formulas for next-scale (VAR) and raster-scan decoding.

Conventions (``shared/facts/baselines.md`` section 3): one multiply-add = 2 FLOPs; per transformer layer and token
the dense work is QKV 6w^2 + out-projection 2w^2 + MLP (16w^2 for a GELU MLP at 4w or a SwiGLU at exactly 8/3 w, so
24w^2 in all); one query against L keys costs 4wL per layer (QK^T and AV); the output head costs 2wV per predicted
token.  Embeddings, norms, rotary embeddings, sampling and the VQ decoder are not counted.  Counts are per image and
per unguided row: classifier-free guidance runs a second (unconditional) row, which ``cfg_rows=2`` multiplies in.

Two attention counts exist for decoding paths that run a masked (block-)causal attention over a recomputed prefix:
``useful`` counts only the query-key pairs the mask lets through (the formulas of the facts, the lemma's view) and
``executed`` counts the full square that a dense attention kernel computes (what ``torch.utils.flop_counter``
reports).  With a KV cache the two are equal.

Pure Python: no torch import.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

ATTENTION_COUNTS = ("useful", "executed")
RASTER_CACHES = ("ideal", "static", "none")


@dataclass(frozen=True)
class Arch:
    """The shape of a decoder-only transformer, as far as FLOPs are concerned."""

    width: int  # w
    depth: int  # d (layers)
    vocab: int  # V (output-head size)
    mlp_flops: int | None = None  # MLP FLOPs per token and layer; None: 16 w^2 (GELU at 4w, SwiGLU at 8/3 w)

    def __post_init__(self) -> None:
        if self.width <= 0 or self.depth <= 0 or self.vocab <= 0:
            raise ValueError(f"width, depth and vocab must be positive, got {self}")

    @property
    def dense_per_token(self) -> int:
        """Dense FLOPs of one token through all layers: d * (8 w^2 + MLP) = 24 d w^2 by default."""
        mlp = 16 * self.width**2 if self.mlp_flops is None else self.mlp_flops
        return self.depth * (8 * self.width**2 + mlp)

    @property
    def head_per_token(self) -> int:
        return 2 * self.width * self.vocab

    @property
    def attention_per_pair(self) -> int:
        """One query against one key, over all layers: 4 w d."""
        return 4 * self.width * self.depth

    @classmethod
    def swiglu(cls, width: int, depth: int, vocab: int, hidden: int) -> Arch:
        """A SwiGLU transformer with an actual hidden width (LlamaGen rounds 8/3 w up to a multiple of 256)."""
        return cls(width, depth, vocab, mlp_flops=6 * width * hidden)


@dataclass(frozen=True)
class Flops:
    """FLOPs of decoding one image, split like the facts' table."""

    dense: float
    attention: float
    head: float
    adaln: float = 0

    @property
    def total(self) -> float:
        return self.dense + self.attention + self.head + self.adaln

    def times(self, factor: float) -> Flops:
        return Flops(self.dense * factor, self.attention * factor, self.head * factor, self.adaln * factor)

    def as_dict(self) -> dict:
        return {**asdict(self), "total": self.total}


def cumulative(patch_nums: Sequence[int]) -> list[int]:
    """L_k: tokens of scales 1..k."""
    out, cur = [], 0
    for p in patch_nums:
        cur += p * p
        out.append(cur)
    return out


def _check_attention(attention: str) -> None:
    if attention not in ATTENTION_COUNTS:
        raise ValueError(f"attention count {attention!r} is not one of {ATTENTION_COUNTS}")


def var_flops(arch: Arch, patch_nums: Sequence[int], *, kv_cache: bool = True, attention: str = "useful",
              shared_adaln: bool = False, cfg_rows: int = 1) -> Flops:
    """Next-scale decoding of one image over ``patch_nums`` (K scales, n_k x n_k tokens at scale k).

    With a KV cache step k runs n_k^2 new tokens against L_k keys.  Without, step k recomputes the whole prefix of
    L_k tokens under the block-causal mask (a query of scale j sees L_j keys: ``useful``; the kernel computes L_k:
    ``executed``) and the head runs on the new tokens only.  AdaLN: one (6w x w) projection per layer (a single one
    when ``shared_adaln``) plus the head's (2w x w), once per step and row.
    """
    _check_attention(attention)
    if not patch_nums or any(p <= 0 for p in patch_nums):
        raise ValueError(f"patch_nums must be positive, got {tuple(patch_nums)}")
    w, pairs = arch.width, arch.attention_per_pair
    L = cumulative(patch_nums)
    T = L[-1]
    new = [p * p for p in patch_nums]
    cached_pairs = sum(n * l for n, l in zip(new, L))  # sum_k n_k^2 L_k
    if kv_cache:
        dense = arch.dense_per_token * T
        attn = pairs * cached_pairs
    else:
        dense = arch.dense_per_token * sum(L)
        if attention == "useful":
            # step k: queries of every scale j <= k, each against L_j keys
            attn = pairs * sum(sum(n * l for n, l in zip(new[: k + 1], L[: k + 1])) for k in range(len(L)))
        else:
            attn = pairs * sum(l * l for l in L)
    head = arch.head_per_token * T
    projections = 1 if shared_adaln else arch.depth
    adaln = len(patch_nums) * (12 * projections * w * w + 4 * w * w)
    return Flops(dense, attn, head, adaln).times(cfg_rows)


def static_cache_length(tokens: int, multiple: int = 8) -> int:
    """LlamaGen's padded cache length: class token + tokens, rounded up to a multiple of 8."""
    return multiple * math.ceil((tokens + 1) / multiple)


def raster_flops(arch: Arch, tokens: int, *, cache: str = "ideal", attention: str = "useful",
                 max_len: int | None = None, logits_all: bool = False, cfg_rows: int = 1) -> Flops:
    """Raster-scan decoding of ``tokens`` image tokens after one class token (T forward positions).

    ``cache``: ``ideal`` (step t attends to its t + 1 filled positions), ``static`` (every step attends over the
    padded ``max_len``, default ``static_cache_length``), ``none`` (step t recomputes its prefix of t + 1 positions
    under a causal mask: ``useful`` counts the causal triangle, ``executed`` the full square).  ``logits_all``: the
    no-cache path computes logits at every prefix position (minGPT/taming style) instead of the last only.
    """
    _check_attention(attention)
    if cache not in RASTER_CACHES:
        raise ValueError(f"raster cache {cache!r} is not one of {RASTER_CACHES}")
    if tokens <= 0:
        raise ValueError(f"tokens must be positive, got {tokens}")
    T, pairs = tokens, arch.attention_per_pair
    head = arch.head_per_token * T
    if cache == "ideal":
        dense = arch.dense_per_token * T
        attn = pairs * T * (T + 1) // 2
    elif cache == "static":
        dense = arch.dense_per_token * T
        attn = pairs * T * (max_len or static_cache_length(T))
    else:
        dense = arch.dense_per_token * T * (T + 1) // 2
        if attention == "useful":
            attn = pairs * T * (T + 1) * (T + 2) // 6  # sum over m = 1..T of m (m + 1) / 2
        else:
            attn = pairs * T * (T + 1) * (2 * T + 1) // 6  # sum over m = 1..T of m^2
        if logits_all:
            head = arch.head_per_token * T * (T + 1) // 2
    return Flops(dense, attn, head).times(cfg_rows)


def kv_cache_bytes(width: int, depth: int, positions: int, *, rows: int = 1, bytes_per_value: int = 2) -> int:
    """Keys and values of ``positions`` positions in every layer: 2 * d * positions * w * bytes * rows."""
    return 2 * depth * positions * width * bytes_per_value * rows


def no_kv_crossover_tokens(arch: Arch) -> float:
    """Sequence length T beyond which the O(T^3) attention of cache-free raster decoding exceeds its O(T^2) dense
    recompute: (2/3) d w T(T+1)(T+2) > dense_per_token T(T+1)/2, i.e. T + 2 > 3 * dense_per_token / (4 d w)
    (= 18 w for a 24 w^2 layer)."""
    return 3 * arch.dense_per_token / (4 * arch.depth * arch.width) - 2


def kv_attention_crossover_tokens(arch: Arch) -> float:
    """Sequence length T beyond which cached raster decoding's attention (2 d w T(T+1)) exceeds its dense work
    (dense_per_token T): T + 1 > dense_per_token / (2 d w) (= 12 w for a 24 w^2 layer)."""
    return arch.dense_per_token / (2 * arch.depth * arch.width) - 1


def local_exponents(n_values: Sequence[float], values: Sequence[float]) -> list[float | None]:
    """Slope of log(value) against log(n) between each point and the previous one (None for the first)."""
    out: list[float | None] = [None]
    for (n0, v0), (n1, v1) in zip(zip(n_values, values), list(zip(n_values, values))[1:]):
        out.append(math.log(v1 / v0) / math.log(n1 / n0))
    return out
