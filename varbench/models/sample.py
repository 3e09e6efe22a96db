"""VAR's next-scale sampling loop (classifier-free guidance ramp, top-k/top-p, optional Gumbel smoothing).

Mirrors ``VAR.autoregressive_infer_cfg`` and ``sample_with_top_k_top_p_`` of FoundationVision/VAR.  Two RNG modes:

* ``official``: one ``torch.Generator`` for the batch, consumed exactly as upstream (optional label draw first, then
  per scale one multinomial over all B * pn^2 rows, then in ``more_smooth`` mode one exponential draw), so a CPU
  generator gives the official tokens.
* per-sample: a list of B generators; row b draws only from its own generator, so its tokens depend only on
  (its seed, its label), not on the batch size or the other rows.

The KV cache is created here and passed explicitly to the model.  ``Steps`` lets a caller (the speed study) swap the
transformer calls (compiled versions), wrap them (a FLOP counter) or skip the unconditional rows; the loop itself
exists once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from varbench.models.var import VAR
from varbench.models.vqvae import VQVAE

TOP_K_OFF = 0
TOP_P_OFF = 0.0


@dataclass(frozen=True)
class VarSampling:
    """VAR's sampling settings.  The defaults are all "off"; the FID protocol's values live in the zoo."""

    cfg: float = 0.0  # guidance at the last scale; ramps linearly from 0 at scale 0 (t = cfg * si / (S - 1))
    top_k: int = TOP_K_OFF  # 0 or >= vocabulary: off; ties at the k-th logit are kept
    top_p: float = TOP_P_OFF  # 0 or 1: off; applied after top-k
    more_smooth: bool = False  # Gumbel-softmax code mixture (visual quality, not the FID protocol)

    guidance_rule = "var_ramp"  # logits (1 + t) cond - t uncond, t = cfg * si / (S - 1): weight 1 + cfg at the end

    def last_step_weight(self, num_steps: int = 10) -> float:
        """The weight on the conditional logits at the last scale (1 = no guidance), whatever the step count."""
        return 1.0 + self.cfg


def top_k_top_p_filter_(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Mask logits (..., V) in place to -inf outside the top-k (ties kept) and then the top-p nucleus."""
    if 0 < top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1, largest=True, sorted=False).values.amin(dim=-1, keepdim=True)
        logits.masked_fill_(logits < kth, float("-inf"))
    if 0 < top_p < 1:
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


@dataclass(frozen=True)
class Steps:
    """How the loop runs the transformer (defaults: the model's own calls, both CFG halves, a KV cache)."""

    step: Callable | None = None  # replaces var.step(x, cond, cache)
    step_no_cache: Callable | None = None  # replaces var.step_no_cache(prefix, cond, num_new)
    region: Callable[[], contextlib.AbstractContextManager] | None = None  # wraps every transformer call
    uncond_rows: bool = True  # False: only the B conditional rows run (unguided logits; the speed study)
    kv_cache: bool = True  # False: recompute the whole prefix at every scale (same tokens up to float noise)
    codes: Callable | None = None  # codes(si, h) -> h: replace code vectors (B, l, Cvae) of scale si after they were
    #                                 sampled and before they enter f_hat (zero-shot editing keeps the image's)


