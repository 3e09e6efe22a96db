"""The one seeded random-weight recipe: every random-init model (``var_test``, ``llamagen_test``, the raster twins,
the speed study's models) and the random Inception of the offline tests draws its weights here.

The recipe is the one of the LlamaGen fixtures (``shared/fixtures/llamagen/README.md``), so ``llamagen_test``
reproduces the fixtures' weights bit for bit: one ``torch.Generator`` seeded with ``seed``; walk the state-dict keys in
``sorted()`` order; every parameter (and BatchNorm running statistic) draws ``randn(shape)`` in float32, then
- a tensor with >= 2 dims is divided by ``sqrt(prod(shape[1:]) / gain)`` (``gain`` 1: the fixtures; 2: He-normal,
  which keeps ReLU networks such as Inception away from constant activations),
- ``*.running_var`` becomes ``exp(0.2 x)`` (positive), a 1-D ``*.weight`` (a norm scale) ``1 + 0.1 x`` and any other
  1-D tensor (a bias, a running mean) ``0.1 x``.
Keys ending in ``codebook_used``, ``.k_cache``, ``.v_cache`` and integer buffers are zeros without a draw; other buffers
(VAR's attention mask, level ids, zero key bias) keep the values the module was built with.
"""

from __future__ import annotations

import math

import torch
from torch import nn

_ZERO_SUFFIXES = ("codebook_used", ".k_cache", ".v_cache")
_STATISTICS = (".running_mean", ".running_var")


def recipe_tensor(key: str, shape: tuple[int, ...], generator: torch.Generator, gain: float = 1.0) -> torch.Tensor:
    """The recipe value of one drawing key (advances ``generator`` by prod(shape) normals)."""
    x = torch.randn(shape, generator=generator, dtype=torch.float32, device=generator.device)
    if len(shape) >= 2:
        return x / math.sqrt(math.prod(shape[1:]) / gain)
    if key.endswith(".running_var"):
        return torch.exp(0.2 * x)
    return 1 + 0.1 * x if key.endswith(".weight") else 0.1 * x


@torch.no_grad()
def fill_with_recipe(module: nn.Module, seed: int, device: torch.device | str = "cpu", *, gain: float = 1.0) -> nn.Module:
    """Materialise ``module`` on ``device`` with recipe weights for ``seed``; returns it.

    A module built on the meta device costs no initialisation; its non-drawing buffers then become zeros, so build
    modules whose buffers carry values (VAR's mask) on a real device.  The draws come from a generator on ``device``:
    CPU and CUDA give different (equally random) weights.
    """
    device = torch.device(device)
    params = {name for name, _ in module.named_parameters()}
    kept = {name: b.detach().to(device, copy=True) for name, b in module.named_buffers() if not b.is_meta}
    module.to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    state = module.state_dict(keep_vars=True)
    for key in sorted(state):
        tensor = state[key]
        draws = (key in params or key.endswith(_STATISTICS)) and tensor.is_floating_point()
        if draws and not key.endswith(_ZERO_SUFFIXES):
            tensor.copy_(recipe_tensor(key, tuple(tensor.shape), generator, gain))
        elif key in kept and not key.endswith(_ZERO_SUFFIXES):
            tensor.copy_(kept[key])
        else:
            tensor.zero_()
    return module
