"""The 2015 TF Inception of the ADM evaluator: pool3 (2048), bias-free logits (1008) and mixed_6/conv (sFID, 2023).

Network: Inception-v3 (Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR 2016) as
frozen in TensorFlow's 2015-12-05 graph, with the TF-specific details of that graph: BatchNorm eps 1e-3 and no
scale, average pools that do not count padding, a max pool in the last block's pool branch, a 1008-way classifier,
and a TF1 bilinear resize to 299 (align_corners=False, no half-pixel centres) followed by (x - 128) / 128.

Weights use the key layout of torch-fidelity's converted file ``weights-inception-2015-12-05-6726825d.pth``
(``Conv2d_1a_3x3.conv.weight`` ... ``fc.bias``); any file in that layout loads strictly.  Execution folds each
BatchNorm into its convolution (computed in float64, then cast) and merges the 1x1 convolutions that read the same
input into one convolution; an average pool followed by a 1x1 convolution is run as convolution then pool (both are
linear and the pool weights sum to one).  The result equals the unfolded network up to float rounding.

Feature extraction runs with TF32 off (cuDNN and matmul) and deterministic cuDNN; ``precise_float32()`` sets this
only for the duration of a call and restores the previous settings.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from varbench.errors import VarbenchError
from varbench.features.base import LOGITS, POOL3, SFID_CHANNELS, SPATIAL, make_id
from varbench.features.weights import FeatureWeights, hub_path, resolve

log = logging.getLogger(__name__)

OFFICIAL_FILENAME = "weights-inception-2015-12-05-6726825d.pth"
OFFICIAL_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{OFFICIAL_FILENAME}"
OFFICIAL_SHA256_PREFIX = "6726825d"  # torch.hub's hash-prefix convention: the file name carries sha256[:8]
INPUT_SIZE = 299
FEATURE_VERSION = "1"  # bump when the features of the same weights change (resize, layer choice, layout)
DTYPES = ("fp32", "fp64")


WEIGHTS = FeatureWeights("Inception weights", OFFICIAL_FILENAME, OFFICIAL_URL, "--inception-weights",
                         OFFICIAL_SHA256_PREFIX)


def hub_weights_path() -> Path:
    """Where torch-fidelity's loader keeps the weights: ``$TORCH_HOME/hub/checkpoints/<file>``."""
    return hub_path(WEIGHTS)


def resolve_weights(explicit: str | os.PathLike | None = None) -> Path:
    """``--inception-weights PATH`` > the torch hub cache file > a download into that cache (unless offline)."""
    return resolve(WEIGHTS, explicit)


@contextlib.contextmanager
def precise_float32() -> Iterator[dict]:
    """TF32 off for cuDNN convolutions and matmuls, deterministic cuDNN; restores the previous settings on exit."""
    import torch

    b = torch.backends
    units = {"cudnn.conv": b.cudnn.conv, "cudnn.rnn": b.cudnn.rnn, "cuda.matmul": b.cuda.matmul,
             "mkldnn.conv": b.mkldnn.conv, "mkldnn.matmul": b.mkldnn.matmul}
    old = {k: u.fp32_precision for k, u in units.items()}
    old_flags = (b.cudnn.benchmark, b.cudnn.deterministic)
    try:
        for u in units.values():
            u.fp32_precision = "ieee"
        b.cudnn.benchmark, b.cudnn.deterministic = False, True
        yield precision_settings()
    finally:
        for k, u in units.items():
            u.fp32_precision = old[k]
        b.cudnn.benchmark, b.cudnn.deterministic = old_flags


def precision_settings() -> dict:
    """The current float32 precision settings (recorded in results)."""
    import torch

    b = torch.backends
    return {
        "cudnn_conv_fp32_precision": b.cudnn.conv.fp32_precision,
        "cuda_matmul_fp32_precision": b.cuda.matmul.fp32_precision,
        "mkldnn_conv_fp32_precision": b.mkldnn.conv.fp32_precision,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cudnn_benchmark": bool(b.cudnn.benchmark),
        "cudnn_deterministic": bool(b.cudnn.deterministic),
    }


def resize_tf1_bilinear(x, size: int = INPUT_SIZE):
    """TF1 ``ResizeBilinear`` (align_corners=False, no half-pixel centres) of float (N, H, W, C) to (N, size, size, C).

    Separable: interpolate along W, then gather rows and interpolate along H.  Each output value is computed with
    the same float operations, in the same order, as torch-fidelity's ``interpolate_bilinear_2d_like_tensorflow1x``
    (method "slow"), so the result is bit-identical to it on CPU.
    """
    import torch

    def taps(n_in: int):
        # positions are computed in x's dtype times a float32 scale, fractions against float32 indices (TF1 rule)
        pos = torch.arange(size, dtype=x.dtype, device=x.device) * torch.tensor(n_in / size, dtype=torch.float32)
        lo = pos.long()
        hi = (lo + 1).clamp_max(n_in - 1)
        return lo, hi, pos - lo.float()

    lo, hi, frac = taps(x.shape[2])
    left = x.index_select(2, lo)
    cols = left + (x.index_select(2, hi) - left) * frac.view(1, 1, size, 1)  # (N, H, size, C)
    lo, hi, frac = taps(x.shape[1])
    top = cols.index_select(1, lo)
    return top + (cols.index_select(1, hi) - top) * frac.view(1, size, 1, 1)  # (N, size, size, C)


