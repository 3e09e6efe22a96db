"""Render a ``varbench report`` HTML file in headless Chromium and save a screenshot PNG to look at.

    python benchmarks/screenshot_report.py                      # a demo report from crafted results
    python benchmarks/screenshot_report.py runs/*.json --out reports/mine

Writes OUT.html and OUT.png (default reports/screenshot_demo.*) and prints one JSON line: the paths, the page size
and how much of the screenshot is not background (a blank or broken page is nearly all white).  Needs the
``chromium`` binary (Debian: apt-get install chromium).  Not part of the test suite except through the
``slow``-marked test in tests/test_report.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def demo_inputs(directory: Path) -> list[Path]:
    """Crafted results: a CFG sweep of var_d16, a LlamaGen-XL-384 run, a speed study, and a generate dir."""
    from varbench import results

    def envelope(kind, config, res, random_weights=False):
        r = results.make(kind, config, res, random_weights=random_weights)
        results.save(directory / f"{name}.json", r)
        return directory / f"{name}.json"

    paths = []
    for cfg, fid, is_mean in ((1.0, 4.10, 231.0), (1.5, 3.41, 276.0), (2.0, 3.62, 301.0), (3.0, 4.90, 333.0)):
        name = f"fid_var_d16_cfg{cfg}"
        m = {"fid": fid, "sfid": 5.6, "is_mean": is_mean, "is_std": 3.1, "precision": 0.83, "recall": 0.52}
        paths.append(envelope("fid", {"model": "var_d16", "sampling": {"cfg": cfg, "top_k": 900, "top_p": 0.96},
                                      "plan": {"num_samples": 50000, "per_class": 50, "labels": None}},
                              {"metrics": m, "reference": {"name": "VIRTUAL_imagenet256_labeled", "n": 50000},
                               "samples": {"n": 50000, "resolution": 256}}))  # fmt: skip
    name = "fid_llamagen_xl"
    m = {"fid": 2.81, "is_mean": 238.0, "precision": 0.80, "recall": 0.58}
    paths.append(envelope("fid", {"model": "llamagen_xl", "sampling": {"cfg": 1.75},
                                  "plan": {"num_samples": 50000, "per_class": 50, "labels": None}},
                          {"metrics": m, "reference": {"name": "VIRTUAL_imagenet256_labeled", "n": 50000},
                           "samples": {"n": 50000, "resolution": 256}}))  # fmt: skip
    rows = []
    for mode, model, k in (("var_kv", "var_test", 1.5), ("raster_kv", "raster_test", 2.0), ("raster_nokv", "raster_test", 3.6)):
        for res in (64, 128, 256, 512):
            lat = 0.02 * (res / 64) ** k
            rows.append({"model": model, "family": mode.split("_")[0], "mode": mode, "resolution": res, "batch_size": 1,
                         "steps": 10 if mode == "var_kv" else (res // 16) ** 2, "tokens": (res // 16) ** 2,
                         "latency_s": lat, "throughput_img_s": 1 / lat, "flops_analytic": 3e8 * (res / 64) ** k,
                         "peak_mem_bytes": int(2**20 * res), "vq_decode_s": 0.004 * res / 64})  # fmt: skip
    name = "speed"
    paths.append(envelope("speed", {"resolutions": [64, 128, 256, 512]},
                          {"rows": rows, "fits": [{"mode": m, "exponent": k, "ci": [k - 0.08, k + 0.08]}
                                                  for m, k in (("var_kv", 1.5), ("raster_kv", 2.0), ("raster_nokv", 3.6))]},
                          random_weights=True))  # fmt: skip
    gen = directory / "generate_var_test"
    gen.mkdir()
    classes, per_class, size = list(range(0, 1000, 125)), 8, 64
    labels = np.array([c for _ in range(per_class) for c in classes], dtype=np.int64)
    yy, xx = np.mgrid[0:size, 0:size]
    images = np.stack([np.stack([(xx * 4 + lab) % 256, (yy * 4 + 7 * i) % 256, np.full_like(xx, lab % 256)], -1)
                       for i, lab in enumerate(labels)]).astype(np.uint8)  # fmt: skip
    np.savez(gen / "samples.npz", arr_0=images, labels=labels)
    name = "generate_var_test/result"
    envelope("generate", {"model": "var_test", "sampling": {"cfg": 1.5, "top_k": 900, "top_p": 0.96}, "seed": 0,
                          "plan": {"num_samples": len(labels), "per_class": per_class, "labels": None}},
             {"num_samples": len(labels), "resolution": size, "samples_npz": str(gen / "samples.npz"),
              "wall_seconds": 3.2, "images_per_second": 20.0}, random_weights=True)  # fmt: skip
    paths.append(gen)
    return paths


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("no chromium binary found (Debian: apt-get install chromium)")


def screenshot(html_path: Path, png_path: Path, width: int = 1400, height: int = 3000) -> None:
    with tempfile.TemporaryDirectory() as profile:
        cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={profile}", f"--window-size={width},{height}", f"--screenshot={png_path}",
               html_path.resolve().as_uri()]  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="*", help="result JSONs or generate dirs (default: a crafted demo set)")
    ap.add_argument("--out", default="reports/screenshot_demo", help="OUT.html and OUT.png are written")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=3000)
    args = ap.parse_args(argv)

    from PIL import Image

    from varbench import atomic, plots, report

    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        inputs = [Path(p) for p in args.results] or demo_inputs(Path(tmp))
        loaded = report.load_inputs(inputs)
        rep = report.build(loaded, published_tables=["var_neurips_table1"], title="varbench report (screenshot check)")
        figs, captions, notes = plots.for_report(loaded)
        rep = report.Report(rep.title, rep.inputs, rep.tables, rep.warnings + tuple(notes), figs, captions)
        atomic.write_text(out.with_suffix(".html"), report.render_html(rep))
    png = out.with_suffix(".png")
    screenshot(out.with_suffix(".html"), png, args.width, args.height)
    img = np.asarray(Image.open(png).convert("RGB"))
    inked = float((img.min(axis=-1) < 230).mean())
    info = {"html": str(out.with_suffix(".html")), "png": str(png), "size": list(img.shape[1::-1]),
            "inked_fraction": round(inked, 4), "plots": sorted(figs)}  # fmt: skip
    sys.stdout.write(json.dumps(info) + "\n")
    return info


if __name__ == "__main__":
    main()
