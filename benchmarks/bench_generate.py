"""Images/s of ``varbench generate``'s sampling call versus batch size (issue 3 benchmark).

    python benchmarks/bench_generate.py                                   # var_test on CPU -> reports/bench_generate_cpu.json
    python benchmarks/bench_generate.py --device cuda --dtype bf16 --models var_d16,var_d30 --random-weights \
        --batch-sizes 1,8,32,64,128 --json reports/bench_generate_h100.json

For every model and batch size it times ``Generator.generate`` (per-sample RNG, the ``generate`` default: each row
has its own generator and is decoded on its own) and ``generate_official`` (one generator per batch, batched decode)
after warm-up calls, and reports the median seconds per call, images/s and, for VAR, the achieved transformer
TFLOP/s: FLOPs per image from ``shared/facts/baselines.md`` section 3 (KV cache, AdaLN projections included, VQ
decoder excluded) times 2 for the unconditional CFG row VAR always runs, divided by the measured time (which includes
the VQ decode, so this is a lower bound on the transformer's rate).  ``--random-weights`` times released shapes with
seeded random weights (``varbench.recipe``; no download; decoding runs a fixed number of steps, so the work is the
same).
"""

from __future__ import annotations

import argparse
import functools
import dataclasses
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from varbench.errors import VarbenchError  # noqa: E402
from varbench.generate.plan import sample_seed  # noqa: E402
from varbench.generators import protocol as gen_mod  # noqa: E402
from varbench.generators import zoo  # noqa: E402
from varbench.results import schema  # noqa: E402
from varbench.speed.flops import Arch, var_flops  # noqa: E402

RANDOM_SEEDS = (1, 2)  # recipe seeds (transformer, tokenizer) of --random-weights


def var_flops_per_image(width: int, depth: int, vocab: int, patch_nums, shared_aln: bool) -> float:
    """F_VAR with KV cache for one row (no CFG), facts §3 via ``varbench.speed.flops``."""
    return var_flops(Arch(width, depth, vocab), patch_nums, shared_adaln=shared_aln).total


def build(name: str, device: str, dtype: str, random_weights: bool):
    spec = zoo.get(name)
    if random_weights and not spec.random_init and spec.config is not None:
        spec = dataclasses.replace(spec, random_seeds=RANDOM_SEEDS, weights=())
    return gen_mod.build(spec, {}, device=device, dtype=dtype), spec


def time_calls(fn, warmup: int, repeats: int, sync) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="var_test")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=gen_mod.DTYPES)
    ap.add_argument("--batch-sizes", default="1,2,4,8,16")
    ap.add_argument("--modes", default="per-sample,official")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--random-weights", action="store_true", help="released shapes with seeded random weights")
    ap.add_argument("--json", default=None, help="default: reports/bench_generate_<device>.json")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available here")
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    rows = []
    random_weights = False
    protocol = schema.empty_protocol()
    load_before = os.getloadavg()[0]
    for name in args.models.split(","):
        try:
            gen, spec = build(name, device, args.dtype, args.random_weights)
        except VarbenchError as e:
            raise SystemExit(f"error: {e}") from None
        random_weights |= bool(gen.random_weights)
        if len(args.models.split(",")) == 1:  # one model: the protocol records it and its sampling settings
            protocol["model"], protocol["sampling"] = gen_mod.model_info(gen), gen_mod.sampling_record(gen)
        desc = gen.describe()
        flops = None
        if spec.family == "var":
            vocab = getattr(getattr(gen, "var", None), "cfg", None)
            vocab = getattr(vocab, "vocab_size", 4096)
            flops = var_flops_per_image(desc["width"], desc["depth"], vocab, desc["patch_nums"], desc["shared_aln"])
        for mode in modes:
            if mode == "official" and not hasattr(gen, "generate_official"):
                continue
            for b in batch_sizes:
                labels = [(97 * i) % 1000 for i in range(b)]
                seeds = [sample_seed(0, i) for i in range(b)]
                if mode == "official":
                    call = functools.partial(gen.generate_official, labels, 0)
                else:
                    call = functools.partial(gen.generate, labels, seeds)
                if device.startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats()
                times = time_calls(call, args.warmup, args.repeats, sync)
                latency = statistics.median(times)
                ips = b / latency
                row = {
                    "model": name,
                    "family": spec.family,
                    "mode": "var_kv" if spec.family == "var" else spec.family,
                    "rng": mode,
                    "resolution": int(gen.resolution),
                    "batch_size": b,
                    "steps": spec.steps,
                    "tokens": spec.tokens,
                    "latency_s": round(latency, 5),
                    "latency_all_s": [round(t, 5) for t in times],
                    "throughput_img_s": round(ips, 4),
                    "flops_analytic": flops,
                    "tflops_achieved": round(2 * flops * ips / 1e12, 6) if flops else None,
                    "peak_mem_bytes": int(torch.cuda.max_memory_allocated()) if device.startswith("cuda") else None,
                }
                rows.append(row)
                print(f"{name:10s} {mode:10s} B={b:4d}  {latency:8.4f} s/call  {ips:9.2f} img/s"
                      + (f"  {row['tflops_achieved']:.4f} TFLOP/s" if flops else ""), flush=True)
        del gen
    config = {
        "benchmark": "generate_throughput",
        "models": args.models.split(","),
        "device": device,
        "dtype": args.dtype,
        "batch_sizes": batch_sizes,
        "modes": modes,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(),
        "random_weights": random_weights,
        "sampling": "zoo defaults (VAR: cfg 1.5, top-k 900, top-p 0.96)",
        "flops_rule": "baselines.md section 3, F_VAR with KV cache x 2 (CFG rows); VQ decoder excluded, its time included",
    }
    summary = {
        "rows": rows,
        "load_average_1m": [load_before, os.getloadavg()[0]],  # before, after: other work on a shared machine
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    result = schema.make("speed", config, summary, protocol, device=device, random_weights=random_weights)
    tag = "cpu" if device == "cpu" else (result["env"].get("device_name") or "cuda").lower().replace(" ", "_")
    path = Path(args.json or f"reports/bench_generate_{tag}.json")
    schema.save(path, result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
