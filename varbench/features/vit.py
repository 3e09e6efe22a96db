"""The DINOv2 Vision Transformer as the FD_DINOv2 metric runs it: eval mode, 224 px input, CLS token after the final
norm.

Paper: Oquab et al., "DINOv2: Learning Robust Visual Features without Supervision" (TMLR 2024).  Mirrored upstream
file: facebookresearch/dinov2 ``dinov2/models/vision_transformer.py`` (``DinoVisionTransformer``, with
``layers/{patch_embed,attention,block,layer_scale,mlp}.py``) at b8931f7, the ``dinov2_vitl14`` hub entry
(``hub/backbones.py``): pre-norm blocks ``x + ls1(attn(norm1(x)))``, ``x + ls2(mlp(norm2(x)))``, LayerNorm eps 1e-6,
exact-erf GELU, LayerScale ``x * gamma``, qkv/proj/MLP biases, no register tokens, no head.

Module names follow the released ``dinov2_*14_pretrain.pth`` key layout (``block_chunks=0``), so those files load
strictly.  The position embedding is resampled once for the input size, the official run-time way
(``interpolate_pos_encoding``: bicubic by the scale factor ``(grid + 0.1) / M``, antialias off, in float32, CLS row
unchanged); at a fixed input size this equals resampling at every call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from varbench.errors import VarbenchError

LAYERNORM_EPS = 1e-6
HEAD_DIM = 64  # every released DINOv2 (ViT-S/B/L/g) has width / heads = 64
INTERPOLATE_OFFSET = 0.1  # the official "historical kludge" of the non-register models (hub/backbones.py)


@dataclass(frozen=True)
class ViTConfig:
    width: int  # embedding dimension D (1024 for ViT-L)
    depth: int  # number of blocks (24 for ViT-L)
    heads: int  # attention heads (16 for ViT-L); not visible in the weight shapes
    patch_size: int = 14
    mlp_hidden: int = 4096  # fc1 output
    pos_grid: int = 37  # the position embedding's grid side M (518 px / 14)

    @property
    def head_dim(self) -> int:
        return self.width // self.heads


def infer_config(state_dict: dict, heads: int | None = None, what: str = "ViT weights") -> ViTConfig:
    """Width, depth, patch size, MLP width and position grid from the shapes; heads = width / 64 unless given."""
    for key in ("pos_embed", "patch_embed.proj.weight", "blocks.0.mlp.fc1.weight"):
        if key not in state_dict:
            raise VarbenchError(f"{what} have no {key!r}: not a DINOv2 ViT state dict (block_chunks=0 layout)")
    width, _, patch, _ = state_dict["patch_embed.proj.weight"].shape
    depth = 1 + max(int(k.split(".")[1]) for k in state_dict if k.startswith("blocks.") and k.split(".")[1].isdigit())
    tokens = state_dict["pos_embed"].shape[1] - 1
    grid = math.isqrt(tokens)
    if grid * grid != tokens:
        raise VarbenchError(f"{what}: pos_embed holds {tokens} patch positions, not a square grid")
    if heads is None:
        if width % HEAD_DIM:
            raise VarbenchError(f"{what}: width {width} is not a multiple of {HEAD_DIM}; pass the head count "
                                "(--dinov2-heads N)")
        heads = width // HEAD_DIM
    if heads < 1 or width % heads:
        raise VarbenchError(f"{what}: {heads} heads do not divide the width {width}; pass a divisor of it")
    return ViTConfig(width=int(width), depth=depth, heads=int(heads), patch_size=int(patch),
                     mlp_hidden=int(state_dict["blocks.0.mlp.fc1.weight"].shape[0]), pos_grid=grid)


class PatchEmbed(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.width, kernel_size=cfg.patch_size, stride=cfg.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, h*w, D), patches row-major
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width)
        self.proj = nn.Linear(cfg.width, cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads)
        q, k, v = (t.transpose(1, 2) for t in qkv.unbind(2))  # (B, heads, N, head_dim)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class LayerScale(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.width, cfg.mlp_hidden)
        self.act = nn.GELU()  # exact erf
        self.fc2 = nn.Linear(cfg.mlp_hidden, cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.width, eps=LAYERNORM_EPS)
        self.attn = Attention(cfg)
        self.ls1 = LayerScale(cfg.width)
        self.norm2 = nn.LayerNorm(cfg.width, eps=LAYERNORM_EPS)
        self.mlp = Mlp(cfg)
        self.ls2 = LayerScale(cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


def resample_pos_embed(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """(1, 1 + M*M, D) -> (1, 1 + grid*grid, D), as ``interpolate_pos_encoding`` does for a square input whose patch
    grid is ``grid``: float32 bicubic by scale factor ``(grid + 0.1) / M`` per axis (the factor, not the size, sets
    the sampling positions), antialias off, CLS row unchanged, result in the input's dtype."""
    tokens, width = pos_embed.shape[1] - 1, pos_embed.shape[2]
    m = math.isqrt(tokens)
    if m == grid:
        return pos_embed
    pos = pos_embed.float()
    scale = float(grid + INTERPOLATE_OFFSET) / m
    patch = pos[:, 1:].reshape(1, m, m, width).permute(0, 3, 1, 2)  # (1, D, M, M), channels-last memory
    patch = F.interpolate(patch, mode="bicubic", antialias=False, scale_factor=(scale, scale))
    if tuple(patch.shape[-2:]) != (grid, grid):
        raise ValueError(f"position grid {m} resampled by {scale} gave {tuple(patch.shape[-2:])}, not {grid}")
    patch = patch.permute(0, 2, 3, 1).reshape(1, grid * grid, width)
    return torch.cat((pos[:, :1], patch), dim=1).to(pos_embed.dtype)


class DinoViT(nn.Module):
    """Normalised (B, 3, S, S) -> CLS token after the final norm (B, D), S = ``input_size``."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.cfg = cfg
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.pos_grid**2, cfg.width))
        self.mask_token = nn.Parameter(torch.zeros(1, cfg.width))  # masked-image training only; loaded, unused
        self.patch_embed = PatchEmbed(cfg)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.width, eps=LAYERNORM_EPS)
        self.register_buffer("pos_embed_input", None, persistent=False)
        self.input_size: int | None = None

    def set_input_size(self, size: int) -> None:
        """Resample the position embedding once for square ``size`` px inputs (call after loading and moving)."""
        if size % self.cfg.patch_size:
            raise ValueError(f"input size {size} is not a multiple of the patch size {self.cfg.patch_size}")
        with torch.no_grad():
            self.pos_embed_input = resample_pos_embed(self.pos_embed.detach(), size // self.cfg.patch_size)
        self.input_size = size

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, 1 + (S/p)^2, D): CLS then patches, plus the resampled position embedding."""
        if self.input_size is None or tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            raise ValueError(f"input {tuple(x.shape)} does not match the prepared size {self.input_size}")
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        return x + self.pos_embed_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.tokens(x)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 0]
