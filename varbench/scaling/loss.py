"""Teacher-forced validation statistics of VAR: the official trainer's ``eval_ep`` (FoundationVision/VAR
``trainer.py`` @78b9539), per image and per scale, summed in float64.

Per batch: tokens ``gt`` = the VQVAE's multi-scale codes of the validation crops; logits = one fp32 forward of the
transformer on ``(labels, teacher_forcing_input(tokens))`` with the true labels (no conditioning dropout: official
training builds VAR with ``cond_drop_rate=0.1``, which ``VAR.forward`` applies even in eval mode, so the official
validation numbers replace about 10 % of the labels by the null class at random); per token ``cross_entropy`` in nats
(no label smoothing) and ``argmax == gt``.  This module returns, per image and scale, the float64 sum of the float32
per-token CE and the hit count; ``summarize`` turns totals into the numbers.

Differences from ``eval_ep``'s arithmetic: it averages CE per batch in float32, multiplies by B and sums the batches
in float32 (so its L_mean changes in the last float32 bits with the batch size); here every per-token CE is summed in
float64 over the whole set, so the result does not depend on how images are batched, chunked or sharded beyond the
float32 rounding of the logits themselves.  Accuracies are hit counts divided exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PROTOCOL = {
    "name": "var_eval_ep",
    "source": "FoundationVision/VAR trainer.py VARTrainer.eval_ep + utils/data.py build_dataset @78b9539",
    "transform": "PIL convert('RGB') (alpha dropped); Resize(round(1.125 * res), LANCZOS) of the short side, long "
                 "side truncated; CenterCrop(res) at int(round((h - res) / 2)); x01 = u8 / 255; x01 + x01 - 1",
    "tokens": "VQVAE multi-scale codes of the crop (img_to_idxBl); input = idxBl_to_var_input(tokens)",
    "labels": "the true class labels (no conditioning dropout)",
    "forward": "one teacher-forced transformer forward, float32, TF32 off",
    "loss": "cross-entropy in nats per token, no label smoothing; l_avg over all tokens of all images, l_last over "
            "the last scale's tokens",
    "accuracy": "argmax of the logits == target token, percent; acc_avg over all tokens, acc_last over the last scale",
    "error": "err = 100 - acc (percent); the fits use err / 100, the fraction of the paper's Err laws",
    "aggregation": "float64 sums of float32 per-token values over the whole set (eval_ep: float32 batch means)",
}


@dataclass(frozen=True)
class BatchStats:
    ce_sum: np.ndarray  # float64 (B, S): per image and scale, the sum of the per-token CE (nats)
    hits: np.ndarray  # int64 (B, S): argmax == target counts
    tokens: object = None  # torch int64 (B, L): targets, when asked for
    ce: object = None  # torch float32 (B, L): per-token CE, when asked for
    argmax: object = None  # torch int64 (B, L)


def batch_stats(var, vae, images, labels, keep_tokens: bool = False) -> BatchStats:
    """images float32 (B, 3, R, R) in [-1, 1] on the model's device, labels int64 (B,) -> ``BatchStats``."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():
        tokens = vae.encode(images)  # [(B, pn * pn)] coarse to fine
        gt = torch.cat(tokens, dim=1)  # (B, L)
        logits = var(labels, vae.quantize.teacher_forcing_input(tokens)).float()  # (B, L, V)
        B, L, V = logits.shape
        ce = F.cross_entropy(logits.reshape(-1, V), gt.reshape(-1), reduction="none").view(B, L)
        argmax = logits.argmax(dim=-1)
        del logits
        hit = argmax == gt
        ce64 = ce.double()
        sums, hits, start = [], [], 0
        for t in tokens:
            stop = start + t.shape[1]
            sums.append(ce64[:, start:stop].sum(dim=1))
            hits.append(hit[:, start:stop].sum(dim=1))
            start = stop
        ce_sum = torch.stack(sums, dim=1).cpu().numpy()
        hit_count = torch.stack(hits, dim=1).cpu().numpy().astype(np.int64)
    if keep_tokens:
        return BatchStats(ce_sum, hit_count, gt.cpu(), ce.cpu(), argmax.cpu())
    return BatchStats(ce_sum, hit_count)


def summarize(ce_sum: np.ndarray, hits: np.ndarray, patch_nums) -> dict:
    """Per-image per-scale sums (n, S) over the whole set -> l_avg, l_last, acc_*, err_*, SEMs and per-scale stats."""
    patch_nums = [int(p) for p in patch_nums]
    n, S = ce_sum.shape
    if S != len(patch_nums):
        raise ValueError(f"{S} scales of sums for patch_nums {patch_nums}")
    tokens = np.array([p * p for p in patch_nums], dtype=np.int64)
    L, last = int(tokens.sum()), int(tokens[-1])
    ce_scale, hit_scale = ce_sum.sum(axis=0), hits.sum(axis=0)  # float64 (S,), int64 (S,)
    per_image_avg, per_image_last = ce_sum.sum(axis=1) / L, ce_sum[:, -1] / last
    out = {
        "num_images": int(n), "tokens_per_image": L, "last_scale_tokens": last,
        "l_avg": float(ce_scale.sum() / (n * L)), "l_last": float(ce_scale[-1] / (n * last)),
        "acc_avg": float(100.0 * hit_scale.sum() / (n * L)), "acc_last": float(100.0 * hit_scale[-1] / (n * last)),
        "l_avg_sem": _sem(per_image_avg), "l_last_sem": _sem(per_image_last),
        "per_scale": [
            {"scale": s, "side": p, "resolution": 16 * p, "tokens": p * p,
             "ce": float(ce_scale[s] / (n * p * p)), "acc": float(100.0 * hit_scale[s] / (n * p * p))}
            for s, p in enumerate(patch_nums)
        ],
    }
    out["err_avg"], out["err_last"] = 100.0 - out["acc_avg"], 100.0 - out["acc_last"]
    return out


def _sem(values: np.ndarray) -> float | None:
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else None
