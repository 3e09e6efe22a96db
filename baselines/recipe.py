"""Seeded "recipe" weights: the random weights of the LlamaGen fixtures, rebuilt from key names and shapes.

The recipe (``shared/fixtures/llamagen/README.md``): one torch.Generator seeded with ``seed``; walk the state_dict keys
in ``sorted()`` order; ``*codebook_used`` (and KV-cache buffers) are zeros without a draw; every other key draws
``randn(shape)`` in float32, then a tensor with >= 2 dims is divided by sqrt(prod(shape[1:])), a 1-D ``*.weight``
(a norm scale) becomes 1 + 0.1 x and any other 1-D tensor (a bias) 0.1 x.
Random-init zoo entries (``llamagen_test``, raster twins) use it too, so their weights are reproducible.
"""

from __future__ import annotations

import math

import torch
from torch import nn

_ZERO_SUFFIXES = ("codebook_used", ".k_cache", ".v_cache")


def recipe_tensor(key: str, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    if key.endswith(_ZERO_SUFFIXES):
        return torch.zeros(shape, device=generator.device)
    x = torch.randn(shape, generator=generator, dtype=torch.float32, device=generator.device)
    if len(shape) >= 2:
        return x / math.sqrt(math.prod(shape[1:]))
    return 1 + 0.1 * x if key.endswith(".weight") else 0.1 * x


@torch.no_grad()
def fill_with_recipe(module: nn.Module, seed: int, device: torch.device | str = "cpu") -> nn.Module:
    """Materialise ``module`` (possibly on the meta device) on ``device`` with recipe weights for ``seed``.

    The draws come from a generator on ``device``, so CPU and CUDA give different (equally random) weights.
    """
    device = torch.device(device)
    module.to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    state = module.state_dict(keep_vars=True)
    for key in sorted(state):
        state[key].copy_(recipe_tensor(key, tuple(state[key].shape), generator))
    return module
