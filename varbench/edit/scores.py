"""Scores of the edit benchmark: composites, pixel errors by region, FID/KID against the originals, and the target
class's rank in the Inception logits (``varbench.edit.inception_classes`` maps them to ImageNet order).

Composite = the output's pixels in the edited region, the original's elsewhere (what a user keeps of an edit).
FID/KID compare composites with the originals (pool3 features; ``varbench.metrics``: float64 statistics, the
eigenvalue trace; KID with min(1000, N) rows per subset).  Pixel errors are float64 on the 0..255 scale.
"""

from __future__ import annotations

import math

import numpy as np

from varbench.edit.inception_classes import TF_LOGIT
from varbench.results.edit import PSNR_CAP, EditScores, ReconstructionScores

RANK_RULE = ("rank of the target class (1 = first) among the 1000 ImageNet classes in the composite's bias-free "
             "Inception logits, re-ordered to ImageNet order with the 2015 graph's label map (TF_LOGIT)")
KID_SUBSET_SIZE = 1000
KID_SUBSETS = 100


def composite(edited: np.ndarray, original: np.ndarray, generated: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 3): ``edited`` where ``generated`` (H, W) is True, else ``original``."""
    return np.where(generated[None, :, :, None], edited, original)


def region_errors(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> tuple[float, float]:
    """(mean per-image MSE, mean per-image PSNR in dB) of uint8 images a, b over the pixels where ``region``."""
    if not region.any():
        return 0.0, PSNR_CAP
    diff = a[:, region].astype(np.float64) - b[:, region].astype(np.float64)  # (N, pixels, 3)
    mse = (diff ** 2).mean(axis=(1, 2))
    psnr = np.array([PSNR_CAP if m <= 0 else min(PSNR_CAP, 10 * math.log10(255.0 ** 2 / m)) for m in mse])
    return float(mse.mean()), float(psnr.mean())


def fid_kid(fake: np.ndarray, real: np.ndarray) -> tuple[float | None, float | None, float | None, int | None]:
    """(FID, KID mean, KID std, KID subset size) of pool3 features; Nones with fewer than two rows."""
    from varbench.metrics.fid import feature_statistics, frechet_distance
    from varbench.metrics.kid import kernel_inception_distance

    n = min(len(fake), len(real))
    if n < 2:
        return None, None, None, None
    mu1, s1 = feature_statistics(fake)
    mu2, s2 = feature_statistics(real)
    fid = frechet_distance(mu1, s1, mu2, s2)
    size = min(KID_SUBSET_SIZE, n)
    kid = kernel_inception_distance(fake, real, subsets=KID_SUBSETS, subset_size=size)
    return fid, kid.mean, kid.std, size


def imagenet_logits(logits: np.ndarray) -> np.ndarray:
    """(N, 1008) Inception logits -> (N, 1000) in ImageNet class order."""
    return np.asarray(logits)[:, list(TF_LOGIT)]


def target_ranks(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Rank (1 = highest) of each row's target class among the 1000 ImageNet classes (ties counted in its favour)."""
    scores = imagenet_logits(logits)
    own = scores[np.arange(len(scores)), targets]
    return 1 + (scores > own[:, None]).sum(axis=1)


def task_scores(task: str, edited, original, recon, generated, feats: dict, targets=None) -> EditScores:
    """Scores of one task; ``feats`` holds pool3/logits of "composite" and "original" (rows in image order)."""
    kept = ~generated
    mse_e, psnr_e = region_errors(edited, original, generated)
    mse_k, psnr_k = region_errors(edited, original, kept)
    mse_r, psnr_r = region_errors(edited, recon, kept)
    fid, kid_mean, kid_std, size = fid_kid(feats["composite"]["pool3"], feats["original"]["pool3"])
    ranks = base = None
    if task == "class_edit":
        ranks = target_ranks(feats["composite"]["logits"], targets)
        base = target_ranks(feats["original"]["logits"], targets)
    return EditScores(
        fid=fid, kid_mean=kid_mean, kid_std=kid_std, kid_subset_size=size, mse_edited=mse_e, psnr_edited=psnr_e,
        mse_kept=mse_k, psnr_kept=psnr_k, mse_kept_vs_recon=mse_r, psnr_kept_vs_recon=psnr_r,
        target_rank_mean=None if ranks is None else float(ranks.mean()),
        target_top1=None if ranks is None else float((ranks <= 1).mean()),
        target_top5=None if ranks is None else float((ranks <= 5).mean()),
        target_top5_original=None if base is None else float((base <= 5).mean()))


def reconstruction_scores(recon, original, feats: dict, samples_npz: str, sha: str) -> ReconstructionScores:
    everything = np.ones(original.shape[1:3], dtype=bool)
    mse, psnr = region_errors(recon, original, everything)
    fid, kid_mean, kid_std, _ = fid_kid(feats["recon"]["pool3"], feats["original"]["pool3"])
    return ReconstructionScores(psnr=psnr, mse=mse, fid=fid, kid_mean=kid_mean, kid_std=kid_std,
                                samples_npz=samples_npz, samples_sha256=sha)


def features(extractor, images: np.ndarray, batch_size: int = 32, on_batch=None) -> dict:
    """{"pool3": (N, 2048), "logits": (N, 1008)} of uint8 images, in batches (rows do not depend on them)."""
    pool3, logits = [], []
    for s in range(0, len(images), batch_size):
        out = extractor.extract(np.ascontiguousarray(images[s : s + batch_size]))
        pool3.append(out["pool3"])
        logits.append(out["logits"])
        if on_batch is not None:
            on_batch(min(s + batch_size, len(images)))
    return {"pool3": np.concatenate(pool3), "logits": np.concatenate(logits)}
