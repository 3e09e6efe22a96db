"""``varbench scaling`` cost per image: the validation transform (decode + LANCZOS + crop) and the teacher-forced
evaluation (VQVAE encode + one transformer forward + CE/argmax) of a random-init VAR of the released layout.

    python benchmarks/bench_scaling.py                          # depth 16 (VAR-d16 size), 256 px, auto device
    python benchmarks/bench_scaling.py --depth 30 --batch-size 32 --images 256 --device cuda
    python benchmarks/bench_scaling.py --depth 2 --images 8     # a quick CPU run

Images are synthetic 500 x 375 PNGs (the ImageNet val median size) decoded from bytes.  Random weights change no
cost.  Prints one table and, with ``--json PATH``, writes it.  50,000 images take 50,000 / (images per second).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _pngs(n: int, seed: int = 0) -> list[bytes]:
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(small).resize((500, 375), Image.BICUBIC).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def transform_rate(pngs: list[bytes], res: int, threads: int) -> float:
    import concurrent.futures

    from varbench import preprocess

    def one(data):
        return preprocess.validation_crop(preprocess.open_rgb(data), res)[0]

    t = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, pngs))
    return len(pngs) / (time.perf_counter() - t)


def eval_rate(depth: int, res: int, batch: int, images: int, device: str) -> tuple[float, int]:
    import torch

    from varbench.features.inception import precise_float32
    from varbench.models.var import VAR, VARConfig, patch_schedule
    from varbench.models.vqvae import VQVAE, VQVAEConfig
    from varbench.recipe import fill_with_recipe
    from varbench.scaling.loss import batch_stats

    pn = patch_schedule(res // 16)
    var = fill_with_recipe(VAR(VARConfig(depth=depth, patch_nums=pn)), 1, device).eval()
    vae = fill_with_recipe(VQVAE(VQVAEConfig(patch_nums=pn)), 2, device).eval()
    x = torch.rand(batch, 3, res, res, device=device) * 2 - 1
    y = torch.randint(0, 1000, (batch,), device=device)
    with precise_float32():
        batch_stats(var, vae, x, y)  # warm-up
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t, done = time.perf_counter(), 0
        while done < images:
            batch_stats(var, vae, x, y)
            done += batch
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    return done / (time.perf_counter() - t), var.cfg.num_params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--images", type=int, default=16, help="images timed in the evaluation")
    parser.add_argument("--threads", type=int, default=4, help="decode threads")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from varbench.dist import check_device

    device = check_device(args.device)
    pngs = _pngs(64)
    rows = [{"stage": f"transform ({t} threads)", "images_per_second": transform_rate(pngs, args.resolution, t)}
            for t in sorted({1, args.threads})]
    rate, params = eval_rate(args.depth, args.resolution, args.batch_size, args.images, device)
    rows.append({"stage": f"teacher-forced eval d{args.depth} ({params / 1e6:.1f}M) batch {args.batch_size} "
                          f"on {device}", "images_per_second": rate})
    for r in rows:
        print(f"{r['stage']:<60} {r['images_per_second']:10.2f} img/s   50k: {50000 / r['images_per_second'] / 60:8.1f} min")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
