"""The FD_DINOv2 feature of NVlabs/edm2 ``calculate_metrics.py`` (``DINOv2Detector``): the CLS token of DINOv2
ViT-L/14 after the final LayerNorm, (N, 1024) float32.

Protocol (edm2 @ 4bf8162, dinov2 @ b8931f7; facts in ``shared/fixtures/dinov2/README.md``):
- every image goes straight to 224 x 224 (no crop, no aspect ratio): resize mode ``"torch"`` (EDM2's default) is
  ``F.interpolate(float32, size=(224, 224), mode="bicubic", antialias=True)`` with no clamp or rounding; ``"pil"``
  resizes each image with ``PIL.Image.resize((224, 224), BICUBIC)`` to uint8 (dgm-eval's reference);
- then, in float32 and in this order, ``x / 255``, ``- mean``, ``/ std`` with the float32 ImageNet constants;
- the network (``varbench.features.vit``) is the ``dinov2_vitl14`` hub entry with its position embedding resampled
  once for 224 px the official run-time way (37 -> 16 bicubic by scale factor 16.1 / 37, antialias off).

The resize mode is part of the extractor id, and so is the weights' sha256 prefix: the official checkpoint's hash is
not published, so an id names exactly the file that made it.  Extraction runs with TF32 off
(``inception.precise_float32``); rows do not depend on the batch.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from varbench.errors import VarbenchError
from varbench.features.base import DINOV2, make_id
from varbench.features.inception import DTYPES, precise_float32
from varbench.features.weights import FeatureWeights, hub_path, resolve

OFFICIAL_FILENAME = "dinov2_vitl14_pretrain.pth"
OFFICIAL_URL = f"https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/{OFFICIAL_FILENAME}"
WEIGHTS = FeatureWeights("DINOv2 weights", OFFICIAL_FILENAME, OFFICIAL_URL, "--dinov2-weights")
INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_MODES = ("torch", "pil")  # EDM2's resize_mode values; "torch" is its default
FEATURE_VERSION = "1"  # bump when the features of the same weights change (preprocessing, layer choice)
# the released DINOv2 backbones this network runs (ViT-g/14 has a SwiGLU MLP and does not load): name -> (width,
# depth, heads); all have patch 14, MLP 4 x width and a 37 x 37 position grid
RELEASED = {"vits14": (384, 12, 6), "vitb14": (768, 12, 12), "vitl14": (1024, 24, 16)}


def edm2_cache_path() -> Path:
    """Where EDM2's run keeps the file: ``torch.hub.set_dir(dnnlib.make_cache_dir_path('torch_hub'))``."""
    base = os.environ.get("DNNLIB_CACHE_DIR") or str(Path.home() / ".cache" / "dnnlib")
    return Path(base) / "torch_hub" / "checkpoints" / OFFICIAL_FILENAME


def hub_weights_path() -> Path:
    return hub_path(WEIGHTS)


def resolve_weights(explicit: str | os.PathLike | None = None) -> Path:
    """``--dinov2-weights PATH`` > the torch hub cache > EDM2's hub cache > a download into the torch hub cache."""
    return resolve(WEIGHTS, explicit, also=(edm2_cache_path(),))


def check_resize(mode: str) -> str:
    if mode not in RESIZE_MODES:
        raise VarbenchError(f"unknown DINOv2 resize mode {mode!r}; use one of {', '.join(RESIZE_MODES)} "
                            "(--dinov2-resize; EDM2's default is torch)")
    return mode


def resize(images: np.ndarray, mode: str, device="cpu"):
    """uint8 (N, H, W, 3) -> (N, 3, 224, 224) as EDM2 hands it on: float32 (torch mode) or uint8 (pil mode).

    Memory layouts follow EDM2 too: contiguous NCHW into ``F.interpolate``; PIL's stacked HWC arrays viewed as NCHW.
    """
    import torch
    import torch.nn.functional as F

    if check_resize(mode) == "pil":
        from PIL import Image

        size = (INPUT_SIZE, INPUT_SIZE)
        out = np.stack([np.asarray(Image.fromarray(im, "RGB").resize(size, Image.Resampling.BICUBIC), np.uint8)
                        for im in images])
        return torch.from_numpy(out).permute(0, 3, 1, 2).to(device)
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).contiguous()
    return F.interpolate(x.to(torch.float32), size=(INPUT_SIZE, INPUT_SIZE), mode="bicubic", antialias=True)


