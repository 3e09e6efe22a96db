"""Rebuild the seeded random weights of the shared VAR golden fixtures (recipe in ../shared/fixtures/var/README.md).

The golden files store these weights; we regenerate them instead of committing 50 MB, and ``make_fixtures.py``
checks once that the regenerated tensors equal the stored ones bit for bit.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from varbench.models.var import VAR, VARConfig
from varbench.models.vqvae import VQVAE, VQVAEConfig


def recipe_vae(cfg: VQVAEConfig) -> VQVAE:
    vae = VQVAE(cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        for module in vae.modules():
            if isinstance(module, nn.Conv2d):
                module.reset_parameters()
            elif isinstance(module, nn.GroupNorm):
                with torch.no_grad():
                    module.weight.copy_(1 + 0.1 * torch.randn(module.weight.shape))
                    module.bias.copy_(0.1 * torch.randn(module.bias.shape))
        with torch.no_grad():
            vae.quantize.embedding.weight.copy_(torch.randn(vae.quantize.embedding.weight.shape) * 0.1)
    return vae.eval().requires_grad_(False)


def recipe_var(cfg: VARConfig) -> VAR:
    var = VAR(cfg)
    g = torch.Generator().manual_seed(5678 + cfg.depth)
    C = cfg.C
    with torch.no_grad():
        for name, p in var.named_parameters():
            r = torch.randn(p.shape, generator=g)
            leaf = name.rsplit(".", 1)[-1]
            if name in ("class_emb.weight", "lvl_embed.weight"):
                val = r
            elif name in ("pos_start", "pos_1LC"):
                val = 0.5 * r
            elif leaf == "scale_mul_1H11":
                val = math.log(4) + 0.5 * r
                val[0, 0] = math.log(150)  # above the clamp at ln 100
            elif leaf == "ada_gss":
                val = r / math.sqrt(C)
            elif name == "head.weight":
                val = r * 3 / math.sqrt(C)
            elif leaf == "weight" and p.ndim == 2:
                gain = 0.5 if "ada_lin" in name else 1.0
                val = r * gain / math.sqrt(p.shape[1])
            else:  # biases, q_bias, v_bias
                val = 0.1 * r
            p.copy_(val)
    return var.eval().requires_grad_(False)
