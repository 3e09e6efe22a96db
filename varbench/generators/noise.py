"""Seeded uniform-noise images behind the Generator protocol: no model, for pipeline and metric tests (like
lm-eval's ``DummyLM``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class NoiseGenerator:
    family = "noise"
    num_classes = 1000
    num_steps = 0
    random_weights = True
    sampling = None
    dtype = "fp32"
    params = None
    paper_version = None

    def __init__(self, name: str = "noise_test", resolution: int = 64):
        self.name, self.resolution = name, resolution
        self.generated_resolution = resolution

    def generate(self, labels: Sequence[int], seeds: Sequence[int]) -> np.ndarray:
        out = np.empty((len(labels), self.resolution, self.resolution, 3), np.uint8)
        for i, (label, seed) in enumerate(zip(labels, seeds)):
            rng = np.random.default_rng([int(seed), int(label)])
            out[i] = rng.integers(0, 256, size=out.shape[1:], dtype=np.uint8)
        return out

    def checkpoint_sha256(self) -> dict[str, str]:
        return {}

    def describe(self) -> dict:
        return {"family": "noise", "name": self.name, "resolution": self.resolution, "random_weights": True}


def build_noise(spec, weight_paths: dict, *, device: str = "cpu", dtype: str = "fp32", sampling=None, **options):
    if weight_paths:
        raise ValueError("the noise generator takes no weights")
    return NoiseGenerator(spec.name, spec.resolution)
