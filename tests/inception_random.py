"""Offline stand-ins for the Inception tests: seeded random weights in the official layout, and varied images.

``varbench.features.inception.random_state_dict`` draws He-normal convolutions and perturbed BatchNorm statistics,
so features change with the image (default initialisation gives near-constant features).  The file is written once
per test session.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_FILES: dict[tuple, Path] = {}


def weights_file(tmp_path_factory, seed: int = 0, nan: bool = False) -> Path:
    """A torch-fidelity-layout weight file with seeded random weights (optionally NaN BatchNorm statistics)."""
    import torch

    from varbench.features.inception import random_state_dict

    key = (seed, nan)
    if key not in _FILES:
        sd = random_state_dict(seed)
        if nan:
            sd["Conv2d_1a_3x3.bn.running_var"][0] = float("nan")
        path = tmp_path_factory.mktemp("inception") / f"random-inception-{seed}{'-nan' if nan else ''}.pth"
        torch.save(sd, path)
        _FILES[key] = path
    return _FILES[key]


def images(n: int, height: int = 64, width: int = 64, seed: int = 0) -> np.ndarray:
    """uint8 (n, H, W, 3) images with different colours and coarse structure (smooth blobs plus a little noise)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(n, 4, 4, 3))
    rows = np.linspace(0, 3, height)
    cols = np.linspace(0, 3, width)
    r0, c0 = np.floor(rows).astype(int).clip(0, 2), np.floor(cols).astype(int).clip(0, 2)
    fr, fc = (rows - r0)[None, :, None, None], (cols - c0)[None, None, :, None]
    top = coarse[:, r0][:, :, c0] * (1 - fc) + coarse[:, r0][:, :, c0 + 1] * fc
    bottom = coarse[:, r0 + 1][:, :, c0] * (1 - fc) + coarse[:, r0 + 1][:, :, c0 + 1] * fc
    smooth = top * (1 - fr) + bottom * fr
    noisy = smooth + rng.normal(0, 8, size=smooth.shape)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)
