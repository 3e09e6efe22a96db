"""Precision/recall at 50k samples x 10k reference (2048-d): peak memory and time (issue 4 benchmark).

    python benchmarks/bench_fid_pr.py [--n-fake 50000] [--n-real 10000] [--distance fp32] [--json reports/bench_fid_pr_cpu.json]

Features are seeded float32 (the 400 MB + 80 MB of a real run).  The peak resident set is read from the kernel
(VmHWM, reset through /proc/self/clear_refs just before the call), so it covers the whole process during P&R:
features, distance blocks, BLAS buffers.  Target: <= 4 GB.  For comparison, the ADM evaluator holds a 10,000 x N
float32 buffer (2 GB at N = 50,000) and torch-fidelity's default "full" mode a 50k x 50k matrix (10 GB).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-fake", type=int, default=50_000)
    ap.add_argument("--n-real", type=int, default=10_000)
    ap.add_argument("--d", type=int, default=2048)
    ap.add_argument("--distance", default="fp32", choices=["fp32", "fp16", "fp64"])
    ap.add_argument("--block", type=int, default=10_000)
    ap.add_argument("--json", default="reports/bench_fid_pr_cpu.json")
    args = ap.parse_args()

    from varbench import env
    from varbench.metrics import prec_recall

    rng = np.random.default_rng(0)
    real = np.abs(rng.standard_normal((args.n_real, args.d), dtype=np.float32))
    fake = np.abs(rng.standard_normal((args.n_fake, args.d), dtype=np.float32))
    before_kb = status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS counter (Linux >= 4.0)
    t0 = time.perf_counter()
    got = prec_recall.precision_recall(real, fake, block=args.block, distance=args.distance)
    seconds = time.perf_counter() - t0
    peak_kb = status_kb("VmHWM")
    out = {
        "benchmark": "fid_pr", "n_fake": args.n_fake, "n_real": args.n_real, "d": args.d, "block": args.block,
        "distance": args.distance, "seconds": seconds, "precision": got.precision, "recall": got.recall,
        "rss_before_bytes": before_kb * 1024, "peak_rss_bytes": peak_kb * 1024,
        "peak_above_features_bytes": (peak_kb - before_kb) * 1024, "target_peak_bytes": 4 * 1024**3,
        "env": env.collect("cpu"),
    }
    print(f"P&R {args.n_fake} x {args.n_real} ({args.distance}, block {args.block}): {seconds:.1f} s, "
          f"precision {got.precision:.4f}, recall {got.recall:.4f}")
    print(f"peak RSS {peak_kb / 1024**2:.2f} GiB (features and interpreter before: {before_kb / 1024**2:.2f} GiB; "
          f"target <= 4 GB)")
    from varbench import files

    files.write_json(args.json, out)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
