"""End to end: a PNG folder scored with FID, IS, KID and precision/recall, varbench versus torch-fidelity.

    python benchmarks/bench_fid_e2e.py --device cuda --n 50000 --ref-n 10000 --batch-size 250 --json reports/bench_fid_e2e_h100.json
    python benchmarks/bench_fid_e2e.py --n 200 --ref-n 200           # CPU smoke run (reports/bench_fid_e2e_cpu.json)

Both score the same folder of seeded PNGs against the same reference (built once from another folder, not timed),
with the same Inception weights (seeded random unless ``--inception-weights``):
- varbench: ``evaluate.score.evaluate`` (scan/verify, decode with a prefetch thread, features, metrics; cache off);
- torch-fidelity: ``calculate_metrics(input1=<folder>, isc, fid, kid, prc)`` with its own folder loader, DataLoader
  and extractor; the reference enters through its cache (``evaluate.backends.torch_fidelity_settings``).
Both run with TF32 off; runs alternate (``--repeats``) and the ratio is of median times.  Target on a GPU
(issue 4): >= 2x for 50,000 images.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fid_features import write_pngs  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--ref-n", type=int, default=200)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--inception-weights", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    json_path = args.json or f"reports/bench_fid_e2e_{'cpu' if args.device == 'cpu' else 'gpu'}.json"

    import torch
    import torch_fidelity

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-fid-e2e-") as tmp:
        tmp = Path(tmp)
        os.environ["VARBENCH_HOME"] = str(tmp / "home")  # references and caches of this run stay here
        from varbench import env
        from varbench.evaluate import backends, reference, score
        from varbench.features.inception import InceptionExtractor, precise_float32, random_state_dict

        weights = args.inception_weights
        if weights is None:
            weights = tmp / "random-inception.pth"
            torch.save(random_state_dict(0), weights)
        samples, real = tmp / "samples", tmp / "real"
        write_pngs(samples, args.n, args.size, seed=0)
        write_pngs(real, args.ref_n, args.size, seed=10_000_000)
        ref = reference.build("bench", real, weights=weights, device=args.device, batch_size=args.batch_size)
        reference.save(ref, reference.path_for("bench"))
        subset = min(1000, args.n, args.ref_n)
        config = score.EvalConfig(metrics=("fid", "is", "pr", "kid"), batch_size=args.batch_size,
                                  device=args.device, kid_subset_size=subset, feature_cache=False)

        def sync():
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()

        def ours_run():
            return score.evaluate(samples, "bench", config, weights=weights)["results"]["metrics"]

        def theirs_run():
            extractor = InceptionExtractor.from_file(weights, device=args.device)
            with precise_float32(), tempfile.TemporaryDirectory(prefix="tf-cache-") as cache:
                settings = backends.torch_fidelity_settings(ref, extractor, config, cache)
                settings.update(input1=str(samples), isc=True, fid=True, kid=True, prc=True, samples_find_ext="png")
                return {k: float(v) for k, v in torch_fidelity.calculate_metrics(**settings).items()}

        runs, values = {"varbench": [], "torch-fidelity": []}, {}
        for _ in range(args.repeats):  # alternate, so both see the same machine load
            for name, fn in (("varbench", ours_run), ("torch-fidelity", theirs_run)):
                sync()
                t0 = time.perf_counter()
                values[name] = fn()
                sync()
                runs[name].append(time.perf_counter() - t0)
                print(f"{name:15s} {runs[name][-1]:8.1f} s  {args.n / runs[name][-1]:8.2f} img/s", flush=True)
        med = {k: statistics.median(v) for k, v in runs.items()}
        ours, theirs = values["varbench"], values["torch-fidelity"]
        out = {
            "benchmark": "fid_e2e", "n": args.n, "ref_n": args.ref_n, "size": args.size, "device": args.device,
            "batch_size": args.batch_size, "threads": args.threads, "runs_s": runs, "median_s": med,
            "speedup": med["torch-fidelity"] / med["varbench"], "varbench_metrics": ours,
            "torch_fidelity_metrics": theirs, "env": env.collect(args.device),
        }
    print(f"speed-up varbench / torch-fidelity: {out['speedup']:.2f}x (GPU target >= 2x at 50k)")
    print(f"FID varbench {ours['fid']:.6g} vs torch-fidelity {theirs['frechet_inception_distance']:.6g}")
    from varbench import files

    files.write_json(json_path, out)
    print(f"wrote {json_path}")


if __name__ == "__main__":
    main()
