"""FD_DINOv2 feature extraction speed: images/s of the tiny fixture ViT and of a ViT-S/14-sized one, and seconds per
image of the full ViT-L/14, for both resize modes.

    python benchmarks/bench_dinov2.py [--n 64] [--threads 2] [--vitl-images 4] [--json reports/bench_dinov2_cpu.json]
    python benchmarks/bench_dinov2.py --device cuda --n 1024 --batch-size 64 --vitl-images 256 --json reports/bench_dinov2_h100.json

Seeded random weights in the official layout (``dinov2.random_state_dict``: the work is that of the released
weights), seeded 256x256 uint8 images, ``DINOv2Extractor.extract`` in batches (EDM2's default batch is 64).  One
warm-up batch, then the median of ``--repeats`` timed passes.  ``--vitl-images 0`` skips ViT-L (1.2 GB of weights).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

MODELS = {  # name -> (width, depth, heads)
    "tiny": (64, 2, 2),
    "vits14": (384, 12, 6),
    "vitl14": (1024, 24, 16),
}


def time_model(name: str, images, args) -> dict:
    import torch

    from varbench.features.dinov2 import DINOv2Extractor, random_state_dict

    width, depth, heads = MODELS[name]
    sd = random_state_dict(0, width, depth, heads)
    out = {}
    for mode in ("torch", "pil"):
        ex = DINOv2Extractor(sd, weights_sha256="0" * 64, device=args.device, heads=heads, resize=mode)
        ex.extract(images[: args.batch_size])  # warm-up
        runs = []
        for _ in range(args.repeats):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for lo in range(0, len(images), args.batch_size):
                ex.extract(images[lo:lo + args.batch_size])
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            runs.append(time.perf_counter() - t0)
        med = statistics.median(runs)
        out[mode] = {"n": len(images), "runs_s": runs, "median_s": med, "images_per_s": len(images) / med,
                     "s_per_image": med / len(images)}
        print(f"{name:7s} {mode:5s} {len(images):5d} img  {med:8.2f} s  {len(images) / med:9.1f} img/s  "
              f"{1e3 * med / len(images):9.1f} ms/img", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=64, help="images for the tiny and ViT-S models")
    ap.add_argument("--vitl-images", type=int, default=4, help="images for ViT-L/14 (0: skip)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default="reports/bench_dinov2_cpu.json")
    args = ap.parse_args()

    import torch

    import inception_random
    from varbench import env

    torch.set_num_threads(args.threads)
    images = inception_random.images(max(args.n, args.vitl_images), args.size, args.size, seed=0)
    results = {name: time_model(name, images[: args.n], args) for name in ("tiny", "vits14")}
    if args.vitl_images:
        results["vitl14"] = time_model("vitl14", images[: args.vitl_images], args)
    out = {"benchmark": "dinov2_features", "size": args.size, "batch_size": args.batch_size,
           "threads": args.threads, "device": args.device, "weights": "random recipe (seed 0)",
           "results": results, "env": env.collect(args.device)}
    from varbench import files

    files.write_json(args.json, out)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
