"""What a zoo entry is: a ``GeneratorSpec`` (architecture, tokenizer, FID sampling defaults, weight files) and the
``WeightFile``s it loads.  Data only; ``spec.build`` makes the ``Generator``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WeightFile:
    role: str  # "var", "vae", "gpt", "vq"
    repo: str  # Hugging Face hub repo id
    filename: str
    sha256: str | None = None  # None: not published upstream; the sha256 seen is recorded in every result

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo}/resolve/main/{self.filename}"


@dataclass(frozen=True)
class GeneratorSpec:
    name: str  # as users type it: var_d30, llamagen_l
    family: str  # "var" | "llamagen" | "raster" | "noise"
    build: Callable  # build(spec, weight_paths, *, device, dtype, sampling, **options) -> Generator
    resolution: int  # side of the images it delivers (LlamaGen 384-px models are resized to 256)
    config: Any = None  # transformer: VARConfig | GPTConfig; None: read from the checkpoint (custom files)
    tokenizer: Any = None  # VQVAEConfig | VQConfig
    sampling: Any = None  # the FID-protocol sampling settings: VarSampling | RasterSampling (None: no model)
    weights: tuple[WeightFile, ...] = ()
    random_seeds: tuple[int, int] | None = None  # (transformer, tokenizer) recipe seeds of random-init entries
    paper_version: str | None = None  # the paper version whose numbers the released weights match, where known
    source: str = ""  # where the entry's facts come from
    notes: str = ""

    @property
    def random_init(self) -> bool:
        """No released weights: the model is built from the seeded recipe (``varbench.recipe``)."""
        return self.random_seeds is not None

    @property
    def params(self) -> int | None:
        """Exact transformer parameters (tokenizer excluded); None for custom files and the noise generator."""
        return None if self.config is None else self.config.num_params

    @property
    def generated_resolution(self) -> int:
        if self.family == "var" and self.config is not None:
            return self.config.resolution
        if self.family in ("llamagen", "raster") and self.config is not None:
            return 16 * self.config.grid
        return self.resolution

    @property
    def steps(self) -> int | None:
        """Sequential decoding steps per image."""
        if self.config is None:
            return None
        return len(self.config.patch_nums) if self.family == "var" else self.config.num_tokens

    @property
    def tokens(self) -> int | None:
        return None if self.config is None else self.config.num_tokens
