"""VAR transformer blocks: AdaLN self-attention block, FFN, AdaLN head.

Mirrors FoundationVision/VAR ``models/basic_var.py`` (torch SDPA path; no flash-attn/xformers).  Parameter names
follow the official state dict.  Shapes: B batch, L tokens, C width, H heads, D head dim (64).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class KVCache:
    """Keys/values of earlier scales for one block, (B, H, T, D).

    With a ``capacity`` (tokens) the first call allocates buffers of that length and every call writes its keys and
    values behind the earlier ones, returning views of the filled part: no copy of the earlier scales per step.
    Without one it grows by concatenation, as upstream.  The values the attention sees are the same either way.
    """

    def __init__(self, capacity: int | None = None) -> None:
        self.capacity = capacity
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None
        self._buffers: tuple[torch.Tensor, torch.Tensor] | None = None
        self.length = 0

    def extend(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.length + k.shape[2]
        if self.capacity is None:
            self.k = k if self.k is None else torch.cat((self.k, k), dim=2)
            self.v = v if self.v is None else torch.cat((self.v, v), dim=2)
        else:
            if end > self.capacity:
                raise ValueError(f"KV cache holds {self.capacity} tokens; {end} were written")
            if self._buffers is None:
                shape = (*k.shape[:2], self.capacity, k.shape[3])
                self._buffers = (k.new_empty(shape), v.new_empty(shape))
            kb, vb = self._buffers
            kb[:, :, self.length : end].copy_(k)
            vb[:, :, self.length : end].copy_(v)
            self.k, self.v = kb[:, :, :end], vb[:, :, :end]
        self.length = end
        return self.k, self.v


def _mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a * b``, written into ``a`` (a fresh intermediate) when ``a`` already has the result's dtype: the same values
    without a new buffer.  Under autocast the dtypes can differ, and then a new tensor keeps torch's promotion."""
    return a.mul_(b) if a.dtype == torch.promote_types(a.dtype, b.dtype) else a * b


def _residual(x: torch.Tensor, branch: torch.Tensor) -> torch.Tensor:
    """``x + branch``, written into ``branch`` (a fresh output) when that gives the same tensor: the same dtype after
    promotion and the same strides (addition commutes bit for bit; the layout of ``x + branch`` follows ``x``)."""
    same = branch.dtype == torch.promote_types(x.dtype, branch.dtype) and branch.stride() == x.stride()
    return branch.add_(x) if same and branch.shape == x.shape else x + branch


class SelfAttention(nn.Module):
    """Multi-head attention with L2-normalised q/k and a learned per-head temperature (clamped at 100)."""

    def __init__(self, width: int, num_heads: int, l2_norm: bool = True):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, width // num_heads
        self.l2_norm = l2_norm
        if l2_norm:
            self.scale = 1.0
            self.scale_mul_1H11 = nn.Parameter(torch.full((1, num_heads, 1, 1), 4.0).log())
            self.max_scale_mul = math.log(100)
        else:
            self.scale = 0.25 / math.sqrt(self.head_dim)
        self.q_bias = nn.Parameter(torch.zeros(width))
        self.v_bias = nn.Parameter(torch.zeros(width))
        self.register_buffer("zero_k_bias", torch.zeros(width))
        self.mat_qkv = nn.Linear(width, 3 * width, bias=False)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, attn_bias: torch.Tensor | None, cache: KVCache | None) -> torch.Tensor:
        B, L, C = x.shape
        bias = torch.cat((self.q_bias, self.zero_k_bias, self.v_bias))
        qkv = F.linear(x, self.mat_qkv.weight, bias).view(B, L, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, L, D)
        if self.l2_norm:
            temperature = self.scale_mul_1H11.clamp_max(self.max_scale_mul).exp()  # (1, H, 1, 1)
            q = _mul(F.normalize(q, dim=-1), temperature)
            k = F.normalize(k, dim=-1)
        if cache is not None:
            k, v = cache.extend(k, v)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias, dropout_p=0.0, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(B, L, C))


class FFN(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class AdaLNSelfAttn(nn.Module):
    """Pre-norm block; six modulation vectors (gamma1, gamma2, scale1, scale2, shift1, shift2) from the class.

    Non-shared: each block has ``ada_lin`` = SiLU -> Linear(C, 6C) of the condition.  Shared (VAR-d36): the model
    computes one (B, 1, 6, C) modulation and each block adds its own learned ``ada_gss``.
    """

    def __init__(self, width: int, num_heads: int, mlp_ratio: float, norm_eps: float, shared_aln: bool, l2_norm: bool):
        super().__init__()
        self.width, self.shared_aln = width, shared_aln
        if shared_aln:
            self.ada_gss = nn.Parameter(torch.randn(1, 1, 6, width) / width**0.5)
        self.attn = SelfAttention(width, num_heads, l2_norm)
        self.ffn = FFN(width, round(width * mlp_ratio))
        self.ln_wo_grad = nn.LayerNorm(width, eps=norm_eps, elementwise_affine=False)
        if not shared_aln:
            self.ada_lin = nn.Sequential(nn.SiLU(inplace=False), nn.Linear(width, 6 * width))

    def forward(self, x: torch.Tensor, cond: torch.Tensor, attn_bias: torch.Tensor | None, cache: KVCache | None):
        """x (B, L, C); cond: (B, C) class condition, or the shared (B, 1, 6, C) modulation."""
        if self.shared_aln:
            mod = self.ada_gss + cond
        else:
            mod = self.ada_lin(cond).view(-1, 1, 6, self.width)
        gamma1, gamma2, scale1, scale2, shift1, shift2 = mod.unbind(2)  # each (B, 1, C)
        x = _residual(x, self.attn(_mul(self.ln_wo_grad(x), scale1.add(1)).add_(shift1), attn_bias, cache).mul_(gamma1))
        return _residual(x, _mul(self.ffn(_mul(self.ln_wo_grad(x), scale2.add(1)).add_(shift2)), gamma2))


class SharedAdaLin(nn.Linear):
    """Linear(C, 6C) whose output is viewed as (B, 1, 6, C) (the shared AdaLN of VAR-d36)."""

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        return super().forward(cond).view(-1, 1, 6, self.out_features // 6)


class AdaLNBeforeHead(nn.Module):
    """Non-affine LayerNorm modulated by (scale, shift) from the raw class condition."""

    def __init__(self, width: int, norm_eps: float):
        super().__init__()
        self.width = width
        self.ln_wo_grad = nn.LayerNorm(width, eps=norm_eps, elementwise_affine=False)
        self.ada_lin = nn.Sequential(nn.SiLU(inplace=False), nn.Linear(width, 2 * width))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.ada_lin(cond).view(-1, 1, 2, self.width).unbind(2)
        return _mul(self.ln_wo_grad(x), scale.add(1)).add_(shift)