def normalize(x):
    """``x / 255``, ``- mean``, ``/ std`` in float32, in EDM2's order (not the fused ``(x - 255 mean) / (255 std)``)."""
    import torch

    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=x.device).reshape(1, -1, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=x.device).reshape(1, -1, 1, 1)
    x = x.to(torch.float32) / 255
    x = x - mean
    return x / std


def preprocess(images: np.ndarray, mode: str = "torch", device="cpu"):
    """uint8 (N, H, W, 3) -> the float32 (N, 3, 224, 224) model input of EDM2's detector."""
    return normalize(resize(images, mode, device))


def arch_name(cfg) -> str:
    """``vitl14`` for a released shape, else ``vit<width>x<depth>h<heads>p<patch>g<grid>m<mlp>``."""
    for name, (width, depth, heads) in RELEASED.items():
        if (cfg.width, cfg.depth, cfg.heads, cfg.patch_size, cfg.mlp_hidden, cfg.pos_grid) == (
                width, depth, heads, 14, 4 * width, 37):
            return name
    return (f"vit{cfg.width}x{cfg.depth}h{cfg.heads}p{cfg.patch_size}g{cfg.pos_grid}m{cfg.mlp_hidden}")


class DINOv2Extractor:
    """FD_DINOv2 features (``base.DINOV2``, (N, width)) of uint8 images; rows do not depend on the batch."""

    version = FEATURE_VERSION

    def __init__(self, state_dict: dict, *, weights_sha256: str, weights_path: str | None = None,
                 device: str = "cpu", dtype: str = "fp32", heads: int | None = None, resize: str = "torch"):
        import torch

        from varbench import dist
        from varbench.errors import check_state_dict
        from varbench.features.vit import DinoViT, infer_config

        if dtype not in DTYPES:
            raise VarbenchError(f"unknown feature dtype {dtype!r}; use one of {', '.join(DTYPES)}")
        what = f"DINOv2 weights {weights_path or ''}".strip()
        self.resize = check_resize(resize)
        self.cfg = infer_config(state_dict, heads, what)
        self.device = torch.device(dist.resolve_device(device, dist.DistInfo.from_env()))
        self.dtype = dtype
        self.torch_dtype = torch.float64 if dtype == "fp64" else torch.float32
        self.weights_sha256 = weights_sha256
        self.weights_path = weights_path
        with torch.device("meta"):  # no initialisation work: every tensor comes from the state dict
            net = DinoViT(self.cfg)
        check_state_dict(net.state_dict(), state_dict, what)
        net.load_state_dict(state_dict, strict=True, assign=True)
        net = net.requires_grad_(False).eval().to(device=self.device, dtype=self.torch_dtype)
        net.set_input_size(INPUT_SIZE)  # on the device, in float32, as the official run-time resampling
        self.net = net
        self.dims = {DINOV2: self.cfg.width}

    @classmethod
    def from_file(cls, path: str | os.PathLike | None = None, *, device: str = "cpu", dtype: str = "fp32",
                  heads: int | None = None, resize: str = "torch") -> DINOv2Extractor:
        from varbench import checkpoint, files

        check_resize(resize)
        resolved = resolve_weights(path)
        sd = checkpoint.load_state_dict(resolved, "DINOv2 weights")
        return cls(sd, weights_sha256=files.sha256_file(resolved), weights_path=str(resolved), device=device,
                   dtype=dtype, heads=heads, resize=resize)

    @property
    def name(self) -> str:
        return f"dinov2-{arch_name(self.cfg)}-{self.resize}-{self.weights_sha256[:12]}"

    @property
    def official(self) -> bool | None:
        """False when the weights cannot be the released ViT-L/14 (another shape); None when they have its shape
        (the release publishes no sha256, so the file itself cannot be verified)."""
        return None if arch_name(self.cfg) == "vitl14" else False

    @property
    def id(self) -> str:
        return make_id(self.name, self.version)

    def describe(self) -> dict:
        cfg = self.cfg
        return {
            "id": self.id,
            "weights_path": self.weights_path,
            "weights_sha256": self.weights_sha256,
            "official_url": OFFICIAL_URL,
            "official_weights": self.official,
            "architecture": {"width": cfg.width, "depth": cfg.depth, "heads": cfg.heads, "patch_size": cfg.patch_size,
                             "mlp_hidden": cfg.mlp_hidden, "pos_grid": cfg.pos_grid},
            "dtype": self.dtype,
            "device": str(self.device),
            "resize": {"torch": "F.interpolate bicubic antialias=True to 224x224 in float32, no clamp",
                       "pil": "PIL.Image.resize((224, 224), BICUBIC) to uint8"}[self.resize],
            "resize_mode": self.resize,
            "normalize": f"x/255 - {list(IMAGENET_MEAN)}, / {list(IMAGENET_STD)} (float32)",
            "pos_embed": (f"{cfg.pos_grid}->{INPUT_SIZE // cfg.patch_size} bicubic, scale factor "
                          f"({INPUT_SIZE // cfg.patch_size}+0.1)/{cfg.pos_grid}, antialias off"),
            "layers": {DINOV2: f"CLS token after the final LayerNorm ({cfg.width})"},
            "protocol": "NVlabs/edm2 calculate_metrics.py DINOv2Detector (fd_dinov2)",
        }

    def extract(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """uint8 (N, H, W, 3), any H x W -> {dinov2: (N, width)} in the feature dtype."""
        import torch

        if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4
                and images.shape[-1] == 3):
            got = f"{getattr(images, 'dtype', type(images).__name__)} {getattr(images, 'shape', '')}"
            raise VarbenchError(f"the DINOv2 extractor takes uint8 (N, H, W, 3) images, got {got}")
        with precise_float32(), torch.inference_mode():
            x = preprocess(images, self.resize, self.device)
            return {DINOV2: self.net(x.to(self.torch_dtype)).cpu().numpy()}


