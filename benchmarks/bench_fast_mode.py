"""The fast mode's distribution: FID of bf16 samples against exact (fp32) samples, compared with the seed-to-seed
spread of the exact mode (issue 16 benchmark).

    python benchmarks/bench_fast_mode.py [--model var_test] [--n 512] [--exact-sets 4] [--fast-sets 1]
        [--threads 2] [--work runs/bench_fast_mode] [--json reports/bench_fast_mode_cpu.json]

The fast mode (``--dtype bf16``: VAR's transformer and VQ decode under bf16 autocast) may draw other tokens than
the exact fp32 path, so its samples are judged as a distribution.  Set s holds ``--n`` samples of ``--model`` with
class-balanced labels (sample i: class i mod 1000) and seeds ``s * n + i`` (per-sample RNG mode, as ``varbench
generate``), made by the library's generator (``Generator.generate``: the code path of ``varbench generate``).
Exact sets E_0 .. E_{k-1} give the seed-to-seed spread (the FID of every pair); fast set F_s reuses the labels and
seeds of E_s.  Reported:
- seed-to-seed: FID(E_i, E_j) for all i < j (mean, sd, min, max);
- fast vs exact, other seeds: FID(F_s, E_j), j != s, paired with FID(E_s, E_j): the difference is the fast mode's
  effect on a distance the seeds alone already make;
- fast vs exact, same seeds: FID(F_s, E_s) and how many tokens / pixels differ.
The verdict: every FID(F_s, E_j) lies in the seed-to-seed range widened by two standard deviations, and the mean
paired difference is within two standard deviations of the seed-to-seed FIDs.

Inception: seeded random weights (``varbench.features.inception.random_state_dict(0)``, offline), so the FIDs are
comparisons between these sets, not ImageNet numbers.  All sets have the same size, so FID's small-sample bias (large
at n < 2048) is the same for every pair.  Finished sets are kept as features in ``--work`` and reused on a rerun.
On a CPU without native bf16 (no AVX512-BF16/AMX) the fast mode is emulated and far slower than fp32: the JSON
records the generation times of both modes, the CPU flags and ``native_bf16``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="var_test")
    ap.add_argument("--n", type=int, default=512, help="samples per set")
    ap.add_argument("--exact-sets", type=int, default=4, help="exact (fp32) sets: the seed-to-seed spread")
    ap.add_argument("--fast-sets", type=int, default=1, help="fast (bf16) sets, on the seeds of the first exact sets")
    ap.add_argument("--fast-dtype", default="bf16", choices=["bf16", "fp16"])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--token-check", type=int, default=64, help="samples whose tokens are compared fast vs exact")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_fast_mode")
    ap.add_argument("--json", type=Path, default=ROOT / "reports" / "bench_fast_mode.json")
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    if args.exact_sets < 2 or not 1 <= args.fast_sets <= args.exact_sets or args.n < 2:
        ap.error("need --exact-sets >= 2, 1 <= --fast-sets <= --exact-sets and --n >= 2")
    return args


def set_seeds(s: int, n: int) -> tuple[list[int], list[int]]:
    """Labels (class-balanced, the same in every set) and seeds (disjoint between sets) of set ``s``."""
    return [i % 1000 for i in range(n)], [s * n + i for i in range(n)]


def make_set(args, gen, extractor, dtype: str, s: int, progress) -> dict:
    """Generate set ``s`` in ``dtype`` and extract its pool3 features; cached in ``--work``."""
    from varbench import files

    path = args.work / f"{args.model}_{dtype}_n{args.n}_set{s}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    labels, seeds = set_seeds(s, args.n)
    images, gen_s, feat_s = [], 0.0, 0.0
    pool3 = np.empty((args.n, 2048), np.float32)
    for lo in range(0, args.n, args.batch_size):
        hi = min(args.n, lo + args.batch_size)
        t0 = time.perf_counter()
        batch = gen.generate(labels[lo:hi], seeds[lo:hi])
        t1 = time.perf_counter()
        pool3[lo:hi] = extractor.extract(batch)["pool3"]
        gen_s, feat_s = gen_s + t1 - t0, feat_s + time.perf_counter() - t1
        images.append(batch)
        progress(f"{dtype} set {s}: {hi}/{args.n} samples, {gen_s / hi:.3f} s/sample")
    out = {"pool3": pool3, "images": np.concatenate(images), "generate_s": np.array(gen_s),
           "features_s": np.array(feat_s)}
    files.save_npz(path, **out)
    return out


def fids(exact: list[dict], fast: list[dict]) -> dict:
    from varbench.metrics.fid import feature_statistics, frechet_distance

    stats_e = [feature_statistics(e["pool3"].astype(np.float64)) for e in exact]
    stats_f = [feature_statistics(f["pool3"].astype(np.float64)) for f in fast]

    def fid(a, b):
        return frechet_distance(*a, *b)

    seed_pairs = {f"E{i}-E{j}": fid(stats_e[i], stats_e[j]) for i, j in itertools.combinations(range(len(exact)), 2)}
    cross, paired, same = {}, {}, {}
    for s, sf in enumerate(stats_f):
        same[f"F{s}-E{s}"] = fid(sf, stats_e[s])
        for j in range(len(exact)):
            if j != s:
                cross[f"F{s}-E{j}"] = fid(sf, stats_e[j])
                paired[f"F{s}-E{j}"] = cross[f"F{s}-E{j}"] - seed_pairs[f"E{min(s, j)}-E{max(s, j)}"]
    return {"seed_to_seed": seed_pairs, "fast_vs_exact_other_seeds": cross,
            "paired_difference_fast_minus_exact": paired, "fast_vs_exact_same_seeds": same}


def verdict(f: dict) -> dict:
    ss = list(f["seed_to_seed"].values())
    mean, sd = statistics.mean(ss), statistics.stdev(ss) if len(ss) > 1 else 0.0
    lo, hi = min(ss) - 2 * sd, max(ss) + 2 * sd
    cross = list(f["fast_vs_exact_other_seeds"].values())
    diff = statistics.mean(f["paired_difference_fast_minus_exact"].values())
    return {"seed_to_seed_mean": mean, "seed_to_seed_sd": sd, "seed_to_seed_range": [min(ss), max(ss)],
            "band": [lo, hi], "fast_vs_exact_mean": statistics.mean(cross),
            "all_fast_vs_exact_in_band": all(lo <= c <= hi for c in cross),
            "mean_paired_difference": diff, "paired_difference_within_2sd": abs(diff) <= 2 * sd,
            "same_seed_fid_below_seed_to_seed_mean": all(v < mean for v in f["fast_vs_exact_same_seeds"].values()),
            "within_spread": all(lo <= c <= hi for c in cross) and abs(diff) <= 2 * sd}


def token_agreement(args, exact_gen, fast_gen) -> dict:
    """Fraction of tokens (and of samples with all tokens) equal between the modes on the first samples of set 0."""
    import torch

    labels, seeds = set_seeds(0, args.n)
    k = min(args.token_check, args.n)
    outs = []
    for gen in (exact_gen, fast_gen):
        rngs = [torch.Generator(device=args.device).manual_seed(s) for s in seeds[:k]]
        outs.append(torch.cat(gen.sample_tokens(labels[:k], rngs).tokens, dim=1))
    equal = outs[0] == outs[1]
    first = [int(row.nonzero()[0, 0]) if row.any() else None for row in ~equal]  # per sample
    return {"samples": k, "token_fraction_equal": float(equal.float().mean()),
            "samples_all_tokens_equal": int(equal.all(dim=1).sum()),
            "median_first_differing_position": statistics.median([p for p in first if p is not None] or [0])}


def pixel_agreement(exact: dict, fast: dict) -> dict:
    d = np.abs(exact["images"].astype(np.int16) - fast["images"].astype(np.int16))
    return {"images_identical": int((d.reshape(len(d), -1).max(axis=1) == 0).sum()), "images": len(d),
            "mean_abs_pixel_diff": float(d.mean()), "max_abs_pixel_diff": int(d.max())}


def main() -> None:
    args = parse()
    import torch

    from varbench import env, files
    from varbench.features.inception import InceptionExtractor, random_state_dict
    from varbench.generators import protocol, zoo

    files.check_output(args.json, "--json", args.overwrite)
    load_start = os.getloadavg()
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    spec = zoo.get(args.model)
    gens = {dt: protocol.build(spec, device=args.device, dtype=dt) for dt in ("fp32", args.fast_dtype)}
    with tempfile.TemporaryDirectory(prefix="bench-fast-") as tmp:
        weights = Path(tmp) / "random-inception-0.pth"
        torch.save(random_state_dict(0), weights)
        extractor = InceptionExtractor.from_file(weights, device=args.device)

        def progress(msg: str) -> None:
            print(msg, flush=True)

        # fast sets first on the seeds of E_0, E_1 ...: the slow part on an emulating CPU, resumable
        fast = [make_set(args, gens[args.fast_dtype], extractor, args.fast_dtype, s, progress)
                for s in range(args.fast_sets)]
        exact = [make_set(args, gens["fp32"], extractor, "fp32", s, progress) for s in range(args.exact_sets)]
    f = fids(exact, fast)
    v = verdict(f)
    per_sample = {dt: statistics.median(float(x["generate_s"]) / args.n for x in sets)
                  for dt, sets in (("fp32", exact), (args.fast_dtype, fast))}
    result = {
        "benchmark": "fast_mode_fid_spread",
        "setting": f"{args.model} (random recipe weights), {args.n} samples per set, per-sample RNG mode, labels "
                   f"i mod 1000, seeds s*n+i; Inception pool3 with seeded random weights (offline; not ImageNet FIDs)",
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "fid": f, "verdict": v,
        "tokens_same_seeds": token_agreement(args, gens["fp32"], gens[args.fast_dtype]),
        "pixels_same_seeds": [pixel_agreement(exact[s], fast[s]) for s in range(args.fast_sets)],
        "generate_s_per_sample": per_sample,
        "fast_over_exact_time": per_sample[args.fast_dtype] / per_sample["fp32"],
        "features_s_per_sample": statistics.median(float(x["features_s"]) / args.n for x in exact + fast),
        "machine": env.machine(args.device), "load_average_start": load_start, "load_average_end": os.getloadavg(),
    }
    report(result)
    files.write_json(args.json, result)
    print(f"wrote {args.json}")


def report(r: dict) -> None:
    f, v = r["fid"], r["verdict"]
    print(f"\n{r['setting']}")
    print("seed-to-seed FID (exact vs exact): " + ", ".join(f"{k} {x:.3f}" for k, x in f["seed_to_seed"].items()))
    print("fast vs exact, other seeds:        " + ", ".join(
        f"{k} {x:.3f}" for k, x in f["fast_vs_exact_other_seeds"].items()))
    print("fast vs exact, same seeds:         " + ", ".join(
        f"{k} {x:.3f}" for k, x in f["fast_vs_exact_same_seeds"].items()))
    print(f"seed-to-seed {v['seed_to_seed_mean']:.3f} +- {v['seed_to_seed_sd']:.3f} (band {v['band'][0]:.3f} .. "
          f"{v['band'][1]:.3f}); fast vs exact {v['fast_vs_exact_mean']:.3f}; mean paired difference "
          f"{v['mean_paired_difference']:+.3f}: {'within' if v['within_spread'] else 'NOT within'} the spread")
    t = r["tokens_same_seeds"]
    print(f"same seeds: {100 * t['token_fraction_equal']:.1f}% of tokens equal, {t['samples_all_tokens_equal']}/"
          f"{t['samples']} samples with all tokens equal")
    ps = r["generate_s_per_sample"]
    native = r["machine"]["native_bf16"]
    print("generation s/sample: " + ", ".join(f"{k} {x:.3f}" for k, x in ps.items())
          + f" (fast / exact {r['fast_over_exact_time']:.1f}x; native bf16: {native}"
          + ("" if native else ", so the fast mode is emulated here and slower") + ")")


if __name__ == "__main__":
    main()
