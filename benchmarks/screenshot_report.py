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
    """Crafted results: a CFG sweep of var_d16, a LlamaGen-XL-384 run, a speed study, and a generate dir.

    Version-2 results: the facts the report reads (model, sampling, labels, samples, reference, extractor) sit in
    each result's ``protocol`` section, built with the schema's own records from the zoo entries."""
    import dataclasses

    from varbench.features.base import make_id
    from varbench.features.inception import FEATURE_VERSION
    from varbench.generate.plan import LABEL_RULE, SEED_RULE
    from varbench.generate.run import UINT8_RULE
    from varbench.generators import zoo
    from varbench.results import schema

    def envelope(name, kind, config, res, protocol, random_weights=False):
        path = directory / f"{name}.json"
        r = schema.make(kind, config, res, protocol, random_weights=random_weights)
        schema.save(path, r)
        return path

    def protocol(model, *, cfg=None, per_class=50, samples=None, fid=True, random_weights=False):
        spec = zoo.get(model)
        p = schema.empty_protocol()
        p["model"] = schema.ModelInfo(name=spec.name, family=spec.family, resolution=spec.resolution,
                                      generated_resolution=spec.generated_resolution, params=spec.params,
                                      checkpoint_sha256={}, random_weights=random_weights,
                                      paper_version=None if random_weights else spec.paper_version)
        settings = spec.sampling if cfg is None else dataclasses.replace(spec.sampling, cfg=cfg)
        p["sampling"] = schema.sampling_info(settings, "fp32", spec.steps)
        p["labels"] = schema.LabelsInfo(scheme=schema.label_scheme(per_class, False), per_class=per_class,
                                        num_classes=1000 if fid else samples["classes"], rule=LABEL_RULE)
        p["seeds"] = schema.SeedsInfo(seed=0, rng="per-sample", rule=SEED_RULE)
        n, res = (50000, 256) if samples is None else (samples["n"], samples["resolution"])
        p["samples"] = schema.SamplesInfo(count=n, resolution=res, height=res, width=res, sha256="0" * 64,
                                          path=str(samples["path"]) if samples else f"runs/{model}/samples.npz",
                                          kind="npz" if fid else "generate_dir", order=None)
        if fid:
            ext_id = make_id("inception-2015-12-05", FEATURE_VERSION)
            p["reference"] = schema.ReferenceInfo(
                name="VIRTUAL_imagenet256_labeled", batch="VIRTUAL_imagenet256_labeled.npz", origin="adm-stored",
                source_sha256="0" * 64, stats_sha256="0" * 64, extractor_id=ext_id, n_stats=0, n_features=10000,
                resolution=256)
            p["extractor"] = schema.ExtractorInfo(id=ext_id, official_weights=True, weights_sha256="0" * 64,
                                                  dtype="fp32", device="cuda:0")
        return p

    def fid_results(m):
        return schema.FidResults(metrics=m, backend="adm", backends={"adm": m}, differences={}, details={},
                                 features=None, seconds=60.0)

    paths = []
    for cfg, fid, is_mean in ((1.0, 4.10, 231.0), (1.5, 3.41, 276.0), (2.0, 3.62, 301.0), (3.0, 4.90, 333.0)):
        m = {"fid": fid, "sfid": 5.6, "is_mean": is_mean, "is_std": 3.1, "precision": 0.83, "recall": 0.52}
        paths.append(envelope(f"fid_var_d16_cfg{cfg}", "fid", {"ref": "VIRTUAL_imagenet256_labeled"},
                              fid_results(m), protocol("var_d16", cfg=cfg)))
    m = {"fid": 2.81, "is_mean": 238.0, "precision": 0.80, "recall": 0.58}
    paths.append(envelope("fid_llamagen_xl", "fid", {"ref": "VIRTUAL_imagenet256_labeled"}, fid_results(m),
                          protocol("llamagen_xl", cfg=1.75)))
    rows = []
    for mode, model, k in (("var_kv", "var_test", 1.5), ("raster_kv", "raster_test", 2.0), ("raster_nokv", "raster_test", 3.6)):
        for res in (64, 128, 256, 512):
            lat = 0.02 * (res / 64) ** k
            rows.append({"model": model, "family": mode.split("_")[0], "mode": mode, "resolution": res,
                         "grid": res // 16, "batch_size": 1, "cfg": 1.5,
                         "steps": 10 if mode == "var_kv" else (res // 16) ** 2, "tokens": (res // 16) ** 2,
                         "latency_s": lat, "throughput_img_s": 1 / lat, "flops_analytic": 3e8 * (res / 64) ** k,
                         "flops_counted": None, "peak_mem_bytes": int(2**20 * res), "vq_decode_s": 0.004 * res / 64,
                         "random_weights": True})  # fmt: skip
    fits = [{"model": model, "mode": m, "quantity": "time", "batch_size": 1, "exponent": k, "ci": [k - 0.08, k + 0.08]}
            for m, model, k in (("var_kv", "var_test", 1.5), ("raster_kv", "raster_test", 2.0),
                                ("raster_nokv", "raster_test", 3.6))]  # fmt: skip
    paths.append(envelope("speed", "speed", {"resolutions": [64, 128, 256, 512]},
                          schema.SpeedResults(rows=rows, fits=fits, flop_sweep=[], crossovers=[], ordering=[],
                                              dry_run=False),
                          schema.empty_protocol(), random_weights=True))  # fmt: skip
    gen = directory / "generate_var_test"
    gen.mkdir()
    classes, per_class, size = list(range(0, 1000, 125)), 8, 64
    labels = np.array([c for _ in range(per_class) for c in classes], dtype=np.int64)
    yy, xx = np.mgrid[0:size, 0:size]
    images = np.stack([np.stack([(xx * 4 + lab) % 256, (yy * 4 + 7 * i) % 256, np.full_like(xx, lab % 256)], -1)
                       for i, lab in enumerate(labels)]).astype(np.uint8)  # fmt: skip
    np.savez(gen / "samples.npz", arr_0=images, labels=labels)
    npz = gen / "samples.npz"
    samples = {"n": len(labels), "resolution": size, "path": npz, "classes": len(classes)}
    envelope("generate_var_test/result", "generate", {"model": "var_test", "seed": 0},
             schema.GenerateResults(num_samples=len(labels), resolution=size, samples_npz=str(npz),
                                    samples_sha256="0" * 64, png_dir=None, num_chunks=1, chunks_generated=1,
                                    chunks_reused=0, wall_seconds=3.2, images_per_second=20.0,
                                    images_per_second_per_process=20.0, uint8_rule=UINT8_RULE),
             protocol("var_test", per_class=per_class, samples=samples, fid=False, random_weights=True),
             random_weights=True)  # fmt: skip
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

    from varbench import files, report
    from varbench.report import plots, render
    from varbench.results import frame

    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        inputs = [Path(p) for p in args.results] or demo_inputs(Path(tmp))
        loaded = frame.load_inputs(inputs)
        rep = report.build(loaded, published_tables=["var_neurips_table1"], title="varbench report (screenshot check)")
        figs, captions, notes = plots.for_report(loaded)
        rep = report.Report(rep.title, rep.inputs, rep.tables, rep.warnings + tuple(notes), figs, captions)
        files.write_text(out.with_suffix(".html"), render.render_html(rep))
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
