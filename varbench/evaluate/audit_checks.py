"""The checks of ``varbench audit`` on images and labels, and the protocols they check against.

``PROTOCOLS["adm"]`` is the ADM ImageNet protocol of VAR (README: 50,000 samples, 50 per class of 1000, PNG, the
OpenAI evaluator, 256 or 512 px); ``"none"`` asks for no count, side or class mix and keeps the integrity checks.
Each function returns one ``AuditCheck`` (``varbench.results.audit``) with a fixed key.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from varbench.errors import VarbenchError
from varbench.evaluate.audit_run import few
from varbench.evaluate.duplicates import DIGEST_BYTES, HASH_RULE, LISTED, Scan, exact_groups, near_pairs
from varbench.evaluate.samples import SampleSet
from varbench.generate.plan import DEFAULT_PER_CLASS, NUM_CLASSES
from varbench.metrics.inception_score import ADM_CHUNK, SHUFFLE_SEED, split_bounds
from varbench.results.audit import AuditCheck, check, skip


@dataclass(frozen=True)
class AuditProtocol:
    name: str
    num_samples: int | None  # images the protocol scores (None: any count)
    per_class: int | None  # images of every class (None: any balance)
    num_classes: int = NUM_CLASSES
    resolutions: tuple[int, ...] = ()  # allowed sides when no reference pins one (empty: any)
    split_size: int = ADM_CHUNK  # rows per IS split of the evaluator (consecutive, in file order)
    near_threshold: int = 5  # dHash bits: at 256 px a 1-px shift moves <= 5, slight noise <= 1, unrelated ~32
    near_fail_fraction: float = 0.01  # near-duplicate images from this fraction of the set on: fail (reused seeds)
    strict: bool = True  # a class-sorted order or missing labels break the protocol (fail / warn) instead of a note


PROTOCOLS = {
    "adm": AuditProtocol("adm", NUM_CLASSES * DEFAULT_PER_CLASS, DEFAULT_PER_CLASS, resolutions=(256, 512)),
    "none": AuditProtocol("none", None, None, strict=False),
}


def get_protocol(protocol: str | AuditProtocol) -> AuditProtocol:
    if isinstance(protocol, AuditProtocol):
        return protocol
    if protocol not in PROTOCOLS:
        raise VarbenchError(f"unknown --protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    return PROTOCOLS[protocol]


# ---- the checks --------------------------------------------------------------------------------------------------


def format_check(samples: SampleSet) -> AuditCheck:
    value, expected = f"uint8 ({samples.n}, {samples.height}, {samples.width}, 3)", "uint8 (N, H, W, 3)"
    if samples.warnings:
        return check("format", "warn", value, expected, "; ".join(samples.warnings))
    return check("format", "pass", value, expected, f"uint8 RGB images, NHWC ({samples.kind})")


def range_check(images: Scan) -> AuditCheck:
    value, expected = [images.pixel_min, images.pixel_max], [0, 255]
    if images.pixel_max <= 1:
        return check("range", "fail", value, expected,
                     f"pixel values are only {images.pixel_min}..{images.pixel_max}: [0, 1] floats cast to uint8 "
                     "without scaling? convert with np.clip(np.round(x * 255), 0, 255).astype(np.uint8)")
    if images.flat:
        return check("range", "warn", value, expected, f"{images.flat} image(s) are one flat value (blank)")
    return check("range", "pass", value, expected, f"values span {images.pixel_min}..{images.pixel_max}")


def count_check(n: int, proto: AuditProtocol) -> AuditCheck:
    if proto.num_samples is None:
        return check("count", "pass", n, None, f"{n:,} images (protocol {proto.name}: any count)")
    if n != proto.num_samples:
        return check("count", "fail", n, proto.num_samples,
                     f"the {proto.name} protocol scores {proto.num_samples:,} images ({proto.per_class} per class); "
                     f"{n:,} bias FID (upward with fewer images) and change the number of IS splits")
    return check("count", "pass", n, proto.num_samples, f"{n:,} images, as the {proto.name} protocol asks")


def resolution_check(h: int, w: int, proto: AuditProtocol, pinned: int | None) -> AuditCheck:
    """H x W against the reference's side (``pinned``), else against the protocol's sides."""
    value = f"{h}x{w}"
    if pinned:
        expected = f"{pinned}x{pinned}"
        if (h, w) != (pinned, pinned):
            return check("resolution", "fail", value, expected,
                         f"the reference is {pinned} px: samples must be {pinned}x{pinned} (resize to the "
                         "reference's side before packing, or score against a reference of this side)")
        return check("resolution", "pass", value, expected, "the reference's side")
    allowed = " or ".join(f"{r}x{r}" for r in proto.resolutions) or None
    if h != w or (proto.resolutions and h not in proto.resolutions):
        return check("resolution", "fail" if proto.strict else "warn", value, allowed,
                     f"the {proto.name} protocol's ImageNet references are {allowed or 'square'}; "
                     "give --reference to pin the side")
    return check("resolution", "pass", value, allowed,
                 "an ImageNet protocol side (give --reference to pin it)" if allowed else "square images")


def label_checks(labels: np.ndarray | None, n: int, proto: AuditProtocol, missing_why: str) -> dict[str, AuditCheck]:
    """labels, class_balance and order from the stored labels (in file order)."""
    if labels is None:
        return {"labels": check("labels", "warn" if proto.strict else "pass", 0, n if proto.strict else None,
                                f"{missing_why}: class balance and order cannot be checked (varbench fid flags a "
                                "class-sorted set from Inception's top-1 classes)"),
                "class_balance": skip("class_balance", "no labels"), "order": skip("order", "no labels")}
    labels = np.asarray(labels).astype(np.int64)
    bad = labels[(labels < 0) | (labels >= proto.num_classes)]
    if len(bad):
        return {"labels": check("labels", "fail", n, n, f"{len(bad)} labels are outside 0..{proto.num_classes - 1} "
                                f"(e.g. {int(bad[0])}): not ImageNet class indices"),
                "class_balance": skip("class_balance", "labels out of range"),
                "order": skip("order", "labels out of range")}
    return {"labels": check("labels", "pass", n, n, f"{n:,} class labels stored"),
            "class_balance": _balance_check(labels, proto), "order": order_check(labels, proto)}


def _balance_check(labels: np.ndarray, proto: AuditProtocol) -> AuditCheck:
    counts = np.bincount(labels, minlength=proto.num_classes)
    present = counts[counts > 0]
    value = f"{len(present)} classes, {present.min()}..{present.max()} per class"
    if proto.per_class is None:
        return check("class_balance", "pass", value, None, f"protocol {proto.name}: any class mix")
    expected = f"{proto.num_classes} classes, {proto.per_class} per class"
    if len(present) < proto.num_classes:
        return check("class_balance", "fail", value, expected,
                     f"{proto.num_classes - len(present)} of {proto.num_classes} classes have no image; the protocol "
                     f"draws {proto.per_class} of every class")
    if present.min() != present.max():
        return check("class_balance", "warn", value, expected,
                     f"every class is present but not {proto.per_class} times (random labels, as LlamaGen's and "
                     "DiT's samplers draw them): FID moves slightly with the class mix")
    if present[0] != proto.per_class:
        return check("class_balance", "warn", value, expected,
                     f"balanced, but {present[0]} per class instead of {proto.per_class} (see the count check)")
    return check("class_balance", "pass", value, expected, f"exactly {proto.per_class} images of every class")


def order_check(labels: np.ndarray, proto: AuditProtocol) -> AuditCheck:
    """Classes per IS split in file order, against the same splits of a seeded shuffle of the labels."""
    n, size = len(labels), proto.split_size
    bounds = split_bounds(n, None, size)
    if len(bounds) < 2:
        return check("order", "pass", "1 split", None, f"{n:,} rows form one IS split of {size:,}: the order "
                     "cannot change IS")

    def classes_per_split(lab: np.ndarray) -> np.ndarray:
        return np.array([len(np.unique(lab[lo:hi])) for lo, hi in bounds], float)

    got = classes_per_split(labels)
    shuffled = classes_per_split(labels[np.random.RandomState(SHUFFLE_SEED).permutation(n)])
    ratio = got.mean() / shuffled.mean()
    value = f"{got.mean():.0f} classes per IS split (min {got.min():.0f})"
    expected = f"~{shuffled.mean():.0f} (shuffled)"
    if ratio < 0.5:
        status = "fail" if proto.strict else "warn"
        return check("order", status, value, expected,
                     f"rows are grouped by class: the ADM evaluator splits the file in order into {size:,}-row "
                     f"chunks for IS, so each split sees {got.mean():.0f} classes instead of ~{shuffled.mean():.0f} "
                     "and the IS it prints is deflated (guided-diffusion#165: 62 vs 298; VAR#77, VAR#83); shuffle "
                     "the rows before packing (varbench generate does). FID, sFID, precision and recall do not "
                     "depend on the order")
    if ratio < 0.9:
        return check("order", "warn", value, expected, "rows are partly grouped by class: the ADM IS splits see "
                     "fewer classes than a shuffled file's, and IS moves with the order")
    return check("order", "pass", value, expected, "each IS split sees as many classes as in a shuffled file")


def duplicate_checks(images: Scan, n: int, proto: AuditProtocol) -> tuple[dict[str, AuditCheck], dict]:
    groups, distinct = exact_groups(images.digests)
    copies = n - len(distinct)
    near = near_pairs(images.hashes, distinct, proto.near_threshold)
    duplicates = {"exact_copies": copies, "exact_groups": [[int(r) for r in g] for g in groups[:LISTED]],
                  "near_pairs": near.listed, "near_pair_count": near.count, "near_images": near.images,
                  "near_threshold": proto.near_threshold, "hash_rule": HASH_RULE,
                  "digest_rule": f"sha256 of each image's uint8 bytes (first {DIGEST_BYTES} bytes kept)"}
    if copies:
        exact = check("exact_duplicates", "fail", copies, 0,
                      f"{copies} image(s) are byte-identical copies of others ({len(groups)} group(s), e.g. rows "
                      f"{few([int(r) for r in groups[0]])}): a reused seed or a row packed twice; every "
                      "image must come from its own seed")
    else:
        exact = check("exact_duplicates", "pass", 0, 0, f"{n:,} distinct images (sha256 of each image's bytes)")
    t = proto.near_threshold
    if near.count:
        i, j, bits = near.listed[0]
        heavy = near.images >= proto.near_fail_fraction * n
        note = (f"; {near.images} images, at least {proto.near_fail_fraction:.0%} of the set: seeds were reused"
                if heavy else f"; {near.images} images")
        near_check = check("near_duplicates", "fail" if heavy else "warn", near.count, 0,
                           f"{near.count} pair(s) of distinct images within {t} of 64 dHash bits (e.g. rows {i} and "
                           f"{j}: {bits} bits){note}: near copies, from a seed reused under nondeterministic GPU "
                           "kernels or a collapsed class; look at them")
    else:
        near_check = check("near_duplicates", "pass", 0, 0, f"no two distinct images within {t} of 64 dHash bits")
    return {"exact_duplicates": exact, "near_duplicates": near_check}, duplicates
