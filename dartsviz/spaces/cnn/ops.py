"""The eight DARTS primitives and their registry.

Every op maps (B, C, H, W) to (B, C, H, W) at stride 1 and to
(B, C, ceil(H/2), ceil(W/2)) at stride 2. In the search phase every
BatchNorm is ``affine=False``; the evaluation network passes ``affine=True``.
As in the authors' code, only the search network's pooling ops end in a
(non-affine) BatchNorm; the evaluation network's pooling ops have none.
"""
from __future__ import annotations

from typing import Callable, Dict

import torch
import torch.nn as nn
import torch.nn.functional as F

PRIMITIVES = [
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
]
PARAMETER_FREE = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect")


class Zero(nn.Module):
    """The `none` op: zeros of the (possibly strided) output shape."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)  # (B, C, ceil(H/2), ceil(W/2))


class Identity(nn.Module):
    def forward(self, x):
        return x


class ReLUConvBN(nn.Module):
    """ReLU, k x k convolution, BatchNorm (used to preprocess cell inputs).

    `conv` and `bn` name the children of `op` (the state_dict keys stay `op.1`, `op.2`)."""

    def __init__(self, C_in, C_out, kernel_size, stride, padding, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    @property
    def conv(self) -> nn.Conv2d:
        return self.op[1]

    @property
    def bn(self) -> nn.BatchNorm2d:
        return self.op[2]

    def forward(self, x):
        return self.op(x)


class FactorizedReduce(nn.Module):
    """ReLU, two 1x1 stride-2 convs (on x and on x shifted by one pixel), concat, BN."""

    def __init__(self, C_in, C_out, affine=True):
        super().__init__()
        if C_out % 2:
            raise ValueError(f"FactorizedReduce needs an even C_out, got {C_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x):
        x = self.relu(x)
        # padding one row and column keeps odd sizes consistent; for even sizes the
        # sampled pixels are exactly those of x[:, :, 1:, 1:]
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]  # (B, C, H, W)
        out = torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1)  # (B, C_out, H/2, W/2)
        return self.bn(out)


def check_even_channels(channels: int) -> None:
    """FactorizedReduce halves the channels: a network's channel count must be even."""
    if channels % 2:
        raise ValueError(f"channels must be even (FactorizedReduce halves them), got {channels}")


class DilConv(nn.Module):
    """ReLU, depthwise k x k (dilated), pointwise 1x1, BN.

    `dw`, `pw` and `bn` name the children of `op` (the state_dict keys stay `op.1` to `op.3`)."""

    def __init__(self, C_in, C_out, kernel_size, stride, padding, dilation, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride=stride, padding=padding,
                      dilation=dilation, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )

    @property
    def dw(self) -> nn.Conv2d:
        return self.op[1]

    @property
    def pw(self) -> nn.Conv2d:
        return self.op[2]

    @property
    def bn(self) -> nn.BatchNorm2d:
        return self.op[3]

    def forward(self, x):
        return self.op(x)


class SepConv(nn.Module):
    """Two DilConv blocks with dilation 1; only the first is strided.

    `block1` and `block2` name them (the state_dict keys stay `op.0`, `op.1`)."""

    def __init__(self, C_in, C_out, kernel_size, stride, padding, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            DilConv(C_in, C_in, kernel_size, stride, padding, 1, affine=affine),
            DilConv(C_in, C_out, kernel_size, 1, padding, 1, affine=affine),
        )

    @property
    def block1(self) -> DilConv:
        return self.op[0]

    @property
    def block2(self) -> DilConv:
        return self.op[1]

    def forward(self, x):
        return self.op(x)


class PoolBN(nn.Sequential):
    """3x3 pooling, BN: a Sequential (state_dict keys `1.*`) whose children are `pool` and `bn`."""

    @property
    def pool(self) -> nn.Module:
        return self[0]

    @property
    def bn(self) -> nn.BatchNorm2d:
        return self[1]


def _pool(kind: str, C: int, stride: int, affine: bool) -> nn.Module:
    """The search op (affine=False) is pool + non-affine BN, the evaluation op (affine=True) the bare pool."""
    if kind == "max":
        pool = nn.MaxPool2d(3, stride=stride, padding=1)
    else:
        pool = nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    return pool if affine else PoolBN(pool, nn.BatchNorm2d(C, affine=False))


OpFactory = Callable[[int, int, bool], nn.Module]

OPS: Dict[str, OpFactory] = {
    "none": lambda C, stride, affine: Zero(stride),
    "max_pool_3x3": lambda C, stride, affine: _pool("max", C, stride, affine),
    "avg_pool_3x3": lambda C, stride, affine: _pool("avg", C, stride, affine),
    "skip_connect": lambda C, stride, affine: Identity() if stride == 1 else FactorizedReduce(C, C, affine),
    "sep_conv_3x3": lambda C, stride, affine: SepConv(C, C, 3, stride, 1, affine),
    "sep_conv_5x5": lambda C, stride, affine: SepConv(C, C, 5, stride, 2, affine),
    "dil_conv_3x3": lambda C, stride, affine: DilConv(C, C, 3, stride, 2, 2, affine),
    "dil_conv_5x5": lambda C, stride, affine: DilConv(C, C, 5, stride, 4, 2, affine),
}


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle: channel g * (C/groups) + i moves to i * groups + g.

    PC-DARTS shuffles each mixed op's output, [op part ; bypass], with K groups, so the
    channels an op saw are spread over the whole tensor for the next edge."""
    B, C, H, W = x.shape
    if C % groups:
        raise ValueError(f"channel_shuffle needs channels divisible by groups, got {C} and {groups}")
    if groups == 1:
        return x
    x = x.view(B, groups, C // groups, H, W).transpose(1, 2)    # (B, C/groups, groups, H, W)
    return x.reshape(B, C, H, W)


def make_op(name: str, C: int, stride: int, affine: bool) -> nn.Module:
    """Build primitive `name`; an unknown name raises a ValueError listing the known ones."""
    if name not in OPS:
        raise ValueError(f"unknown op {name!r}; known ops: {', '.join(PRIMITIVES)}")
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride}")
    return OPS[name](C, stride, affine)