def random_state_dict(seed: int, width: int = 64, depth: int = 2, heads: int = 2, *, patch_size: int = 14,
                      mlp_ratio: int = 4, pos_grid: int = 37) -> dict:
    """Seeded random weights in the official layout (the recipe of the DINOv2 fixtures), never for reported numbers.

    One CPU generator; keys in ``sorted()`` order, one draw each: LayerScale ``0.1 + 0.9 u`` (u uniform), CLS and
    mask tokens ``x``, the position embedding ``0.5 x`` (x normal), the rest as ``varbench.recipe`` with gain 1
    (matrices ``x / sqrt(fan_in)``, norm scales ``1 + 0.1 x``, biases ``0.1 x``).  Defaults: the tiny fixture model
    (seed 1); ``random_state_dict(1014, 1024, 24, 16)`` is the full-size ViT-L/14 of the fixtures (~1.2 GB).
    """
    import torch

    from varbench.features.vit import DinoViT, ViTConfig
    from varbench.recipe import recipe_tensor

    cfg = ViTConfig(width=width, depth=depth, heads=heads, patch_size=patch_size, mlp_hidden=mlp_ratio * width,
                    pos_grid=pos_grid)
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in DinoViT(cfg).state_dict().items()}
    g = torch.Generator().manual_seed(int(seed))
    values = {}
    for key in sorted(shapes):
        shape = shapes[key]
        if key.endswith(".gamma"):
            values[key] = 0.1 + 0.9 * torch.rand(shape, generator=g)
        elif key in ("cls_token", "mask_token", "pos_embed"):
            values[key] = torch.randn(shape, generator=g) * (0.5 if key == "pos_embed" else 1.0)
        else:
            values[key] = recipe_tensor(key, shape, g)
    return {k: values[k] for k in shapes}  # the official key order
