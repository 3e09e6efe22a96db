"""The model zoo: every entry in one dict, from the name a user types (``var_d30``) to its ``GeneratorSpec``.

Per-model defaults live here and nowhere else: the FID-protocol sampling settings of each model (VAR README:
cfg 1.5 on VAR's ramp, top-k 900, top-p 0.96; LlamaGen GETTING_STARTED: constant cfg per size, no top-k/top-p),
the weight files, and the seeds of the random-init test entries.  Sources: ``shared/facts/var.md``,
``shared/facts/baselines.md`` sections 1-2.  Published numbers are read from ``varbench.results.published``.
"""

from __future__ import annotations

from varbench.baselines.llamagen import GPTConfig, gpt_config
from varbench.baselines.raster import TWIN_DEPTHS, TWIN_GRIDS, RasterConfig, twin_tokenizer_config
from varbench.baselines.sample import RasterSampling
from varbench.baselines.vq16 import VQConfig
from varbench.errors import VarbenchError, unknown_name
from varbench.generators import noise, raster, var
from varbench.generators.spec import GeneratorSpec, WeightFile
from varbench.models.sample import VarSampling
from varbench.models.var import SCHEDULES, VARConfig
from varbench.models.vqvae import VQVAEConfig

HUB_VAR = "FoundationVision/var"
HUB_LLAMAGEN = "FoundationVision/LlamaGen"
VAE_FILE = WeightFile("vae", HUB_VAR, "vae_ch160v4096z32.pth")
VQ16_FILE = WeightFile("vq", HUB_LLAMAGEN, "vq_ds16_c2i.pt")
# VAR README FID protocol: cfg 1.5 (linear ramp: weight 1 -> 2.5 over the scales), top-k 900, top-p 0.96, no smoothing
VAR_FID_SAMPLING = VarSampling(cfg=1.5, top_k=900, top_p=0.96, more_smooth=False)
# LlamaGen sample_c2i_ddp.py's own defaults, for custom checkpoints: constant cfg 1.5, no top-k / top-p
LLAMAGEN_SAMPLER_DEFAULTS = RasterSampling(cfg=1.5)
# Raster twins decode as LlamaGen's FID sampler does: constant cfg (1.5, VAR's value), no top-k / top-p
TWIN_SAMPLING = RasterSampling(cfg=1.5)
NEURIPS = "VAR NeurIPS 2024 (arXiv v2+)"
_REPLACED = ("re-released with attention L2-norm after the first release (VAR#38); its NeurIPS ablation row "
             "'+Attn. Norm.' is Table 1's number")

ZOO: dict[str, GeneratorSpec] = {}


def register(spec: GeneratorSpec) -> GeneratorSpec:
    if spec.name in ZOO:
        raise ValueError(f"zoo entry {spec.name!r} registered twice")
    ZOO[spec.name] = spec
    return spec


def get(name: str) -> GeneratorSpec:
    if name not in ZOO:
        raise unknown_name("model", name, ZOO, "see `varbench models`")
    return ZOO[name]


def names() -> list[str]:
    return list(ZOO)


def custom_var(patch_nums: tuple[int, ...]) -> GeneratorSpec:
    """A VAR built from the user's --var-ckpt/--vae-ckpt files: architecture read from them, FID sampling defaults."""
    if not patch_nums or any(p < 1 for p in patch_nums) or list(patch_nums) != sorted(set(patch_nums)):
        raise VarbenchError(f"--patch-nums must be increasing positive integers, got {list(patch_nums)}")
    return GeneratorSpec(name="custom_var", family="var", build=var.build_var, resolution=16 * patch_nums[-1],
                         tokenizer=VQVAEConfig(patch_nums=tuple(patch_nums)), sampling=VAR_FID_SAMPLING,
                         source="--var-ckpt/--vae-ckpt")


def custom_llamagen(image_size: int) -> GeneratorSpec:
    """A LlamaGen GPT + VQ-16 from the user's --gpt-ckpt/--vq-ckpt files, generating at ``image_size``."""
    if image_size < 16 or image_size % 16:
        raise VarbenchError(f"--image-size must be a positive multiple of 16, got {image_size}")
    return GeneratorSpec(name="custom_llamagen", family="llamagen", build=raster.build_llamagen,
                         resolution=image_size, sampling=LLAMAGEN_SAMPLER_DEFAULTS, source="--gpt-ckpt/--vq-ckpt")


def _var(name: str, depth: int, patch_nums, shared_aln: bool, *, vae_ch: int = 160, seeds=None, paper_version=None,
         notes: str = "") -> None:
    files = () if seeds else (WeightFile("var", HUB_VAR, f"{name}.pth"), VAE_FILE)
    register(GeneratorSpec(
        name=name, family="var", build=var.build_var, resolution=16 * patch_nums[-1],
        config=VARConfig(depth=depth, patch_nums=tuple(patch_nums), shared_aln=shared_aln),
        tokenizer=VQVAEConfig(patch_nums=tuple(patch_nums), ch=vae_ch), sampling=VAR_FID_SAMPLING, weights=files,
        random_seeds=seeds, paper_version=paper_version, source="VAR README @78b9539 (model zoo, FID settings)",
        notes=notes,
    ))


