"""Validation images with their class labels for ``varbench scaling``: an ImageNet-style folder or an npz.

Folder: ``DIR/<class>/<image>`` with ``<class>`` either a class index (``390``) or a WordNet synset id
(``n02526121``) of the standard ImageNet-1k order.  That order is ``imagenet_synsets.txt`` (package data: the 1000 ids
sorted, which is torchvision ``ImageFolder``'s class index on the full train/val folders and so the labels VAR was
trained with), copied byte for byte from timm 1.0.31 (``timm/data/_info/imagenet_synsets.txt``, PyPI wheel
``timm-1.0.31-py3-none-any.whl``).  Synsets are mapped through that fixed list, not through the sorted folder names
as ``ImageFolder`` does, so a folder holding only some classes keeps the right labels.  Image files are those with
torchvision's ``IMG_EXTENSIONS`` (any case); other files and hidden entries are ignored.

Order (what ``--limit N`` keeps): folders are read *interleaved* — the first image (by file name) of every class in
class order, then the second of every class, and so on — so the first 1000 images of ImageNet val are one per class;
an npz is read in array order.  npz: ``arr_0`` uint8 (N, H, W, 3) and ``labels`` (N,) integers, memory-mapped when
stored uncompressed.  Every image goes through ``varbench.preprocess`` (the trainer's validation transform).
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from varbench import preprocess
from varbench.errors import VarbenchError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")  # torchvision's
SYNSETS_FILE = "imagenet_synsets.txt"
SYNSETS_SHA256 = "70002b0ff5de60a3a17a82dbfcff291931f96225ddf941ad2e182fc39e183d15"
SYNSETS_SOURCE = "timm 1.0.31 timm/data/_info/imagenet_synsets.txt (PyPI wheel), byte for byte"
NUM_CLASSES = 1000
FOLDER_ORDER = "interleaved: the i-th image (by file name) of every class, classes in index order, i = 0, 1, ..."
NPZ_ORDER = "array order"
_SYNSET = re.compile(r"^n\d{8}$")
_FOLDER_HINT = "name class folders by class index (DIR/390/x.png) or ImageNet synset (DIR/n02526121/x.JPEG)"


@functools.lru_cache(maxsize=1)
def synsets() -> tuple[str, ...]:
    """The 1000 ImageNet-1k WordNet ids in class-index order."""
    data = (resources.files("varbench.scaling") / SYNSETS_FILE).read_bytes()
    if hashlib.sha256(data).hexdigest() != SYNSETS_SHA256:
        raise VarbenchError(f"package file varbench/scaling/{SYNSETS_FILE} is damaged (sha256 differs); reinstall")
    return tuple(data.decode().split())


@dataclass(frozen=True)
class ValidationSet:
    """Labelled images in evaluation order (after ``--limit``)."""

    path: Path
    kind: str  # "folder" | "npz"
    labels: np.ndarray  # int64 (n,), evaluation order
    available: int  # images found before --limit
    limit: int | None
    listing_sha256: str
    naming: str | None = None  # folder: "class_index" | "synset"
    files: tuple[str, ...] = ()  # folder: paths relative to ``path``, evaluation order
    array: np.ndarray | None = field(default=None, repr=False)  # npz: arr_0 (memory-mapped where possible)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def order(self) -> str:
        return FOLDER_ORDER if self.kind == "folder" else NPZ_ORDER

    def read(self, i: int):
        """Image ``i`` as PIL RGB (``pil_loader``: alpha dropped, grey replicated) and the sha256 of its source."""
        if self.kind == "npz":
            from PIL import Image

            row = np.ascontiguousarray(self.array[i])
            return Image.fromarray(row, "RGB"), hashlib.sha256(row.data).hexdigest()
        file = self.path / self.files[i]
        data = _read_bytes(file)
        try:
            img = preprocess.open_rgb(data)
        except VarbenchError:
            preprocess.open_rgb(file)  # the same failure, worded with the file's name
            raise
        return img, hashlib.sha256(data).hexdigest()

    def crop(self, i: int, resolution: int) -> tuple[np.ndarray, str, preprocess.Geometry]:
        img, sha = self.read(i)
        crop, geometry = preprocess.validation_crop(img, resolution)
        return crop, sha, geometry

    def load(self, positions, resolution: int, workers: int = 1) -> tuple[np.ndarray, list[str]]:
        """uint8 (n, R, R, 3) validation crops of ``positions`` and the sha256 of each source (threads decode)."""
        positions = list(positions)
        if workers > 1 and len(positions) > 1:
            with concurrent.futures.ThreadPoolExecutor(min(workers, len(positions))) as pool:
                out = list(pool.map(lambda i: self.crop(i, resolution), positions))
        else:
            out = [self.crop(i, resolution) for i in positions]
        return np.stack([o[0] for o in out]), [o[1] for o in out]

    def describe(self) -> dict:
        """What decides the numbers besides the model (the run identity's data part)."""
        return {"path": str(self.path), "kind": self.kind, "naming": self.naming, "count": len(self),
                "available": self.available, "limit": self.limit, "order": self.order,
                "listing_sha256": self.listing_sha256, "classes": int(len(np.unique(self.labels)))}


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise VarbenchError(f"cannot read image {path}: {e.strerror or e}") from None


def open_validation(path: str | os.PathLike, limit: int | None = None, num_classes: int = NUM_CLASSES) -> ValidationSet:
    """Discover the images and labels of ``path`` (a folder or an npz) and keep the first ``limit`` in order."""
    path = Path(path).expanduser().absolute()
    if limit is not None and limit < 1:
        raise VarbenchError(f"--limit must be at least 1, got {limit}")
    if not path.exists():
        raise VarbenchError(f"--data {path} does not exist; give an ImageNet-style folder (DIR/<class>/<image>) "
                            "or an npz with arr_0 and labels")
    if path.is_dir():
        return _open_folder(path, limit, num_classes)
    if path.suffix.lower() != ".npz":
        raise VarbenchError(f"--data {path} is neither a folder nor an .npz file; give DIR/<class>/<image> or an npz")
    return _open_npz(path, limit, num_classes)


def _class_of(name: str, root: Path, num_classes: int) -> tuple[int, str]:
    if name.isdigit():
        index = int(name)
        if index >= num_classes:
            raise VarbenchError(f"{root / name}: class index {index} is out of range 0-{num_classes - 1}; "
                                f"{_FOLDER_HINT}")
        return index, "class_index"
    if _SYNSET.match(name):
        table = {s: i for i, s in enumerate(synsets())}
        if name not in table:
            raise VarbenchError(f"{root / name}: {name} is not one of the 1000 ImageNet-1k synsets "
                                f"(varbench/scaling/{SYNSETS_FILE}); {_FOLDER_HINT}")
        return table[name], "synset"
    raise VarbenchError(f"{root / name} is not a class folder; {_FOLDER_HINT}")


def _scan_classes(path: Path, num_classes: int) -> tuple[dict[int, list[tuple[str, int]]], str, int]:
    """class index -> [(relative path, size)] sorted by name; the naming; loose images found at the top."""
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError as e:
        raise VarbenchError(f"cannot list --data {path}: {e.strerror or e}") from None
    loose = sum(1 for e in entries if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS))
    classes: dict[int, list[tuple[str, int]]] = {}
    namings, seen = set(), {}
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        index, naming = _class_of(entry.name, path, num_classes)
        if index in seen:
            raise VarbenchError(f"{path}: folders {seen[index]} and {entry.name} are both class {index}; keep one")
        seen[index] = entry.name
        namings.add(naming)
        with os.scandir(entry.path) as it:
            images = sorted((f.name, f.stat().st_size) for f in it
                            if not f.name.startswith(".") and f.is_file() and f.name.lower().endswith(IMAGE_EXTENSIONS))
        classes[index] = [(f"{entry.name}/{name}", size) for name, size in images]
    if len(namings) > 1:
        raise VarbenchError(f"{path} mixes class-index and synset folder names; {_FOLDER_HINT}, one naming for all")
    return classes, namings.pop() if namings else "", loose


