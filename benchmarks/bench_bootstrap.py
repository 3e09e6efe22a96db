"""Bootstrap intervals over cached features (``varbench fid --bootstrap N``): seconds per replicate at the ADM
protocol's sizes, next to what recomputing would cost.

    python benchmarks/bench_bootstrap.py [--n 50000] [--ref 10000] [--replicates 5] [--json reports/bench_bootstrap_cpu.json]

Synthetic correlated features stand in for Inception's (pool3 2048-d, sFID 2023-d, logits 1008-d): the cost of a
replicate depends on the shapes only.  Per metric group it times the full-set computation once and ``--replicates``
bootstrap replicates, and reports seconds per replicate and the ratio replicate / full-set computation (a bootstrap
replicate that recomputed the features would cost the feature extraction: 50,000 images at the ~19 img/s measured
for Inception on 2 CPU cores in ``reports/bench_fid_features_cpu.json``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GROUPS = {"fid": ("fid",), "sfid": ("sfid",), "is": ("is",), "pr+dc": ("pr", "dc"), "kid": ("kid",)}


class _Reference:
    def __init__(self, features, spatial):
        from varbench.metrics.fid import feature_statistics

        self.features = features
        self.mu, self.sigma = feature_statistics(features)
        self.mu_s, self.sigma_s = feature_statistics(spatial)


def features(n: int, d: int, seed: int, mix: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.abs(rng.standard_normal((n, mix.shape[0]), dtype=np.float32) @ mix)[:, :d]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--ref", type=int, default=10_000)
    ap.add_argument("--replicates", type=int, default=5)
    ap.add_argument("--json", default="reports/bench_bootstrap_cpu.json")
    args = ap.parse_args()

    from varbench import env
    from varbench.evaluate import bootstrap
    from varbench.evaluate.compute import FeatureSet, metric_values
    from varbench.evaluate.config import EvalConfig

    mix = np.random.default_rng(0).standard_normal((256, 2048), dtype=np.float32) / 16
    pool3, ref_pool3 = features(args.n, 2048, 1, mix), features(args.ref, 2048, 2, mix)
    spatial, ref_spatial = features(args.n, 2023, 3, mix), features(args.ref, 2023, 4, mix)
    logits = np.random.default_rng(5).standard_normal((args.n, 1008)).astype(np.float32) * 3
    sets = {"inception": FeatureSet({"pool3": pool3, "spatial": spatial, "logits": logits},
                                    _Reference(ref_pool3, ref_spatial))}
    rows = []
    for group, names in GROUPS.items():
        config = EvalConfig(metrics=names, bootstrap=args.replicates)
        t0 = time.perf_counter()
        values, _, _, items = metric_values(sets, config)
        full = time.perf_counter() - t0
        t0 = time.perf_counter()
        intervals = bootstrap.intervals(values, sets, items, config)
        per = (time.perf_counter() - t0) / args.replicates
        rows.append({"metrics": group, "full_set_s": full, "per_replicate_s": per, "ratio": per / full,
                     "intervals": intervals["metrics"]})
        print(f"{group:7s} full set {full:8.2f} s   per replicate {per:8.2f} s   ratio {per / full:6.3f}", flush=True)
    total = sum(r["per_replicate_s"] for r in rows)
    extraction = args.n / 19.0  # Inception on 2 CPU cores (reports/bench_fid_features_cpu.json)
    print(f"all ADM metrics + density/coverage: {total:.1f} s per replicate; 100 replicates {100 * total / 60:.1f} min; "
          f"recomputing features instead: ~{extraction / 60:.0f} min per replicate")
    out = {"benchmark": "bootstrap", "n": args.n, "ref": args.ref, "replicates": args.replicates, "rows": rows,
           "seconds_per_replicate_all": total, "feature_extraction_s_estimate": extraction,
           "load_average": os.getloadavg(), "env": env.collect("cpu")}
    from varbench import files

    files.write_json(args.json, out)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
