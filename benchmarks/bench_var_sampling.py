"""VAR-d16 sampling speed on CPU against the official code's measured figure (issue 2 benchmark).

    python benchmarks/bench_var_sampling.py [--repeats 2] [--json reports/bench_var_sampling.json]

var_d16 with seeded random weights (``varbench.recipe``; no download), B=4, cfg 1.5, top-k 900, top-p 0.96, fp32,
2 threads, official RNG mode.
Reports seconds per batch, img/s, the transformer vs VAE-decode split and peak RSS, and checks that the tokens are
the ones of the reference path (the same sampler under SDPA's MATH kernel, which reproduces the official goldens
bit for bit).  The official code measured 61.0 s per batch here (49.8 s transformer, 11.1 s decode, 2.9 GB RSS).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from varbench import env, files, recipe  # noqa: E402
from varbench.generators.zoo import VAR_FID_SAMPLING  # noqa: E402
from varbench.models.sample import decode_images, sample  # noqa: E402
from varbench.models.var import VAR, VARConfig  # noqa: E402
from varbench.models.vqvae import VQVAE, VQVAEConfig  # noqa: E402

OFFICIAL = {"seconds_per_batch": 61.0, "transformer_s": 49.8, "vae_decode_s": 11.1, "peak_rss_gb": 2.9}


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # Linux: kB


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="reports/bench_var_sampling.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    # built on the CPU (not meta): VAR's attention-mask buffers keep their values through the recipe
    var = recipe.fill_with_recipe(VAR(VARConfig(depth=16)), 1, "cpu").eval().requires_grad_(False)
    vae = recipe.fill_with_recipe(VQVAE(VQVAEConfig(ch=160)), 2, "cpu").eval().requires_grad_(False)
    labels = torch.tensor([1, 207, 980, 999])
    sc = VAR_FID_SAMPLING  # cfg 1.5, top-k 900, top-p 0.96 (VarSampling's own defaults are all off)

    def run(reference: bool):
        t0 = time.perf_counter()
        if reference:
            with sdpa_kernel(SDPBackend.MATH):
                out = sample(var, vae, labels, 4, sc, torch.Generator().manual_seed(0))
        else:
            out = sample(var, vae, labels, 4, sc, torch.Generator().manual_seed(0))
        t1 = time.perf_counter()
        decode_images(vae, out.f_hat)
        t2 = time.perf_counter()
        return out.tokens, t1 - t0, t2 - t1

    run(False)  # warm-up
    times = [run(False) for _ in range(args.repeats)]
    ref_tokens, ref_tf, ref_dec = run(True)
    tokens = times[-1][0]
    same = all(torch.equal(a, b) for a, b in zip(tokens, ref_tokens))
    tf = sorted(t[1] for t in times)[len(times) // 2]
    dec = sorted(t[2] for t in times)[len(times) // 2]
    total = tf + dec
    result = {
        "benchmark": "var_d16 sampling, random weights, B=4, cfg 1.5, top-k 900, top-p 0.96, fp32, CPU",
        "threads": args.threads,
        "repeats": args.repeats,
        "seconds_per_batch": total,
        "images_per_s": 4 / total,
        "transformer_s": tf,
        "vae_decode_s": dec,
        "all_runs": [{"transformer_s": t[1], "vae_decode_s": t[2]} for t in times],
        "reference_math_sdpa_transformer_s": ref_tf,
        "tokens_equal_reference": same,
        "peak_rss_gb": peak_rss_gb(),
        "official_measured": OFFICIAL,
        "speedup_vs_official": OFFICIAL["seconds_per_batch"] / total,
        "env": env.collect("cpu"),
    }
    rows = [
        ("seconds per batch", f"{total:.1f}", f"{OFFICIAL['seconds_per_batch']:.1f}", f"{OFFICIAL['seconds_per_batch'] / total:.2f}x"),
        ("transformer s", f"{tf:.1f}", f"{OFFICIAL['transformer_s']:.1f}", f"{OFFICIAL['transformer_s'] / tf:.2f}x"),
        ("VAE decode s", f"{dec:.1f}", f"{OFFICIAL['vae_decode_s']:.1f}", f"{OFFICIAL['vae_decode_s'] / dec:.2f}x"),
        ("peak RSS GB", f"{result['peak_rss_gb']:.2f}", f"{OFFICIAL['peak_rss_gb']:.1f}", ""),
        ("img/s", f"{4 / total:.3f}", f"{4 / OFFICIAL['seconds_per_batch']:.3f}", ""),
        ("tokens == reference", str(same), "", ""),
    ]
    print(f"{'metric':<22}{'varbench':>12}{'official':>12}{'ratio':>10}")
    for r in rows:
        print(f"{r[0]:<22}{r[1]:>12}{r[2]:>12}{r[3]:>10}")
    files.write_json(args.json, result)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
