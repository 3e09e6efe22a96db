"""VAR sampling side by side: the official code (or our previous version) and varbench on the same seeded random
weights, timed interleaved, tokens and images checked identical (issue 16 benchmark).

    python benchmarks/bench_var_sampling.py --official /path/to/VAR [--dtype bf16] [--batch 4] [--repeats 3]
    python benchmarks/bench_var_sampling.py [--previous /path/to/old/varbench]   # default: git HEAD, exported

``--official PATH`` is a checkout of FoundationVision/VAR that you provide (never vendored): its ``models`` package
builds VAR-d16 and the VQVAE (``build_vae_var``, flash/fused kernels off, ``cond_drop_rate`` 0), which then load the
state dicts of varbench's recipe weights (``varbench.recipe``, seeds of ``varbench.speed.decoders``; the parameter
names are the official ones), so both sides sample with the same weights: the official
``autoregressive_infer_cfg(B, labels, g_seed, cfg 1.5, top-k 900, top-p 0.96)`` against varbench's
``VarGenerator.sample_tokens`` + ``decode`` (official RNG mode).  Without ``--official`` the reference is our previous
version (a varbench tree; default ``git archive HEAD`` of this repository, i.e. the last commit against the working
tree).  ``--dtype bf16`` adds varbench's fast mode (bf16 autocast for the transformer and the VQ decode); its tokens
may differ, so it is only timed.  On a CPU without native bf16 (AVX512-BF16/AMX) bf16 is emulated, about a hundred
times slower than fp32: the fast mode is then skipped with the measured matmul peaks unless ``--allow-emulated``.

Every side runs in its own worker process (its own imports, threads and peak-memory counter; the official
``build_vae_var`` patches ``reset_parameters`` of torch's layers globally, so it must not share a process).  Rounds
alternate the sides (A B, then B A, ...) after ``--warmup`` untimed rounds, and a plain matmul peak is measured right
before every run: ratios are paired per round (and given for the fastest runs, the least disturbed on a shared
machine), efficiencies are the achieved FLOP/s (formula for the transformer, torch's counter for the decode) over the
peak measured before that run.  The JSON holds every round, medians, spreads, the transformer/decode split, peak
RSS, minor page faults per run, the CPU flags and the load average.  Both workers run with the CPU allocator
settings of the varbench CLI (``env.tune_cpu_allocator``: torch's buffers on transparent huge pages, glibc keeping
freed memory; ``--allocator default`` for torch's and glibc's defaults: then a worker's page faults depend on what
it happened to allocate and free before (the official side reuses its temporary copy of the recipe models) and
buffers sit in 4 KB pages).  ``--profile`` adds one round per side under torch.profiler and records the self time
per op and per kind of op (matmul, convolution, attention, elementwise and norms, copies, sampling).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LABELS = (1, 207, 980, 999)  # the official fixtures' labels, cycled to the batch
LAYERS = ("Linear", "LayerNorm", "BatchNorm2d", "SyncBatchNorm", "Conv1d", "Conv2d", "ConvTranspose1d",
          "ConvTranspose2d")  # the classes whose reset_parameters build_vae_var replaces


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", type=Path, help="a checkout of FoundationVision/VAR (the reference side)")
    ap.add_argument("--previous", type=Path, help="a varbench tree as reference (default: git HEAD, exported)")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="bf16: also time the fast mode")
    ap.add_argument("--allow-emulated", action="store_true", help="run bf16 even where the CPU emulates it")
    ap.add_argument("--depth", type=int, default=16)
    ap.add_argument("--vae-ch", type=int, default=160)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0, help="g_seed of every call")
    ap.add_argument("--json", type=Path, default=ROOT / "reports" / "bench_var_sampling.json")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--profile", action="store_true", help="one more round per side under torch.profiler: where "
                    "the time goes (self time per op and per kind of op)")
    ap.add_argument("--allocator", default="varbench", choices=["varbench", "default"],
                    help="both sides alike: varbench = what the CLI sets (env.tune_cpu_allocator: huge pages, "
                         "glibc keeps freed memory); default = torch's and glibc's defaults")
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # internal: serve one side
    ap.add_argument("--root", type=Path, help=argparse.SUPPRESS)  # internal: the varbench tree of a worker
    ap.add_argument("--out-dir", type=Path, help=argparse.SUPPRESS)  # internal: where a worker puts its outputs
    return ap.parse_args(argv)


# ---------------------------------------------------------------------------------------------------------- worker


def _recipe_models(args):
    """varbench's VAR and VQVAE with the recipe weights of the speed study's random VAR."""
    from varbench import recipe
    from varbench.models.var import VAR, VARConfig
    from varbench.models.vqvae import VQVAE, VQVAEConfig

    try:
        from varbench.speed.decoders import VAR_RECIPE_SEEDS as seeds
    except ImportError:  # an older varbench
        seeds = (1, 2)
    with_device = args.device
    var = recipe.fill_with_recipe(VAR(VARConfig(depth=args.depth)), seeds[0], with_device)
    vae = recipe.fill_with_recipe(VQVAE(VQVAEConfig(ch=args.vae_ch)), seeds[1], with_device)
    return var.eval().requires_grad_(False), vae.eval().requires_grad_(False)


def _official_side(args):
    """The official VAR and VQVAE with varbench's recipe weights; returns run(labels) -> (tokens, f_hat, images01,
    decode seconds)."""
    import torch
    from torch import nn

    sys.path.insert(0, str(args.official.resolve()))
    saved = {name: getattr(nn, name).__dict__.get("reset_parameters") for name in LAYERS}
    import dist as official_dist  # the official repository's dist.py
    import models as official_models
    import models.var as official_var

    if args.device != "cpu":
        setattr(official_dist, "__device", torch.device(args.device))  # what dist.initialize would set
    pn = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)
    vae_o, var_o = official_models.build_vae_var(device=args.device, patch_nums=pn, ch=args.vae_ch,
                                                 depth=args.depth, flash_if_available=False,
                                                 fused_if_available=False)
    for name, fn in saved.items():  # undo build_vae_var's global patch
        cls = getattr(nn, name)
        if fn is None:
            del cls.reset_parameters  # it was inherited
        else:
            cls.reset_parameters = fn
    var, vae = _recipe_models(args)
    for mine, theirs in ((var, var_o), (vae, vae_o)):
        theirs.load_state_dict(mine.state_dict(), strict=True)
    del var, vae
    var_o.eval().requires_grad_(False)
    vae_o.eval().requires_grad_(False)
    var_o.cond_drop_rate = 0.0  # (eval does not switch it off upstream; sampling does not use it)
    captured: dict = {}
    sampler = official_var.sample_with_top_k_top_p_
    decode = vae_o.fhat_to_img

    def record_tokens(*a, **k):  # observes the sampled ids; values unchanged
        out = sampler(*a, **k)
        captured["tokens"].append(out[:, :, 0].clone())
        return out

    def timed_decode(f_hat):  # observes f_hat and times the decode; values unchanged
        captured["f_hat"] = f_hat.clone()
        t0 = time.perf_counter()
        img = decode(f_hat)
        _sync(args.device)
        captured["decode_s"] = time.perf_counter() - t0
        return img

    official_var.sample_with_top_k_top_p_ = record_tokens
    vae_o.fhat_to_img = timed_decode
    from varbench.generators.zoo import VAR_FID_SAMPLING as sc

    def run(labels):
        captured.clear()
        captured["tokens"] = []
        with torch.inference_mode():
            img = var_o.autoregressive_infer_cfg(len(labels), torch.tensor(labels, device=args.device),
                                                 g_seed=args.seed, cfg=sc.cfg, top_k=sc.top_k, top_p=sc.top_p)
        return captured["tokens"], captured["f_hat"], img, captured["decode_s"]

    return run


def _varbench_side(args, dtype: str):
    """varbench's generator in the official RNG mode; run(labels) as ``_official_side``."""
    import torch

    from varbench.generators.var import VarGenerator
    from varbench.generators.zoo import VAR_FID_SAMPLING

    var, vae = _recipe_models(args)
    gen = VarGenerator("bench", var, vae, VAR_FID_SAMPLING, device=args.device, dtype=dtype, random_weights=True)

    def run(labels):
        out = gen.sample_tokens(list(labels), torch.Generator(device=args.device).manual_seed(args.seed))
        _sync(args.device)
        t0 = time.perf_counter()
        images = gen.decode(out.f_hat)  # uint8 (B, H, W, 3)
        return out.tokens, out.f_hat, images, time.perf_counter() - t0

    return run


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def worker(args) -> None:
    """Serve one side: build, answer "run" requests with timings (outputs go to files), until "exit"."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything the official code prints goes to stderr, not into the protocol
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    side = args.worker
    run = _official_side(args) if side == "official" else _varbench_side(args, "bf16" if side.endswith("bf16")
                                                                        else "fp32")
    import varbench
    from varbench.generators.protocol import to_uint8
    from varbench.speed import timing

    proto.write(json.dumps({"ready": True, "build_s": time.perf_counter() - t0, "varbench": varbench.__file__,
                            "rss_after_build_bytes": (timing._status_kib("VmRSS") or 0) * 1024}) + "\n")
    labels = [LABELS[i % len(LABELS)] for i in range(args.batch)]
    for line in sys.stdin:
        request = json.loads(line)
        if request["cmd"] == "exit":
            break
        if request["cmd"] == "profile":
            proto.write(json.dumps(profile_run(run, labels, args.device)) + "\n")
            continue
        faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        with timing.peak_memory(args.device) as mem:
            t0 = time.perf_counter()
            tokens, f_hat, images, decode_s = run(labels)
            if not isinstance(images, np.ndarray):  # the official side returns floats in [0, 1]
                t1 = time.perf_counter()
                images = to_uint8(images)
                decode_s += time.perf_counter() - t1
            _sync(args.device)
            total = time.perf_counter() - t0
        path = args.out_dir / f"{side}_{request['round']}.pt"
        torch.save({"tokens": [t.cpu() for t in tokens], "f_hat": f_hat.float().cpu(),
                    "images": torch.from_numpy(images)}, path)
        proto.write(json.dumps({"total_s": total, "decode_s": decode_s, "transformer_s": total - decode_s,
                                "peak_bytes": mem.bytes, "peak_kind": mem.kind, "file": str(path),
                                "minor_page_faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0})
                   + "\n")


OP_KINDS = {  # torch op -> kind, for the profile's summary (everything else: "other")
    "matmul": ("aten::addmm", "aten::mm", "aten::bmm", "aten::matmul"),
    "convolution": ("aten::mkldnn_convolution", "aten::_convolution", "aten::convolution_overrideable",
                    "aten::cudnn_convolution", "aten::_nnpack_spatial_convolution"),
    "attention": ("aten::_scaled_dot_product_flash_attention_for_cpu", "aten::_scaled_dot_product_flash_attention",
                  "aten::_scaled_dot_product_efficient_attention", "aten::_scaled_dot_product_cudnn_attention"),
    "elementwise and norms": ("aten::gelu", "aten::silu", "aten::silu_", "aten::add", "aten::add_", "aten::mul",
                              "aten::mul_", "aten::div", "aten::native_layer_norm", "aten::native_group_norm",
                              "aten::linalg_vector_norm", "aten::upsample_nearest2d", "aten::clamp",
                              "aten::clamp_", "aten::sub", "aten::exp", "aten::constant_pad_nd"),
    "copies": ("aten::copy_", "aten::cat", "aten::clone", "aten::contiguous", "aten::repeat"),
    "sampling": ("aten::sort", "aten::topk", "aten::multinomial", "aten::exponential_", "aten::_softmax",
                 "aten::cumsum_", "aten::cumsum", "aten::masked_fill_", "aten::scatter", "aten::argmax",
                 "aten::amin", "aten::lt", "aten::le"),
}


def profile_run(run, labels, device: str) -> dict:
    """One run under torch.profiler: self time of every op (top 25) and summed per kind (OP_KINDS)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    t0 = time.perf_counter()
    with profile(activities=activities) as prof:
        run(labels)
        _sync(device)
    wall = time.perf_counter() - t0
    ops = sorted(((e.key, e.self_cpu_time_total / 1e6, e.count) for e in prof.key_averages()), key=lambda o: -o[1])
    kind_of = {op: kind for kind, names in OP_KINDS.items() for op in names}
    kinds: dict[str, float] = {}
    for name, self_s, _ in ops:
        kind = kind_of.get(name, "other")
        kinds[kind] = kinds.get(kind, 0.0) + self_s
    total = sum(kinds.values())
    return {"wall_s_under_profiler": wall, "self_cpu_s_total": total,
            "kinds": {k: {"self_s": v, "share": v / total} for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
            "top_ops": [{"op": n, "self_s": t, "calls": c} for n, t, c in ops[:25]]}


# ---------------------------------------------------------------------------------------------------------- parent


class Side:
    """A worker process serving one side."""

    def __init__(self, name: str, root: Path, args, out_dir: Path):
        self.name = name
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--root", str(root),
               "--out-dir", str(out_dir), "--depth", str(args.depth), "--vae-ch", str(args.vae_ch),
               "--batch", str(args.batch), "--threads", str(args.threads), "--device", args.device,
               "--seed", str(args.seed)]
        if name == "official":
            cmd += ["--official", str(args.official)]
        from varbench.env import allocator_environment

        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
               **allocator_environment(args.allocator == "varbench")}
        self.log = open(out_dir / f"{name}.log", "w")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     env=env, cwd=out_dir)
        self.info = self._reply()
        self.runs: list[dict] = []

    def _reply(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.log.flush()
            tail = Path(self.log.name).read_text()[-3000:]
            raise SystemExit(f"worker {self.name} failed:\n{tail}")
        return json.loads(line)

    def profile(self) -> dict:
        self.proc.stdin.write(json.dumps({"cmd": "profile"}) + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def run(self, round_: int) -> dict:
        self.proc.stdin.write(json.dumps({"cmd": "run", "round": round_}) + "\n")
        self.proc.stdin.flush()
        return self._reply()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write(json.dumps({"cmd": "exit"}) + "\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=60)
        self.log.close()


def export_head(dest: Path) -> Path:
    """``git archive HEAD`` of this repository into ``dest`` (read-only for the repository), laid out as installed:
    baselines/ inside varbench's namespace."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD", "varbench", "baselines"], check=True,
                          capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=data, check=True)
    (dest / "varbench" / "baselines").symlink_to(dest / "baselines", target_is_directory=True)
    return dest


def compare(ref: dict, got: dict) -> dict:
    """Tokens (exact), f_hat and uint8 images of two sides' outputs of one round."""
    import torch

    same_tokens = len(ref["tokens"]) == len(got["tokens"]) and all(
        torch.equal(a, b) for a, b in zip(ref["tokens"], got["tokens"]))
    first = next((si for si, (a, b) in enumerate(zip(ref["tokens"], got["tokens"])) if not torch.equal(a, b)), None)
    diff = (ref["images"].int() - got["images"].int()).abs()
    return {"tokens_equal": same_tokens, "first_differing_scale": first,
            "f_hat_equal": torch.equal(ref["f_hat"], got["f_hat"]),
            "f_hat_max_abs_diff": float((ref["f_hat"] - got["f_hat"]).abs().max()),
            "images_equal": bool(diff.max() == 0), "images_max_abs_diff": int(diff.max()),
            "images_fraction_differing": float((diff > 0).float().mean())}


def work_per_batch(args) -> dict:
    """FLOPs of one batch: the transformer by formula (KV cache, both CFG rows, AdaLN included), the VQ decode by
    torch's counter on the meta device."""
    from varbench.models.var import SCHEDULES
    from varbench.models.vqvae import VQVAEConfig
    from varbench.speed import flops as F
    from varbench.speed.efficiency import var_decode_flops

    arch = F.Arch(64 * args.depth, args.depth, 4096)
    transformer = F.var_flops(arch, SCHEDULES[16], kv_cache=True, cfg_rows=2).total * args.batch
    return {"transformer": transformer, "decode": var_decode_flops(VQVAEConfig(ch=args.vae_ch), args.batch),
            "source": "transformer: varbench.speed.flops.var_flops (formula, = torch's counter); decode: "
                      "torch.utils.flop_counter on the meta device"}


def spread(values: list[float]) -> dict:
    from varbench.speed.timing import bootstrap_ci

    lo, hi = bootstrap_ci(values)
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "ci95_median": [lo, hi],
            "values": values}


def summarise(sides: list[Side], work: dict, timed: range) -> dict:
    """Per side: time spreads and efficiencies (against the matmul peak measured right before each run); per
    non-reference side: ratios reference / side, paired per round, and of the fastest runs."""
    out = {}
    ref = sides[0]
    for side in sides:
        dtype = "bf16" if side.name.endswith("bf16") else "fp32"
        runs = [side.runs[r] for r in timed]
        s = {part: spread([r[f"{part}_s"] for r in runs]) for part in ("total", "transformer", "decode")}
        for part in ("transformer", "decode"):
            fractions = [work[part] / r[f"{part}_s"] / r["matmul_peaks_flops_s"][dtype] for r in runs]
            s[f"{part}_efficiency"] = {"compute_dtype": dtype, "flops_per_batch": work[part],
                                       "achieved_flops_s": work[part] / s[part]["median"],
                                       "fraction_of_matmul_peak": spread(fractions)}
        s["peak_rss_bytes"] = max(r["peak_bytes"] or 0 for r in runs)
        s["minor_page_faults_median"] = statistics.median(r["minor_page_faults"] for r in runs)
        s["peak_kind"] = runs[-1]["peak_kind"]
        if side is not ref:
            s["ratio_reference_over_side"] = {
                part: spread([ref.runs[i][f"{part}_s"] / side.runs[i][f"{part}_s"] for i in timed])
                for part in ("total", "transformer", "decode")}
            s["ratio_of_fastest_runs"] = {  # least disturbed by other load on a shared machine
                part: min(ref.runs[i][f"{part}_s"] for i in timed) / min(r[f"{part}_s"] for r in runs)
                for part in ("total", "transformer", "decode")}
        out[side.name] = s
    return out


def check_outputs(sides: list[Side], rounds: int) -> dict:
    """Every side's outputs against the reference side's of the same round (and each side's first round)."""
    import torch

    out = {}
    for side in sides[1:]:
        out[side.name] = [compare(torch.load(sides[0].runs[r]["file"]), torch.load(side.runs[r]["file"]))
                          for r in range(rounds)]
    out["deterministic"] = {
        side.name: all(compare(torch.load(side.runs[0]["file"]), torch.load(side.runs[r]["file"]))["images_equal"]
                       for r in range(rounds)) for side in sides}
    return out


def fast_mode_statement(args, peak0: dict, native) -> dict | None:
    if args.dtype != "bf16":
        return None
    skipped = native is False and not args.allow_emulated and not args.device.startswith("cuda")
    ratio = peak0["fp32"] / peak0["bf16"]
    return {"requested": True, "measured": not skipped, "native_bf16": native,
            "matmul_peak_fp32_flops_s": peak0["fp32"], "matmul_peak_bf16_flops_s": peak0["bf16"],
            "reason_skipped": (f"this CPU has no native bf16 (no AVX512-BF16/AMX): a bf16 matmul runs {ratio:.0f}x "
                               "slower than fp32, so the fast mode cannot reach its >= 1.8x target here and a "
                               "VAR-d16 batch would take hours; pass --allow-emulated to time it anyway")
            if skipped else None}


def main() -> None:
    args = parse()
    if args.worker:
        sys.path.insert(0, str(args.root))
        return worker(args)
    sys.path.insert(0, str(ROOT))
    import torch

    from varbench import env, files
    from varbench.speed import efficiency

    files.check_output(args.json, "--json", args.overwrite)
    load_start = os.getloadavg()
    torch.set_num_threads(args.threads)
    native = env.native_half(args.device)
    peak0 = efficiency.peaks(args.device, ("bf16",) if args.dtype == "bf16" else ())
    fast = fast_mode_statement(args, peak0, native)
    with tempfile.TemporaryDirectory(prefix="bench-var-") as tmp:
        tmp = Path(tmp)
        if args.official:
            ref_name, ref_root = "official", ROOT
        else:
            ref_name = "previous"
            ref_root = args.previous or export_head(Path(tempfile.mkdtemp(prefix="head-", dir=tmp)))
        names = [ref_name, "varbench"] + (["varbench_bf16"] if fast and fast["measured"] else [])
        sides = []
        try:
            for name in names:
                print(f"building {name} ...", flush=True)
                sides.append(Side(name, ref_root if name == "previous" else ROOT, args, tmp))
            result = rounds(args, sides, tmp)
            if args.profile:
                result["profile"] = {side.name: side.profile() for side in sides}
        finally:
            for side in sides:
                side.close()
    result.update(fast_mode=fast, machine=env.machine(args.device), load_average_start=load_start,
                  load_average_end=os.getloadavg(),
                  reference={"side": ref_name, "path": str(args.official or ref_root),
                             "commit": _commit(args.official) if args.official else None},
                  workers={s.name: s.info for s in sides})
    report(result, args)
    files.write_json(args.json, result)
    print(f"wrote {args.json}")


def rounds(args, sides: list[Side], tmp: Path) -> dict:
    """Warm-up and timed rounds, round-robin over the sides, a matmul peak per round."""
    from varbench.speed import efficiency

    dtypes = ("bf16",) if any(s.name.endswith("bf16") for s in sides) else ()
    total = args.warmup + args.repeats
    for r in range(total):
        for side in sides if r % 2 == 0 else sides[::-1]:  # A B, B A, ...: no side always runs first
            peak = efficiency.peaks(args.device, dtypes)  # right before the run: the same machine state
            side.runs.append({**side.run(r), "matmul_peaks_flops_s": peak})
            print(f"round {r + 1}/{total} {'(warm-up) ' if r < args.warmup else ''}{side.name:14s} "
                  f"{side.runs[-1]['total_s']:7.2f} s (decode {side.runs[-1]['decode_s']:.2f} s)", flush=True)
    work = work_per_batch(args)
    timed = range(args.warmup, total)
    return {"benchmark": "var_sampling_side_by_side",
            "setting": f"VAR-d{args.depth} (random recipe weights), VQVAE ch={args.vae_ch}, B={args.batch}, cfg 1.5, "
                       f"top-k 900, top-p 0.96, official RNG mode (g_seed {args.seed}), {args.device}, "
                       f"{args.threads} threads, default SDPA kernel",
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                       if k not in ("worker", "root", "out_dir")},
            "flops": work, "sides": summarise(sides, work, timed),
            "equality": check_outputs(sides, total),
            "rounds": {s.name: [{k: v for k, v in r.items() if k != "file"} for r in s.runs] for s in sides}}


def _commit(path: Path) -> str | None:
    got = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True)
    return got.stdout.strip() or None


