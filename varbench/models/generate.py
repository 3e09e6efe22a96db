"""VAR's next-scale sampling loop (classifier-free guidance ramp, top-k/top-p, optional Gumbel smoothing).

Mirrors ``VAR.autoregressive_infer_cfg`` and ``sample_with_top_k_top_p_`` of FoundationVision/VAR.  Two RNG modes:

* ``official``: one ``torch.Generator`` for the batch, consumed exactly as upstream (optional label draw first, then
  per scale one multinomial over all B * pn^2 rows, then in ``more_smooth`` mode one exponential draw), so a CPU
  generator gives the official tokens.
* per-sample: a list of B generators; row b draws only from its own generator, so its tokens depend only on
  (its seed, its label), not on the batch size or the other rows.

The KV cache is created here and passed explicitly to the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from varbench.models.var import VAR
from varbench.models.vqvae import VQVAE


@dataclass(frozen=True)
class SampleConfig:
    cfg: float = 1.5  # guidance at the last scale; ramps linearly from 0 at scale 0 (t = cfg * si / (S - 1))
    top_k: int = 900  # 0: off; ties at the k-th logit are kept
    top_p: float = 0.96  # 0: off; applied after top-k
    more_smooth: bool = False  # Gumbel-softmax code mixture (visual quality, not the FID protocol)


def top_k_top_p_filter_(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Mask logits (..., V) in place to -inf outside the top-k (ties kept) and then the top-p nucleus."""
    if top_k > 0:
        kth = logits.topk(top_k, dim=-1, largest=True, sorted=False).values.amin(dim=-1, keepdim=True)
        logits.masked_fill_(logits < kth, float("-inf"))
    if top_p > 0:
        sorted_logits, order = logits.sort(dim=-1, descending=False)
        drop_sorted = sorted_logits.softmax(dim=-1).cumsum_(dim=-1) <= (1 - top_p)
        drop_sorted[..., -1:] = False  # never drop the most likely token
        logits.masked_fill_(drop_sorted.scatter(order.ndim - 1, order, drop_sorted), float("-inf"))
    return logits


