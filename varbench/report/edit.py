"""The "zero-shot" report table: one row per task of every edit result (``varbench.results.edit``), plus the
VQVAE reconstruction row of a benchmark, read from the result files alone."""

from __future__ import annotations

from varbench.report.tables import Table

HEADERS = {"run": "run", "model": "model", "mode": "mode", "task": "task", "box": "box", "no_leak": "no leak",
           "images": "images", "fid": "FID", "kid_mean": "KID", "psnr_edited": "PSNR edited",
           "psnr_kept": "PSNR kept", "psnr_kept_vs_recon": "PSNR kept vs recon", "recon_psnr": "recon PSNR",
           "target_top5": "target top-5", "target_rank_mean": "target rank", "random_weights": "random weights"}
FORMATS = {"fid": ".2f", "kid_mean": ".4f", "psnr_edited": ".2f", "psnr_kept": ".2f", "psnr_kept_vs_recon": ".2f",
           "recon_psnr": ".2f", "target_top5": ".3f", "target_rank_mean": ".1f"}
NOTES = ("edited = pixels of generated tokens (in-painting/class edit: the box; out-painting: outside it); "
         "kept = the rest; PSNR in dB on 0..255, mean over images",
         "FID/KID: composites (edited region from the output, the rest original) vs the originals",
         "target top-5 / rank: the class-edit target among the 1000 ImageNet classes of the Inception logits")


def _rows(name: str, result: dict) -> list[dict]:
    res = result["results"]
    model = (result["protocol"].get("model") or {}).get("name")
    recon = res.get("reconstruction") or {}
    rows = []
    for entry in res["tasks"]:
        scores = entry.get("scores") or {}
        rows.append({"run": name, "model": model, "mode": res["mode"], "task": entry["task"],
                     "box": ",".join(f"{v:g}" for v in entry["box"]) + (" (kept)" if entry["outpaint"] else ""),
                     "no_leak": entry["no_leak"], "images": entry["num_images"],
                     **{k: scores.get(k) for k in ("fid", "kid_mean", "psnr_edited", "psnr_kept",
                                                    "psnr_kept_vs_recon", "target_top5", "target_rank_mean")},
                     "recon_psnr": recon.get("psnr"), "random_weights": result["random_weights"]})
    if recon:
        rows.append({"run": name, "model": model, "mode": res["mode"], "task": "reconstruction", "box": None,
                     "no_leak": None, "images": res["num_images"], "fid": recon.get("fid"),
                     "kid_mean": recon.get("kid_mean"), "psnr_edited": None, "psnr_kept": None,
                     "psnr_kept_vs_recon": None, "recon_psnr": recon.get("psnr"), "target_top5": None,
                     "target_rank_mean": None, "random_weights": result["random_weights"]})
    return rows


def zero_shot_table(runs: list[tuple]) -> Table | None:
    """``runs``: (name, result, path) tuples as ``varbench.report.tables`` takes them; edit results only count.
    None when there is none."""
    import pandas as pd

    records = [row for name, result, _ in runs if result["kind"] == "edit" for row in _rows(name, result)]
    if not records:
        return None
    return Table("zero-shot", "Zero-shot editing", pd.DataFrame(records, columns=list(HEADERS)), dict(HEADERS),
                 NOTES, dict(FORMATS))
