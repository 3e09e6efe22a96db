"""Token-by-token (raster-scan) decoding for class-conditional GPTs: KV cache or full-prefix recompute.

Follows the semantics of LlamaGen's ``autoregressive/models/generate.py`` (``shared/facts/llamagen.md`` section 3):
- CFG at a constant scale: the batch is [cond ; null] (conditional half first), logits = uncond + s * (cond - uncond),
  applied only when s > 1; ``cfg_interval = k >= 0`` guides tokens 0 .. k+1 and uses the cond logits alone after that.
- One sampling step: logits / max(temperature, 1e-5) -> top-k (ties at the threshold kept) -> top-p (exclusive
  cumulative mass, the top token always kept) -> float32 softmax -> one multinomial draw (or argmax when greedy).
- RNG: ``rng=None`` draws from the global generator of the logits' device, a single ``torch.Generator`` is consumed
  exactly like the official code (one multinomial over (B, vocab) per token), and a sequence of generators gives
  every row its own stream (per-sample mode: a row never depends on the rest of the batch).

``use_kv_cache=False`` recomputes the whole prefix at every step (the "plain decoding" of the speed study); both
paths produce the same tokens.  Only the transformer runs here; pixels are the tokenizer's job.
``region`` (optional) wraps every transformer call, e.g. in a FLOP counter.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch

from varbench.baselines.llamagen import GPT

TOP_K_OFF = 0
TOP_P_OFF = 0.0


@dataclass(frozen=True)
class RasterSampling:
    """LlamaGen's sampling settings.  The defaults are all "off"; the FID protocol's values live in the zoo."""

    cfg: float = 1.0  # constant guidance scale; <= 1 runs no unconditional pass
    cfg_interval: float = -1  # k >= 0: guide tokens 0..k+1 only; -1: guide every token
    temperature: float = 1.0
    top_k: int = TOP_K_OFF  # 0 or >= vocabulary: off; ties at the threshold are kept
    top_p: float = TOP_P_OFF  # 0 or 1 (the official "off"): off
    greedy: bool = False  # argmax instead of sampling (the official sample_logits=False); uses no RNG

    guidance_rule = "constant"  # uncond + cfg (cond - uncond) at every guided token

    def last_step_weight(self, num_tokens: int = 256) -> float:
        """The weight on the conditional logits at the last of ``num_tokens`` tokens (1 = no guidance there)."""
        return self.cfg if guided(self, num_tokens - 1) else 1.0

    def as_dict(self) -> dict:
        return asdict(self)


def guided(sampling: RasterSampling, token_index: int) -> bool:
    """Whether token ``token_index`` is sampled from the CFG mixture."""
    if sampling.cfg <= 1.0:
        return False
    return not (sampling.cfg_interval > -1 and token_index - 1 > sampling.cfg_interval)


def cfg_mix(logits: torch.Tensor, batch: int, scale: float) -> torch.Tensor:
    """[cond ; uncond] logits (2B, V) -> uncond + scale * (cond - uncond) (B, V)."""
    cond, uncond = logits[:batch], logits[batch:]
    return uncond + (cond - uncond) * scale


def filtered_probs(logits: torch.Tensor, sampling: RasterSampling) -> torch.Tensor:
    """logits (B, V) -> the float32 sampling distribution after temperature, top-k and top-p."""
    logits = logits / max(sampling.temperature, 1e-5)
    if 0 < sampling.top_k < logits.shape[-1]:
        threshold = torch.topk(logits, sampling.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    if 0 < sampling.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        remove_sorted = cumulative > sampling.top_p
        remove_sorted[..., 1:] = remove_sorted[..., :-1].clone()  # exclusive: keep the token that crosses top_p
        remove_sorted[..., 0] = False
        remove = remove_sorted.scatter(-1, order, remove_sorted)
        logits = logits.masked_fill(remove, float("-inf"))
    return torch.softmax(logits, dim=-1, dtype=torch.float32)


def draw(probs: torch.Tensor, sampling: RasterSampling,
         rng: torch.Generator | Sequence[torch.Generator] | None) -> torch.Tensor:
    """One token per row (B,) from probs (B, V)."""
    if sampling.greedy:
        return probs.argmax(dim=-1)
    if rng is None or isinstance(rng, torch.Generator):
        return torch.multinomial(probs, 1, generator=rng)[:, 0]
    return torch.cat([torch.multinomial(probs[i : i + 1], 1, generator=g)[:, 0] for i, g in enumerate(rng)])


@torch.no_grad()
def raster_generate(
    model: GPT,
    labels: torch.Tensor,
    sampling: RasterSampling = RasterSampling(),
    *,
    use_kv_cache: bool = True,
    rng: torch.Generator | Sequence[torch.Generator] | None = None,
    num_tokens: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    region: Callable[[], contextlib.AbstractContextManager] | None = None,
) -> torch.Tensor:
    """Sample image tokens (B, num_tokens) int64 in raster order for class ``labels`` (B,) on the model's device.

    ``num_tokens`` defaults to the full grid (``model.config.num_tokens``); ``progress(done, total)`` is called after
    every token.  The model must be in eval mode (it is inference-only anyway).
    """
    B = labels.shape[0]
    total = num_tokens or model.config.num_tokens
    if isinstance(rng, Sequence) and len(rng) != B:
        raise ValueError(f"{len(rng)} generators for {B} rows")
    use_cfg = sampling.cfg > 1.0
    cond = torch.cat([labels, torch.full_like(labels, model.config.null_class)]) if use_cfg else labels
    out = torch.empty(B, total, dtype=torch.long, device=labels.device)
    cache = model.new_cache(cond.shape[0], 1 + total) if use_kv_cache else None
    region = region or contextlib.nullcontext
    for t in range(total):
        with region():
            if t == 0:
                logits = model.step(cache, labels=cond) if cache is not None else model(cond, last_only=True)
            elif cache is not None:
                prev = out[:, t - 1 : t]
                logits = model.step(cache, tokens=torch.cat([prev, prev]) if use_cfg else prev)
            else:
                prefix = torch.cat([out[:, :t], out[:, :t]]) if use_cfg else out[:, :t]
                logits = model(cond, prefix, last_only=True)
        if use_cfg:
            logits = cfg_mix(logits, B, sampling.cfg) if guided(sampling, t) else logits[:B]
        out[:, t] = draw(filtered_probs(logits, sampling), sampling, rng)
        if progress is not None:
            progress(t + 1, total)
    return out