_var("var_d16", 16, SCHEDULES[16], False, paper_version=NEURIPS, notes=_REPLACED)
_var("var_d20", 20, SCHEDULES[16], False)
_var("var_d24", 24, SCHEDULES[16], False)
_var("var_d30", 30, SCHEDULES[16], False, paper_version=NEURIPS, notes=_REPLACED)
_var("var_d36", 36, SCHEDULES[32], True, notes="one shared AdaLN ('VAR-d36-s'); 512 px")
# Tiny random-init variants: sample in seconds on CPU, no weights.  Flagged as random in every output.
_var("var_test", 1, (1, 2, 4), False, vae_ch=32, seeds=(1, 2),
     notes="depth 1, width 64, 64 px, random weights: pipeline tests only")
_var("var_test_512", 1, (1, 2, 4, 8), True, vae_ch=32, seeds=(1, 2),
     notes="shared-AdaLN layout, 128 px, random weights: pipeline tests only")

_LLAMAGEN_SOURCE = "LlamaGen README and GETTING_STARTED @ce98ec4 (checkpoints, cfg per size)"
for _name, _size, _image, _file, _cfg in (
    ("llamagen_b", "B", 256, "c2i_B_256.pt", 2.0),
    ("llamagen_l", "L", 256, "c2i_L_256.pt", 2.0),
    ("llamagen_xl", "XL", 384, "c2i_XL_384.pt", 1.75),
    ("llamagen_xxl", "XXL", 384, "c2i_XXL_384.pt", 1.75),
    ("llamagen_3b", "3B", 384, "c2i_3B_384.pt", 1.65),
):
    _resize = "; generated at 384 px (24x24 tokens) and bicubic-resized to 256 for evaluation" if _image != 256 else ""
    register(GeneratorSpec(
        name=_name, family="llamagen", build=raster.build_llamagen, resolution=256,
        config=gpt_config(_size, grid=_image // 16), tokenizer=VQConfig(), sampling=RasterSampling(cfg=_cfg),
        weights=(WeightFile("gpt", HUB_LLAMAGEN, _file), VQ16_FILE), paper_version="LlamaGen README @ce98ec4 (arXiv 2406.06525)",
        source=_LLAMAGEN_SOURCE, notes=f"LlamaGen GPT-{_size}{_resize}; its official sampler draws labels at random",
    ))
# Tiny random-init LlamaGen: the fixtures' models (recipe seeds 1 and 3), so its output is checkable offline.
register(GeneratorSpec(
    name="llamagen_test", family="llamagen", build=raster.build_llamagen, resolution=256,
    config=GPTConfig(dim=64, n_layer=2, n_head=4, grid=16), tokenizer=VQConfig(ch=32, z_channels=64),
    sampling=RasterSampling(cfg=2.0), random_seeds=(1, 3), source="shared/fixtures/llamagen (recipe weights)",
    notes="LlamaGen layout, width 64, depth 2, reduced VQ (base width 32), random weights: pipeline tests only",
))
# Raster twins of VAR: width 64*d, depth d, d heads, VAR's 4096 codes; 16x16 and 32x32 grids.  Random init only.
_TWIN_NOTE = "random weights only: no public weights exist for raster twins (speed study; images are noise)"
for _depth in TWIN_DEPTHS:
    for _res, _grid in TWIN_GRIDS.items():
        register(GeneratorSpec(
            name=f"raster_d{_depth}_{_res}", family="raster", build=raster.build_raster, resolution=_res,
            config=RasterConfig.twin(_depth, _grid).gpt_config(), tokenizer=twin_tokenizer_config(),
            sampling=TWIN_SAMPLING, random_seeds=(_depth, 1000 + _depth),
            notes=f"raster twin of var_d{_depth}; {_TWIN_NOTE}",
        ))
register(GeneratorSpec(
    name="raster_test", family="raster", build=raster.build_raster, resolution=64,
    config=RasterConfig(width=64, depth=2, heads=4, grid=4).gpt_config(), tokenizer=twin_tokenizer_config(ch=32),
    sampling=TWIN_SAMPLING, random_seeds=(0, 1),
    notes=f"tiny raster model (width 64, depth 2, 4x4 tokens); {_TWIN_NOTE}",
))
# Seeded uniform noise (no model): the cheapest Generator, for pipeline and metric tests.
register(GeneratorSpec(name="noise_test", family="noise", build=noise.build_noise, resolution=64,
                       notes="seeded uniform noise images, no model"))
