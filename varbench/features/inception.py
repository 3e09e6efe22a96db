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
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from varbench.errors import VarbenchError
from varbench.features.base import LOGITS, POOL3, SPATIAL, make_id

log = logging.getLogger(__name__)

OFFICIAL_FILENAME = "weights-inception-2015-12-05-6726825d.pth"
OFFICIAL_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{OFFICIAL_FILENAME}"
OFFICIAL_SHA256_PREFIX = "6726825d"  # torch.hub's hash-prefix convention: the file name carries sha256[:8]
INPUT_SIZE = 299
SFID_CHANNELS = 7  # ADM keeps the first 7 of the 192 channels of mixed_6/conv (17 x 17 x 7 = 2023)
FEATURE_VERSION = "1"  # bump when the features of the same weights change (resize, layer choice, layout)
DTYPES = ("fp32", "fp64")


def hub_weights_path() -> Path:
    """Where torch-fidelity's loader keeps the weights: ``$TORCH_HOME/hub/checkpoints/<file>``."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / OFFICIAL_FILENAME


def resolve_weights(explicit: str | os.PathLike | None = None) -> Path:
    """``--inception-weights PATH`` > the torch hub cache file > a download into that cache (unless offline)."""
    from varbench import weights

    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise VarbenchError(f"Inception weights not found: {path} (check the path given with --inception-weights)")
        return path
    cached = hub_weights_path()
    if cached.is_file():
        return cached
    hint = f"download {OFFICIAL_URL} to {cached} (or pass --inception-weights PATH)"
    if weights.offline():
        raise VarbenchError(f"{OFFICIAL_FILENAME} is not cached and downloads are off (VARBENCH_OFFLINE): {hint}")
    import torch

    cached.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s to %s", OFFICIAL_URL, cached)
    try:
        torch.hub.download_url_to_file(OFFICIAL_URL, str(cached), hash_prefix=OFFICIAL_SHA256_PREFIX, progress=False)
    except Exception as e:  # URLError, HTTPError, hash mismatch (RuntimeError), OSError
        raise VarbenchError(f"could not download {OFFICIAL_FILENAME} ({type(e).__name__}: {e}); {hint}") from None
    return cached


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


def _build_modules():
    """The parameter containers (torch imported lazily so ``import varbench.features.inception`` stays cheap)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class ConvBN(nn.Module):
        """conv (no bias) -> BatchNorm(eps=1e-3) -> ReLU; keys ``conv.weight`` and ``bn.*``."""

        def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False)
            self.bn = nn.BatchNorm2d(cout, eps=1e-3)

    class Folded:
        """Several ConvBN units over the same input as one convolution with BatchNorm folded in."""

        def __init__(self, units: Sequence[ConvBN], dtype, device):
            geometry = {(u.conv.kernel_size, u.conv.stride, u.conv.padding) for u in units}
            if len(geometry) != 1:
                raise ValueError("only convolutions of one geometry can be merged")
            first = units[0].conv
            weights, biases = [], []
            for u in units:
                bn = u.bn
                scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
                weights.append(u.conv.weight.double() * scale[:, None, None, None])
                biases.append(bn.bias.double() - bn.running_mean.double() * scale)
            self.weight = torch.cat(weights).to(device=device, dtype=dtype)
            self.bias = torch.cat(biases).to(device=device, dtype=dtype)
            self.stride, self.padding = first.stride, first.padding
            self.sizes = [u.conv.out_channels for u in units]

        def __call__(self, x, relu: bool = True):
            y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding)
            return y.relu_() if relu else y

    def avg3(x):
        return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)

    class InceptionA(nn.Module):
        def __init__(self, cin: int, pool: int):
            super().__init__()
            self.branch1x1 = ConvBN(cin, 64, 1)
            self.branch5x5_1 = ConvBN(cin, 48, 1)
            self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
            self.branch3x3dbl_1 = ConvBN(cin, 64, 1)
            self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
            self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
            self.branch_pool = ConvBN(cin, pool, 1)

        def fold(self, dtype, device):
            f = lambda *u: Folded(u, dtype, device)  # noqa: E731
            self._in = f(self.branch1x1, self.branch5x5_1, self.branch3x3dbl_1, self.branch_pool)
            self._5x5, self._dbl2, self._dbl3 = f(self.branch5x5_2), f(self.branch3x3dbl_2), f(self.branch3x3dbl_3)

        def forward(self, x):
            y = self._in(x, relu=False)
            a, b, c, p = y.split(self._in.sizes, 1)
            a, b, c = a.relu(), b.relu(), c.relu()
            return torch.cat([a, self._5x5(b), self._dbl3(self._dbl2(c)), avg3(p).relu_()], 1)

    class InceptionB(nn.Module):
        def __init__(self, cin: int):
            super().__init__()
            self.branch3x3 = ConvBN(cin, 384, 3, stride=2)
            self.branch3x3dbl_1 = ConvBN(cin, 64, 1)
            self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
            self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

        def fold(self, dtype, device):
            f = lambda *u: Folded(u, dtype, device)  # noqa: E731
            self._3x3, self._dbl1 = f(self.branch3x3), f(self.branch3x3dbl_1)
            self._dbl2, self._dbl3 = f(self.branch3x3dbl_2), f(self.branch3x3dbl_3)

        def forward(self, x):
            return torch.cat([self._3x3(x), self._dbl3(self._dbl2(self._dbl1(x))), F.max_pool2d(x, 3, 2)], 1)

    class InceptionC(nn.Module):
        def __init__(self, cin: int, c7: int):
            super().__init__()
            self.branch1x1 = ConvBN(cin, 192, 1)
            self.branch7x7_1 = ConvBN(cin, c7, 1)
            self.branch7x7_2 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
            self.branch7x7_3 = ConvBN(c7, 192, (7, 1), padding=(3, 0))
            self.branch7x7dbl_1 = ConvBN(cin, c7, 1)
            self.branch7x7dbl_2 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
            self.branch7x7dbl_3 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
            self.branch7x7dbl_4 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
            self.branch7x7dbl_5 = ConvBN(c7, 192, (1, 7), padding=(0, 3))
            self.branch_pool = ConvBN(cin, 192, 1)

        def fold(self, dtype, device):
            f = lambda *u: Folded(u, dtype, device)  # noqa: E731
            self._in = f(self.branch1x1, self.branch7x7_1, self.branch7x7dbl_1, self.branch_pool)
            self._7x7 = [f(self.branch7x7_2), f(self.branch7x7_3)]
            self._dbl = [f(getattr(self, f"branch7x7dbl_{i}")) for i in range(2, 6)]

        def forward(self, x):
            y = self._in(x, relu=False)
            a, b, c, p = y.split(self._in.sizes, 1)
            b, c = b.relu(), c.relu()
            for conv in self._7x7:
                b = conv(b)
            for conv in self._dbl:
                c = conv(c)
            return torch.cat([a.relu(), b, c, avg3(p).relu_()], 1)

    class InceptionD(nn.Module):
        def __init__(self, cin: int):
            super().__init__()
            self.branch3x3_1 = ConvBN(cin, 192, 1)
            self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
            self.branch7x7x3_1 = ConvBN(cin, 192, 1)
            self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
            self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
            self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

        def fold(self, dtype, device):
            f = lambda *u: Folded(u, dtype, device)  # noqa: E731
            self._in = f(self.branch3x3_1, self.branch7x7x3_1)
            self._3x3 = f(self.branch3x3_2)
            self._7x7 = [f(getattr(self, f"branch7x7x3_{i}")) for i in range(2, 5)]

        def forward(self, x):
            a, b = self._in(x).split(self._in.sizes, 1)
            for conv in self._7x7:
                b = conv(b)
            return torch.cat([self._3x3(a), b, F.max_pool2d(x, 3, 2)], 1)

    class InceptionE(nn.Module):
        def __init__(self, cin: int, pool: str):
            super().__init__()
            self.pool = pool  # "avg" (Mixed_7b) or "max" (Mixed_7c: the TF graph max-pools here)
            self.branch1x1 = ConvBN(cin, 320, 1)
            self.branch3x3_1 = ConvBN(cin, 384, 1)
            self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
            self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
            self.branch3x3dbl_1 = ConvBN(cin, 448, 1)
            self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
            self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
            self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
            self.branch_pool = ConvBN(cin, 192, 1)

        def fold(self, dtype, device):
            f = lambda *u: Folded(u, dtype, device)  # noqa: E731
            merged = [self.branch1x1, self.branch3x3_1, self.branch3x3dbl_1]
            if self.pool == "avg":
                merged.append(self.branch_pool)
            else:
                self._pool = f(self.branch_pool)
            self._in = f(*merged)
            self._2a, self._2b = f(self.branch3x3_2a), f(self.branch3x3_2b)
            self._dbl2, self._3a, self._3b = f(self.branch3x3dbl_2), f(self.branch3x3dbl_3a), f(self.branch3x3dbl_3b)

        def forward(self, x):
            y = self._in(x, relu=False)
            parts = y.split(self._in.sizes, 1)
            a, b, c = parts[0].relu(), parts[1].relu(), parts[2].relu()
            pool = avg3(parts[3]).relu_() if self.pool == "avg" else self._pool(F.max_pool2d(x, 3, 1, 1))
            c = self._dbl2(c)
            return torch.cat([a, self._2a(b), self._2b(b), self._3a(c), self._3b(c), pool], 1)

    class InceptionV3TF(nn.Module):
        """Parameters in torch-fidelity's layout; ``fold()`` prepares execution, ``forward`` runs it."""

        def __init__(self):
            super().__init__()
            self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
            self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
            self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
            self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
            self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
            self.Mixed_5b = InceptionA(192, 32)
            self.Mixed_5c = InceptionA(256, 64)
            self.Mixed_5d = InceptionA(288, 64)
            self.Mixed_6a = InceptionB(288)
            self.Mixed_6b = InceptionC(768, 128)
            self.Mixed_6c = InceptionC(768, 160)
            self.Mixed_6d = InceptionC(768, 160)
            self.Mixed_6e = InceptionC(768, 192)
            self.Mixed_7a = InceptionD(768)
            self.Mixed_7b = InceptionE(1280, "avg")
            self.Mixed_7c = InceptionE(2048, "max")
            self.fc = nn.Linear(2048, 1008)

        def fold(self, dtype, device):
            stem = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]
            self._stem = [Folded([getattr(self, n)], dtype, device) for n in stem]
            for m in self.children():
                if hasattr(m, "fold"):
                    m.fold(dtype, device)
            self._fc_t = self.fc.weight.detach().to(device=device, dtype=dtype).t().contiguous()  # (2048, 1008)

        def forward(self, x):
            """x: normalised (N, 3, 299, 299) -> pool3 (N, 2048), mixed_6/conv first channels (N, 7, 17, 17)."""
            s = self._stem
            x = F.max_pool2d(s[2](s[1](s[0](x))), 3, 2)  # (N, 64, 73, 73)
            x = F.max_pool2d(s[4](s[3](x)), 3, 2)  # (N, 192, 35, 35)
            x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))  # (N, 288, 35, 35)
            x = self.Mixed_6c(self.Mixed_6b(self.Mixed_6a(x)))  # (N, 768, 17, 17)
            x = self.Mixed_6d(x)
            spatial = x[:, :SFID_CHANNELS]  # branch1x1 comes first in the concatenation: mixed_6/conv
            x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(self.Mixed_6e(x))))  # (N, 2048, 8, 8)
            return x.mean(dim=(2, 3)), spatial

    return InceptionV3TF


