"""The Generator protocol every model is seen through, plus the noise generator and the builders.

``generate(labels, seeds)`` returns uint8 images (N, H, W, 3).  ``seeds[i]`` is the per-sample seed of row i (see
``sample_seed``): in per-sample mode a row's randomness depends only on its own seed, never on the batch.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from varbench.errors import VarbenchError
from varbench.zoo import GeneratorSpec

DTYPES = ("fp32", "bf16", "fp16")


@runtime_checkable
class Generator(Protocol):
    name: str
    resolution: int
    num_classes: int
    random_weights: bool  # True when no released weights were loaded

    def generate(self, labels: Sequence[int], seeds: Sequence[int]) -> np.ndarray:
        """uint8 (N, H, W, 3) images, row i from (labels[i], seeds[i]) alone."""
        ...

    def describe(self) -> dict:
        """Architecture, checkpoint sha256s and settings, for manifests and results."""
        ...


def sample_seed(seed: int, index: int) -> int:
    """The per-sample seed of global sample ``index`` under run seed ``seed`` (63-bit, stable across platforms)."""
    digest = hashlib.sha256(f"varbench/sample/{int(seed)}/{int(index)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def to_uint8(images01) -> np.ndarray:
    """(N, 3, H, W) float in [0, 1] -> uint8 (N, H, W, 3) with the rule round(255 * x) (ties to even)."""
    import torch

    x = images01.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def torch_dtype(name: str):
    import torch

    table = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if name not in table:
        raise VarbenchError(f"unknown dtype {name!r}; use one of {', '.join(DTYPES)}")
    return table[name]


def build(spec: GeneratorSpec, weight_paths: dict | None = None, device: str = "cpu", dtype: str = "fp32", **options):
    """Build the Generator for ``spec``.  ``weight_paths`` maps a role ("var", "vae", ...) to an explicit file."""
    module_name, fn_name = spec.builder.split(":")
    fn = getattr(importlib.import_module(module_name), fn_name)
    return fn(spec, weight_paths or {}, device=device, dtype=dtype, **options)


class NoiseGenerator:
    """Seeded uniform-noise images: the cheapest Generator (pipeline and metric tests)."""

    num_classes = 1000
    random_weights = True

    def __init__(self, name: str = "noise_test", resolution: int = 64):
        self.name, self.resolution = name, resolution

    def generate(self, labels: Sequence[int], seeds: Sequence[int]) -> np.ndarray:
        out = np.empty((len(labels), self.resolution, self.resolution, 3), np.uint8)
        for i, (label, seed) in enumerate(zip(labels, seeds)):
            rng = np.random.default_rng([int(seed), int(label)])
            out[i] = rng.integers(0, 256, size=out.shape[1:], dtype=np.uint8)
        return out

    def describe(self) -> dict:
        return {"family": "noise", "name": self.name, "resolution": self.resolution, "random_weights": True}


def build_noise(spec: GeneratorSpec, weight_paths: dict, device: str = "cpu", dtype: str = "fp32", **options):
    return NoiseGenerator(spec.name, spec.resolution)
