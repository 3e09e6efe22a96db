"""The VAR trainer's validation transform (``utils/data.py`` ``build_dataset``, ``mid_reso=1.125``), in plain PIL.

``Resize(round(1.125 * size), LANCZOS)`` (the short side; the long side truncated, as torchvision computes it, and no
resampling when the size already matches), ``CenterCrop(size)`` with torchvision's offsets ``int(round((h - s) / 2))``
(Python rounding: 64.5 -> 64), RGB (alpha dropped, grey expanded by PIL's ``convert``), then ``x01 + x01 - 1``.
Used by ``varbench scaling`` (validation loss) and by ``varbench edit`` for images not at the model's resolution.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass

import numpy as np

from varbench.errors import VarbenchError

MID_RATIO = 1.125  # train.py's mid_reso: the short side before the centre crop is round(1.125 * size)


@dataclass(frozen=True)
class Geometry:
    """Where a validation crop came from (sizes are (height, width))."""

    original: tuple[int, int]
    resized: tuple[int, int]
    crop_top_left: tuple[int, int]


def open_rgb(source: str | os.PathLike | bytes):
    """``PIL.Image.open(...).convert("RGB")`` (the official ``pil_loader``) with one clear line for unreadable files."""
    from PIL import Image, UnidentifiedImageError

    what = "image bytes" if isinstance(source, bytes) else str(source)
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            return img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise VarbenchError(f"cannot read {what} as an image ({exc}); pass PNG/JPEG files") from None


def resized_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """torchvision's ``Resize(int)`` output size: the short side becomes ``short_side``, the long side is truncated."""
    if height <= width:
        return short_side, int(short_side * width / height)
    return int(short_side * height / width), short_side


def mid_size(size: int) -> int:
    return round(MID_RATIO * size)


def validation_crop(img, size: int) -> tuple[np.ndarray, Geometry]:
    """A PIL RGB image -> (uint8 (size, size, 3), geometry): the official resize + centre crop."""
    from PIL import Image

    w, h = img.size
    rh, rw = resized_size(h, w, mid_size(size))
    if (rh, rw) != (h, w):
        img = img.resize((rw, rh), Image.LANCZOS)
    top, left = int(round((rh - size) / 2.0)), int(round((rw - size) / 2.0))
    crop = np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)
    return crop, Geometry((h, w), (rh, rw), (top, left))


def to_model_input(images_u8: np.ndarray):
    """uint8 (N, H, W, 3) -> float32 tensor (N, 3, H, W) in [-1, 1], exactly ``x01 + x01 - 1`` with ``x01 = u8 / 255``."""
    import torch

    if images_u8.dtype != np.uint8 or images_u8.ndim != 4 or images_u8.shape[-1] != 3:
        raise ValueError(f"expected uint8 (N, H, W, 3) images, got {images_u8.dtype} {images_u8.shape}")
    x01 = torch.from_numpy(np.require(images_u8, requirements=("C", "W"))).permute(0, 3, 1, 2).float().div(255)
    return x01 + x01 - 1


def adm_center_crop(img, size: int) -> np.ndarray:
    """guided-diffusion's ``center_crop_arr`` (its ImageNet loader, and so its reference batches): halve with BOX
    while the short side is at least 2 * size, resize with BICUBIC so the short side is ``size`` (each side rounded),
    then crop the centre with offsets ``(h - size) // 2``.  A PIL RGB image -> uint8 (size, size, 3)."""
    from PIL import Image

    while min(img.size) >= 2 * size:
        img = img.resize(tuple(x // 2 for x in img.size), resample=Image.BOX)
    scale = size / min(img.size)
    img = img.resize(tuple(round(x * scale) for x in img.size), resample=Image.BICUBIC)
    arr = np.asarray(img, dtype=np.uint8)
    top, left = (arr.shape[0] - size) // 2, (arr.shape[1] - size) // 2
    return arr[top:top + size, left:left + size]
