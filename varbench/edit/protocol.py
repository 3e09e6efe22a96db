"""The fixed protocol of ``varbench edit --benchmark DIR``: which images in which order, the tasks and their box,
and the class-edit target rule.

Images (``discover``): either class subfolders, read by ``varbench.scaling.data`` (each named by an ImageNet class
index 0..999 or a WordNet id such as n01440764; interleaved order: the first image by file name of every class in
class order, then the second, ...; images directly in DIR are then refused), or a flat folder (files by name, source
classes unknown).  ``--num-images N`` takes the first N of that order, so it spreads over the classes.

Tasks (``TASKS``), all on the centre box (0.25, 0.25, 0.75, 0.75):
    inpaint     generate the box, keep the rest, null class
    outpaint    keep the box, generate the rest, null class
    class_edit  generate the box towards a target class: ``target_label`` (never the image's own class)
"""

from __future__ import annotations

from pathlib import Path

from varbench.edit.spec import PER_IMAGE_LABELS, EditSpec
from varbench.errors import VarbenchError
from varbench.generate.plan import seed_hash

PROTOCOL_VERSION = 1
BOX = (0.25, 0.25, 0.75, 0.75)
TASKS = {"inpaint": EditSpec(BOX), "outpaint": EditSpec(BOX, outpaint=True),
         "class_edit": EditSpec(BOX, label=PER_IMAGE_LABELS)}
ORDER_RULE = ("class subfolders (ImageNet index 0..999 or WordNet id, varbench.scaling.data): the i-th image by file "
              "name of every class, classes in index order, i = 0, 1, ...; flat folder: files by name (class unknown)")
TARGET_RULE = ("class_edit target of image i: h = seed_hash('edit-target', seed, i); (source + 1 + h % 999) % 1000 "
               "when the source class is known (never the source), else h % 1000")


def discover(folder: Path, limit: int | None = None) -> tuple[list[Path], list[int]]:
    """(image paths, source classes (-1 = unknown)) in the protocol's order (module docstring)."""
    from varbench.scaling.data import IMAGE_EXTENSIONS, open_validation

    if not folder.is_dir():
        raise VarbenchError(f"--benchmark {folder} is not a directory; give a folder of images")
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    subdirs = [p for p in entries if p.is_dir()]
    here = [p for p in entries if p.is_file() and p.name.lower().endswith(IMAGE_EXTENSIONS)]
    if subdirs and here:
        raise VarbenchError(f"--benchmark {folder} mixes images ({here[0].name}) and subfolders ({subdirs[0].name}); "
                            "use class subfolders only or a flat folder")
    if subdirs:  # the ImageNet folder rules of varbench scaling: one reader, one order
        found = open_validation(folder, limit)
        return [found.path / f for f in found.files], [int(c) for c in found.labels]
    if not here:
        raise VarbenchError(f"--benchmark {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    n = len(here) if limit is None else min(limit, len(here))
    return here[:n], [-1] * n


def target_label(index: int, source: int, seed: int) -> int:
    h = seed_hash("edit-target", seed, index)
    return (source + 1 + h % 999) % 1000 if source >= 0 else h % 1000


def stream_labels(stream: str, sources: list[int], seed: int, null_class: int) -> list[int]:
    if stream == "class_edit":
        return [target_label(i, s, seed) for i, s in enumerate(sources)]
    if stream in ("inpaint", "outpaint"):
        return [null_class] * len(sources)
    return list(sources)
