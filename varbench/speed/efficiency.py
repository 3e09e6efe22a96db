"""Efficiency: the FLOP/s a timed call achieved against the practical peak of a plain matmul measured in the same run.

"At the machine's limit" becomes a number: ``fraction = (flops / seconds) / peak``, where ``peak`` is the FLOP/s of
an n x n matmul in the dtype the call computed in, on the same device and threads (``timing.matmul_peak``), measured
in the same run so that machine load and clocks are shared.  The transformers' FLOPs come from the formulas of
``varbench.speed.flops`` (which the speed tests check against torch's counter); the VQ decoders' FLOPs are counted by
``torch.utils.flop_counter`` on the meta device, so counting costs no arithmetic and no memory.

torch is imported inside functions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

FP32_TARGET = 0.75  # exact (fp32) sampling should run at >= 75% of the same-run fp32 matmul peak (issue 16)


@dataclass(frozen=True)
class Efficiency:
    """The work of one call, its time and the same-run matmul peak of its dtype."""

    flops: float  # FLOPs of the call
    seconds: float  # its wall-clock time
    peak_flops_s: float | None  # FLOP/s of a plain matmul in the call's dtype (None: not measured)

    @property
    def achieved_flops_s(self) -> float | None:
        return self.flops / self.seconds if self.seconds > 0 else None

    @property
    def fraction(self) -> float | None:
        """achieved / peak (1.0 = as fast as a large plain matmul)."""
        achieved = self.achieved_flops_s
        return None if achieved is None or not self.peak_flops_s else achieved / self.peak_flops_s

    def as_dict(self) -> dict:
        return {"flops": self.flops, "seconds": self.seconds, "achieved_flops_s": self.achieved_flops_s,
                "peak_flops_s": self.peak_flops_s, "fraction": self.fraction}


def meta_flops(build: Callable[[], object], call: Callable[[object], object]) -> int:
    """FLOPs of ``call(module)`` for a module made by ``build()`` on the meta device (shapes only, nothing computed)."""
    import torch

    from varbench.speed.timing import FlopCounter

    with torch.device("meta"):
        module = build()
    counter = FlopCounter()
    with counter.region(), torch.inference_mode():
        call(module)
    return counter.total


def var_decode_flops(vae_cfg, batch: int) -> int:
    """FLOPs of VAR's VQ decode (``VQVAE.fhat_to_img``) of ``batch`` latents: convolutions and the attention matmuls
    (394 GFLOP per 256-px image for the released ch=160 tokenizer); linear in the batch, counted once per config."""
    return batch * _var_decode_flops_per_image(vae_cfg)


def vq16_decode_flops(vq_cfg, batch: int, grid: int) -> int:
    """FLOPs of the raster tokenizer's decode (``VQModel.decode_code``) of ``batch`` grids of grid x grid codes."""
    return batch * _vq16_decode_flops_per_image(vq_cfg, grid)


@functools.lru_cache(maxsize=None)
def _var_decode_flops_per_image(vae_cfg) -> int:
    import torch

    from varbench.models.vqvae import VQVAE

    side = vae_cfg.patch_nums[-1]
    return meta_flops(lambda: VQVAE(vae_cfg),
                      lambda m: m.fhat_to_img(torch.empty(1, vae_cfg.latent_dim, side, side, device="meta")))


@functools.lru_cache(maxsize=None)
def _vq16_decode_flops_per_image(vq_cfg, grid: int) -> int:
    import torch

    from varbench.baselines.vq16 import VQModel

    return meta_flops(lambda: VQModel(vq_cfg),
                      lambda m: m.decode_code(torch.zeros(1, grid * grid, dtype=torch.long, device="meta"), grid))


def peaks(device, dtypes, seconds: float = 0.5) -> dict[str, float]:
    """The same-run matmul peak of every dtype in ``dtypes`` (fp32 always included)."""
    from varbench.speed.timing import matmul_peak

    return {dt: matmul_peak(device, dt, seconds=seconds) for dt in dict.fromkeys(("fp32", *dtypes))}


def row_efficiency(flops: float | None, seconds: float | None, peak: float | None) -> dict:
    """``achieved_flops_s`` and ``efficiency`` (achieved / peak) of a measured row; None where a figure is missing."""
    if not flops or not seconds:
        return {"achieved_flops_s": None, "efficiency": None}
    e = Efficiency(flops, seconds, peak)
    return {"achieved_flops_s": e.achieved_flops_s, "efficiency": e.fraction}
