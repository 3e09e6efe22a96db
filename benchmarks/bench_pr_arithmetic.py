"""How far precision/recall move when the distances are not ADM's float16 arithmetic.

Synthetic pool3-like features (non-negative, 2048-d, norms spread like real activations), a reference set and a
sample set of the sizes of the ADM protocol's shape (default 10,000 x 12,000); precision and recall in ADM's float16
arithmetic (varbench's default), in float32 and in float64, and how many points each decides differently.
Side by side on one distance block: varbench's float16 distances against the same formula in numpy's float16
loops (what varbench ran before; ADM's graph as numpy writes it), alternating, bits compared.
Prints a table and writes JSON.

    python benchmarks/bench_pr_arithmetic.py --n-ref 10000 --n-sample 12000 --json reports/bench_pr_arithmetic_cpu.json
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def features(n: int, d: int, seed: int, shift: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.abs(rng.normal(shift, 1.0, size=(n, d))) ** 1.5
    return (base * np.exp2(rng.normal(0, 0.4, size=(n, 1)))).astype(np.float32)


def numpy_fp16_distances(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """ADM's float16 distance graph in numpy's own float16 arithmetic (the reference of the block timing)."""
    u16, v16 = u.astype(np.float32).astype(np.float16), v.astype(np.float32).astype(np.float16)
    norm_u = np.square(u16).sum(axis=1, dtype=np.float32).astype(np.float16)
    norm_v = np.square(v16).sum(axis=1, dtype=np.float32).astype(np.float16)
    dot = (u16.astype(np.float32) @ v16.astype(np.float32).T).astype(np.float16)
    with np.errstate(over="ignore", invalid="ignore"):
        d = norm_u[:, None] - np.float16(2) * dot
        d += norm_v[None, :]
        return np.maximum(d, np.float16(0)).astype(np.float32)


def block_timing(u: np.ndarray, v: np.ndarray, repeats: int = 3) -> dict:
    """numpy's float16 loops vs varbench's distances on one block, alternating; medians, ratio, equal bits."""
    from varbench.metrics import prec_recall as pr

    times: dict[str, list[float]] = {"numpy_fp16": [], "varbench": []}
    for _ in range(repeats):
        for name, fn in (("numpy_fp16", numpy_fp16_distances), ("varbench", lambda a, b: pr.squared_distances(a, b))):
            t0 = time.perf_counter()
            out = fn(u, v)
            times[name].append(time.perf_counter() - t0)
            if name == "numpy_fp16":
                ref = out
    med = {k: float(np.median(t)) for k, t in times.items()}
    return {"block": [len(u), len(v)], "seconds": times, "median_s": med,
            "ratio_numpy_over_varbench": med["numpy_fp16"] / med["varbench"],
            "bits_equal": bool(np.array_equal(ref, out))}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-ref", type=int, default=10_000)
    ap.add_argument("--n-sample", type=int, default=12_000)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--json", default="reports/bench_pr_arithmetic_cpu.json")
    args = ap.parse_args(argv)

    from varbench import env
    from varbench.metrics import prec_recall as pr

    ref = features(args.n_ref, args.dim, 0, 0.0)
    sample = features(args.n_sample, args.dim, 1, 0.05)
    rows, inside = [], {}
    for distance in ("fp16", "fp32", "fp64"):
        t0 = time.perf_counter()
        r_ref = pr.manifold_radii(ref, distance=distance)
        r_sample = pr.manifold_radii(sample, distance=distance)
        ref_in, sample_in = pr.inside_both_ways(ref, r_ref, sample, r_sample, distance=distance)
        seconds = time.perf_counter() - t0
        inside[distance] = (ref_in, sample_in)
        rows.append({"distance": distance, "precision": float(sample_in.mean()), "recall": float(ref_in.mean()),
                     "seconds": seconds})
    adm_ref, adm_sample = inside["fp16"]
    for row in rows:
        ref_in, sample_in = inside[row["distance"]]
        row["precision_minus_adm"] = row["precision"] - rows[0]["precision"]
        row["recall_minus_adm"] = row["recall"] - rows[0]["recall"]
        row["samples_decided_differently"] = int((sample_in != adm_sample).sum())
        row["references_decided_differently"] = int((ref_in != adm_ref).sum())
    print(f"{'distances':10s} {'precision':>10s} {'recall':>8s} {'dP vs ADM':>10s} {'dR vs ADM':>10s} "
          f"{'samples flipped':>16s} {'refs flipped':>13s} {'seconds':>8s}")
    for r in rows:
        print(f"{r['distance']:10s} {r['precision']:10.4f} {r['recall']:8.4f} {r['precision_minus_adm']:+10.4f} "
              f"{r['recall_minus_adm']:+10.4f} {r['samples_decided_differently']:16d} "
              f"{r['references_decided_differently']:13d} {r['seconds']:8.1f}")
    block = block_timing(ref[:pr.BLOCK], sample[:pr.BLOCK])
    print(f"one {block['block'][0]} x {block['block'][1]} block: numpy float16 loops "
          f"{block['median_s']['numpy_fp16']:.2f} s, varbench {block['median_s']['varbench']:.2f} s "
          f"({block['ratio_numpy_over_varbench']:.2f}x), bits equal: {block['bits_equal']}")
    out = {"benchmark": "pr_arithmetic", "n_ref": args.n_ref, "n_sample": args.n_sample, "dim": args.dim,
           "features": "synthetic |N(shift, 1)|^1.5 with per-row scales 2^N(0, 0.4)", "rows": rows,
           "fp16_block_side_by_side": block,
           "env": env.collect("cpu")}
    from varbench import files

    files.write_json(args.json, out)
    print(f"wrote {args.json}")
    return out


if __name__ == "__main__":
    main()