def _open_folder(path: Path, limit: int | None, num_classes: int) -> ValidationSet:
    classes, naming, loose = _scan_classes(path, num_classes)
    if not classes:
        extra = f" ({loose} images lie at its top level: labels come from the folder names)" if loose else ""
        hint = f"; did you mean {path / 'val'}?" if (path / "val").is_dir() else f"; {_FOLDER_HINT}"
        raise VarbenchError(f"--data {path} has no class subfolders{extra}{hint}")
    order: list[tuple[int, str, int]] = []
    longest = max(len(v) for v in classes.values())
    for i in range(longest):
        order += [(c, classes[c][i][0], classes[c][i][1]) for c in sorted(classes) if i < len(classes[c])]
    if not order:
        raise VarbenchError(f"--data {path} has class folders but no images ({', '.join(IMAGE_EXTENSIONS)})")
    kept = order[:limit] if limit is not None else order
    h = hashlib.sha256()
    for label, rel, size in kept:
        h.update(f"{rel}\t{label}\t{size}\n".encode())
    return ValidationSet(path=path, kind="folder", labels=np.array([c for c, _, _ in kept], dtype=np.int64),
                         available=len(order), limit=limit, listing_sha256=h.hexdigest(), naming=naming,
                         files=tuple(rel for _, rel, _ in kept))


def _open_npz(path: Path, limit: int | None, num_classes: int) -> ValidationSet:
    from varbench.evaluate import samples

    keys = samples.npz_keys(path)
    if "arr_0" not in keys:
        raise VarbenchError(f"{path} has no arr_0 image array (keys: {', '.join(keys) or 'none'}); save images as "
                            "arr_0 uint8 (N, H, W, 3)")
    if "labels" not in keys:
        raise VarbenchError(f"{path} has no 'labels' array (keys: {', '.join(keys)}); save the class index of "
                            "each image next to arr_0: np.savez(path, images, labels=labels)")
    array = samples.npz_array(path, "arr_0")
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3 or len(array) == 0:
        raise VarbenchError(f"{path} arr_0 is {array.dtype} {tuple(array.shape)}; expected uint8 (N, H, W, 3) RGB "
                            "images, N >= 1")
    labels = np.asarray(samples.npz_array(path, "labels"))
    if labels.shape != (len(array),) or not np.issubdtype(labels.dtype, np.integer):
        raise VarbenchError(f"{path} labels are {labels.dtype} {labels.shape}; expected integers of shape "
                            f"({len(array)},), one class index per image")
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        raise VarbenchError(f"{path} label {int(labels[bad[0]])} (image {int(bad[0])}) is out of range "
                            f"0-{num_classes - 1}")
    n = min(len(array), limit) if limit is not None else len(array)
    h = hashlib.sha256(f"{path.name}\t{path.stat().st_size}\t{tuple(array.shape)}\n".encode())
    h.update(np.ascontiguousarray(labels[:n].astype(np.int64)).data)
    return ValidationSet(path=path, kind="npz", labels=labels[:n].astype(np.int64), available=len(array),
                         limit=limit, listing_sha256=h.hexdigest(), array=array)


def content_sha256(source_sha256: list[str]) -> str:
    """The data's identity from the sha256 of each image's source (file bytes or npz row), in evaluation order."""
    h = hashlib.sha256()
    for s in source_sha256:
        h.update(bytes.fromhex(s))
    return h.hexdigest()
