"""VAR's multi-scale VQVAE (tokenizer): convolutional encoder/decoder around the residual quantizer.

Paper: Tian et al., "Visual Autoregressive Modeling: Scalable Image Generation via Next-Scale Prediction",
NeurIPS 2024 (arXiv 2404.02905).  Mirrors the architecture of FoundationVision/VAR ``models/vqvae.py`` and
``models/basic_vae.py`` (checkpoint ``vae_ch160v4096z32.pth``); module and parameter names follow the official state
dict so released files load strictly.  Images are NCHW RGB in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from varbench.models.quant import MultiScaleQuantizer


@dataclass(frozen=True)
class VQVAEConfig:
    patch_nums: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)
    vocab_size: int = 4096
    latent_dim: int = 32  # "Cvae": channels of the latent / code vectors
    ch: int = 160  # base width of encoder and decoder (released VAE: 160)
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2  # per encoder level (decoder: +1)
    share_quant_resi: int = 4  # number of partially shared phi convs
    quant_resi: float = 0.5  # phi blend ratio

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm1 = _norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.norm2 = _norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1)
        self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x), inplace=True))  # in place on the norm's fresh output, as upstream
        h = self.conv2(F.silu(self.norm2(h), inplace=True))  # dropout 0 in every released model
        return self.nin_shortcut(x) + h  # (not in place: the sum takes x's memory format, as upstream)


class AttnBlock(nn.Module):
    """Single-head spatial self-attention with one fused 1x1 qkv conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.norm = _norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        C = self.channels
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H, W).unbind(1)
        q = q.reshape(B, C, H * W).permute(0, 2, 1).contiguous()  # (B, HW, C)
        k = k.reshape(B, C, H * W).contiguous()  # (B, C, HW)
        w = torch.bmm(q, k).mul_(C**-0.5).softmax(dim=2)  # (B, HW_query, HW_key)
        v = v.reshape(B, C, H * W).contiguous()
        h = torch.bmm(v, w.permute(0, 2, 1).contiguous()).reshape(B, C, H, W)
        return x + self.proj_out(h)


class Downsample(nn.Module):
    """Zero-pad right/bottom by one pixel, then a stride-2 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 2, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0))


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def _mid(channels: int) -> nn.Module:
    mid = nn.Module()
    mid.block_1 = ResnetBlock(channels, channels)
    mid.attn_1 = AttnBlock(channels)
    mid.block_2 = ResnetBlock(channels, channels)
    return mid


def _run_stage(stage: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """The ResnetBlocks of one resolution level, each followed by its AttnBlock where the level has them."""
    for i, block in enumerate(stage.block):
        h = block(h)
        if len(stage.attn):
            h = stage.attn[i](h)
    return h


def _run_mid(mid: nn.Module, h: torch.Tensor) -> torch.Tensor:
    return mid.block_2(mid.attn_1(mid.block_1(h)))


class Encoder(nn.Module):
    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        ch, mult = cfg.ch, cfg.ch_mult
        self.conv_in = nn.Conv2d(3, ch, 3, 1, 1)
        in_mult = (1, *mult)
        self.down = nn.ModuleList()
        for level, m in enumerate(mult):
            stage = nn.Module()
            stage.block, stage.attn = nn.ModuleList(), nn.ModuleList()
            c_in, c_out = ch * in_mult[level], ch * m
            for _ in range(cfg.num_res_blocks):
                stage.block.append(ResnetBlock(c_in, c_out))
                c_in = c_out
                if level == len(mult) - 1:  # self-attention only at the lowest resolution
                    stage.attn.append(AttnBlock(c_in))
            if level != len(mult) - 1:
                stage.downsample = Downsample(c_in)
            self.down.append(stage)
        self.mid = _mid(c_in)
        self.norm_out = _norm(c_in)
        self.conv_out = nn.Conv2d(c_in, cfg.latent_dim, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for stage in self.down:
            h = _run_stage(stage, h)
            if hasattr(stage, "downsample"):
                h = stage.downsample(h)
        h = _run_mid(self.mid, h)
        return self.conv_out(F.silu(self.norm_out(h), inplace=True))


class Decoder(nn.Module):
    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        ch, mult = cfg.ch, cfg.ch_mult
        c_in = ch * mult[-1]
        self.conv_in = nn.Conv2d(cfg.latent_dim, c_in, 3, 1, 1)
        self.mid = _mid(c_in)
        stages = []
        for level in reversed(range(len(mult))):  # built from the lowest resolution up; indexed by level
            stage = nn.Module()
            stage.block, stage.attn = nn.ModuleList(), nn.ModuleList()
            c_out = ch * mult[level]
            for _ in range(cfg.num_res_blocks + 1):
                stage.block.append(ResnetBlock(c_in, c_out))
                c_in = c_out
                if level == len(mult) - 1:
                    stage.attn.append(AttnBlock(c_in))
            if level != 0:
                stage.upsample = Upsample(c_in)
            stages.insert(0, stage)
        self.up = nn.ModuleList(stages)
        self.norm_out = _norm(c_in)
        self.conv_out = nn.Conv2d(c_in, 3, 3, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = _run_mid(self.mid, self.conv_in(z))
        for level in reversed(range(len(self.up))):
            stage = self.up[level]
            h = _run_stage(stage, h)
            if hasattr(stage, "upsample"):
                h = stage.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h), inplace=True))


class VQVAE(nn.Module):
    def __init__(self, cfg: VQVAEConfig = VQVAEConfig()):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quantize = MultiScaleQuantizer(
            cfg.vocab_size, cfg.latent_dim, cfg.patch_nums, cfg.share_quant_resi, cfg.quant_resi
        )
        self.quant_conv = nn.Conv2d(cfg.latent_dim, cfg.latent_dim, 3, 1, 1)
        self.post_quant_conv = nn.Conv2d(cfg.latent_dim, cfg.latent_dim, 3, 1, 1)

    def encode_latent(self, img: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] (B, 3, H, W) -> continuous latent f (B, Cvae, H/16, W/16)."""
        return self.quant_conv(self.encoder(img))

    def encode(self, img: torch.Tensor) -> list[torch.Tensor]:
        """Images in [-1, 1] -> per-scale token indices, a list of (B, pn*pn) int64 (row-major)."""
        return self.quantize.latent_to_tokens(self.encode_latent(img))

    def fhat_to_img(self, f_hat: torch.Tensor) -> torch.Tensor:
        """Accumulated latent -> image clamped to [-1, 1]."""
        return self.decoder(self.post_quant_conv(f_hat)).clamp_(-1, 1)

    def decode(self, tokens: list[torch.Tensor]) -> torch.Tensor:
        """Per-scale tokens -> image in [-1, 1]."""
        return self.fhat_to_img(self.quantize.tokens_to_fhat(tokens))
