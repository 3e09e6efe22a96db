"""The Generator protocol every model is seen through, and what the results schema records about one.

``generate(labels, seeds)`` returns uint8 images (N, H, W, 3); ``seeds[i]`` is the per-sample seed of row i, and a
row's randomness depends only on its own seed, never on the batch.  ``generate_official(labels, seed)`` reproduces
the official code's RNG order (one generator for the batch).  Implementations: ``varbench.generators.var``,
``varbench.generators.raster``, ``varbench.generators.noise``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from varbench.errors import VarbenchError
from varbench.results.schema import ModelInfo, SamplingInfo, sampling_info

DTYPES = ("fp32", "bf16", "fp16")


@runtime_checkable
class Generator(Protocol):
    name: str
    family: str  # "var" | "llamagen" | "raster" | "noise"
    resolution: int  # side of the delivered images
    generated_resolution: int  # side before any resize
    num_classes: int
    num_steps: int  # sequential decoding steps per image
    random_weights: bool  # True when no released weights were loaded
    sampling: Any  # VarSampling | RasterSampling | None, as applied (no-op filters written as off)
    dtype: str
    params: int | None
    paper_version: str | None

    def generate(self, labels: Sequence[int], seeds: Sequence[int]) -> np.ndarray:
        """uint8 (N, H, W, 3) images, row i from (labels[i], seeds[i]) alone."""
        ...

    def checkpoint_sha256(self) -> dict[str, str]:
        """role -> sha256 of every checkpoint file loaded ({} for random weights)."""
        ...

    def describe(self) -> dict:
        """Everything about the model for the manifest (architecture, settings, files)."""
        ...


def build(spec, weight_paths: dict | None = None, *, device: str = "cpu", dtype: str = "fp32", sampling=None,
          **options):
    """The Generator of ``spec``.  ``weight_paths`` maps a role ("var", "vae", ...) to an explicit file; ``sampling``
    is a checked settings dataclass (``varbench.generators.sampling.resolve``), or give its overrides as options
    (``build(spec, cfg=2.0)``); the other options go to the builder (``image_size``, ``use_kv_cache``, ...)."""
    from varbench.generators.sampling import OPTIONS, resolve

    overrides = {k: options.pop(k) for k in list(options) if k in OPTIONS}
    if sampling is not None and any(v is not None for v in overrides.values()):
        raise ValueError("give either a sampling dataclass or sampling overrides, not both")
    torch_dtype(dtype)  # one-line error before any work
    return spec.build(spec, weight_paths or {}, device=device, dtype=dtype,
                      sampling=resolve(spec, overrides) if sampling is None else sampling, **options)


def model_info(generator) -> ModelInfo:
    return ModelInfo(
        name=generator.name, family=generator.family, resolution=int(generator.resolution),
        generated_resolution=int(generator.generated_resolution), params=generator.params,
        checkpoint_sha256=dict(generator.checkpoint_sha256()), random_weights=bool(generator.random_weights),
        paper_version=generator.paper_version,
    )


def sampling_record(generator) -> SamplingInfo | None:
    if generator.sampling is None:
        return None
    return sampling_info(generator.sampling, generator.dtype, generator.num_steps)


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


def check_labels(labels: Sequence[int], num_classes: int, allow_null: bool = False) -> None:
    """Class labels in 0..num_classes-1 (num_classes itself is the null class where ``allow_null``)."""
    top = num_classes if allow_null else num_classes - 1
    bad = [int(x) for x in labels if not 0 <= int(x) <= top]
    if bad:
        null = f" ({num_classes} = unconditional)" if allow_null else ""
        raise VarbenchError(f"class labels must be in 0..{num_classes - 1}{null}, got {bad[:5]}")
