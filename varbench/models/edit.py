"""Zero-shot editing with VAR: in-painting, out-painting and class-conditional editing.

Paper: Tian et al., "Visual Autoregressive Modeling: Scalable Image Generation via Next-Scale Prediction",
NeurIPS 2024 (arXiv 2404.02905), zero-shot generalisation.  Mirrors the helper cell of FoundationVision/VAR
``demo_zero_shot_edit.ipynb`` (``get_edit_mask``, ``autoregressive_infer_cfg_with_mask``, ``replace_embedding``):

* a keep mask on the last token grid: 1 = keep the image's token, 0 = generate.  The box (fractions, rows then
  columns) covers rows ``round(y0 * n):round(y1 * n)`` and columns ``round(x0 * n):round(x1 * n)`` (Python rounding,
  half to even); in-painting keeps everything but the box, out-painting keeps the box;
* per scale the mask is resized to (pn, pn) bilinearly (align_corners False, no antialias) and kept where
  strictly > 0.5; scales with pn * pn <= 3 always keep the image's tokens;
* at every scale all positions are sampled first (the generator is consumed exactly as in unedited sampling), then
  the code vectors of kept positions are replaced by the image's before f_hat and the next scale's input are built
  (``Steps.codes`` of ``varbench.models.sample``).  In ``more_smooth`` mode the positions that are not kept use the
  soft Gumbel code mixture.

Pure torch: no IO.  The leak-free variant (``blank_generated``) encodes the image with the generated region set to
a constant, so no kept token carries the content it replaces.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from varbench.models.sample import SampleOutput, Steps, VarSampling, sample
from varbench.models.var import VAR
from varbench.models.vqvae import VQVAE

ALWAYS_KEPT_TOKENS = 3  # scales with pn * pn <= 3 always keep the image's tokens (replace_embedding)
KEEP_THRESHOLD = 0.5  # a position is kept where the bilinear mask is strictly above this
SOFT_EMBEDDING = -1  # effective id of a position that entered f_hat as a soft Gumbel mixture (more_smooth)


def box_span(box: tuple[float, float, float, float], grid: int) -> tuple[int, int, int, int]:
    """(r0, r1, c0, c1) on a ``grid`` x ``grid`` token map of a box (y0, x0, y1, x1) in fractions (Python round)."""
    y0, x0, y1, x1 = (float(v) for v in box)
    return round(y0 * grid), round(y1 * grid), round(x0 * grid), round(x1 * grid)


def keep_mask(box: tuple[float, float, float, float], grid: int, outpaint: bool = False,
              ring: int = 0) -> torch.Tensor:
    """float32 (grid, grid): 1 = keep the image's token, 0 = generate.

    In-painting generates the box, out-painting keeps it.  ``ring`` > 0 also generates every token within ``ring``
    tokens (Chebyshev distance) of a generated one.
    """
    r0, r1, c0, c1 = box_span(box, grid)
    inside = torch.zeros(grid, grid)
    inside[r0:r1, c0:c1] = 1
    keep = inside if outpaint else 1 - inside
    if ring > 0:
        generated = (1 - keep)[None, None]
        generated = F.max_pool2d(generated, kernel_size=2 * ring + 1, stride=1, padding=ring)
        keep = 1 - generated[0, 0]
    return keep


def scale_masks(keep: torch.Tensor, patch_nums: tuple[int, ...], batch_size: int
                ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per scale: (bilinear values (B, pn, pn) float32, kept positions (B, pn, pn) bool) of a keep mask (n, n) or
    (B, n, n) on the last grid."""
    if keep.ndim == 2:
        keep = keep.expand(batch_size, *keep.shape)
    m = keep.to(torch.float32).unsqueeze(1)  # (B, 1, n, n)
    values, kept = [], []
    for pn in patch_nums:
        v = F.interpolate(m, size=(pn, pn), mode="bilinear", align_corners=False)[:, 0]
        k = v > KEEP_THRESHOLD
        if pn * pn <= ALWAYS_KEPT_TOKENS:
            k = torch.ones_like(k)
        values.append(v)
        kept.append(k)
    return values, kept


