"""The sampling plan: global sample index -> (class label, randomness, chunk), and the order of the packed npz.

A plan depends only on the command (sample count, per-class count or explicit labels, seed, RNG mode, chunk size),
never on the number of processes or the batch size, so any process can make any chunk and the result is the same.

* Balanced plans (``--num-samples`` / ``--per-class``): ``C = num_samples / per_class`` classes spread evenly over
  the 1000 ImageNet classes (``class_k = k * 1000 // C``; all 1000 for the FID protocol), and sample ``i`` gets
  ``class_{i mod C}``, so each class appears exactly ``per_class`` times and every chunk mixes classes.
* Explicit plans (``--labels``): sample ``i`` gets ``labels[i]``; one sample per label, in the given order.
* Randomness, per-sample mode: sample ``i`` is drawn from ``seed_hash("sample", seed, i)`` alone (any batch size,
  any rank).  Official mode: chunk ``c`` is one batch drawn with one generator seeded with the plain official seed
  ``seed + c``, exactly as ``var.autoregressive_infer_cfg(B, label_B, g_seed=seed + c, ...)`` re-seeds VAR's generator
  and as LlamaGen's sample scripts call ``torch.manual_seed(seed + c)`` before ``generate``; its output depends on
  the batch composition, so the batch is the chunk (and the GPU count never matters: chunks are assigned whole).
* Packed order: balanced plans are shuffled by sorting indices on ``sha256("varbench/order/{seed}/{i}")`` (a
  class-sorted npz breaks the ADM evaluator's Inception Score, guided-diffusion#165); explicit plans keep label
  order.  The rule is pure Python hashing, so it is the same on every platform and NumPy version.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from varbench.errors import VarbenchError
from varbench.results.schema import LabelsInfo, SeedsInfo, label_scheme

RNG_MODES = ("per-sample", "official")
NUM_CLASSES = 1000
DEFAULT_PER_CLASS = 50  # VAR README FID protocol: 50,000 samples, 50 per class
DEFAULT_CHUNK_SIZE = 100  # per-sample mode; official mode uses chunk = batch
DEFAULT_BATCH_SIZE = 50
MAX_SEED = 1 << 63  # seeds are 63-bit: torch.Generator.manual_seed takes them on every device

LABEL_RULE = "balanced: label(i) = classes[i % C], classes[k] = k * num_classes // C; explicit: label(i) = labels[i]"
SEED_RULE = (
    "per-sample: sample i uses sample_seed(seed, i) = first 8 bytes (little endian, 63 bits) of "
    "sha256('varbench/sample/{seed}/{i}'); official: chunk c is one batch drawn with one torch.Generator "
    "seeded with seed + c (VAR: g_seed = seed + c; LlamaGen: torch.manual_seed(seed + c)), batch size = chunk size"
)
ORDER_RULE = "balanced: indices sorted by sha256('varbench/order/{seed}/{i}'); explicit: index order 0..N-1"


def seed_hash(kind: str, seed: int, index: int) -> int:
    """63 bits of sha256("varbench/{kind}/{seed}/{index}"), little endian: stable across platforms and versions."""
    digest = hashlib.sha256(f"varbench/{kind}/{int(seed)}/{int(index)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def sample_seed(seed: int, index: int) -> int:
    """The per-sample seed of global sample ``index`` under run seed ``seed``."""
    return seed_hash("sample", seed, index)


def chunk_seed(seed: int, chunk: int) -> int:
    """The generator seed of chunk ``chunk`` in official RNG mode: the official code's own seed, ``seed + chunk``."""
    return int(seed) + int(chunk)


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int  # first global sample index (scaling: first position in evaluation order)
    stop: int  # one past the last

    @property
    def size(self) -> int:
        return self.stop - self.start

    @property
    def stem(self) -> str:
        return f"{self.index:06d}"


def cut(n: int, size: int) -> list[Chunk]:
    """Positions [0, n) cut into chunks of ``size`` (the last one shorter)."""
    return [Chunk(i, s, min(s + size, n)) for i, s in enumerate(range(0, n, size))]


