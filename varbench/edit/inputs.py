"""The images an edit starts from: read as the notebook reads them (``pil_loader``: RGB, alpha dropped), used as they
are at the model's resolution, otherwise brought there by VAR's validation transform (``varbench.preprocess``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from varbench.errors import VarbenchError

PREPROCESS_RULE = ("images at the model's resolution are used as they are; others go through VAR's validation "
                   "transform (short side to round(1.125 * size) with LANCZOS, centre crop; varbench.preprocess)")


@dataclass(frozen=True)
class InputImage:
    path: str
    sha256: str  # of the file's bytes
    original_hw: tuple[int, int]
    preprocessed: bool  # True: resized and centre-cropped by the validation transform
    resized_hw: tuple[int, int] | None = None
    crop_top_left: tuple[int, int] | None = None

    def to_dict(self) -> dict:
        return {"path": self.path, "sha256": self.sha256, "original_hw": list(self.original_hw),
                "preprocessed": self.preprocessed,
                "resized_hw": list(self.resized_hw) if self.resized_hw else None,
                "crop_top_left": list(self.crop_top_left) if self.crop_top_left else None}


def load_image(path: str | Path, size: int) -> tuple[np.ndarray, InputImage]:
    """uint8 (size, size, 3) and its record."""
    from varbench.preprocess import open_rgb, validation_crop

    from varbench.files import sha256_file

    path = Path(path)
    if not path.is_file():
        raise VarbenchError(f"image not found: {path} (give PNG/JPEG files)")
    img = open_rgb(path)
    w, h = img.size
    digest = sha256_file(path)
    if (h, w) == (size, size):
        return np.asarray(img, dtype=np.uint8).copy(), InputImage(str(path), digest, (h, w), False)
    crop, geo = validation_crop(img, size)
    return crop, InputImage(str(path), digest, (h, w), True, geo.resized, geo.crop_top_left)


def load_images(paths, size: int) -> tuple[np.ndarray, list[InputImage]]:
    """uint8 (N, size, size, 3) in the order given, and one record per image."""
    if not paths:
        raise VarbenchError("give at least one image to edit (PNG/JPEG), or --benchmark DIR")
    arrays, records = [], []
    for p in paths:
        a, r = load_image(p, size)
        arrays.append(a)
        records.append(r)
    return np.stack(arrays), records