class KeepImageCodes:
    """The ``Steps.codes`` hook: code vectors of kept positions become the image's (``where(keep, image, sampled)``,
    which equals the notebook's ``gt * m + h * (1 - m)`` bit for bit)."""

    def __init__(self, kept: list[torch.Tensor], image_tokens: list[torch.Tensor], codebook: torch.Tensor):
        self.kept = [k.reshape(k.shape[0], -1, 1).to(codebook.device) for k in kept]  # per scale (B, pn*pn, 1)
        self.image_tokens = [t.to(codebook.device) for t in image_tokens]  # per scale (B, pn*pn)
        self.codebook = codebook  # (V, Cvae)

    def __call__(self, si: int, h: torch.Tensor) -> torch.Tensor:
        image = self.codebook[self.image_tokens[si]].to(h.dtype)  # (B, pn*pn, Cvae)
        return torch.where(self.kept[si], image, h)


@dataclass
class EditOutput:
    sampled: list[torch.Tensor]  # per scale (B, pn*pn): what the sampler drew at every position
    effective: list[torch.Tensor]  # per scale (B, pn*pn): ids that entered f_hat (image's where kept; -1 = soft)
    kept: list[torch.Tensor]  # per scale (B, pn, pn) bool
    f_hat: torch.Tensor  # (B, Cvae, n, n)
    labels: torch.Tensor  # (B,)


def effective_tokens(sampled: list[torch.Tensor], image_tokens: list[torch.Tensor], kept: list[torch.Tensor],
                     more_smooth: bool) -> list[torch.Tensor]:
    out = []
    for s, t, k in zip(sampled, image_tokens, kept):
        k = k.reshape(k.shape[0], -1).to(s.device)
        other = torch.full_like(s, SOFT_EMBEDDING) if more_smooth else s
        out.append(torch.where(k, t.to(s.device), other))
    return out


def edit_sample(var: VAR, vae: VQVAE, image_tokens: list[torch.Tensor], keep: torch.Tensor, labels: torch.Tensor,
                sc: VarSampling, rng, autocast_dtype: torch.dtype | None = None, hook=None) -> EditOutput:
    """Edit B images given their per-scale tokens (B, pn*pn) and a keep mask (n, n) or (B, n, n) on the last grid.

    ``labels`` (B,): class-conditional editing, or the null class (``var.null_class``) for in-/out-painting.
    ``rng``: one generator (the notebook's order for the batch) or B generators (per-sample), as ``sample``.
    """
    B = len(labels)
    _, kept = scale_masks(keep, var.cfg.patch_nums, B)
    codes = KeepImageCodes(kept, image_tokens, vae.quantize.embedding.weight)
    out: SampleOutput = sample(var, vae, labels, B, sc, rng, autocast_dtype, hook=hook, steps=Steps(codes=codes))
    effective = effective_tokens(out.tokens, image_tokens, kept, sc.more_smooth)
    return EditOutput(sampled=out.tokens, effective=effective, kept=kept, f_hat=out.f_hat, labels=out.labels)


def pixel_mask(keep: torch.Tensor, size: int) -> torch.Tensor:
    """A keep mask (n, n) or (B, n, n) on the last grid -> the same mask on (size, size) pixels (each token a block)."""
    n = keep.shape[-1]
    if size % n:
        raise ValueError(f"image side {size} is not a multiple of the token grid {n}")
    return keep.repeat_interleave(size // n, dim=-2).repeat_interleave(size // n, dim=-1)


def blank_generated(images: torch.Tensor, keep: torch.Tensor, value: float = 0.0) -> torch.Tensor:
    """Images (B, 3, H, W) in [-1, 1] with every pixel of a generated token (keep == 0) set to ``value``
    (0 = mid-grey), so an encoding of the result carries nothing of what is regenerated."""
    kept = pixel_mask(keep, images.shape[-1]).to(device=images.device, dtype=torch.bool)
    if kept.ndim == 2:
        kept = kept.expand(images.shape[0], *kept.shape)
    return torch.where(kept.unsqueeze(1), images, torch.full_like(images, value))