def report(result: dict, args) -> None:
    """The table, the targets, and what was skipped."""
    from varbench.speed.efficiency import FP32_TARGET

    sides = result["sides"]
    ref = result["reference"]["side"]
    print(f"\n{result['setting']}; median of {args.repeats} after {args.warmup} warm-up, interleaved")
    print(f"{'side':15s}{'total s':>9s}{'[min-max]':>15s}{'transf. s':>10s}{'decode s':>9s}{'ratio':>7s}"
          f"{'tf %peak':>9s}{'dec %peak':>10s}{'RSS GB':>8s}{'faults':>9s}{'tokens':>8s}{'images':>8s}")
    targets = {}
    for name, s in sides.items():
        ratio = s.get("ratio_reference_over_side", {}).get("total", {}).get("median")
        eq = result["equality"].get(name)
        tf_eff = s["transformer_efficiency"]["fraction_of_matmul_peak"]["median"]
        dec_eff = s["decode_efficiency"]["fraction_of_matmul_peak"]["median"]
        print(f"{name:15s}{s['total']['median']:9.2f}{s['total']['min']:8.2f}-{s['total']['max']:<6.2f}"
              f"{s['transformer']['median']:10.2f}{s['decode']['median']:9.2f}"
              f"{'' if ratio is None else f'{ratio:.2f}x':>7s}{100 * tf_eff:8.0f}%{100 * dec_eff:9.0f}%"
              f"{s['peak_rss_bytes'] / 1e9:8.2f}{s['minor_page_faults_median'] / 1e3:8.0f}k"
              f"{'' if eq is None else str(all(e['tokens_equal'] for e in eq)):>8s}"
              f"{'' if eq is None else str(all(e['images_equal'] for e in eq)):>8s}")
        if not name.endswith("bf16"):
            targets[name] = {"fp32_efficiency_min": FP32_TARGET, "transformer_met": tf_eff >= FP32_TARGET,
                             "decode_met": dec_eff >= FP32_TARGET}
    if "varbench_bf16" in sides and ref == "official":
        speedup = sides["varbench_bf16"]["ratio_reference_over_side"]["total"]["median"]
        targets["fast_mode"] = {"speedup_vs_official_fp32": speedup, "min": 1.8, "met": speedup >= 1.8}
    result["targets"] = targets
    peaks = [r["matmul_peaks_flops_s"] for runs in result["rounds"].values() for r in runs]
    print("ratio: reference time / side time, paired per round (> 1: the side is faster; fastest runs: "
          + ", ".join(f"{n} {s['ratio_of_fastest_runs']['total']:.2f}x" for n, s in sides.items()
                      if "ratio_of_fastest_runs" in s)
          + "); %peak: achieved FLOP/s over a matmul peak measured right before each run (median " + ", ".join(
              f"{dt} {statistics.median(p[dt] for p in peaks) / 1e9:.0f} GFLOP/s" for dt in peaks[0]) + ")")
    for name, t in targets.items():
        print(f"target {name}: {t}")
    for name, prof in result.get("profile", {}).items():
        print(f"profile {name}: " + ", ".join(f"{k} {100 * v['share']:.0f}%" for k, v in prof["kinds"].items())
              + f" of {prof['self_cpu_s_total']:.1f} s self time")
    if result["fast_mode"] and not result["fast_mode"]["measured"]:
        print("fast mode not measured: " + result["fast_mode"]["reason_skipped"])


if __name__ == "__main__":
    main()
