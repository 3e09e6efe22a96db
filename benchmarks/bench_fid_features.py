"""Inception feature extraction, images/s: varbench versus torch-fidelity's own pipeline (issue 4 benchmark).

    python benchmarks/bench_fid_features.py [--n 1000] [--threads 2] [--repeats 1] [--json reports/bench_fid_features_cpu.json]
    python benchmarks/bench_fid_features.py --device cuda --n 10000 --batch-size 200 --json reports/bench_fid_features_h100.json

Both read the same folder of 256x256 PNG files (written once, seeded) with the same Inception weights (seeded random
weights unless ``--inception-weights``; the work is the same) and produce pool3 + bias-free logits:
- varbench: ``evaluate.samples.open_samples`` (scan and verify every file) + ``evaluate.cache.sample_features``
  (decode, TF1 resize, folded network; sFID features too), feature cache off;
- torch-fidelity: ``calculate_metrics(input1=<folder>, isc=True)`` (its DataLoader with its default worker count,
  its extractor), cache off.
Runs alternate (varbench, torch-fidelity, ...) so both see the same machine load; the table shows each run and the
ratio of median times.  The first 32 features of both are compared as a check.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def write_pngs(folder: Path, n: int, size: int, seed: int) -> None:
    from PIL import Image

    import inception_random

    folder.mkdir(parents=True, exist_ok=True)
    for lo in range(0, n, 100):
        imgs = inception_random.images(min(100, n - lo), size, size, seed=seed + lo)
        for i, im in enumerate(imgs):
            Image.fromarray(im).save(folder / f"{lo + i:06d}.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--inception-weights", default=None)
    ap.add_argument("--folder", default=None, help="existing PNG folder (default: write --n seeded images)")
    ap.add_argument("--json", default="reports/bench_fid_features_cpu.json")
    args = ap.parse_args()

    import torch
    import torch_fidelity

    from varbench import env
    from varbench.evaluate import cache, samples, score
    from varbench.features.inception import InceptionExtractor, precise_float32, random_state_dict

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-fid-") as tmp:
        tmp = Path(tmp)
        weights = args.inception_weights
        if weights is None:
            weights = tmp / "random-inception.pth"
            torch.save(random_state_dict(0), weights)
        folder = Path(args.folder) if args.folder else tmp / "pngs"
        if not args.folder:
            write_pngs(folder, args.n, args.size, seed=0)
        n = len(list(folder.glob("*.png")))
        config = score.EvalConfig(batch_size=args.batch_size, device=args.device, feature_cache=False)

        def ours():
            extractor = InceptionExtractor.from_file(weights, device=args.device)
            feats = cache.sample_features(samples.open_samples(folder), extractor, batch_size=config.batch_size,
                                          dtype=config.dtype, use_cache=config.feature_cache)
            return feats.pool3

        def theirs():
            with precise_float32():
                got = torch_fidelity.calculate_metrics(
                    input1=str(folder), isc=True, cuda=args.device.startswith("cuda"), batch_size=args.batch_size,
                    feature_extractor="inception-v3-compat", feature_extractor_weights_path=str(weights),
                    cache=False, verbose=False, samples_find_ext="png")
            return got

        runs = {"varbench": [], "torch-fidelity": []}
        pool3 = None
        for _ in range(args.repeats):
            for name, fn in (("varbench", ours), ("torch-fidelity", theirs)):
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                out = fn()
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                runs[name].append(time.perf_counter() - t0)
                if name == "varbench":
                    pool3 = out
                print(f"{name:15s} {runs[name][-1]:8.1f} s  {n / runs[name][-1]:7.2f} img/s", flush=True)

        # check: torch-fidelity's extractor on the first 32 images gives the same pool3
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        tf = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights))
        first = next(samples.open_samples(folder).batches(32))
        with torch.no_grad(), precise_float32():
            ref = tf(torch.from_numpy(first).permute(0, 3, 1, 2).contiguous())[0].numpy()
        max_rel = float(np.abs(pool3[:32] - ref).max() / np.abs(ref).max())

    med = {k: statistics.median(v) for k, v in runs.items()}
    ratio = med["torch-fidelity"] / med["varbench"]
    print(f"\n{'pipeline':15s} {'median s':>9s} {'img/s':>8s}")
    for k in runs:
        print(f"{k:15s} {med[k]:9.1f} {n / med[k]:8.2f}")
    print(f"speed-up varbench / torch-fidelity: {ratio:.2f}x (target >= 1.0x); pool3 max rel diff {max_rel:.2e}")
    out = {
        "benchmark": "fid_features", "n_images": n, "size": args.size, "batch_size": args.batch_size,
        "threads": args.threads, "device": args.device, "weights": "random (seed 0)" if not args.inception_weights
        else str(args.inception_weights), "runs_s": runs, "median_s": med,
        "images_per_s": {k: n / v for k, v in med.items()}, "speedup": ratio, "pool3_max_rel_diff": max_rel,
        "env": env.collect(args.device),
    }
    from varbench import files

    files.write_json(args.json, out)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
