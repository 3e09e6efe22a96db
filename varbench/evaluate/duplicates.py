"""The one pass of ``varbench audit`` over a sample set's images, and the duplicate searches it feeds.

Per image, in batches read once (memory-mapped npz rows are not copied), in worker threads (hashlib and NumPy release
the GIL):

- ``sha256`` of the image's uint8 bytes (first ``DIGEST_BYTES`` kept): identical digests are exact duplicates.
- a 64-bit difference hash (dHash) of a grey thumbnail: the image is cut into ``HASH_ROWS`` x ``HASH_COLS`` blocks
  (centred crop to a multiple of the block size), each block's per-channel pixel sum is an exact area mean,
  grey = BT.601 luma (``LUMA``, PIL's "L" weights), and bit ``8 r + c`` is 1 when block (r, c + 1) is brighter than
  block (r, c).  A slight noise or a 1-pixel shift moves few bits; unrelated images differ in about 32.
- the smallest and largest pixel value, and whether the image is a single flat value.

Near-duplicate pairs are found exhaustively: XOR of every pair of hashes and ``np.bitwise_count``, in blocks of
``PAIR_BLOCK`` x ``PAIR_COLS`` tiles of the upper triangle (each row against the rows after it), among the distinct images only (exact copies are
reported as such, not again as near pairs).
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from varbench.evaluate.samples import SampleSet
from varbench.progress import Progress, ProgressEvent, no_progress

HASH_ROWS, HASH_COLS = 8, 9  # thumbnail blocks: 8 rows x 9 columns -> 8 x 8 horizontal-gradient bits
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 (PIL's "L" conversion)
DIGEST_BYTES = 16  # of each image's sha256
PAIR_BLOCK, PAIR_COLS = 256, 2048  # tile of the exhaustive pair search (rows x later rows)
LISTED = 20  # duplicate groups / near pairs kept for the report
PAIRS_KEPT = 100_000  # near pairs a worker keeps to choose the listed ones from (all are counted)
HASH_RULE = (f"64-bit dHash: {HASH_ROWS}x{HASH_COLS} block area means of the centred crop, BT.601 grey, bit = right "
             "block brighter than left; pairs by exhaustive XOR + popcount")
SCAN_STAGE = "audit: reading images"


@dataclass
class Scan:
    digests: np.ndarray  # (N, DIGEST_BYTES) uint8: sha256 of each image's bytes, truncated
    hashes: np.ndarray  # (N,) uint64: dHash of each image
    pixel_min: int
    pixel_max: int
    flat: int  # images that are one value everywhere
    seconds: float


def workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def scan(samples: SampleSet, *, batch_size: int = 256, consumers: Iterable[Callable[[np.ndarray], None]] = (),
         progress: Progress = no_progress) -> Scan:
    """Read every image once; ``consumers`` see each uint8 batch in row order (e.g. a running sha256)."""
    t0 = time.perf_counter()
    n = samples.n
    digests = np.empty((n, DIGEST_BYTES), np.uint8)
    hashes = np.empty(n, np.uint64)
    lo_hi = [255, 0]
    flat = 0
    consumers = list(consumers)
    progress(ProgressEvent(SCAN_STAGE, 0, n))
    done = 0
    with concurrent.futures.ThreadPoolExecutor(workers()) as pool:
        for batch, (dig, hsh, mn, mx, fl) in _ordered(pool, _measure, _batches(samples, batch_size), workers() + 1):
            for consume in consumers:
                consume(batch)
            digests[done:done + len(batch)], hashes[done:done + len(batch)] = dig, hsh
            lo_hi = [min(lo_hi[0], mn), max(lo_hi[1], mx)]
            flat += fl
            done += len(batch)
            progress(ProgressEvent(SCAN_STAGE, done, n))
    return Scan(digests, hashes, lo_hi[0], lo_hi[1], flat, time.perf_counter() - t0)


def _batches(samples: SampleSet, batch_size: int) -> Iterator[np.ndarray]:
    """C-contiguous uint8 batches: views of a (memory-mapped) array, or decoded image files."""
    if samples.array is None:
        yield from samples.batches(batch_size)
        return
    for lo in range(0, samples.n, batch_size):
        yield np.ascontiguousarray(samples.array[lo:lo + batch_size])  # a view when the array is C-ordered


def _ordered(pool, fn, items: Iterable, window: int) -> Iterator[tuple]:
    """``(item, fn(item))`` in order, at most ``window`` items in flight (a folder's batches are decoded lazily)."""
    pending: collections.deque = collections.deque()
    for item in items:
        pending.append((item, pool.submit(fn, item)))
        if len(pending) >= window:
            item0, fut = pending.popleft()
            yield item0, fut.result()
    while pending:
        item0, fut = pending.popleft()
        yield item0, fut.result()


def _measure(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int, int]:
    dig = np.frombuffer(b"".join(hashlib.sha256(im).digest()[:DIGEST_BYTES] for im in batch), np.uint8)
    flat_view = batch.reshape(len(batch), -1)
    mins, maxs = flat_view.min(axis=1), flat_view.max(axis=1)
    return (dig.reshape(len(batch), DIGEST_BYTES), dhash(batch), int(mins.min()), int(maxs.max()),
            int(np.count_nonzero(mins == maxs)))


def thumbnails(batch: np.ndarray) -> np.ndarray:
    """float64 (B, HASH_ROWS, HASH_COLS) grey block means of uint8 (B, H, W, 3) images."""
    b, h, w, _ = batch.shape
    if h < HASH_ROWS or w < HASH_COLS:  # tiny images: repeat pixels up to one per block
        rows = np.arange(HASH_ROWS) * h // HASH_ROWS
        cols = np.arange(HASH_COLS) * w // HASH_COLS
        return (batch[:, rows][:, :, cols].astype(np.float64) @ np.asarray(LUMA))
    bh, bw = h // HASH_ROWS, w // HASH_COLS
    r0, c0 = (h - bh * HASH_ROWS) // 2, (w - bw * HASH_COLS) // 2
    acc = np.uint16 if bh * 255 < 1 << 16 else np.uint32
    rows = np.add.reduce(batch[:, r0:r0 + bh * HASH_ROWS].reshape(b, HASH_ROWS, bh, w * 3), axis=2, dtype=acc)
    rows = rows.reshape(b, HASH_ROWS, w, 3)[:, :, c0:c0 + bw * HASH_COLS]
    blocks = rows.reshape(b, HASH_ROWS, HASH_COLS, bw, 3).sum(axis=3, dtype=np.uint64)
    return blocks.astype(np.float64) @ np.asarray(LUMA) / (bh * bw)


def dhash(batch: np.ndarray) -> np.ndarray:
    """uint64 (B,) difference hashes of uint8 (B, H, W, 3) images."""
    grey = thumbnails(batch)
    bits = grey[:, :, 1:] > grey[:, :, :-1]  # (B, 8, 8)
    packed = np.packbits(bits.reshape(len(batch), 64), axis=1)  # (B, 8) uint8, big-endian bit order
    return packed.view(">u8").ravel().astype(np.uint64)


def hamming(a, b) -> int:
    return int(np.bitwise_count(np.uint64(a) ^ np.uint64(b)))


def exact_groups(digests: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Rows of each group of identical images (groups of two or more, by first row), and the first row of every
    distinct image (sorted)."""
    keys = np.ascontiguousarray(digests).view(np.uint64).reshape(len(digests), -1)
    _, first, inverse, counts = np.unique(keys, axis=0, return_index=True, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    groups = [g for g in np.split(order, np.cumsum(counts)[:-1]) if len(g) > 1]
    groups.sort(key=lambda g: int(g[0]))
    return groups, np.sort(first)


@dataclass
class NearPairs:
    count: int  # pairs within the threshold
    images: int  # distinct images in at least one such pair
    listed: list  # [[row, row, bits], ...]: the first LISTED pairs by row (of the first PAIRS_KEPT found)


def near_pairs(hashes: np.ndarray, rows: np.ndarray, threshold: int) -> NearPairs:
    """Pairs of ``hashes[rows]`` within ``threshold`` bits, exhaustively; reported by the rows of the sample set."""
    h = np.ascontiguousarray(hashes[rows], dtype=np.uint64)
    k = workers()
    with concurrent.futures.ThreadPoolExecutor(k) as pool:  # worker w takes row blocks w, w + k, ...
        parts = list(pool.map(lambda w: _pairs_of_blocks(h, threshold, w, k), range(k)))
    kept = [pair for _, _, found in parts for pair in found]
    i = np.concatenate([p[0] for p in kept]) if kept else np.zeros(0, np.int64)
    j = np.concatenate([p[1] for p in kept]) if kept else np.zeros(0, np.int64)
    order = np.lexsort((j, i))[:LISTED]
    bits = np.bitwise_count(h[i[order]] ^ h[j[order]])
    listed = [[int(rows[i[o]]), int(rows[j[o]]), int(d)] for o, d in zip(order, bits)]
    involved = np.logical_or.reduce([mask for _, mask, _ in parts])
    return NearPairs(sum(count for count, _, _ in parts), int(involved.sum()), listed)


def _pairs_of_blocks(h: np.ndarray, threshold: int, first: int, step: int) -> tuple[int, np.ndarray, list]:
    """Row blocks first, first + step, ... against all later rows, in tiles of PAIR_BLOCK x PAIR_COLS through reused
    buffers: the number of pairs i < j within ``threshold`` bits, the rows in any, and (i, j) arrays of the first
    ``PAIRS_KEPT`` (a set of near-identical images must not fill the memory with pairs)."""
    m = len(h)
    xor = np.empty((PAIR_BLOCK, PAIR_COLS), np.uint64)
    bits = np.empty((PAIR_BLOCK, PAIR_COLS), np.uint8)
    hit = np.empty((PAIR_BLOCK, PAIR_COLS), bool)
    upper = np.triu(np.ones((PAIR_BLOCK, PAIR_BLOCK), bool), k=1)
    involved = np.zeros(m, bool)
    count, found = 0, []
    for a0 in range(first * PAIR_BLOCK, m, step * PAIR_BLOCK):
        a1 = min(a0 + PAIR_BLOCK, m)
        b = a1 - a0
        for c0 in range(a0, m, PAIR_COLS):
            w = min(c0 + PAIR_COLS, m) - c0
            np.bitwise_xor(h[a0:a1, None], h[None, c0:c0 + w], out=xor[:b, :w])
            np.bitwise_count(xor[:b, :w], out=bits[:b, :w])
            np.less_equal(bits[:b, :w], threshold, out=hit[:b, :w])
            if c0 == a0:  # the diagonal tile: each pair once, no self pairs (w >= b: PAIR_COLS >= PAIR_BLOCK)
                hit[:b, :b] &= upper[:b, :b]
            if np.count_nonzero(hit[:b, :w]):
                i, j = np.nonzero(hit[:b, :w])
                count += len(i)
                involved[i + a0] = involved[j + c0] = True
                if count - len(i) < PAIRS_KEPT:
                    found.append((i + a0, j + c0))
    return count, involved, found
