"""The Generator protocol every model is seen through, plus the noise generator and the builders.

``generate(labels, seeds)`` returns uint8 images (N, H, W, 3).  ``seeds[i]`` is the per-sample seed of row i (see
``sample_seed``): in per-sample mode a row's randomness depends only on its own seed, never on the batch.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from varbench.errors import VarbenchError
from varbench.zoo import GeneratorSpec

DTYPES = ("fp32", "bf16", "fp16")


@runtime_checkable
class Generator(Protocol):
    name: str
    resolution: int
    num_classes: int
    random_weights: bool  # True when no released weights were loaded

    def generate(self, labels: Sequence[int], seeds: Sequence[int]) -> np.ndarray:
        """uint8 (N, H, W, 3) images, row i from (labels[i], seeds[i]) alone."""
        ...

    def describe(self) -> dict:
        """Architecture, checkpoint sha256s and settings, for manifests and results."""
        ...


def sample_seed(seed: int, index: int) -> int:
    """The per-sample seed of global sample ``index`` under run seed ``seed`` (63-bit, stable across platforms)."""
    digest = hashlib.sha256(f"varbench/sample/{int(seed)}/{int(index)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def to_uint8(images01) -> np.ndarray:
    """(N, 3, H, W) float in [0, 1] -> uint8 (N, H, W, 3) with the rule round(255 * x) (ties to even)."""
    import torch

    x = images01.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def torch_dtype(name: str):
    import torch

    table = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if name not in table:
        raise VarbenchError(f"unknown dtype {name!r}; use one of {', '.join(DTYPES)}")
    return table[name]


def build(spec: GeneratorSpec, weight_paths: dict | None = None, device: str = "cpu", dtype: str = "fp32", **options):
    """Build the Generator for ``spec``.  ``weight_paths`` maps a role ("var", "vae", ...) to an explicit file."""
    module_name, fn_name = spec.builder.split(":")
    fn = getattr(importlib.import_module(module_name), fn_name)
    return fn(spec, weight_paths or {}, device=device, dtype=dtype, **options)


class NoiseGenerator:
    """Seeded uniform-noise images: the cheapest Generator (pipeline and metric tests)."""

    num_classes = 1000
    random_weights = True

    def __init__(self, name: str = "noise_test", resolution: int = 64):
        self.name, self.resolution = name, resolution

    def generate(self, labels: Sequence[int], seeds: Sequence[int]) -> np.ndarray:
        out = np.empty((len(labels), self.resolution, self.resolution, 3), np.uint8)
        for i, (label, seed) in enumerate(zip(labels, seeds)):
            rng = np.random.default_rng([int(seed), int(label)])
            out[i] = rng.integers(0, 256, size=out.shape[1:], dtype=np.uint8)
        return out

    def describe(self) -> dict:
        return {"family": "noise", "name": self.name, "resolution": self.resolution, "random_weights": True}


def build_noise(spec: GeneratorSpec, weight_paths: dict, device: str = "cpu", dtype: str = "fp32", **options):
    return NoiseGenerator(spec.name, spec.resolution)


def random_init_(module, seed: int) -> None:
    """Deterministic, non-degenerate random weights for the ``*_test`` zoo entries (no released weights).

    Linear/conv weights ~ N(0, 1/fan_in), biases ~ 0.1 N(0, 1), norm scales 1 + 0.1 N(0, 1), embeddings ~ N(0, 1)
    (VAR's official init would make AdaLN gammas ~1e-5 and logits nearly uniform, which tests little).  Attention
    temperatures start at ln 4.
    """
    import math

    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            r = torch.randn(p.shape, generator=g)
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "scale_mul_1H11":
                p.copy_(math.log(4) + 0.5 * r)
            elif "embedding" in name or leaf in ("pos_start", "pos_1LC") or "class_emb" in name or "lvl_embed" in name:
                p.copy_(r * (0.1 if "quantize.embedding" in name else 0.5))
            elif leaf == "ada_gss" or (leaf == "weight" and p.ndim >= 2):
                fan_in = p[0].numel() if p.ndim >= 2 else p.shape[-1]
                p.copy_(r / math.sqrt(fan_in))
            elif leaf == "weight":  # norm scales
                p.copy_(1 + 0.1 * r)
            else:
                p.copy_(0.1 * r)


class VarGenerator:
    """VAR + VQVAE behind the Generator protocol."""

    def __init__(self, name, var, vae, sampling, device="cpu", dtype="fp32", random_weights=False, checkpoints=None):
        from varbench.models.generate import SampleConfig

        self.name = name
        self.var, self.vae = var, vae
        self.sampling = SampleConfig(**sampling)
        self.device, self.dtype = str(device), dtype
        self.random_weights = random_weights
        self.checkpoints = checkpoints or {}  # role -> path
        self.num_classes = var.cfg.num_classes
        self.resolution = 16 * var.cfg.patch_nums[-1]
        self._sha: dict | None = None

    def _autocast(self):
        return None if self.dtype == "fp32" else torch_dtype(self.dtype)

    def _generators(self, seeds):
        import torch

        return [torch.Generator(device=self.device).manual_seed(int(s)) for s in seeds]

    def sample_tokens(self, labels, rng, batch_size=None):
        """Run the next-scale loop only (no VAE decode): returns a ``SampleOutput``."""
        import torch

        from varbench.models.generate import sample

        if labels is not None and not isinstance(labels, int):
            labels = torch.as_tensor(list(labels), dtype=torch.long, device=self.device)
            batch_size = len(labels)
        return sample(self.var, self.vae, labels, batch_size, self.sampling, rng, self._autocast())

    def decode(self, f_hat) -> np.ndarray:
        from varbench.models.generate import decode_images

        return to_uint8(decode_images(self.vae, f_hat))

    def generate(self, labels: Sequence[int], seeds: Sequence[int]) -> np.ndarray:
        if len(labels) != len(seeds):
            raise ValueError("labels and seeds differ in length")
        self._check_labels(labels)
        f_hat = self.sample_tokens(labels, self._generators(seeds)).f_hat
        # decode row by row so that a sample's pixels never depend on the batch it was drawn in
        return np.concatenate([self.decode(f_hat[b : b + 1]) for b in range(len(labels))])

    def generate_official(self, labels: Sequence[int] | None, seed: int, batch_size: int | None = None) -> np.ndarray:
        """The official RNG order: one generator (on the model's device) seeded with ``seed`` for the batch."""
        import torch

        if labels is not None:
            self._check_labels(labels)
        g = torch.Generator(device=self.device).manual_seed(int(seed))
        return self.decode(self.sample_tokens(labels, g, batch_size).f_hat)

    def _check_labels(self, labels) -> None:
        bad = [int(x) for x in labels if not 0 <= int(x) <= self.num_classes]
        if bad:
            raise VarbenchError(f"class labels must be in 0..{self.num_classes - 1} ({self.num_classes} = unconditional), got {bad[:5]}")

    def checkpoint_sha256(self) -> dict:
        if self._sha is None:
            from varbench.weights import sha256_file

            self._sha = {role: sha256_file(p) for role, p in self.checkpoints.items()}
        return self._sha

    def describe(self) -> dict:
        c = self.var.cfg
        return {
            "family": "var",
            "name": self.name,
            "resolution": self.resolution,
            "depth": c.depth,
            "width": c.C,
            "num_heads": c.heads,
            "shared_aln": c.shared_aln,
            "patch_nums": list(c.patch_nums),
            "params": sum(p.numel() for p in self.var.parameters()),
            "vae_ch": self.vae.cfg.ch,
            "sampling": dict(self.sampling.__dict__),
            "device": self.device,
            "dtype": self.dtype,
            "random_weights": self.random_weights,
            "checkpoints": {role: str(p) for role, p in self.checkpoints.items()},
            "checkpoint_sha256": self.checkpoint_sha256(),
        }


def build_var(spec: GeneratorSpec, weight_paths: dict, device: str = "cpu", dtype: str = "fp32", patch_nums=None,
              **sampling):
    """Build a VarGenerator: random init for ``*_test`` entries, else checkpoints resolved by ``varbench.weights``."""
    from varbench import dist, weights
    from varbench.models import convert
    from varbench.models.var import VAR, VARConfig
    from varbench.models.vqvae import VQVAE, VQVAEConfig
    from varbench.zoo import WeightFile, HUB_VAR

    torch_dtype(dtype)  # validate early
    device = dist.check_device(device)
    settings = {**spec.sampling, **{k: v for k, v in sampling.items() if v is not None}}
    unknown = set(settings) - {"cfg", "top_k", "top_p", "more_smooth"}
    if unknown:
        raise VarbenchError(f"unknown VAR sampling option(s): {', '.join(sorted(unknown))}")
    settings = {"cfg": 1.5, "top_k": 900, "top_p": 0.96, "more_smooth": False, **settings}
    pn = tuple(patch_nums or spec.arch.get("patch_nums") or ())
    if not pn:
        raise VarbenchError("custom VAR checkpoints need the patch schedule: pass --patch-nums 1,2,3,4,5,6,8,10,13,16")
    if spec.random_init and not weight_paths:
        var_cfg = VARConfig(depth=spec.arch["depth"], patch_nums=pn, shared_aln=spec.arch["shared_aln"])
        var, vae = VAR(var_cfg), VQVAE(VQVAEConfig(patch_nums=pn, ch=spec.arch["vae_ch"]))
        random_init_(var, seed=1), random_init_(vae, seed=2)
        return VarGenerator(spec.name, var.to(device).eval().requires_grad_(False),
                            vae.to(device).eval().requires_grad_(False), settings, device, dtype, random_weights=True)
    files = {w.role: w for w in spec.weights}
    files.setdefault("var", WeightFile("var", HUB_VAR, f"{spec.name}.pth"))
    files.setdefault("vae", WeightFile("vae", HUB_VAR, "vae_ch160v4096z32.pth"))
    paths = {}
    for role in ("var", "vae"):
        if spec.arch.get("infer") and role not in weight_paths:
            raise VarbenchError(f"custom VAR models need both --var-ckpt and --vae-ckpt (missing --{role}-ckpt)")
        paths[role] = weights.resolve(files[role], weight_paths.get(role))
    var_sd = weights.load_state_dict(paths["var"], "VAR checkpoint")
    var_cfg = convert.infer_var_config(var_sd, pn, f"VAR checkpoint {paths['var']}")
    if not spec.arch.get("infer"):
        want = (spec.arch["depth"], spec.arch["shared_aln"])
        if (var_cfg.depth, var_cfg.shared_aln) != want:
            raise VarbenchError(
                f"VAR checkpoint {paths['var']} is depth {var_cfg.depth} (shared AdaLN {var_cfg.shared_aln}) but "
                f"{spec.name} is depth {want[0]} (shared AdaLN {want[1]}); pass the matching file or model"
            )
    var = convert.load_var(var_sd, var_cfg, device, f"VAR checkpoint {paths['var']}")
    del var_sd
    vae_sd = weights.load_state_dict(paths["vae"], "VAE checkpoint")
    vae = convert.load_vae(vae_sd, convert.infer_vae_config(vae_sd, pn, f"VAE checkpoint {paths['vae']}"), device,
                           f"VAE checkpoint {paths['vae']}")
    return VarGenerator(spec.name, var, vae, settings, device, dtype, random_weights=False, checkpoints=paths)
