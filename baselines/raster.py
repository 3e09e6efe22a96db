"""Raster twins of VAR: next-token transformers with VAR's width, depth and vocabulary, for the speed study.

A twin of ``var_dD`` has width 64*D, D layers and D heads (head_dim 64) like VAR-dD, VAR's 4096-entry codebook and
1000 classes, and runs on a 16x16 (256 px) or 32x32 (512 px) token grid.  Blocks are LlamaGen's (``GPT``): the dense
work per token is the same 24*w^2 FLOPs as VAR's block (SwiGLU at ~8/3 w = GELU MLP at 4 w), without AdaLN.
No weights exist for these models anywhere: they are random-init (seeded recipe) and every output says so.
Pixels come from a random-init VQ decoder with VAR's VAE widths (base 160, 32-d codes), only to keep the
Generator protocol; the images are noise.
"""

from __future__ import annotations

from dataclasses import dataclass

from varbench.baselines.llamagen import GPTConfig
from varbench.baselines.vq16 import VQConfig

TWIN_DEPTHS = (16, 20, 24, 30)
TWIN_GRIDS = {256: 16, 512: 32}
VAR_VOCAB = 4096


@dataclass(frozen=True)
class RasterConfig:
    width: int
    depth: int
    heads: int
    grid: int  # token-grid side; image side = 16 * grid
    vocab_size: int = VAR_VOCAB
    num_classes: int = 1000

    @classmethod
    def twin(cls, depth: int, grid: int) -> RasterConfig:
        """The raster twin of ``var_d{depth}``: width 64*depth, ``depth`` heads."""
        return cls(width=64 * depth, depth=depth, heads=depth, grid=grid)

    def gpt_config(self) -> GPTConfig:
        return GPTConfig(dim=self.width, n_layer=self.depth, n_head=self.heads, vocab_size=self.vocab_size,
                         num_classes=self.num_classes, grid=self.grid)

    @property
    def num_params(self) -> int:
        return self.gpt_config().num_params


def twin_tokenizer_config(vocab_size: int = VAR_VOCAB, ch: int = 160) -> VQConfig:
    """VQ decoder shape used to turn twin tokens into (meaningless) pixels: VAR's VAE widths, 32-d codes."""
    return VQConfig(codebook_size=vocab_size, embed_dim=32, z_channels=32, ch=ch, codebook_used_len=0)
