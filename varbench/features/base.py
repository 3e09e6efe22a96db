"""The feature-extractor protocol.

An extractor turns uint8 images (N, H, W, 3) into named feature arrays.  Its id ``name@version`` is stored in every
reference-statistics file and every result; statistics from different ids are never compared.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


POOL3 = "pool3"  # (N, 2048) FID, precision/recall, KID
LOGITS = "logits"  # (N, 1008) bias-free logits, Inception Score
SPATIAL = "spatial"  # (N, 2023) sFID: mixed_6/conv, first 7 channels, flattened H, W, C
DINOV2 = "dinov2"  # (N, 1024) FD_DINOv2: the DINOv2 ViT-L/14 CLS token after the final norm (EDM2)
SFID_CHANNELS = 7  # ADM keeps the first 7 of the 192 channels of mixed_6/conv (17 x 17 x 7 = 2023)


@runtime_checkable
class FeatureExtractor(Protocol):
    name: str
    version: str
    dims: dict[str, int]  # feature name -> dimension

    @property
    def id(self) -> str:  # "name@version"
        ...

    def extract(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """uint8 (N, H, W, 3) -> {feature name: (N, dim)}; rows depend only on their own image."""
        ...


def make_id(name: str, version: str) -> str:
    if "@" in name or "@" in version:
        raise ValueError(f"extractor name and version must not contain '@': {name!r}, {version!r}")
    return f"{name}@{version}"