@dataclass(frozen=True)
class Plan:
    num_samples: int
    seed: int = 0
    chunk_size: int = DEFAULT_CHUNK_SIZE
    rng: str = "per-sample"  # one of RNG_MODES
    per_class: int | None = None  # balanced plan: exactly this many samples of each planned class
    labels: tuple[int, ...] | None = None  # explicit plan: one sample per label, in order
    num_classes: int = NUM_CLASSES

    @property
    def explicit(self) -> bool:
        return self.labels is not None

    @property
    def classes(self) -> tuple[int, ...]:
        """The classes of a balanced plan (all 1000 when num_samples = 1000 * per_class)."""
        if self.explicit:
            return tuple(sorted(set(self.labels)))
        count = self.num_samples // self.per_class
        return tuple(k * self.num_classes // count for k in range(count))

    @property
    def num_chunks(self) -> int:
        return -(-self.num_samples // self.chunk_size)

    def label(self, index: int) -> int:
        if self.explicit:
            return self.labels[index]
        classes = self.classes
        return classes[index % len(classes)]

    def labels_array(self) -> np.ndarray:
        """int64 (N,): the label of every global index."""
        if self.explicit:
            return np.asarray(self.labels, dtype=np.int64)
        classes = np.asarray(self.classes, dtype=np.int64)
        return classes[np.arange(self.num_samples) % len(classes)]

    def sample_seeds(self, start: int, stop: int) -> list[int]:
        return [sample_seed(self.seed, i) for i in range(start, stop)]

    def chunk_seed(self, chunk: int) -> int:
        return chunk_seed(self.seed, chunk)

    def chunk(self, index: int) -> Chunk:
        if not 0 <= index < self.num_chunks:
            raise IndexError(f"chunk {index} out of range 0..{self.num_chunks - 1}")
        start = index * self.chunk_size
        return Chunk(index, start, min(start + self.chunk_size, self.num_samples))

    def chunks(self) -> list[Chunk]:
        return cut(self.num_samples, self.chunk_size)

    def order(self) -> np.ndarray:
        """int64 (N,): row r of the packed npz holds global sample ``order[r]``."""
        if self.explicit:
            return np.arange(self.num_samples, dtype=np.int64)
        prefix = f"varbench/order/{int(self.seed)}/"
        keys = sorted(range(self.num_samples), key=lambda i: hashlib.sha256(f"{prefix}{i}".encode()).digest())
        return np.asarray(keys, dtype=np.int64)

    def labels_info(self) -> LabelsInfo:
        return LabelsInfo(scheme=label_scheme(self.per_class, self.explicit), per_class=self.per_class,
                          num_classes=len(self.classes), rule=LABEL_RULE)

    def seeds_info(self) -> SeedsInfo:
        return SeedsInfo(seed=self.seed, rng=self.rng, rule=SEED_RULE)

    @property
    def order_name(self) -> str:
        return "label order" if self.explicit else "shuffled"

    def to_dict(self) -> dict:
        labels = self.labels_array()
        return {
            "num_samples": self.num_samples,
            "seed": self.seed,
            "chunk_size": self.chunk_size,
            "num_chunks": self.num_chunks,
            "rng": self.rng,
            "per_class": self.per_class,
            "num_classes": self.num_classes,
            "planned_classes": len(self.classes),
            "labels": list(self.labels) if self.explicit else None,
            "labels_sha256": hashlib.sha256(labels.tobytes()).hexdigest(),
            "chunk_seeds": [self.chunk_seed(c) for c in range(self.num_chunks)] if self.rng == "official" else None,
            "label_rule": LABEL_RULE,
            "seed_rule": SEED_RULE,
            "order_rule": ORDER_RULE,
        }


def assign(pending: list[int], rank: int, world_size: int) -> list[int]:
    """The chunks of ``pending`` (sorted chunk indices) that rank ``rank`` makes: round-robin, so work stays even."""
    return sorted(pending)[rank::world_size]


def make_plan(
    *,
    num_samples: int | None = None,
    per_class: int | None = None,
    labels: list[int] | None = None,
    seed: int = 0,
    rng: str = "per-sample",
    batch_size: int | None = None,
    chunk_size: int | None = None,
    num_classes: int = NUM_CLASSES,
    default_per_class: int = DEFAULT_PER_CLASS,
) -> tuple[Plan, int]:
    """Validate the user's plan options; return the plan and the batch size.  One-line ``VarbenchError`` on bad input.

    Sample count: neither option -> ``default_per_class`` of each class; ``--per-class P`` -> ``P * 1000``;
    ``--num-samples N`` -> ``N // 1000`` per class (1 per class, spread over N classes, when N < 1000);
    both -> N must be divisible by P and N / P classes must exist.
    """
    if rng not in RNG_MODES:
        raise VarbenchError(f"unknown --rng {rng!r}; use one of {', '.join(RNG_MODES)}")
    for name, value in (("--batch-size", batch_size), ("--chunk-size", chunk_size)):
        if value is not None and value < 1:
            raise VarbenchError(f"{name} must be at least 1, got {value}")
    if seed < 0 or seed >= MAX_SEED:
        raise VarbenchError(f"--seed must be in 0 .. 2**63-1, got {seed}")
    if labels is not None:
        n, per = _explicit_count(labels, num_samples, per_class, num_classes)
    else:
        n, per = _balanced_count(num_samples, per_class, num_classes, default_per_class)
    chunk, batch = _chunking(rng, batch_size, chunk_size)
    last_seed = seed + -(-n // chunk) - 1
    if rng == "official" and last_seed >= MAX_SEED:
        raise VarbenchError(f"--rng official seeds chunk c with seed + c, and the last chunk's seed {last_seed} "
                            f"exceeds 2**63-1; use a --seed below {MAX_SEED - -(-n // chunk)}")
    plan = Plan(num_samples=n, seed=seed, chunk_size=chunk, rng=rng, per_class=per,
                labels=tuple(int(x) for x in labels) if labels is not None else None, num_classes=num_classes)
    return plan, min(batch, chunk, n)


def _explicit_count(labels: list[int], num_samples, per_class, num_classes: int) -> tuple[int, None]:
    if num_samples is not None or per_class is not None:
        raise VarbenchError("--labels gives one sample per label; do not combine it with --num-samples/--per-class")
    if not labels:
        raise VarbenchError("--labels is empty; give comma-separated class indices such as 1,207,980")
    bad = [x for x in labels if not 0 <= x < num_classes]
    if bad:
        raise VarbenchError(f"--labels must be class indices in 0..{num_classes - 1}; got {bad[0]}")
    return len(labels), None


def _balanced_count(num_samples, per_class, num_classes: int, default_per_class: int) -> tuple[int, int]:
    """(samples, per class) of a balanced plan."""
    if per_class is not None and per_class < 1:
        raise VarbenchError(f"--per-class must be at least 1, got {per_class}")
    if num_samples is not None and num_samples < 1:
        raise VarbenchError(f"--num-samples must be at least 1, got {num_samples}")
    if num_samples is None:
        per = per_class if per_class is not None else default_per_class
        return per * num_classes, per
    if per_class is None:
        if num_samples > num_classes and num_samples % num_classes:
            raise VarbenchError(f"--num-samples {num_samples} is not a multiple of the {num_classes} classes; "
                                f"use e.g. {num_samples // num_classes * num_classes} or give --per-class")
        return num_samples, max(1, num_samples // num_classes)
    n, per = num_samples, per_class
    if n % per:
        raise VarbenchError(f"--num-samples {n} is not divisible by --per-class {per}; "
                            f"use --num-samples {n // per * per or per} or change --per-class")
    if n // per > num_classes:
        raise VarbenchError(f"--num-samples {n} with --per-class {per} needs {n // per} classes, but there are "
                            f"{num_classes}; use at most --num-samples {per * num_classes}")
    return n, per


def _chunking(rng: str, batch_size, chunk_size) -> tuple[int, int]:
    """(chunk size, batch size): official mode draws each chunk as one batch."""
    if rng != "official":
        return chunk_size or DEFAULT_CHUNK_SIZE, batch_size or DEFAULT_BATCH_SIZE
    if batch_size is not None and chunk_size is not None and batch_size != chunk_size:
        raise VarbenchError(f"--rng official draws each chunk as one batch: --batch-size ({batch_size}) must equal "
                            f"--chunk-size ({chunk_size}); give only one of them")
    size = batch_size or chunk_size or DEFAULT_BATCH_SIZE
    return size, size
