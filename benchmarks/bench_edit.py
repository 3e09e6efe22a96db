"""What zero-shot editing costs next to plain sampling, on CPU with random-weight models.

    python benchmarks/bench_edit.py [--batch 4] [--repeats 3] [--json runs/bench_edit.json]

Models: ``var_test`` (the zoo's tiny 64 px model) and the shared fixtures' d2 model at 256 px (patch_nums
1..16, width 128; recipe weights from tests/var_recipe.py).  Timed per batch (median of the repeats, one warm-up):
``encode`` (the images' per-scale tokens, one image at a time), ``edit`` (``Editor.edit``: encode + the sampling loop
with the image's codes kept + decode), and ``sample`` (``varbench.models.sample.sample`` + decode with the same
sampling settings, no editing).  The difference edit - sample - encode is the cost of the keep-mask hook.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def d2_generator():
    from var_recipe import recipe_vae, recipe_var
    from varbench.generators.var import VarGenerator
    from varbench.models.sample import VarSampling
    from varbench.models.var import VARConfig
    from varbench.models.vqvae import VQVAEConfig

    pn = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)
    var, vae = recipe_var(VARConfig(depth=2, patch_nums=pn)), recipe_vae(VQVAEConfig(patch_nums=pn, ch=32))
    return VarGenerator("d2_recipe_256", var, vae, VarSampling(cfg=1.5, top_k=900, top_p=0.96), random_weights=True)


def timed(fn, repeats: int) -> float:
    fn()
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def measure(generator, batch: int, repeats: int) -> dict:
    import torch

    from varbench.edit.editor import Editor
    from varbench.edit.spec import EditSpec
    from varbench.models.sample import decode_images, sample

    r = int(generator.resolution)
    images = np.random.default_rng(0).integers(0, 256, (batch, r, r, 3), dtype=np.uint8)
    editor = Editor(generator, EditSpec((0.25, 0.25, 0.75, 0.75)))

    def plain():
        g = torch.Generator().manual_seed(0)
        out = sample(generator.var, generator.vae, generator.var.null_class, batch, generator.sampling, g)
        decode_images(generator.vae, out.f_hat)

    return {"model": generator.name, "resolution": r, "batch": batch,
            "encode_s": timed(lambda: editor.tokens(images), repeats),
            "edit_s": timed(lambda: editor.edit(images, "official", 0), repeats),
            "sample_s": timed(plain, repeats)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import torch

    from varbench.generators import zoo
    from varbench.generators.protocol import build

    torch.set_num_threads(args.threads)
    rows = [measure(g, args.batch, args.repeats) for g in (build(zoo.get("var_test")), d2_generator())]
    print(f"{'model':16} {'res':>4} {'batch':>5} {'encode s':>9} {'edit s':>8} {'sample s':>9} {'hook s':>8}")
    for row in rows:
        row["hook_s"] = row["edit_s"] - row["sample_s"] - row["encode_s"]
        print(f"{row['model']:16} {row['resolution']:>4} {row['batch']:>5} {row['encode_s']:>9.3f} "
              f"{row['edit_s']:>8.3f} {row['sample_s']:>9.3f} {row['hook_s']:>8.3f}")
    if args.json:
        from varbench import files

        files.write_json(args.json, {"threads": args.threads, "torch": torch.__version__, "rows": rows})


if __name__ == "__main__":
    main()
