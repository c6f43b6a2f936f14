"""The fast path's kernels: small depthwise and grouped 1x1 convolutions, pooling and the
op-weighted sums, each in the formulation that measured fastest on CPU (bench/README.md);
on other devices plain conv2d. The module-level switches below choose among them (tests and
benchmarks set them: `fast_kernels.FOLD_WEIGHTS = False`). See `fastnet` for the whole."""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from .fast_plan import CONV_GEOMETRY

# Small depthwise and grouped 1x1 convolutions, each in the formulation that measured
# fastest on CPU (micro-benchmarks in bench/README.md); on other devices plain conv2d.

def _cpu_kernels(x: torch.Tensor) -> bool:
    """Whether x takes the CPU formulations (CUDA and other devices: plain conv2d and pooling)."""
    return CPU_KERNELS and x.device.type == "cpu"


def _crop(w: torch.Tensor, pad: int, dil: int, H: int, W: int) -> Tuple[torch.Tensor, int]:
    """Drop kernel taps that only ever see padding (exact: they add zeros, get zero gradient)."""
    k = w.shape[-1]
    r = (k - 1) // 2
    reach = min(r, (max(H, W) - 1) // dil)
    if reach == r:
        return w, pad
    return w[:, :, r - reach:r + reach + 1, r - reach:r + reach + 1], pad - (r - reach) * dil


def dwconv(x: torch.Tensor, w: torch.Tensor, stride: int, pad: int, dil: int) -> torch.Tensor:
    """Depthwise convolution, `same` padding (pad = dil * (k - 1) / 2); x (B, G, H, W), w (G, 1, k, k)."""
    G = x.shape[1]
    if not _cpu_kernels(x):
        return F.conv2d(x, w, None, stride, pad, dil, G)
    if dil == 2 and stride == 2:
        # a dilation-2 stride-2 convolution reads only even pixels: undilated on x[::2, ::2]
        x, stride, pad, dil = x[:, :, ::2, ::2], 1, pad // 2, 1
    H, W = x.shape[-2:]
    w, pad = _crop(w, pad, dil, H, W)
    if w.shape[-1] == 1:                                  # only the centre tap reaches the image
        return x[:, :, ::stride, ::stride] * w.view(1, G, 1, 1)
    if H * W <= DENSE_MAX_PIXELS:
        return _dense_dwconv(x, w, stride, pad, dil)
    if dil == 1:
        x = x.contiguous(memory_format=torch.channels_last)
        return F.conv2d(x, w, None, stride, pad, 1, G).contiguous()
    if dil == 2 and H % 2 == 0 and W % 2 == 0 and min(H, W) >= PIXEL_UNSHUFFLE_MIN:
        # dilation 2 at stride 1 = undilated convolution on the four pixel-parity sub-images
        xs = F.pixel_unshuffle(x, 2)                        # (B, 4G, H/2, W/2), channel g*4 + parity
        out = F.conv2d(xs, w.repeat_interleave(4, 0), None, 1, pad // 2, 1, 4 * G)
        return F.pixel_shuffle(out, 2)
    return F.conv2d(x, w, None, stride, pad, dil, G)


def _dw_cm(x, w, H, W, stride, pad, dil):
    """Depthwise convolution on a channel-major (G, B, H*W) tensor; returns ((G, B, h*w), h, w)."""
    G, B = x.shape[:2]
    if dil == 2 and stride == 2:
        x = x.view(G, B, H, W)[:, :, ::2, ::2]
        H, W = x.shape[-2:]
        x, stride, pad, dil = x.reshape(G, B, H * W), 1, pad // 2, 1
    w, pad = _crop(w, pad, dil, H, W)
    k = w.shape[-1]
    if k == 1:                                            # only the centre tap reaches the image
        x = x.view(G, B, H, W)[:, :, ::stride, ::stride]
        h, wo = x.shape[-2:]
        return (x * w.view(G, 1, 1, 1)).reshape(G, B, h * wo), h, wo
    T, h, wo = _dense_kernel(w, H, W, stride, pad, dil)                   # (G, hw, HW)
    return torch.bmm(x, T.transpose(1, 2)), h, wo                         # (G, B, hw)


def pwconv(x: torch.Tensor, w: torch.Tensor, groups: int) -> torch.Tensor:
    """Grouped 1x1 convolution; x (B, G*Ci, H, W), w (G*Co, Ci, 1, 1). On CPU one batched matmul."""
    if not _cpu_kernels(x):
        return F.conv2d(x, w, None, 1, 0, 1, groups)
    B, GC, H, W = x.shape
    Ci, Co = GC // groups, w.shape[0] // groups
    if groups == 1:
        return torch.matmul(w.view(Co, Ci), x.reshape(B, Ci, H * W)).view(B, Co, H, W)
    xt = x.reshape(B, groups, Ci, H * W).permute(1, 2, 0, 3).reshape(groups, Ci, B * H * W)
    out = torch.bmm(w.view(groups, Co, Ci), xt)                                # (G, Co, B*H*W)
    return out.view(groups, Co, B, H * W).permute(2, 0, 1, 3).reshape(B, groups * Co, H, W)


def dwconv_cl(x: torch.Tensor, w: torch.Tensor, stride: int, pad: int, dil: int) -> torch.Tensor:
    """`dwconv` on a channels_last x (B, G, H, W); returns a channels_last tensor. Undilated:
    conv2d channels_last; dilation 2 at stride 2: undilated on the even pixels; dilation 2 at
    stride 1 (even sizes from PIXEL_UNSHUFFLE_MIN): undilated on the four pixel-parity
    sub-images, stacked parity-major on the channels, channels_last."""
    B, G, H, W = x.shape
    cl = torch.channels_last
    if dil == 2 and stride == 2:
        x, stride, pad, dil = x[:, :, ::2, ::2], 1, pad // 2, 1
        H, W = x.shape[-2:]
    w, pad = _crop(w, pad, dil, H, W)
    if w.shape[-1] == 1:                                  # only the centre tap reaches the image
        return (x[:, :, ::stride, ::stride] * w.view(1, G, 1, 1)).contiguous(memory_format=cl)
    if dil == 2 and stride == 1 and H % 2 == 0 and W % 2 == 0 and min(H, W) >= PIXEL_UNSHUFFLE_MIN:
        xp = x.permute(0, 2, 3, 1).reshape(B, H // 2, 2, W // 2, 2, G)    # (B, h, py, w, px, G) view
        xs = xp.permute(0, 1, 3, 2, 4, 5).reshape(B, H // 2, W // 2, 4 * G)  # (B, h, w, 4G), parity-major
        out = F.conv2d(xs.permute(0, 3, 1, 2), w.repeat(4, 1, 1, 1), None, 1, pad // 2, 1, 4 * G)
        op = out.permute(0, 2, 3, 1).reshape(B, H // 2, W // 2, 2, 2, G)   # (B, h, w, py, px, G)
        return op.permute(0, 1, 3, 2, 4, 5).reshape(B, H, W, G).permute(0, 3, 1, 2)   # (B, G, H, W) CL
    return F.conv2d(x.contiguous(memory_format=cl), w, None, stride, pad, dil, G)


PIXEL_UNSHUFFLE_MIN = 16      # dilated stride-1 convs via pixel_unshuffle from this size up
DENSE_MAX_PIXELS = 64         # depthwise convs on images up to 8x8 as one batched matmul
POOL_CL_MIN_PIXELS = 16       # max pooling channels_last from 4x4 up
# `_stage_cl` runs the conv kinds in these parts (contiguous, increasing ranges of indices into
# CONV_KINDS; each part one grouped pointwise conv and one BatchNorm): one kind at a time keeps
# tensors small (glibc's malloc hands allocations of 32 MiB and more back to the system on free,
# so such a tensor pays its page faults on every use: the 256-channel 1x1 conv at 32x32 took 2.5x
# as long) and needs no concatenation; ((0, 1, 2, 3),) is the previous single part
CL_PARTS = ((0,), (1,), (2,), (3,))
# `_stage_cl`: a conv op's weight scales its last BatchNorm's output inside the BatchNorm kernel (a
# per-channel affine weight, no bias), so the op-weighted sum is a plain sum: exact, the same
# products; for parts without sep kinds, or the sep kinds' second BatchNorm
FOLD_WEIGHTS = True
SHARED_EVEN = True            # stride-2 stages: the even pixels sliced once (dilated convs, FactorizedReduce)
_PAD_DIL = {k: (d * (ks - 1) // 2, d) for k, (ks, d) in CONV_GEOMETRY.items()}   # (padding, dilation)
CPU_KERNELS = True            # False: CPU tensors take the plain formulation CUDA uses (tests)
PREPROCESS_MATMUL = True      # ReLUConvBN preprocessing as ReLU, matmul, BatchNorm on CPU
CHANNEL_MAJOR = True          # small images on CPU: the channel-major formulation (_convs_small)
CHANNELS_LAST = True          # larger images on CPU: whole stages channels_last (_stage_cl)
CL_MIN_PIXELS = DENSE_MAX_PIXELS + 1   # stages with at least this many input pixels run `_stage_cl`
_TAPS: Dict[tuple, Tuple[torch.Tensor, int, int]] = {}


def _taps(H, W, k, stride, pad, dil, dtype, device):
    """0/1 tensor (k*k, h*w*H*W): which input pixel each kernel tap reads for each output pixel."""
    key = (H, W, k, stride, pad, dil, dtype, device)
    hit = _TAPS.get(key)
    if hit is None:
        h = (H + 2 * pad - dil * (k - 1) - 1) // stride + 1
        w = (W + 2 * pad - dil * (k - 1) - 1) // stride + 1
        e = torch.zeros(k, k, h, w, H, W, dtype=dtype)
        for a in range(k):
            for b in range(k):
                for i in range(h):
                    y = i * stride + a * dil - pad
                    if not 0 <= y < H:
                        continue
                    for j in range(w):
                        x = j * stride + b * dil - pad
                        if 0 <= x < W:
                            e[a, b, i, j, y, x] = 1
        hit = _TAPS[key] = (e.reshape(k * k, h * w * H * W).to(device), h, w)
    return hit


def _dense_kernel(w, H, W, stride, pad, dil):
    """Each channel's depthwise kernel w (G, 1, k, k) as its dense (h*w, H*W) matrix, by one
    matmul with the cached tap tensor; returns ((G, hw, HW), h, w)."""
    G, k = w.shape[0], w.shape[-1]
    e, h, wo = _taps(H, W, k, stride, pad, dil, w.dtype, w.device)
    return torch.mm(w.reshape(G, k * k), e).view(G, h * wo, H * W), h, wo


def _dense_dwconv(x, w, stride, pad, dil):
    """A small depthwise convolution as one batched matmul with each channel's (hw, HW) matrix.

    Exact: each output sums the same products as the convolution (plus zeros)."""
    B, G, H, W = x.shape
    T, h, wo = _dense_kernel(w, H, W, stride, pad, dil)                   # (G, hw, HW)
    out = torch.bmm(x.reshape(B, G, H * W).transpose(0, 1), T.transpose(1, 2))   # (G, B, hw)
    return out.transpose(0, 1).reshape(B, G, h, wo)


def pools(x: torch.Tensor, stride: int, channels_last: bool = False) -> torch.Tensor:
    """3x3 max and average pooling (pad 1, average over in-image pixels) side by side:
    x (B, C, H, W) -> (B, 2C, h, w). On CPU max pooling runs channels_last (3 to 5 times
    faster there from 4x4 up) and small average pooling is one matmul with a fixed
    averaging matrix; `channels_last` returns the channels_last result (larger images)."""
    if not _cpu_kernels(x):
        return torch.cat([F.max_pool2d(x, 3, stride, 1),
                          F.avg_pool2d(x, 3, stride, 1, count_include_pad=False)], 1)
    B, C, H, W = x.shape
    xc = x.contiguous(memory_format=torch.channels_last) if H * W >= POOL_CL_MIN_PIXELS else x
    pm = F.max_pool2d(xc, 3, stride, 1)
    if H * W <= DENSE_MAX_PIXELS:
        A, h, w = _avg_matrix(H, W, stride, x.dtype, x.device)                   # (HW, hw)
        pa = torch.mm(x.reshape(B * C, H * W), A).view(B, C, h, w)
    else:
        pa = F.avg_pool2d(xc, 3, stride, 1, count_include_pad=False)
    out = torch.cat([pm, pa], 1)                                                 # (B, 2C, h, w)
    return out if channels_last and H * W >= POOL_CL_MIN_PIXELS else out.contiguous()


def _avg_matrix(H, W, stride, dtype, device):
    """(H*W, h*w): column o averages the in-image pixels of output o's 3x3 window."""
    key = ("avg", H, W, stride, dtype, device)
    hit = _TAPS.get(key)
    if hit is None:
        e, h, w = _taps(H, W, 3, stride, 1, 1, dtype, device)
        E = e.view(9, h * w, H * W).sum(0)                                        # (hw, HW) 0/1
        hit = _TAPS[key] = ((E / E.sum(1, keepdim=True)).t().contiguous(), h, w)
    return hit


MIX_MATMUL_MAX = 64           # op-weighted sums as matmuls when n*C (a stage's output channels) is at most this


class _Mixer:
    """Accumulates a stage's op-weighted sums over ops and sources, out[p, j, c] (P, n*C), from
    pixel-major op outputs z (P rows, channels (k, j, s, c), or (k, s, c) when shared by the n
    destinations) and their weights W (K, n*S), edge m = j*S + s. For n*C up to MIX_MATMUL_MAX
    a matmul with the (K*[n]*S*C, n*C) matrix of weights (zero off the diagonal in j and c;
    exact: the same products plus zeros), otherwise a broadcast multiply and a sum."""

    def __init__(self, P: int, n: int, S: int, C: int):
        self.P, self.n, self.S, self.C = P, n, S, C
        self.out: Optional[torch.Tensor] = None                          # (P, n*C)

    def __call__(self, z: torch.Tensor, W: torch.Tensor, per_dest: bool) -> None:
        P, n, S, C, K = self.P, self.n, self.S, self.C, W.shape[0]
        z = z.reshape(P, -1)                                                 # (P, K*[n]*S*C)
        W = W.to(z.dtype) if z.dtype != W.dtype and not torch.is_autocast_enabled() else W
        if n * C <= MIX_MATMUL_MAX:
            eye_c = torch.eye(C, dtype=W.dtype, device=W.device)
            if per_dest:
                eye_n = torch.eye(n, dtype=W.dtype, device=W.device)
                mat = W.view(K, n, S, 1, 1, 1) * eye_n.view(1, n, 1, 1, n, 1) * eye_c.view(1, 1, 1, C, 1, C)
            else:
                mat = W.view(K, n, S).transpose(1, 2).reshape(K, S, 1, n, 1) * eye_c.view(1, 1, C, 1, C)
            mat = mat.reshape(-1, n * C)                                     # (K*[n]*S*C, n*C)
            self.out = torch.mm(z, mat) if self.out is None else torch.addmm(self.out, z, mat)
            return
        if per_dest:
            y = (z.view(P, K, n, S, C) * W.view(K, n, S, 1)).sum((1, 3))      # (P, n, C)
        else:
            y = (z.view(P, K, 1, S, C) * W.view(K, n, S, 1)).sum((1, 3))      # (P, n, C)
        y = y.view(P, n * C)
        self.out = y if self.out is None else self.out + y

    def add_scaled(self, z: torch.Tensor) -> None:
        """Accumulates op outputs already scaled by their op weights (`FOLD_WEIGHTS`): z (P rows,
        channels (k, j, s, c)) summed over kinds k and sources s."""
        P, n, S, C = self.P, self.n, self.S, self.C
        z = z.reshape(P, -1, n, S, C)                                        # (P, K, n, S, C)
        y = z.view(P, n * C) if z.shape[1] * S == 1 else _SumKS.apply(z).view(P, n * C)
        self.out = y if self.out is None else self.out + y


class _SumKS(torch.autograd.Function):
    """z (P, K, n, S, C) summed over K and S, (P, n, C): forward as adds of strided slices (no
    copy; about twice as fast as z.sum((1, 3)) here), backward the gradient repeated by `_tile`
    (no zero-filled slice gradients). Twice differentiable (the backward is a stack)."""

    @staticmethod
    def forward(ctx, z):
        ctx.shape = z.shape
        terms = [z[:, k, :, s] for k in range(z.shape[1]) for s in range(z.shape[3])]   # (P, n, C) each
        y = terms[0] + terms[1]
        for t in terms[2:]:
            y += t
        return y

    @staticmethod
    def backward(ctx, g):                                                    # g (P, n, C)
        P, K, n, S, C = ctx.shape
        return _tile(_tile(g, 2, S), 1, K)                                   # (P, K, n, S, C)


def _tile(x: torch.Tensor, dim: int, k: int) -> torch.Tensor:
    """x with a new dimension `dim` of k copies, contiguous. On CPU torch.stack copies whole
    rows, about 8 times faster than materialising an expand (`.expand(...).contiguous()`)
    when the rows are short (8 to 16 channels)."""
    return x.unsqueeze(dim) if k == 1 else torch.stack([x] * k, dim)


def _channel_scale(W: torch.Tensor, C: int, like: torch.Tensor) -> torch.Tensor:
    """Op weights W (K, M) as a per-channel scale ((k, m, c) order: K*M*C,), for a BatchNorm of
    `like`: in like's dtype, but fp32 for bf16/fp16 inputs (BatchNorm's mixed-type form, which
    keeps the weights and their gradients fp32, as the running statistics are)."""
    dtype = torch.float32 if like.dtype in (torch.bfloat16, torch.float16) else like.dtype
    W = W.to(dtype)
    return W.unsqueeze(-1).expand(*W.shape, C).contiguous().view(-1)          # (K*M*C,)
