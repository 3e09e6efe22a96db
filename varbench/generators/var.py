"""VAR + its VQVAE behind the Generator protocol, and the builder that makes one from a zoo spec or custom files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from varbench.errors import VarbenchError
from varbench.generators.protocol import check_labels, to_uint8, torch_dtype


class VarGenerator:
    """VAR + VQVAE: per-sample mode (``generate``) and the official RNG order (``generate_official``)."""

    family = "var"

    def __init__(self, name, var, vae, sampling, *, device="cpu", dtype="fp32", random_weights=False,
                 checkpoints=None, paper_version=None):
        from varbench.generators.sampling import effective

        self.name = name
        self.var, self.vae = var, vae
        self.sampling = effective(sampling, var.cfg.vocab_size)
        self.device, self.dtype = str(device), dtype
        self.random_weights = random_weights
        self.checkpoints = {role: Path(p) for role, p in (checkpoints or {}).items()}
        self.paper_version = paper_version
        self.num_classes = var.cfg.num_classes
        self.num_steps = len(var.cfg.patch_nums)
        self.resolution = self.generated_resolution = var.cfg.resolution
        self.params = var.cfg.num_params
        self._sha: dict | None = None

    def _autocast(self):
        return None if self.dtype == "fp32" else torch_dtype(self.dtype)

    def sample_tokens(self, labels, rng, batch_size=None):
        """Run the next-scale loop only (no VAE decode): returns a ``SampleOutput``."""
        import torch

        from varbench.models.sample import sample

        if labels is not None and not isinstance(labels, int):
            labels = torch.as_tensor(list(labels), dtype=torch.long, device=self.device)
            batch_size = len(labels)
        return sample(self.var, self.vae, labels, batch_size, self.sampling, rng, self._autocast())

    def decode(self, f_hat) -> np.ndarray:
        """f_hat -> uint8 images; the fast modes (bf16/fp16) run the VQ decode under the same autocast as the
        transformer (GroupNorm and the final clamp stay float32, as autocast keeps them)."""
        import torch

        from varbench.models.sample import decode_images

        dtype = self._autocast()
        with torch.inference_mode(), torch.autocast(torch.device(self.device).type, dtype=dtype,
                                                    enabled=dtype is not None):
            return to_uint8(decode_images(self.vae, f_hat))

    def generate(self, labels: Sequence[int], seeds: Sequence[int]) -> np.ndarray:
        import torch

        if len(labels) != len(seeds):
            raise ValueError("labels and seeds differ in length")
        check_labels(labels, self.num_classes, allow_null=True)
        rngs = [torch.Generator(device=self.device).manual_seed(int(s)) for s in seeds]
        f_hat = self.sample_tokens(labels, rngs).f_hat
        # decode row by row so that a sample's pixels never depend on the batch it was drawn in
        return np.concatenate([self.decode(f_hat[b : b + 1]) for b in range(len(labels))])

    def generate_official(self, labels: Sequence[int] | None, seed: int, batch_size: int | None = None) -> np.ndarray:
        """``autoregressive_infer_cfg(B, label_B, g_seed=seed, ...)``: the model's generator re-seeded with ``seed``,
        consumed for the whole batch, the batch decoded at once."""
        import torch

        if labels is not None:
            check_labels(labels, self.num_classes, allow_null=True)
        g = torch.Generator(device=self.device).manual_seed(int(seed))
        return self.decode(self.sample_tokens(labels, g, batch_size).f_hat)

    def checkpoint_sha256(self) -> dict:
        if self._sha is None:
            from varbench.files import sha256_file

            self._sha = {role: sha256_file(p) for role, p in self.checkpoints.items()}
        return dict(self._sha)

    def describe(self) -> dict:
        import dataclasses

        c = self.var.cfg
        return {
            "family": "var", "name": self.name, "resolution": self.resolution, "depth": c.depth, "width": c.C,
            "num_heads": c.heads, "shared_aln": c.shared_aln, "patch_nums": list(c.patch_nums), "params": self.params,
            "vae_ch": self.vae.cfg.ch, "sampling": dataclasses.asdict(self.sampling), "device": self.device,
            "dtype": self.dtype, "random_weights": self.random_weights,
            "checkpoints": {role: str(p) for role, p in self.checkpoints.items()},
            "checkpoint_sha256": self.checkpoint_sha256(),
        }


def build_var(spec, weight_paths: dict, *, device: str = "cpu", dtype: str = "fp32", sampling=None,
              patch_nums=None, num_heads=None) -> VarGenerator:
    """A VarGenerator: recipe weights for random-init entries, else checkpoints resolved by ``weights``."""
    from varbench import checkpoint, dist, recipe
    from varbench.generators import weights
    from varbench.generators.spec import WeightFile
    from varbench.models import convert
    from varbench.models.var import VAR
    from varbench.models.vqvae import VQVAE

    torch_dtype(dtype)
    device = dist.check_device(device)
    sampling = spec.sampling if sampling is None else sampling
    if spec.random_init and not weight_paths:
        var, vae = VAR(spec.config), VQVAE(spec.tokenizer)
        recipe.fill_with_recipe(var, spec.random_seeds[0], device)
        recipe.fill_with_recipe(vae, spec.random_seeds[1], device)
        return VarGenerator(spec.name, var.eval().requires_grad_(False), vae.eval().requires_grad_(False), sampling,
                            device=device, dtype=dtype, random_weights=True)
    custom = spec.config is None
    pn = tuple(patch_nums or spec.tokenizer.patch_nums)
    if custom:
        missing = [role for role in ("var", "vae") if role not in weight_paths]
        if missing:
            raise VarbenchError(f"custom VAR models need both --var-ckpt and --vae-ckpt (missing --{missing[0]}-ckpt)")
        files = [WeightFile(role, "", Path(weight_paths[role]).name) for role in ("var", "vae")]
    else:
        files = list(spec.weights)
    paths = weights.resolve_all(files, weight_paths)
    what = f"VAR checkpoint {paths['var']}"
    var_sd = checkpoint.load_state_dict(paths["var"], "VAR checkpoint")
    var_cfg = convert.infer_var_config(var_sd, pn, what, num_heads=num_heads)
    if not custom and (var_cfg.depth, var_cfg.shared_aln) != (spec.config.depth, spec.config.shared_aln):
        raise VarbenchError(
            f"{what} is depth {var_cfg.depth} (shared AdaLN {var_cfg.shared_aln}) but {spec.name} is depth "
            f"{spec.config.depth} (shared AdaLN {spec.config.shared_aln}); pass the matching file or model"
        )
    var = convert.load_var(var_sd, var_cfg, device, what)
    del var_sd
    vae_what = f"VAE checkpoint {paths['vae']}"
    vae_sd = checkpoint.load_state_dict(paths["vae"], "VAE checkpoint")
    vae = convert.load_vae(vae_sd, convert.infer_vae_config(vae_sd, pn, vae_what), device, vae_what)
    return VarGenerator(spec.name, var, vae, sampling, device=device, dtype=dtype, random_weights=False,
                        checkpoints=paths, paper_version=spec.paper_version)
