"""The model zoo: one dict from the name a user types (``var_d30``) to a ``GeneratorSpec``.

Specs are data only (no torch import); ``spec.builder`` names the function that builds a ``Generator`` from it.
VAR entries live here; raster/LlamaGen entries register themselves from ``baselines.zoo_entries``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from varbench import published
from varbench.errors import unknown_name

HUB_VAR = "FoundationVision/var"
PATCH_NUMS_256 = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)
PATCH_NUMS_512 = (1, 2, 3, 4, 6, 9, 13, 18, 24, 32)
PATCH_NUMS_1024 = (1, 2, 3, 4, 5, 7, 9, 12, 16, 21, 27, 36, 48, 64)  # defined upstream, no released model
# FID protocol of the VAR README: cfg 1.5 (linear ramp), top-k 900, top-p 0.96, 50 per class, PNG.
VAR_FID_SAMPLING = {"cfg": 1.5, "top_k": 900, "top_p": 0.96, "more_smooth": False}


@dataclass(frozen=True)
class WeightFile:
    role: str  # "var", "vae", "gpt", "vq"
    repo: str  # Hugging Face hub repo id
    filename: str
    sha256: str | None = None  # None: unknown upstream; the sha256 seen is recorded in results

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo}/resolve/main/{self.filename}"


@dataclass(frozen=True)
class GeneratorSpec:
    name: str
    family: str  # "var" | "llamagen" | "raster" | "noise"
    builder: str  # "module:function", called as fn(spec, weight_paths, device, dtype) -> Generator
    resolution: int  # pixels of the evaluated image
    params: int  # exact parameter count of the generator transformer (tokenizer excluded)
    arch: dict = field(default_factory=dict)  # family-specific architecture (depth, patch_nums, ...)
    weights: tuple[WeightFile, ...] = ()
    sampling: dict = field(default_factory=dict)  # default sampling settings
    reported: tuple[dict, ...] = ()  # published numbers: {"fid", "is", "source"} each
    random_init: bool = False  # True: no released weights; outputs are from random weights
    notes: str = ""

    @property
    def steps(self) -> int:
        """Sequential decoding steps per image."""
        if self.family == "var":
            return len(self.arch["patch_nums"])
        return self.arch.get("grid", 16) ** 2

    @property
    def tokens(self) -> int:
        if self.family == "var":
            return sum(p * p for p in self.arch["patch_nums"])
        return self.arch.get("grid", 16) ** 2


ZOO: dict[str, GeneratorSpec] = {}


def register(spec: GeneratorSpec) -> GeneratorSpec:
    if spec.name in ZOO:
        raise ValueError(f"zoo entry {spec.name!r} registered twice")
    ZOO[spec.name] = spec
    return spec


def _loaded() -> dict[str, GeneratorSpec]:
    import baselines.zoo_entries  # noqa: F401  (registers raster/LlamaGen entries on first import)

    return ZOO


def get(name: str) -> GeneratorSpec:
    zoo = _loaded()
    if name not in zoo:
        raise unknown_name("model", name, zoo, "see `varbench models`")
    return zoo[name]


def names() -> list[str]:
    return list(_loaded())


def var_params(depth: int, num_tokens: int, shared_aln: bool, num_scales: int = 10) -> int:
    """Exact VAR parameter count (closed form; VAE excluded, 4096 codes, 32-d latents, 1001 class rows)."""
    c, h = 64 * depth, depth
    if shared_aln:
        return depth * (12 * c * c + 14 * c + h) + 8 * c * c + c * (num_tokens + 5139 + num_scales) + 4096
    return depth * (18 * c * c + 14 * c + h) + 2 * c * c + c * (num_tokens + 5133 + num_scales) + 4096


def _var(name, depth, patch_nums, shared_aln, reported, *, vae_ch=160, weights=True, random_init=False, notes=""):
    files = (
        (WeightFile("var", HUB_VAR, f"{name}.pth"), WeightFile("vae", HUB_VAR, "vae_ch160v4096z32.pth"))
        if weights
        else ()
    )
    register(
        GeneratorSpec(
            name=name,
            family="var",
            builder="varbench.generator:build_var",
            resolution=16 * patch_nums[-1],
            params=var_params(depth, sum(p * p for p in patch_nums), shared_aln, len(patch_nums)),
            arch={"depth": depth, "patch_nums": tuple(patch_nums), "shared_aln": shared_aln, "vae_ch": vae_ch},
            weights=files,
            sampling=dict(VAR_FID_SAMPLING),
            reported=reported,
            random_init=random_init,
            notes=notes,
        )
    )


# Published numbers come from baselines/published/*.csv (varbench.published), the single source of truth.
_var("var_d16", 16, PATCH_NUMS_256, False, published.reported("var_d16"))
_var("var_d20", 20, PATCH_NUMS_256, False, published.reported("var_d20"))
_var("var_d24", 24, PATCH_NUMS_256, False, published.reported("var_d24"))
_var("var_d30", 30, PATCH_NUMS_256, False, published.reported("var_d30"))
_var("var_d36", 36, PATCH_NUMS_512, True, published.reported("var_d36"))
# Tiny random-init variants: sample in seconds on CPU, no weights.  Flagged as random in every output.
_var("var_test", 1, (1, 2, 4), False, (), vae_ch=32, weights=False, random_init=True,
     notes="depth 1, width 64, 64 px, random weights: pipeline tests only")
_var("var_test_512", 1, (1, 2, 4, 8), True, (), vae_ch=32, weights=False, random_init=True,
     notes="shared-AdaLN layout, 128 px, random weights: pipeline tests only")
# Seeded uniform noise (no model): the cheapest Generator, for pipeline and metric tests.
register(GeneratorSpec(name="noise_test", family="noise", builder="varbench.generator:build_noise", resolution=64,
                       params=0, arch={"grid": 0}, random_init=True, notes="seeded uniform noise images, no model"))