def sample_top_k_top_p_(
    logits: torch.Tensor, top_k: int, top_p: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Filter (B, l, V) logits in place, then draw one token per row with a single multinomial call -> (B, l)."""
    B, l, V = logits.shape
    top_k_top_p_filter_(logits, top_k, top_p)
    probs = logits.softmax(dim=-1).view(-1, V)
    return torch.multinomial(probs, num_samples=1, replacement=True, generator=generator).view(B, l)


def gumbel_soft(logits: torch.Tensor, tau: float, generator: torch.Generator | None) -> torch.Tensor:
    """Soft Gumbel-softmax weights over the last axis with noise drawn from ``generator``."""
    gumbels = -torch.empty_like(logits).exponential_(generator=generator).log()
    return ((logits + gumbels) / tau).softmax(dim=-1)


@dataclass
class SampleOutput:
    tokens: list[torch.Tensor]  # per scale (B, pn*pn) int64
    f_hat: torch.Tensor  # (B, Cvae, H, W) accumulated latent
    labels: torch.Tensor  # (B,) conditional labels used


def _draw(
    guided: torch.Tensor,
    rng: torch.Generator | Sequence[torch.Generator] | None,
    sc: SampleConfig,
    ratio: float,
    codebook: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample the tokens of one scale from guided logits (B, l, V); returns (idx (B, l), code vectors (B, l, Cvae))."""
    per_sample = isinstance(rng, (list, tuple))
    if per_sample:
        idx = torch.cat([sample_top_k_top_p_(guided[b : b + 1], sc.top_k, sc.top_p, g) for b, g in enumerate(rng)])
    else:
        idx = sample_top_k_top_p_(guided, sc.top_k, sc.top_p, rng)
    if not sc.more_smooth:
        return idx, codebook[idx]
    tau = max(0.27 * (1 - ratio * 0.95), 0.005)
    scaled = guided.mul(1 + ratio)  # guided was filtered in place: masked entries stay -inf
    if per_sample:
        weights = torch.cat([gumbel_soft(scaled[b : b + 1], tau, g) for b, g in enumerate(rng)])
    else:
        weights = gumbel_soft(scaled, tau, rng)
    return idx, weights @ codebook.unsqueeze(0)


@torch.inference_mode()
def sample(
    var: VAR,
    vae: VQVAE,
    labels: torch.Tensor | int | None,
    batch_size: int,
    sc: SampleConfig,
    rng: torch.Generator | Sequence[torch.Generator] | None,
    autocast_dtype: torch.dtype | None = None,
    hook=None,
    use_kv_cache: bool = True,
) -> SampleOutput:
    """Next-scale sampling of ``batch_size`` images.

    labels: a (B,) tensor, an int (every row that class; negative = null class), or None (drawn uniformly from
    ``rng`` first, official mode only).  ``rng``: one generator (official order) or a list of B generators
    (per-sample).  ``hook(name, si, tensor)`` (optional) observes "raw_logits", "cfg_logits", "tokens".
    ``use_kv_cache=False`` recomputes the whole prefix at every scale (the speed study's no-cache baseline; same
    tokens up to float noise).
    """
    cfg = var.cfg
    B, S = batch_size, len(cfg.patch_nums)
    device = var.class_emb.weight.device
    if labels is None:
        if isinstance(rng, (list, tuple)):
            raise ValueError("random labels need the official (single generator) RNG mode")
        uniform = torch.full((1, cfg.num_classes), 1.0 / cfg.num_classes, device=device)
        labels = torch.multinomial(uniform, num_samples=B, replacement=True, generator=rng).view(B)
    elif isinstance(labels, int):
        labels = torch.full((B,), cfg.num_classes if labels < 0 else labels, dtype=torch.long, device=device)
    labels = labels.to(device)
    cond = var.class_emb(torch.cat((labels, torch.full_like(labels, var.null_class))))  # (2B, C): cond rows first
    level_pos = var.level_pos()
    x = cond.unsqueeze(1) + var.pos_start.expand(2 * B, 1, -1) + level_pos[:, :1]  # (2B, 1, C)
    last = cfg.patch_nums[-1]
    f_hat = cond.new_zeros(B, cfg.latent_dim, last, last, dtype=torch.float32)
    codebook = vae.quantize.embedding.weight
    cache = var.new_cache()
    prefix = None  # no-cache mode: every input so far, (2B, T, C)
    tokens = []
    cur = 0
    for si, pn in enumerate(cfg.patch_nums):
        ratio = si / (S - 1)
        cur += pn * pn
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            if use_kv_cache:
                logits = var.step(x, cond, cache)  # (2B, pn*pn, V) float32
            else:
                prefix = x if prefix is None else torch.cat((prefix, x), dim=1)
                logits = var.step_no_cache(prefix, cond, pn * pn)
        t = sc.cfg * ratio
        guided = (1 + t) * logits[:B] - t * logits[B:]
        if hook is not None:
            hook("raw_logits", si, logits)
            hook("cfg_logits", si, guided.clone())
        idx, h = _draw(guided, rng, sc, ratio, codebook)
        tokens.append(idx)
        if hook is not None:
            hook("tokens", si, idx)
        h = h.float().transpose_(1, 2).reshape(B, cfg.latent_dim, pn, pn)
        if isinstance(rng, (list, tuple)):  # row by row: conv/interpolate bits must not depend on the batch size
            nxt = torch.cat(
                [vae.quantize.next_scale_input(si, f_hat[b : b + 1], h[b : b + 1].contiguous())[1] for b in range(B)]
            )
        else:
            f_hat, nxt = vae.quantize.next_scale_input(si, f_hat, h)
        if si != S - 1:
            nxt = nxt.view(B, cfg.latent_dim, -1).transpose(1, 2)  # (B, pn'^2, Cvae), non-contiguous as upstream
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
                x = var.word_embed(nxt) + level_pos[:, cur : cur + cfg.patch_nums[si + 1] ** 2]
            x = x.repeat(2, 1, 1)  # cond and uncond halves get the same map
    return SampleOutput(tokens=tokens, f_hat=f_hat, labels=labels)


@torch.inference_mode()
def decode_images(vae: VQVAE, f_hat: torch.Tensor) -> torch.Tensor:
    """Accumulated latent -> images in [0, 1], (B, 3, H, W) float32."""
    return vae.fhat_to_img(f_hat.float()).add_(1).mul_(0.5)
