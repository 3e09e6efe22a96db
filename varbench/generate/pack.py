"""Packing finished chunks: the ADM-format ``samples.npz`` (streamed, byte-stable) and the optional PNG folder."""

from __future__ import annotations

import functools
import hashlib
import io
import os
import threading
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from varbench import files
from varbench.errors import VarbenchError
from varbench.files import sha256_file
from varbench.generate.plan import Plan
from varbench.generate.rundir import PNG_NAME, PNGS, SAMPLES, chunk_paths
from varbench.progress import Progress, ProgressEvent, no_progress

PNG_STAGE = "writing PNGs"

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed zip member timestamp: the npz bytes depend on the data only


def write_pngs(out: Path, plan: Plan, resolution: int, chunk_indices: list[int],
               progress: Progress = no_progress) -> None:
    """Write ``png/{index:06d}.png`` for every sample of these chunks that has no PNG yet."""
    from PIL import Image

    png_dir = out / PNGS
    with files.os_errors(png_dir):
        png_dir.mkdir(parents=True, exist_ok=True)
    todo = [
        i
        for chunk in (plan.chunk(c) for c in chunk_indices)
        for i in range(chunk.start, chunk.stop)
        if not (png_dir / PNG_NAME.format(index=i)).is_file()
    ]
    if not todo:
        return
    reader = ChunkReader(out, plan, resolution)

    def write(i: int) -> None:
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(reader.row(i))).save(buf, format="PNG")
        files.write_bytes(png_dir / PNG_NAME.format(index=i), buf.getvalue())

    progress(ProgressEvent(PNG_STAGE, 0, len(todo), resumable=True))
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        for done, _ in enumerate(pool.map(write, todo), 1):
            progress(ProgressEvent(PNG_STAGE, done, len(todo), resumable=True, saved=True))


def pngs_complete(png_dir: Path, plan: Plan) -> bool:
    if not png_dir.is_dir():
        return False
    names = {p.name for p in png_dir.iterdir()}
    return all(PNG_NAME.format(index=i) in names for i in range(plan.num_samples))


class ChunkReader:
    """Random access to sample rows through memory-mapped chunk files (bounded number open at once)."""

    def __init__(self, out: Path, plan: Plan, resolution: int):
        self.out, self.plan, self.resolution = out, plan, resolution
        self._open = functools.lru_cache(maxsize=64)(self._load)
        # PNG writers call row() from threads: opening a chunk parses its header with ast.literal_eval, which is not
        # thread-safe on CPython 3.11.7 ("AST constructor recursion depth mismatch"), and the cache should open
        # each chunk once
        self._lock = threading.Lock()

    def _load(self, c: int) -> np.ndarray:
        chunk = self.plan.chunk(c)
        _, npy = chunk_paths(self.out, chunk)
        try:
            arr = np.load(npy, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise VarbenchError(
                f"chunk file {npy} is missing or unreadable ({type(e).__name__}); rerun the same command to remake it "
                "(multi-node runs need --out on a filesystem shared by all nodes)"
            ) from None
        want = (chunk.size, self.resolution, self.resolution, 3)
        if arr.dtype != np.uint8 or arr.shape != want:
            raise VarbenchError(
                f"chunk file {npy} holds {arr.dtype} {arr.shape}, expected uint8 {want}; rerun to remake it"
            )
        return arr

    def row(self, index: int) -> np.ndarray:
        c = index // self.plan.chunk_size
        with self._lock:
            arr = self._open(c)
        return arr[index - c * self.plan.chunk_size]


def pack(out: Path, plan: Plan, resolution: int, block: int = 256) -> dict:
    """Stream ``samples.npz`` (arr_0, labels, indices) in the plan's order; return its artefact record, with the
    sha256 of the file and of the uint8 array (what ``varbench fid`` records for the samples it scores)."""
    order = plan.order()
    array_hash = hashlib.sha256()
    labels = plan.labels_array()[order]
    reader = ChunkReader(out, plan, resolution)
    shape = (plan.num_samples, resolution, resolution, 3)

    def image_blocks() -> Iterator[bytes]:
        for p in range(0, plan.num_samples, block):
            idx = order[p : p + block]
            buf = np.empty((len(idx), resolution, resolution, 3), np.uint8)
            for j, i in enumerate(idx):
                buf[j] = reader.row(int(i))
            array_hash.update(buf.data)
            yield buf.tobytes()

    path = out / SAMPLES
    with files.open_write(path) as f:
        write_npz(
            f,
            [
                ("arr_0", np.dtype(np.uint8), shape, image_blocks()),
                ("labels", labels.dtype, labels.shape, iter([labels.tobytes()])),
                ("indices", order.dtype, order.shape, iter([order.tobytes()])),
            ],
        )
    return {
        "file": SAMPLES,
        "sha256": sha256_file(path),
        "array_sha256": array_hash.hexdigest(),
        "bytes": path.stat().st_size,
        "arrays": {"arr_0": ["uint8", list(shape)], "labels": ["int64", [plan.num_samples]],
                   "indices": ["int64", [plan.num_samples]]},
        "order": plan.order_name,
    }


def write_npz(f, members) -> None:
    """Write an uncompressed npz to the binary file ``f`` from ``(name, dtype, shape, byte blocks)`` members.

    Readable by ``np.load(allow_pickle=False)`` and the ADM evaluator; member timestamps are fixed, so the bytes
    depend only on the data.  Blocks are C-order bytes, streamed (the whole array is never in memory).
    """
    from numpy.lib import format as npy_format

    with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, dtype, shape, blocks in members:
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
            written = 0
            with zf.open(info, mode="w", force_zip64=True) as member:
                descr = npy_format.dtype_to_descr(np.dtype(dtype))
                header = {"descr": descr, "fortran_order": False, "shape": tuple(shape)}
                npy_format.write_array_header_1_0(member, header)
                for data in blocks:
                    member.write(data)
                    written += len(data)
            if written != expected:
                raise ValueError(f"npz member {name}: wrote {written} bytes, expected {expected}")