def _draw(
    guided: torch.Tensor,
    rng: torch.Generator | Sequence[torch.Generator] | None,
    sc: VarSampling,
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


def _labels(var: VAR, labels, batch_size: int, rng) -> torch.Tensor:
    """(B,) conditional labels: given, one int for every row (negative = null class), or drawn from ``rng``."""
    cfg, device = var.cfg, var.class_emb.weight.device
    if labels is None:
        if isinstance(rng, (list, tuple)):
            raise ValueError("random labels need the official (single generator) RNG mode")
        uniform = torch.full((1, cfg.num_classes), 1.0 / cfg.num_classes, device=device)
        return torch.multinomial(uniform, num_samples=batch_size, replacement=True, generator=rng).view(batch_size)
    if isinstance(labels, int):
        return torch.full((batch_size,), cfg.num_classes if labels < 0 else labels, dtype=torch.long, device=device)
    return labels.to(device)


@torch.inference_mode()
def sample(
    var: VAR,
    vae: VQVAE,
    labels: torch.Tensor | int | None,
    batch_size: int,
    sc: VarSampling,
    rng: torch.Generator | Sequence[torch.Generator] | None,
    autocast_dtype: torch.dtype | None = None,
    hook=None,
    steps: Steps = Steps(),
) -> SampleOutput:
    """Next-scale sampling of ``batch_size`` images.

    labels: a (B,) tensor, an int (every row that class; negative = null class), or None (drawn uniformly from
    ``rng`` first, official mode only).  ``rng``: one generator (official order) or a list of B generators
    (per-sample).  ``hook(name, si, tensor)`` (optional) observes "raw_logits", "cfg_logits", "tokens".
    """
    cfg = var.cfg
    B, S = batch_size, len(cfg.patch_nums)
    device = var.class_emb.weight.device
    step = steps.step or var.step
    step_no_cache = steps.step_no_cache or var.step_no_cache
    region = steps.region or contextlib.nullcontext
    labels = _labels(var, labels, B, rng)
    rows = torch.cat((labels, torch.full_like(labels, var.null_class))) if steps.uncond_rows else labels
    cond = var.class_emb(rows)  # (R, C): start-token content and AdaLN condition; cond rows first
    level_pos = var.level_pos()
    x = cond.unsqueeze(1) + var.pos_start.expand(len(rows), 1, -1) + level_pos[:, :1]  # (R, 1, C)
    last = cfg.patch_nums[-1]
    f_hat = cond.new_zeros(B, cfg.latent_dim, last, last, dtype=torch.float32)
    codebook = vae.quantize.embedding.weight
    cache = var.new_cache() if steps.kv_cache else None
    prefix = None  # no-cache mode: every input so far, (R, T, C)
    tokens = []
    cur = 0
    autocast = torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None)
    for si, pn in enumerate(cfg.patch_nums):
        ratio = si / (S - 1) if S > 1 else 0.0
        cur += pn * pn
        with autocast, region():
            if cache is not None:
                logits = step(x, cond, cache)  # (R, pn*pn, V) float32
            else:
                prefix = x if prefix is None else torch.cat((prefix, x), dim=1)
                logits = step_no_cache(prefix, cond, pn * pn)
        if steps.uncond_rows:
            t = sc.cfg * ratio
            guided = (1 + t) * logits[:B] - t * logits[B:]
        else:
            guided = logits
        if hook is not None:
            hook("raw_logits", si, logits)
            hook("cfg_logits", si, guided.clone())
        idx, h = _draw(guided, rng, sc, ratio, codebook)
        if steps.codes is not None:
            h = steps.codes(si, h)
        tokens.append(idx)
        if hook is not None:
            hook("tokens", si, idx)
        nxt = _accumulate(vae, si, f_hat, h.float().transpose_(1, 2).reshape(B, cfg.latent_dim, pn, pn), rng)
        if si != S - 1:
            nxt = nxt.view(B, cfg.latent_dim, -1).transpose(1, 2)  # (B, pn'^2, Cvae), non-contiguous as upstream
            with autocast:
                x = var.word_embed(nxt) + level_pos[:, cur : cur + cfg.patch_nums[si + 1] ** 2]
            if steps.uncond_rows:
                x = x.repeat(2, 1, 1)  # cond and uncond halves get the same map
    return SampleOutput(tokens=tokens, f_hat=f_hat, labels=labels)


def _accumulate(vae: VQVAE, si: int, f_hat: torch.Tensor, h: torch.Tensor, rng) -> torch.Tensor:
    """Add scale ``si``'s code map h (B, Cvae, pn, pn) to f_hat in place; return the next scale's input map."""
    if isinstance(rng, (list, tuple)):  # row by row: conv/interpolate bits must not depend on the batch size
        return torch.cat([vae.quantize.next_scale_input(si, f_hat[b : b + 1], h[b : b + 1].contiguous())[1]
                          for b in range(len(h))])
    return vae.quantize.next_scale_input(si, f_hat, h)[1]


@torch.inference_mode()
def decode_images(vae: VQVAE, f_hat: torch.Tensor) -> torch.Tensor:
    """Accumulated latent -> images in [0, 1], (B, 3, H, W) float32."""
    return vae.fhat_to_img(f_hat.float()).add_(1).mul_(0.5)
