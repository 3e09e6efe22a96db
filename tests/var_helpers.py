"""Test helpers: golden files and the recipe models they were made with."""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from var_recipe import recipe_vae, recipe_var
from varbench.models.var import VARConfig
from varbench.models.vqvae import VQVAEConfig

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@functools.lru_cache(maxsize=None)
def golden(name: str) -> dict:
    return torch.load(FIXTURES / name, map_location="cpu", weights_only=True)


def proj_matrix() -> torch.Tensor:
    """The fixtures' fixed projection (recipe in their README); we keep its first 4 columns."""
    g = torch.Generator().manual_seed(20240404)
    return (torch.randn(4096, 16, generator=g, dtype=torch.float32) / 64)[:, :4]


def compact(logits: torch.Tensor) -> dict:
    """The fixtures' compact logits record: projection, logsumexp, argmax."""
    proj = (logits.double() @ proj_matrix().double()).float()
    return {"proj": proj, "logsumexp": logits.logsumexp(-1), "argmax": logits.argmax(-1)}


@functools.lru_cache(maxsize=None)
def models(which: str):
    """(var, vae) recipe models of golden file ``which`` ("256" or "512"); VAE weights are shared."""
    cfg = golden(f"var_golden_{which}.pt")["config"]
    pn = tuple(cfg["patch_nums"])
    var = recipe_var(VARConfig(depth=cfg["depth"], patch_nums=pn, shared_aln=cfg["shared_aln"]))
    vae = recipe_vae(VQVAEConfig(patch_nums=pn, ch=cfg["vae_ch"]))
    return var, vae
