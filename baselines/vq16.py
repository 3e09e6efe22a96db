"""LlamaGen's VQ-16 image tokenizer (16x downsampling, 16384 x 8 codebook, l2-normalised codes), in plain torch.

Paper: Sun et al., arXiv 2406.06525 (the tokenizer follows VQGAN, Esser et al. 2021).
Mirrors the behaviour of FoundationVision/LlamaGen ``tokenizer/tokenizer_image/vq_model.py`` (written from
``shared/facts/llamagen.md`` section 4, not copied); the state_dict keys are the official ones (344 entries for VQ-16).
Inference only: no losses, no codebook-usage tracking (``quantize.codebook_used`` is kept as a buffer so that the
released file loads strictly).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class VQConfig:
    codebook_size: int = 16384
    embed_dim: int = 8  # code vector size
    z_channels: int = 256
    ch: int = 128  # base width; level l has ch * ch_mult[l] channels
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2  # per encoder level; the decoder has one more per stage
    codebook_used_len: int = 65536  # length of the training-only usage buffer in the official file; 0: no buffer

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, c, eps=1e-6, affine=True)


def _swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


class ResnetBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.norm1 = _norm(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = _norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        h = self.conv1(_swish(self.norm1(x)))
        h = self.conv2(_swish(self.norm2(h)))
        skip = self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x
        return skip + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the H*W positions, 1x1 convs for q, k, v and the output."""

    def __init__(self, c: int):
        super().__init__()
        self.norm = _norm(c)
        self.q = nn.Conv2d(c, c, 1)
        self.k = nn.Conv2d(c, c, 1)
        self.v = nn.Conv2d(c, c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        h = self.norm(x)
        q, k, v = self.q(h), self.k(h), self.v(h)
        B, C, H, W = q.shape
        q = q.reshape(B, C, H * W).permute(0, 2, 1)  # (B, HW, C)
        k = k.reshape(B, C, H * W)  # (B, C, HW)
        w = torch.softmax(torch.bmm(q, k) * (int(C) ** -0.5), dim=2)  # (B, HW query, HW key)
        out = torch.bmm(v.reshape(B, C, H * W), w.permute(0, 2, 1)).reshape(B, C, H, W)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1), value=0.0))  # pad right and bottom only


class Upsample(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _Level(nn.Module):
    """One resolution level: ResnetBlocks, optionally an AttnBlock after each, optionally a resampler."""

    def __init__(self, cin: int, cout: int, n_res: int, attn: bool, resample: type | None, resample_name: str):
        super().__init__()
        self.res = nn.ModuleList(ResnetBlock(cin if i == 0 else cout, cout) for i in range(n_res))
        if attn:
            self.attn = nn.ModuleList(AttnBlock(cout) for _ in range(n_res))
        if resample is not None:
            setattr(self, resample_name, resample(cout))
        self.resample_name = resample_name

    def forward(self, x):
        attn = getattr(self, "attn", None)
        for i, block in enumerate(self.res):
            x = block(x)
            if attn is not None:
                x = attn[i](x)
        resample = getattr(self, self.resample_name, None)
        return resample(x) if resample is not None else x


class Encoder(nn.Module):
    def __init__(self, cfg: VQConfig):
        super().__init__()
        widths = [cfg.ch * m for m in cfg.ch_mult]
        last = len(widths) - 1
        self.conv_in = nn.Conv2d(3, cfg.ch, 3, padding=1)
        self.conv_blocks = nn.ModuleList(
            _Level([cfg.ch, *widths][l], widths[l], cfg.num_res_blocks, attn=l == last,
                   resample=Downsample if l < last else None, resample_name="downsample")
            for l in range(len(widths))
        )
        c = widths[-1]
        self.mid = nn.ModuleList([ResnetBlock(c, c), AttnBlock(c), ResnetBlock(c, c)])
        self.norm_out = _norm(c)
        self.conv_out = nn.Conv2d(c, cfg.z_channels, 3, padding=1)

    def forward(self, x):
        h = self.conv_in(x)
        for level in self.conv_blocks:
            h = level(h)
        for block in self.mid:
            h = block(h)
        return self.conv_out(_swish(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, cfg: VQConfig):
        super().__init__()
        widths = [cfg.ch * m for m in reversed(cfg.ch_mult)]  # coarsest stage first
        last = len(widths) - 1
        c = widths[0]
        self.conv_in = nn.Conv2d(cfg.z_channels, c, 3, padding=1)
        self.mid = nn.ModuleList([ResnetBlock(c, c), AttnBlock(c), ResnetBlock(c, c)])
        self.conv_blocks = nn.ModuleList(
            _Level([c, *widths][s], widths[s], cfg.num_res_blocks + 1, attn=s == 0,
                   resample=Upsample if s < last else None, resample_name="upsample")
            for s in range(len(widths))
        )
        self.norm_out = _norm(widths[-1])
        self.conv_out = nn.Conv2d(widths[-1], 3, 3, padding=1)

    def forward(self, z):
        h = self.conv_in(z)
        for block in self.mid:
            h = block(h)
        for stage in self.conv_blocks:
            h = stage(h)
        return self.conv_out(_swish(self.norm_out(h)))


class Quantizer(nn.Module):
    def __init__(self, cfg: VQConfig):
        super().__init__()
        if cfg.codebook_used_len:
            self.register_buffer("codebook_used", torch.zeros(cfg.codebook_used_len))
        self.embedding = nn.Embedding(cfg.codebook_size, cfg.embed_dim)

    def codebook(self) -> torch.Tensor:
        """The l2-normalised codebook (the stored rows need not be unit-norm)."""
        return F.normalize(self.embedding.weight, p=2, dim=-1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z (B, C, H, W) -> (quantised (B, C, H, W) in straight-through form, indices (B*H*W,) in raster order)."""
        B, C, H, W = z.shape
        flat = F.normalize(z.permute(0, 2, 3, 1), p=2, dim=-1).reshape(-1, C)  # (BHW, C)
        e = self.codebook()
        dist = flat.pow(2).sum(1, keepdim=True) + e.pow(2).sum(1) - 2 * flat @ e.t()
        idx = dist.argmin(dim=1)
        zq = flat + (e[idx] - flat)
        return zq.view(B, H, W, C).permute(0, 3, 1, 2), idx


class VQModel(nn.Module):
    def __init__(self, cfg: VQConfig = VQConfig()):
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quantize = Quantizer(cfg)
        self.quant_conv = nn.Conv2d(cfg.z_channels, cfg.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(cfg.embed_dim, cfg.z_channels, 1)

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images (B, 3, H, W) in [-1, 1] -> (quantised codes (B, embed_dim, H/16, W/16), indices (B*H*W/256,))."""
        return self.quantize(self.quant_conv(self.encoder(images)))

    def decode_code(self, indices: torch.Tensor, grid: int) -> torch.Tensor:
        """Token indices (any shape with B*grid*grid elements, raster order) -> images (B, 3, 16g, 16g), unclamped."""
        codes = self.quantize.codebook()[indices.reshape(-1).long()]
        z = codes.view(-1, grid, grid, self.config.embed_dim).permute(0, 3, 1, 2).contiguous()
        return self.decoder(self.post_quant_conv(z))