def network_class():
    """The network's module class (imported on first use, so importing this module stays cheap)."""
    from varbench.features.inception_net import InceptionV3TF

    return InceptionV3TF


class InceptionExtractor:
    """pool3, bias-free logits and sFID features of uint8 images; rows do not depend on the batch."""

    version = FEATURE_VERSION
    dims = {POOL3: 2048, LOGITS: 1008, SPATIAL: 17 * 17 * SFID_CHANNELS}

    def __init__(self, state_dict: dict, *, weights_sha256: str, weights_path: str | None = None,
                 device: str = "cpu", dtype: str = "fp32", channels_last: bool = True):
        import torch

        from varbench import dist
        from varbench.errors import check_state_dict

        if dtype not in DTYPES:
            raise VarbenchError(f"unknown feature dtype {dtype!r}; use one of {', '.join(DTYPES)}")
        self.device = torch.device(dist.resolve_device(device, dist.DistInfo.from_env()))
        self.dtype = dtype
        self.torch_dtype = torch.float64 if dtype == "fp64" else torch.float32
        self.weights_sha256 = weights_sha256
        self.weights_path = weights_path
        self.official = weights_sha256.startswith(OFFICIAL_SHA256_PREFIX)
        self.channels_last = channels_last
        with torch.device("meta"):  # no initialisation work: every tensor comes from the state dict
            net = network_class()()
        check_state_dict(net.state_dict(), state_dict, f"Inception weights {weights_path or ''}".strip())
        net.load_state_dict(state_dict, strict=True, assign=True)
        self._net = net.requires_grad_(False).eval()
        self._folded = False

    @property
    def net(self):
        """The network, folded for execution on first use (so a run refused early never pays for it)."""
        if not self._folded:
            self._net.fold(self.torch_dtype, self.device)
            self._folded = True
        return self._net

    @classmethod
    def from_file(cls, path: str | os.PathLike | None = None, *, device: str = "cpu", dtype: str = "fp32",
                  channels_last: bool = True) -> InceptionExtractor:
        from varbench import checkpoint, files

        resolved = resolve_weights(path)
        sd = checkpoint.load_state_dict(resolved, "Inception weights")
        return cls(sd, weights_sha256=files.sha256_file(resolved), weights_path=str(resolved), device=device,
                   dtype=dtype, channels_last=channels_last)

    @property
    def name(self) -> str:
        if self.official:
            return "inception-2015-12-05"
        return f"inception-2015-12-05-weights-{self.weights_sha256[:12]}"

    @property
    def id(self) -> str:
        return make_id(self.name, self.version)

    def describe(self) -> dict:
        return {
            "id": self.id,
            "weights_path": self.weights_path,
            "weights_sha256": self.weights_sha256,
            "official_weights": self.official,
            "dtype": self.dtype,
            "device": str(self.device),
            "channels_last": self.channels_last,
            "resize": "tf1-bilinear-299",
            "layers": {POOL3: "pool_3 (2048)", LOGITS: "pool_3 @ fc.weight.T, no bias (1008)",
                       SPATIAL: "mixed_6/conv = Mixed_6d.branch1x1[:7], H,W,C order (2023)"},
        }

    def extract(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """uint8 (N, H, W, 3) -> {pool3: (N, 2048), logits: (N, 1008), spatial: (N, 2023)} in the feature dtype."""
        import torch

        if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 4
                and images.shape[-1] == 3):
            got = f"{getattr(images, 'dtype', type(images).__name__)} {getattr(images, 'shape', '')}"
            raise VarbenchError(f"the Inception extractor takes uint8 (N, H, W, 3) images, got {got}")
        with precise_float32(), torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
            x = resize_tf1_bilinear(x.to(self.torch_dtype))
            x = ((x - 128) / 128).permute(0, 3, 1, 2)  # NCHW view of NHWC memory: channels_last
            if not self.channels_last:
                x = x.contiguous()
            pool3, spatial = self.net(x)
            logits = self._logits(pool3)
            spatial = spatial.permute(0, 2, 3, 1).reshape(len(images), -1)  # (N, 17*17*7) in H, W, C order
            out = {POOL3: pool3, LOGITS: logits, SPATIAL: spatial}
            return {k: v.cpu().numpy() for k, v in out.items()}

    def _logits(self, pool3):
        # float64 products rounded to the feature dtype: BLAS picks kernels by batch size, and float32 sums would
        # make a row's logits depend on the batch it was in
        return pool3.double().mm(self.net._fc_t.double()).to(pool3.dtype)

    def logits_from_pool3(self, pool3: np.ndarray) -> np.ndarray:
        """The bias-free logits of given pool3 features (the same matmul ``extract`` does)."""
        import torch

        with precise_float32(), torch.inference_mode():
            x = torch.from_numpy(np.asarray(pool3)).to(device=self.device, dtype=self.torch_dtype)
            return self._logits(x).cpu().numpy()


def random_state_dict(seed: int = 0) -> dict:
    """Seeded random weights in the official layout, for offline tests and benchmarks (never for reported numbers).

    ``varbench.recipe`` with gain 2 (He-normal convolutions) and drawn BatchNorm statistics, so activations keep
    their scale through the network and features vary with the image (default initialisation gives near-constant
    features).
    """
    from varbench.recipe import fill_with_recipe

    net = fill_with_recipe(network_class()(), int(seed), "cpu", gain=2.0)
    return {k: v.clone() for k, v in net.state_dict().items()}
