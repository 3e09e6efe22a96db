"""``varbench audit`` on a synthetic ADM-size npz: how long the one pass over the images and the pair search take.

    python benchmarks/bench_audit.py                       # 50,000 x 256 x 256 x 3 (9.8 GB in a temp dir)
    python benchmarks/bench_audit.py --n 10000             # when the disk is short (the audit scales linearly,
                                                           # the pair search quadratically)

The npz is streamed to disk uncompressed (``varbench.generate.pack.write_npz``, as ``varbench generate`` packs),
with balanced shuffled labels; each image is a blow-up of its own random 8x8 grid plus a noise texture (rolled
per block), so images are distinct and unrelated, as a model's samples are.  The file was just written, so it is in
the page cache (a warm read; a cold read adds the disk's time for 9.8 GB).  Timed: ``open_samples`` (it hashes the
whole array once: the content key every command records) and ``audit`` (reading every image once: per-image sha256,
dHash thumbnails, pixel range; then exact groups and the exhaustive near-pair search), and for reference a
single-threaded sha256 of the file (what a generate directory's chunk and samples.npz checks cost per 9.8 GB).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GRID = 8


def write_npz(path: Path, n: int, size: int, block: int = 256, seed: int = 0) -> None:
    from varbench.files import open_write
    from varbench.generate.pack import write_npz as stream_npz

    rng = np.random.default_rng(seed)
    texture = rng.integers(-8, 9, (size, size, 3), dtype=np.int16)
    labels = rng.permutation(np.arange(n) % 1000).astype(np.int64)

    def blocks():
        for lo in range(0, n, block):
            b = min(block, n - lo)
            grid = rng.integers(16, 240, (b, GRID, GRID, 3), dtype=np.int16)
            img = np.repeat(np.repeat(grid, size // GRID, axis=1), size // GRID, axis=2)
            img += np.roll(texture, lo // block, axis=1)
            yield np.clip(img, 0, 255).astype(np.uint8).tobytes()

    with open_write(path) as f:
        stream_npz(f, [("arr_0", np.dtype(np.uint8), (n, size, size, 3), blocks()),
                       ("labels", labels.dtype, labels.shape, iter([labels.tobytes()]))])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--dir", default=None, help="where the temp npz goes (default: the system temp dir)")
    ap.add_argument("--json", default="reports/bench_audit_cpu.json")
    args = ap.parse_args()

    from varbench import env
    from varbench.evaluate import duplicates
    from varbench.evaluate.audit import PROTOCOLS, audit
    from varbench.evaluate.samples import open_samples
    from varbench.files import sha256_file

    need = args.n * args.size * args.size * 3
    root = Path(args.dir or tempfile.gettempdir())
    free = shutil.disk_usage(root).free
    if free < need * 1.2:
        sys.exit(f"{root} has {free / 1e9:.1f} GB free, the npz needs {need / 1e9:.1f} GB: pass a smaller --n")
    with tempfile.TemporaryDirectory(prefix="bench-audit-", dir=root) as tmp:
        path = Path(tmp) / "samples.npz"
        t = time.perf_counter()
        write_npz(path, args.n, args.size)
        write_s = time.perf_counter() - t
        t = time.perf_counter()
        samples = open_samples(path)
        open_s = time.perf_counter() - t
        stages = {}

        def progress(event):
            stages.setdefault(event.stage, [time.perf_counter(), 0.0])[1] = time.perf_counter()

        t = time.perf_counter()
        report = audit(samples, PROTOCOLS["adm"], resolution=args.size, batch_size=args.batch_size, progress=progress)
        audit_s = time.perf_counter() - t
        scan_s = stages[duplicates.SCAN_STAGE][1] - stages[duplicates.SCAN_STAGE][0]
        t = time.perf_counter()
        sha256_file(path)
        file_sha_s = time.perf_counter() - t
    rows = [("write npz (not part of the audit)", write_s), ("open_samples (array sha256)", open_s),
            ("audit: read + hash + thumbnails", scan_s), ("audit: duplicates + checks", audit_s - scan_s),
            ("audit total", audit_s), ("open + audit", open_s + audit_s), ("sha256 of the file, 1 thread", file_sha_s)]
    print(f"{args.n:,} images {args.size}x{args.size} ({need / 1e9:.1f} GB), batch {args.batch_size}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    for name, s in rows:
        print(f"{name:38s} {s:8.2f} s  {args.n / s:10.0f} img/s")
    print(f"verdict {report.verdict}; failed {[c['key'] for c in report.failed]}; near pairs "
          f"{report.duplicates['near_pair_count']}")
    out = {"benchmark": "audit", "n": args.n, "size": args.size, "bytes": need, "batch_size": args.batch_size,
           "cpu_count": os.cpu_count(), "load_average_1m": os.getloadavg()[0], "page_cache": "warm (just written)",
           "seconds": {name: round(s, 3) for name, s in rows}, "verdict": report.verdict,
           "failed": [c["key"] for c in report.failed], "near_pairs": report.duplicates["near_pair_count"],
           "env": env.collect("cpu")}
    from varbench import files

    files.write_json(args.json, out)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
