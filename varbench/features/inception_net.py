"""The 2015 TF Inception-v3 graph as torch modules: parameters in torch-fidelity's key layout, execution folded.

Network: Inception-v3 (Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR 2016) as
frozen in TensorFlow's 2015-12-05 graph: BatchNorm eps 1e-3 and no scale, average pools that do not count padding,
a max pool in the last block's pool branch, a 1008-way classifier.  ``fold()`` folds each BatchNorm into its
convolution (in float64, then cast) and merges the 1x1 convolutions that read one input; ``forward`` runs that.
Pure torch; ``varbench.features.inception`` imports it on first use.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from varbench.features.base import SFID_CHANNELS


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
