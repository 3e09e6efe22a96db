"""VAR's multi-scale residual vector quantizer (the "next-scale" token maps).

Mirrors FoundationVision/VAR ``models/quant.py`` (``VectorQuantizer2``) for inference: area down-sampling of the
residual to each scale, nearest-code lookup, bicubic up-sampling, a partially shared residual conv phi blended 50/50,
and the teacher-forcing / next-scale inputs of the transformer.  Parameter names follow the official state dict.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Phi(nn.Conv2d):
    """phi(h) = (1 - r) * h + r * conv3x3(h)."""

    def __init__(self, channels: int, ratio: float):
        super().__init__(channels, channels, kernel_size=3, stride=1, padding=1)
        self.ratio = abs(ratio)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h.mul(1 - self.ratio) + super().forward(h).mul_(self.ratio)


class PartiallySharedPhi(nn.Module):
    """K phi convs shared across scales; a scale at relative depth r in [0, 1] uses the nearest tick."""

    def __init__(self, phis: list[Phi]):
        super().__init__()
        self.qresi_ls = nn.ModuleList(phis)
        k = len(phis)
        # the released K=4 uses ticks 1/(3K) from the ends, other K use 1/(2K).  Scale 2 of 10 (ratio 2/9) sits
        # half-way between two ticks: float64 linspace rounding (as upstream) decides it goes to phi 1.
        margin = 1 / 3 / k if k == 4 else 1 / 2 / k
        self.ticks = np.linspace(margin, 1 - margin, k)

    def index_for(self, ratio: float) -> int:
        return int(np.argmin(np.abs(self.ticks - ratio)))  # first index on exact ties

    def forward_at(self, ratio: float, h: torch.Tensor) -> torch.Tensor:
        return self.qresi_ls[self.index_for(ratio)](h)


class MultiScaleQuantizer(nn.Module):
    def __init__(self, vocab_size: int, dim: int, patch_nums: tuple[int, ...], share_quant_resi: int, quant_resi: float):
        super().__init__()
        if share_quant_resi < 2:
            raise ValueError("only the partially shared phi layout (share_quant_resi >= 2) of the released VAE is built")
        self.vocab_size, self.dim, self.patch_nums = vocab_size, dim, tuple(patch_nums)
        # training statistic of the released checkpoint (codebook usage per scale); unused at inference
        self.register_buffer("ema_vocab_hit_SV", torch.zeros(len(self.patch_nums), vocab_size))
        self.quant_resi = PartiallySharedPhi([Phi(dim, quant_resi) for _ in range(share_quant_resi)])
        self.embedding = nn.Embedding(vocab_size, dim)

    @property
    def num_scales(self) -> int:
        return len(self.patch_nums)

    def phi_index(self, si: int) -> int:
        return self.quant_resi.index_for(si / (self.num_scales - 1))

    def _phi(self, si: int, h: torch.Tensor) -> torch.Tensor:
        return self.quant_resi.forward_at(si / (self.num_scales - 1), h)

    def _nearest_code(self, z_NC: torch.Tensor) -> torch.Tensor:
        """Squared-Euclidean nearest code (first index on ties)."""
        codes = self.embedding.weight
        d = torch.sum(z_NC.square(), dim=1, keepdim=True) + torch.sum(codes.square(), dim=1)
        d.addmm_(z_NC, codes.T, alpha=-2, beta=1)  # (N, V)
        return torch.argmin(d, dim=1)

    def latent_to_tokens(self, f: torch.Tensor, return_fhat: bool = False):
        """Latent (B, C, H, W) -> per-scale tokens [(B, pn*pn)] (or the cumulative f_hat after each scale)."""
        B, C, H, W = f.shape
        f_rest = f.detach().clone()
        f_hat = torch.zeros_like(f_rest)
        out = []
        last = self.num_scales - 1
        for si, pn in enumerate(self.patch_nums):
            z = F.interpolate(f_rest, size=(pn, pn), mode="area") if si != last else f_rest
            idx = self._nearest_code(z.permute(0, 2, 3, 1).reshape(-1, C)).view(B, pn * pn)
            h = self.embedding(idx).view(B, pn, pn, C).permute(0, 3, 1, 2)
            if si != last:
                h = F.interpolate(h, size=(H, W), mode="bicubic").contiguous()
            h = self._phi(si, h)
            f_hat.add_(h)
            f_rest.sub_(h)
            out.append(f_hat.clone() if return_fhat else idx)
        return out

    def tokens_to_fhat(self, tokens: list[torch.Tensor]) -> torch.Tensor:
        """Per-scale tokens -> f_hat = sum_si phi(bicubic_up(codes_si)) at the last scale's size."""
        B = tokens[0].shape[0]
        H = W = self.patch_nums[-1]
        # a contiguous accumulator: starting from the first h would inherit its channels-last strides and send
        # the whole decoder through other conv kernels (1e-4 pixel differences)
        f_hat = self.embedding.weight.new_zeros(B, self.dim, H, W, dtype=torch.float32)
        last = self.num_scales - 1
        for si, (pn, idx) in enumerate(zip(self.patch_nums, tokens)):
            h = self.embedding(idx).transpose(1, 2).reshape(B, self.dim, pn, pn)
            if si != last:
                h = F.interpolate(h, size=(H, W), mode="bicubic")
            f_hat.add_(self._phi(si, h))
        return f_hat

    def teacher_forcing_input(self, tokens: list[torch.Tensor]) -> torch.Tensor:
        """Per-scale tokens -> transformer inputs for scales 1..S-1: (B, L - 1, C) of area-downsampled f_hat's."""
        B = tokens[0].shape[0]
        H = W = self.patch_nums[-1]
        f_hat = tokens[0].new_zeros(B, self.dim, H, W, dtype=torch.float32)
        inputs = []
        for si in range(self.num_scales - 1):
            pn = self.patch_nums[si]
            h = self.embedding(tokens[si]).transpose(1, 2).reshape(B, self.dim, pn, pn)
            f_hat.add_(self._phi(si, F.interpolate(h, size=(H, W), mode="bicubic")))
            nxt = self.patch_nums[si + 1]
            inputs.append(F.interpolate(f_hat, size=(nxt, nxt), mode="area").view(B, self.dim, -1).transpose(1, 2))
        return torch.cat(inputs, dim=1)

    def next_scale_input(self, si: int, f_hat: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add scale ``si``'s code map h (B, C, pn, pn) to f_hat in place; return (f_hat, input map of scale si+1)."""
        H = W = self.patch_nums[-1]
        if si != self.num_scales - 1:
            f_hat.add_(self._phi(si, F.interpolate(h, size=(H, W), mode="bicubic")))
            nxt = self.patch_nums[si + 1]
            return f_hat, F.interpolate(f_hat, size=(nxt, nxt), mode="area")
        f_hat.add_(self._phi(si, h))
        return f_hat, f_hat