_NETWORK_CLASS = None


def network_class():
    global _NETWORK_CLASS
    if _NETWORK_CLASS is None:
        _NETWORK_CLASS = _build_modules()
    return _NETWORK_CLASS


class InceptionExtractor:
    """pool3, bias-free logits and sFID features of uint8 images; rows do not depend on the batch."""

    version = FEATURE_VERSION
    dims = {POOL3: 2048, LOGITS: 1008, SPATIAL: 17 * 17 * SFID_CHANNELS}

    def __init__(self, state_dict: dict, *, weights_sha256: str, weights_path: str | None = None,
                 device: str = "cpu", dtype: str = "fp32", channels_last: bool = True):
        import torch

        from varbench import dist, weights

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
        weights.check_keys_and_shapes(net.state_dict(), state_dict, f"Inception weights {weights_path or ''}".strip())
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
        from varbench import weights

        resolved = resolve_weights(path)
        sd = weights.load_state_dict(resolved, "Inception weights")
        return cls(sd, weights_sha256=weights.sha256_file(resolved), weights_path=str(resolved), device=device,
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

    Convolutions are He-normal and BatchNorm statistics are perturbed, so activations keep their scale through the
    network and features vary with the image (default initialisation gives near-constant features).
    """
    import torch

    g = torch.Generator().manual_seed(int(seed))
    net = network_class()()
    with torch.no_grad():
        for name, module in net.named_modules():
            if isinstance(module, torch.nn.Conv2d):
                fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
                module.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=g)
            elif isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.8, 1.2, generator=g)
                module.bias.normal_(0.0, 0.2, generator=g)
                module.running_mean.normal_(0.0, 0.2, generator=g)
                module.running_var.uniform_(0.5, 1.5, generator=g)
            elif isinstance(module, torch.nn.Linear):
                module.weight.normal_(0.0, 4.0 / module.in_features ** 0.5, generator=g)
                module.bias.normal_(0.0, 0.1, generator=g)
    return {k: v.clone() for k, v in net.state_dict().items()}
