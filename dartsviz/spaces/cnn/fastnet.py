"""FastSearchNetwork: the supernet of supernet.py, computed edge-batched.

The same modules, parameters, buffers and state_dict keys as `SearchNetwork` (it is a
subclass that builds the very same cells); only the forward pass differs. It computes
what the reference computes, in fewer and larger kernels:

- the edges leaving the same source node run together ("a stage"); the two cell inputs
  form one stage (their channels side by side), each intermediate node another;
- one ReLU per stage, shared by every conv op of every edge of the stage;
- the depthwise convolutions of all edges of a stage run as one depthwise convolution
  per kernel type, the pointwise ones as one grouped 1x1 convolution, and the
  non-affine BatchNorms after them as one BatchNorm over the stacked channels
  (non-affine BatchNorm is per channel, so stacking channels is exact);
- on CPU each of those kernels takes the formulation that measured fastest for its
  size (see `dwconv`, `pwconv`, `_convs_small` and bench/README.md): small images
  (up to 8x8) channel-major, depthwise convs as one batched matmul each, pointwise
  convs as batched matmuls; kernel taps that only see padding dropped; dilated
  stride-2 convs on the even pixels; dilated stride-1 convs from 16x16 on the four
  pixel-parity sub-images; undilated ones channels_last. Larger images (over 8x8, e.g.
  CIFAR's 32x32 and 16x16 stages) run a whole stage channels_last (`_stage_cl`), one conv
  kind at a time (`CL_PARTS`: its depthwise convs by `dwconv_cl`, its pointwise ones as one
  grouped 1x1 conv2d, one BatchNorm), pooling on the channels_last tensors, and the
  op-weighted sums on their (B, h, w, channels) views, as matmuls with a matrix of op weights
  while a stage's n*C output channels are few (`_Mixer`), except that each conv op's (and
  FactorizedReduce's) weight scales its last BatchNorm inside the BatchNorm kernel, as a
  per-channel affine weight, so that its share is a plain sum (`FOLD_WEIGHTS`); a stride-2 stage slices the even
  pixels its dilated convs and FactorizedReduce read once (`SHARED_EVEN`). Elsewhere plain conv2d;
- max and avg pooling run once per stage (max pooling channels_last on CPU, small
  average pooling as one matmul); in training mode their BatchNorm (batch
  statistics) gives the same tensor on every edge, so it runs once too;
- `none` is skipped (its output and its gradients are exactly zero);
- the weighted sum over ops and the sum over a node's incoming edges are a few
  broadcast multiply-adds per stage (matmuls in `_stage_cl`, see above).

Running statistics are updated as the reference does (momentum, unbiased variance,
`num_batches_tracked`), from the batch statistics the BatchNorm kernels return, in
a handful of `_foreach` calls at the end of the forward pass (not inside
`frozen_bn_stats()`). Weights and buffers are read from the modules at forward time,
so substituted parameters (`bilevel.substituted`, `torch.func.functional_call`) and
double backward (exact Hessian-vector products) work unchanged.

PC-DARTS' options run on the fast path too: with partial channels K every stage's ops run
on the first C/K channels of each source (all of the above on C/K channels), the other
channels of each source are summed per destination (2x2 max-pooled at stride 2; weighted
by the edges' softmax(beta) under edge normalisation) and each node is channel-shuffled
once it is complete (the shuffle is linear, so shuffling the sum of a node's edges is
shuffling each edge); edge normalisation scales each edge's op weights by its
softmax(beta) (exact: the edge's output is linear in its op weights).

Cells the fast path does not know (other primitives or modules, affine BatchNorms, mixed
BatchNorm eps/momentum) run the reference forward instead. That fallback is visible:
`fallback_reason` says why, `last_path` ("fast" or "reference"), `fast_path_calls` and
`reference_fallbacks` record what each forward pass took, and the first fallback of a
network warns (RuntimeWarning).
"""
from __future__ import annotations

import warnings
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .ops import PRIMITIVES, DilConv, FactorizedReduce, Identity, PoolBN, ReLUConvBN, SepConv, Zero, channel_shuffle
from .supernet import SearchCell, SearchNetwork, edge_softmax

NONE, MAX, AVG, SKIP, SEP3, SEP5, DIL3, DIL5 = range(8)
CONV_KINDS = (SEP3, SEP5, DIL3, DIL5)
SEP_KINDS = (SEP3, SEP5)
POOL_KINDS = (MAX, AVG)
CONV_GEOMETRY = {SEP3: (3, 1), SEP5: (5, 1), DIL3: (3, 2), DIL5: (5, 2)}   # (kernel, dilation)


# -- kernels ----------------------------------------------------------------------
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


def _stages_of(nodes: int) -> List[Tuple[Tuple[int, ...], Tuple[int, ...]]]:
    """(sources, destinations) per stage: the two inputs together, then each intermediate node."""
    out = [((0, 1), tuple(range(2, 2 + nodes)))]
    for k in range(2, 1 + nodes):
        out.append(((k,), tuple(range(k + 1, 2 + nodes))))
    return out


class _BNGroup:
    """BatchNorm modules whose channels are stacked side by side, `C` channels each."""

    def __init__(self, mods: List[nn.BatchNorm2d], C: int):
        self.mods = mods
        self.C = C


class _Stage:
    def __init__(self, cell: SearchCell, srcs, dsts, offset: int, C: int):
        self.cell = cell
        self.srcs, self.dsts = srcs, dsts
        self.S, self.n = len(srcs), len(dsts)
        self.M = self.S * self.n
        self.offset = offset
        self.stride = 2 if cell.reduction and srcs[0] < 2 else 1
        # edge m = j * S + s joins srcs[s] to dsts[j]
        self.edges = [cell.edges.index((srcs[s], dsts[j])) for j in range(self.n) for s in range(self.S)]
        ops = [cell.mixed[e].ops for e in self.edges]
        self.e = slice(offset, offset + self.M)                 # columns of the stage-ordered weights
        bn = lambda kinds, get: _BNGroup([get(o[k]) for k in kinds for o in ops], C)
        self.bn1 = bn(CONV_KINDS, lambda op: _block1(op).bn)
        self.bn2 = bn(SEP_KINDS, lambda op: op.block2.bn)
        self._parts: Dict[tuple, _BNGroup] = {}
        self.pool_bn = bn(POOL_KINDS, lambda op: op.bn)         # eval: one per edge, (k, j, s)
        # training: the pooled tensor of source s and kind k feeds edge (j, s) for every j
        self.pool_train_chunks = [k * self.S + (m % self.S) for k in range(2) for m in range(self.M)]
        if self.stride == 2:
            self.fr_bn = bn((SKIP,), lambda op: op.bn)
        else:
            self.fr_bn = None

    def bn1_part(self, i0: int, i1: int) -> _BNGroup:
        """The first BatchNorms of conv kinds CONV_KINDS[i0:i1] (kind-major, edge m = j*S + s)."""
        return self._part(self.bn1, i0, i1)

    def bn2_part(self, i0: int, i1: int) -> _BNGroup:
        """The second BatchNorms of sep kinds SEP_KINDS[i0:i1]."""
        return self._part(self.bn2, i0, i1)

    def _part(self, group: _BNGroup, i0: int, i1: int) -> _BNGroup:
        key = (id(group), i0, i1)
        hit = self._parts.get(key)
        if hit is None:
            if (i0, i1) == (0, len(group.mods) // self.M):
                hit = group
            else:
                hit = _BNGroup(group.mods[i0 * self.M:i1 * self.M], group.C)
            self._parts[key] = hit
        return hit


class _CellPlan:
    """Static layout of one cell: its stages and the module lists in stage order."""

    def __init__(self, cell: SearchCell):
        self.cell = cell
        self.C = C = cell.preprocess1.conv.out_channels
        self.K = cell.partial_channels                          # PC-DARTS' K (1: DARTS)
        self.Cop = Cop = C // self.K                            # the channels the ops see
        self.reduction = cell.reduction
        self.stages: List[_Stage] = []
        order: List[int] = []
        for srcs, dsts in _stages_of(cell.nodes):
            st = _Stage(cell, srcs, dsts, len(order), Cop)
            st.i = len(self.stages)                              # index into per-stage weight splits
            self.stages.append(st)
            order += st.edges
        self.perm = order
        ops = [cell.mixed[e].ops for e in order]
        # per-edge kernels in stage order (one stacked tensor per kind and cell)
        self.dw1 = {k: [_block1(o[k]).dw for o in ops] for k in CONV_KINDS}
        self.dw2 = {k: [o[k].block2.dw for o in ops] for k in SEP_KINDS}
        # pointwise kernels in (stage, kind, edge) order, so each stage's block is contiguous
        pw1, pw2 = [], []
        for st in self.stages:
            sops = [cell.mixed[e].ops for e in st.edges]
            pw1 += [_block1(o[k]).pw for k in CONV_KINDS for o in sops]
            pw2 += [o[k].block2.pw for k in SEP_KINDS for o in sops]
        self.pw1, self.pw2 = pw1, pw2
        self.fr = []
        for st in self.stages:
            if st.stride == 2:
                for e in st.edges:
                    fr = cell.mixed[e].ops[SKIP]
                    self.fr += [fr.conv_1, fr.conv_2]
        self.all_bn = [m for m in cell.mixed.modules() if isinstance(m, nn.BatchNorm2d)]


def _block1(op):
    """The first (strided) DilConv block of a conv op: SepConv.block1, or the DilConv itself."""
    return op.block1 if isinstance(op, SepConv) else op


def _unsupported(cell: SearchCell) -> Optional[str]:
    """Why the fast path cannot compute `cell`, or None: it knows the eight DARTS primitives
    as ops.OPS builds them, with non-affine BatchNorms that track running statistics."""
    for (src, dst), mixed in zip(cell.edges, cell.mixed):
        where = f"edge {src}->{dst}"
        if list(mixed.primitives) != list(PRIMITIVES):
            return f"{where}: primitives {mixed.primitives}, not the eight DARTS ones"
        ops, stride = mixed.ops, 2 if cell.reduction and src < 2 else 1
        types = (Zero, PoolBN, PoolBN, Identity if stride == 1 else FactorizedReduce,
                 SepConv, SepConv, DilConv, DilConv)
        for name, op, t in zip(PRIMITIVES, ops, types):
            if type(op) is not t:
                return f"{where}: {name} is a {type(op).__name__}, not a {t.__name__}"
        for k, cls in ((MAX, nn.MaxPool2d), (AVG, nn.AvgPool2d)):
            p = ops[k].pool
            if (type(p) is not cls or (p.kernel_size, p.stride, p.padding) != (3, stride, 1)
                    or p.ceil_mode or getattr(p, "count_include_pad", False)):
                return f"{where}: {PRIMITIVES[k]} is {p}, not 3x3 stride {stride} pad 1"
        for k, (ks, dil) in CONV_GEOMETRY.items():
            blocks = (ops[k].block1, ops[k].block2) if k in SEP_KINDS else (ops[k],)
            for b, st in zip(blocks, (stride, 1)):
                want = ((ks, ks), (st, st), (dil * (ks - 1) // 2,) * 2, (dil, dil))
                if (b.dw.kernel_size, b.dw.stride, b.dw.padding, b.dw.dilation) != want:
                    return f"{where}: {PRIMITIVES[k]} has depthwise conv {b.dw}"
        for m in mixed.modules():
            if isinstance(m, nn.BatchNorm2d) and (m.affine or not m.track_running_stats):
                return f"{where}: {m} is affine or does not track running statistics"
    return None


def _cat(tensors: List[torch.Tensor]) -> torch.Tensor:
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors, 0)


class FastSearchNetwork(SearchNetwork):
    """`SearchNetwork` with an edge-batched forward pass; a drop-in replacement.

    Same constructor, parameters, buffers, state_dict keys, `arch_parameters()`,
    `weight_parameters()`, `probs()` and `genotype()`; `forward` computes the same
    function (equal to rounding) and updates running statistics the same way.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        reasons = [f"cell {i}: {r}" for i, r in enumerate(map(_unsupported, self.cells)) if r]
        self.fallback_reason: Optional[str] = reasons[0] if reasons else None   # None: fast path
        self._plans = None if reasons else [_CellPlan(c) for c in self.cells]
        bns = [m for p in (self._plans or []) for m in p.all_bn]
        self._bn_eps = bns[0].eps if bns else 1e-5
        self._bn_momentum = bns[0].momentum if bns else 0.1
        if any(m.eps != self._bn_eps or m.momentum != self._bn_momentum or m.momentum is None for m in bns):
            self._plans = None
            self.fallback_reason = "the BatchNorms differ in eps or momentum, or use momentum=None"
        self.last_path: Optional[str] = None      # "fast" or "reference": what the last forward took
        self.fast_path_calls = 0                  # forward passes that took the edge-batched path
        self.reference_fallbacks = 0              # forward passes that fell back to SearchNetwork's
        self._perm_cache: Dict[torch.device, torch.Tensor] = {}

    # -- helpers ---------------------------------------------------------------
    def _perm(self, device) -> torch.Tensor:
        t = self._perm_cache.get(device)
        if t is None:
            t = torch.tensor(self._plans[0].perm, dtype=torch.long, device=device)
            self._perm_cache[device] = t
        return t

    def _bn(self, x, group: _BNGroup, pending, chunks=None, scale=None):
        """Non-affine BatchNorm over stacked channels; training stats are queued in `pending`.
        `scale` (channels,): multiply each normalised channel by it, inside the BatchNorm kernel
        (batch-major x only; the statistics are those of the unscaled BatchNorm)."""
        if self.training:
            n = x.numel() // x.shape[1]
            if scale is None and x.dim() == 3 and x.shape[0] == 1 and _cpu_kernels(x):
                # channel-major (1, channels, L): per-row LayerNorm is the same normalisation,
                # about twice as fast as BatchNorm on this layout on CPU
                out, mean, invstd = torch.native_layer_norm(x.view(x.shape[1], n), [n], None, None,
                                                            self._bn_eps)
                pending.append((mean.view(-1), invstd.view(-1), n, group, chunks))
                return out.view_as(x)
            out, mean, invstd = torch.native_batch_norm(x, scale, None, None, None, True,
                                                        self._bn_momentum, self._bn_eps)
            pending.append((mean, invstd, n, group, chunks))
            return out
        rm = _cat([m.running_mean for m in group.mods])
        rv = _cat([m.running_var for m in group.mods])
        return F.batch_norm(x, rm, rv, scale, None, False, 0.0, self._bn_eps)

    def _bn_mixed(self, mix: "_Mixer", x, group: _BNGroup, W, pending) -> None:
        """x's BatchNorm (channels_last, channels (k, j, s, c), one destination each) weighted by
        the op weights W (K, M) into `mix`: inside the BatchNorm (`FOLD_WEIGHTS`) or by `mix`."""
        if FOLD_WEIGHTS:
            z = self._bn(x, group, pending, scale=_channel_scale(W, mix.C, x))
            mix.add_scaled(z.permute(0, 2, 3, 1))                            # (B, h, w, channels)
        else:
            mix(self._bn(x, group, pending).permute(0, 2, 3, 1), W, True)

    @torch.no_grad()
    def _update_running_stats(self, pending) -> None:
        """running = (1 - momentum) running + momentum * batch statistic, as nn.BatchNorm2d does."""
        if not pending:
            return
        m, eps = self._bn_momentum, self._bn_eps
        dtype = pending[0][3].mods[0].running_mean.dtype          # statistics of bf16 passes too
        invstd = [p[1].to(dtype) for p in pending]
        var = torch._foreach_pow(invstd, -2.0)
        torch._foreach_sub_(var, eps)
        torch._foreach_mul_(var, [n / max(n - 1, 1) for _, _, n, _, _ in pending])
        rms, rvs, means, vars_ = [], [], [], []
        for (mean, _, _, group, chunks), v in zip(pending, var):
            mc = mean.to(dtype).view(-1, group.C).unbind(0)
            vc = v.view(-1, group.C).unbind(0)
            if chunks is None:
                means += mc
                vars_ += vc
            else:
                means += [mc[i] for i in chunks]
                vars_ += [vc[i] for i in chunks]
            for mod in group.mods:
                rms.append(mod.running_mean)
                rvs.append(mod.running_var)
        torch._foreach_lerp_(rms, means, m)
        torch._foreach_lerp_(rvs, vars_, m)
        # every BatchNorm this forward ran through a group in `pending`, once
        torch._foreach_add_([mod.num_batches_tracked for p in pending for mod in p[3].mods], 1)

    # -- forward -----------------------------------------------------------------
    def forward(self, x):
        if self._plans is None:
            self.last_path = "reference"
            self.reference_fallbacks += 1
            if self.reference_fallbacks == 1:
                warnings.warn(f"FastSearchNetwork runs the reference forward: {self.fallback_reason}",
                              RuntimeWarning)
            return super().forward(x)
        self.last_path = "fast"
        self.fast_path_calls += 1
        # x: (B, in_channels, H, W)
        perm = self._perm(self.alpha_normal.device)
        wn = self.edge_weights(self.alpha_normal).index_select(0, perm).t()       # (O, E), stage order
        wr = self.edge_weights(self.alpha_reduce).index_select(0, perm).t()       # (O, E)
        bn = br = None
        if self.edge_norm:                                                   # softmax(beta), stage order
            bn = edge_softmax(self.beta_normal, self.nodes).index_select(0, perm)     # (E,)
            br = edge_softmax(self.beta_reduce, self.nodes).index_select(0, perm)     # (E,)
            wn, wr = wn * bn, wr * br                                        # (O, E): beta scales every op
        pending: list = []
        s0 = s1 = self.stem(x)                                               # (B, 3C, H, W)
        for cell, plan in zip(self.cells, self._plans):
            wt, bt = (wr, br) if cell.reduction else (wn, bn)
            s0, s1 = s1, self._cell(plan, s0, s1, wt, pending, bt)
        if self.training and not self._stats_frozen:
            self._update_running_stats(pending)
        out = F.adaptive_avg_pool2d(s1, 1).flatten(1)                       # (B, C_final)
        return self.classifier(out)                                         # (B, num_classes)

    def _preprocess(self, mod, x, pending):
        """ReLUConvBN as ReLU, matmul, BatchNorm on CPU (the module itself elsewhere)."""
        if not (_cpu_kernels(x) and isinstance(mod, ReLUConvBN) and PREPROCESS_MATMUL
                and not mod.bn.affine and mod.conv.kernel_size == (1, 1) and mod.conv.stride == (1, 1)
                and mod.bn.eps == self._bn_eps and mod.bn.momentum == self._bn_momentum):
            return mod(x)
        y = pwconv(F.relu(x), mod.conv.weight, 1)                          # (B, C, H, W)
        return self._bn(y, _BNGroup([mod.bn], y.shape[1]), pending)

    def _cell(self, plan: _CellPlan, s0, s1, wt, pending, bt=None):
        """One cell; wt: (O, E) op weights and bt: (E,) softmax(beta) or None, stage order."""
        cell = plan.cell
        aux = None
        if wt.shape[0] > len(PRIMITIVES):                                    # DARTS-: the auxiliary skip's weight
            wt, aux = wt[:-1], wt[-1]                                        # (O, E), (E,)
            w1 = torch.cat([wt[:SKIP], (wt[SKIP] + aux).unsqueeze(0), wt[SKIP + 1:]])   # stride 1: identity
        t0 = self._preprocess(cell.preprocess0, s0, pending)                 # (B, C, H, W)
        t1 = self._preprocess(cell.preprocess1, s1, pending)                 # (B, C, H, W)
        # per-edge kernels stacked once per cell, split per stage (one SplitBackward each)
        sizes = [st.M * plan.Cop for st in plan.stages]
        K = {k: _cat([c.weight for c in mods]).split(sizes) for k, mods in plan.dw1.items()}   # (M*C, 1, k, k)
        K2 = {k: _cat([c.weight for c in mods]).split(sizes) for k, mods in plan.dw2.items()}
        P1 = _cat([c.weight for c in plan.pw1]).split([4 * n for n in sizes])   # (4*M*C, C, 1, 1) per stage
        P2 = _cat([c.weight for c in plan.pw2]).split([2 * n for n in sizes])   # (2*M*C, C, 1, 1) per stage
        FR = _cat([c.weight for c in plan.fr]) if plan.fr else None         # (2*M*C/2, C, 1, 1)
        acc = None
        nodes = []
        for st in plan.stages:
            if st.S == 2:
                X = torch.cat([t0, t1], 1)                                   # (B, 2C, H, W)
            elif plan.K == 1:
                X = acc[:, 0]                                                # node st.srcs[0]
            else:
                X = nodes[-1]                                                # node st.srcs[0], shuffled
            if plan.K > 1:
                X, bypass = self._split_partial(plan, st, X)                 # (B, S*C/K, H, W), (B, S, C-C/K, h, w)
            if aux is None:
                out = self._stage(plan, st, X, wt, K, K2, P1, P2, FR, pending)  # (B, n, C/K, h, w)
            elif st.stride == 1:                                             # aux = identity: one more skip weight
                out = self._stage(plan, st, X, w1, K, K2, P1, P2, FR, pending)
            else:
                out = self._stage(plan, st, X, wt, K, K2, P1, P2, FR, pending) + self._aux_skip(st, X, aux)
            if plan.K > 1:
                out = torch.cat([out, self._bypass_sum(st, bypass, bt)], 2)  # (B, n, C, h, w), unshuffled
            if acc is None:
                acc = out
            else:
                acc = acc[:, 1:] + out
            node = acc[:, 0]                                                 # node st.srcs[-1] + 1
            nodes.append(node if plan.K == 1 else channel_shuffle(node, plan.K))
        return torch.cat(nodes[-cell.multiplier:], dim=1)                   # (B, multiplier*C, h, w)

    @staticmethod
    def _aux_skip(st: _Stage, X, aux):
        """DARTS-' auxiliary skip of a stride-2 stage: per destination j, the sum over sources s
        of aux[edge] * (the edge's own FactorizedReduce of source s); X (B, S*C_op, H, W),
        aux (E,) in stage order; returns (B, n, C_op, h, w)."""
        B, _, H, W = X.shape
        xs = X.view(B, st.S, -1, H, W)                                       # (B, S, C_op, H, W)
        a = aux[st.e]                                                        # (M,), edge m = j * S + s
        mods = [st.cell.mixed[e].aux_skip for e in st.edges]
        return torch.stack([sum(a[j * st.S + k] * mods[j * st.S + k](xs[:, k]) for k in range(st.S))
                            for j in range(st.n)], 1)                        # (B, n, C_op, h, w)

    @staticmethod
    def _split_partial(plan, st: _Stage, X):
        """PC-DARTS: the first C/K channels of each source (what the ops see) and the rest
        (the bypass, 2x2 max-pooled at stride 2); X (B, S*C, H, W)."""
        B, _, H, W = X.shape
        Xs = X.view(B, st.S, plan.C, H, W)
        ops_in = Xs[:, :, :plan.Cop].reshape(B, st.S * plan.Cop, H, W)       # (B, S*C/K, H, W)
        bypass = Xs[:, :, plan.Cop:]                                          # (B, S, C-C/K, H, W)
        if st.stride == 2:
            bypass = F.max_pool2d(bypass.reshape(B, -1, H, W), 2, 2, ceil_mode=True)
            bypass = bypass.view(B, st.S, plan.C - plan.Cop, *bypass.shape[-2:])   # (B, S, C-C/K, h, w)
        return ops_in, bypass

    @staticmethod
    def _bypass_sum(st: _Stage, bypass, bt):
        """The bypass channels' share of each destination: the sum over the stage's sources,
        each weighted by its edge's softmax(beta) when bt is given; (B, n, C-C/K, h, w)."""
        if bt is None:
            total = bypass.sum(1, keepdim=True) if st.S > 1 else bypass          # (B, 1, C-C/K, h, w)
            return total.expand(-1, st.n, -1, -1, -1)
        b = bt[st.e].to(bypass.dtype).view(1, st.n, st.S, 1, 1, 1)               # edge m = j * S + s
        return (bypass.unsqueeze(1) * b).sum(2)                                  # (B, n, C-C/K, h, w)

    def _stage(self, plan, st: _Stage, X, wt, K, K2, P1, P2, FR, pending):
        """All edges of one stage: returns their sums per destination, (B, n, C, h, w)
        (C/K channels with partial channels)."""
        C, S, n, M, s = plan.Cop, st.S, st.n, st.M, st.stride
        B, _, H, Wd = X.shape
        MC = M * C
        W = wt[:, st.e]                                                      # (O, M) op weights
        if _cpu_kernels(X) and H * Wd >= CL_MIN_PIXELS and CHANNELS_LAST:
            return self._stage_cl(plan, st, X, W, K, K2, P1, P2, FR, pending)
        R = F.relu(X)                                                        # shared ReLU
        if _cpu_kernels(X) and H * Wd <= DENSE_MAX_PIXELS and CHANNEL_MAJOR:
            conv, h, w = self._convs_small(plan, st, R, W, K, K2, P1, P2, pending)
        else:
            conv, h, w = self._convs(plan, st, R, W, K, K2, P1, P2, pending)
        Xd = C * h * w
        # pooling: once per stage
        pp = pools(X, s)                                                     # (B, 2SC, h, w)
        if self.training:
            zp = self._bn(pp, st.pool_bn, pending, st.pool_train_chunks).view(B, 2, 1, S, Xd)
        else:
            ppr = pp.view(B, 2, 1, S * Xd).expand(B, 2, n, S * Xd).reshape(B, 2 * MC, h, w)
            zp = self._bn(ppr, st.pool_bn, pending).view(B, 2, n, S, Xd)
        out = (zp * W[MAX:AVG + 1].reshape(1, 2, n, S, 1)).sum(1)           # (B, n, S, Xd)
        # skip_connect: identity at stride 1, FactorizedReduce at stride 2
        if s == 1:
            out = out + X.reshape(B, 1, S, Xd) * W[SKIP].reshape(1, n, S, 1)
        else:
            if R.shape[-2] % 2 or R.shape[-1] % 2:
                shifted = F.pad(R, (0, 1, 0, 1))[:, :, 1::2, 1::2]
            else:
                shifted = R[:, :, 1::2, 1::2]
            T = torch.stack([R[:, :, ::2, ::2].reshape(B, S, C, h, w), shifted.reshape(B, S, C, h, w)], 2)
            T = T.unsqueeze(1).expand(B, n, S, 2, C, h, w).reshape(B, 2 * MC, h, w)
            fr = pwconv(T, FR, 2 * M)                                        # (B, MC, h, w)
            zfr = self._bn(fr, st.fr_bn, pending)
            out = out + zfr.reshape(B, n, S, Xd) * W[SKIP].reshape(1, n, S, 1)
        out = out.sum(2) if S > 1 else out.squeeze(2)
        return out.view(B, n, C, h, w) + conv

    def _stage_cl(self, plan, st: _Stage, X, W, K, K2, P1, P2, FR, pending):
        """`_stage` for larger images on CPU, channels_last throughout: the conv kinds in the parts of
        `CL_PARTS` (depthwise convs by `dwconv_cl`, pointwise ones as grouped 1x1 conv2d, one
        BatchNorm per part), pooling on channels_last tensors; the weighted sums on their
        (B, h, w, channels) views. Returns a (B, n, C, h, w) view."""
        C, S, n, M, s = plan.Cop, st.S, st.n, st.M, st.stride
        B, _, H, Wd = X.shape
        MC = M * C
        cl = torch.channels_last
        Xc = X.contiguous(memory_format=cl)                                 # (B, SC, H, W) CL
        R = F.relu(Xc)                                                       # shared ReLU, CL
        Rr = torch.cat([R] * n, 1) if n > 1 else R                           # (B, MC, H, W) CL, edge-major
        Re = Rre = None
        if s == 2 and SHARED_EVEN:
            # the dilated stride-2 convs (and FactorizedReduce) read only the even pixels: slice
            # them once per stage, before repeating (one small slice gradient, not one per conv)
            Re = R[:, :, ::2, ::2]                                           # (B, SC, h, w) view
            Rre = torch.cat([Re] * n, 1) if n > 1 else Re.contiguous(memory_format=cl)   # (B, MC, h, w) CL
        pm = lambda t: t.permute(0, 2, 3, 1)                                 # CL (B, c, h, w) -> (B, h, w, c) view
        mix = None
        P1s, P2s = P1[st.i], P2[st.i]                                        # (4MC, C, 1, 1), (2MC, C, 1, 1)
        for part in CL_PARTS:                                                # indices into CONV_KINDS
            i0, i1 = part[0], part[-1] + 1
            ys = [dwconv_cl(Rr, K[CONV_KINDS[i]][st.i], s, *_PAD_DIL[CONV_KINDS[i]]) if Re is None
                  or CONV_KINDS[i] in SEP_KINDS else                         # dilation 2, stride 2:
                  dwconv_cl(Rre, K[CONV_KINDS[i]][st.i], 1, _PAD_DIL[CONV_KINDS[i]][0] // 2, 1)   # undilated, even pixels
                  for i in part]
            y = torch.cat(ys, 1) if len(ys) > 1 else ys[0]                  # (B, len*MC, h, w) CL
            h, w = y.shape[-2:]
            if mix is None:
                mix = _Mixer(B * h * w, n, S, C)
            p1 = F.conv2d(y, P1s[i0 * MC:i1 * MC], None, 1, 0, 1, len(part) * M)   # (B, len*MC, h, w) CL
            nsep = sum(1 for i in part if CONV_KINDS[i] in SEP_KINDS)       # sep kinds come first
            if FOLD_WEIGHTS and nsep == 0:                                  # dil convs: their only BatchNorm
                self._bn_mixed(mix, p1, st.bn1_part(i0, i1), W[CONV_KINDS[i0]:CONV_KINDS[i1 - 1] + 1], pending)
                continue
            z1 = self._bn(p1, st.bn1_part(i0, i1), pending)
            # one split (one gradient buffer in backward; separate slices would each zero-fill one)
            zs = z1.split([MC] * nsep + ([(len(part) - nsep) * MC] if nsep < len(part) else []), 1)
            if nsep:
                bs = [dwconv_cl(F.relu(zs[j]), K2[CONV_KINDS[i0 + j]][st.i], 1, *_PAD_DIL[CONV_KINDS[i0 + j]])
                      for j in range(nsep)]                                  # (B, MC, h, w) CL each
                b = torch.cat(bs, 1) if nsep > 1 else bs[0]
                p2 = F.conv2d(b, P2s[i0 * MC:(i0 + nsep) * MC], None, 1, 0, 1, nsep * M)   # (B, nsep*MC, h, w) CL
                self._bn_mixed(mix, p2, st.bn2_part(i0, i0 + nsep), W[CONV_KINDS[i0]:CONV_KINDS[i0] + nsep],
                               pending)                                      # sep convs (k, j, s, c)
            if nsep < len(part):
                mix(pm(zs[-1]), W[CONV_KINDS[i0 + nsep]:CONV_KINDS[i1 - 1] + 1], True)   # dil convs
        # pooling: once per stage
        pp = pools(Xc, s, channels_last=True)                                # (B, 2SC, h, w) CL
        if self.training:                                                   # shared by the n destinations
            mix(pm(self._bn(pp, st.pool_bn, pending, st.pool_train_chunks)), W[MAX:AVG + 1], False)
        else:
            ppr = pm(pp).reshape(B, h, w, 2, 1, S * C).expand(B, h, w, 2, n, S * C)
            ppr = ppr.reshape(B, h, w, 2 * MC).permute(0, 3, 1, 2)          # (B, 2MC, h, w) CL
            mix(pm(self._bn(ppr, st.pool_bn, pending)), W[MAX:AVG + 1], True)
        # skip_connect: identity at stride 1, FactorizedReduce at stride 2
        if s == 1:
            mix(pm(Xc), W[SKIP:SKIP + 1], False)
        else:
            Rp = pm(R)                                                       # (B, H, W, SC)
            if H % 2 or Wd % 2:
                shifted = F.pad(Rp, (0, 0, 0, 1, 0, 1))[:, 1::2, 1::2]
            else:
                shifted = Rp[:, 1::2, 1::2]
            even = Rp[:, ::2, ::2] if Re is None else pm(Re)                # (B, h, w, SC)
            T = torch.stack([even.reshape(B, h, w, S, C), shifted.reshape(B, h, w, S, C)], 4)
            T = _tile(T, 3, n).view(B, h, w, 2 * MC)                          # groups (j, s, parity)
            fr = F.conv2d(T.permute(0, 3, 1, 2), FR, None, 1, 0, 1, 2 * M)   # (B, MC, h, w) CL
            self._bn_mixed(mix, fr, st.fr_bn, W[SKIP:SKIP + 1], pending)
        return mix.out.view(B, h, w, n, C).permute(0, 3, 4, 1, 2)            # (B, n, C, h, w) view

    def _convs(self, plan, st: _Stage, R, W, K, K2, P1, P2, pending):
        """The four conv ops of every edge, batch-major (B, channels, H, W) tensors."""
        C, S, n, M, s = plan.Cop, st.S, st.n, st.M, st.stride
        B, MC = R.shape[0], M * plan.Cop
        Rr = R.repeat(1, n, 1, 1) if n > 1 else R                            # (B, M*C, H, W), edge-major
        a3 = dwconv(Rr, K[SEP3][st.i], s, 1, 1)
        a5 = dwconv(Rr, K[SEP5][st.i], s, 2, 1)
        d3 = dwconv(Rr, K[DIL3][st.i], s, 2, 2)
        d5 = dwconv(Rr, K[DIL5][st.i], s, 4, 2)
        y = torch.cat([a3, a5, d3, d5], 1)                                   # (B, 4MC, h, w)
        h, w = y.shape[-2:]
        p1 = pwconv(y, P1[st.i], 4 * M)
        z1 = self._bn(p1, st.bn1, pending)                                   # (B, 4MC, h, w)
        z1s, z1d = z1.split(2 * MC, 1)                                       # sep | dil parts
        r3, r5 = F.relu(z1s).split(MC, 1)
        b3 = dwconv(r3, K2[SEP3][st.i], 1, 1, 1)
        b5 = dwconv(r5, K2[SEP5][st.i], 1, 2, 1)
        p2 = pwconv(torch.cat([b3, b5], 1), P2[st.i], 2 * M)
        z2 = self._bn(p2, st.bn2, pending)                                   # (B, 2MC, h, w)
        Xd = C * h * w
        out = (z2.view(B, 2, n, S, Xd) * W[SEP3:SEP5 + 1].reshape(1, 2, n, S, 1)).sum(1)
        out = out + (z1d.view(B, 2, n, S, Xd) * W[DIL3:DIL5 + 1].reshape(1, 2, n, S, 1)).sum(1)
        out = out.sum(2) if S > 1 else out.squeeze(2)
        return out.view(B, n, C, h, w), h, w

    def _convs_small(self, plan, st: _Stage, R, W, K, K2, P1, P2, pending):
        """`_convs` for small images on CPU, channel-major: (channels, B, H*W) tensors throughout,
        depthwise convs as batched matmuls, pointwise convs as batched matmuls, BatchNorm over
        (1, channels, B*H*W) (the same per-channel statistics), one layout change at the end."""
        C, S, n, M, s = plan.Cop, st.S, st.n, st.M, st.stride
        B, SC, H, Wd = R.shape
        MC = M * C
        Rg = R.reshape(B, SC, H * Wd).transpose(0, 1)                        # (SC, B, HW)
        Rr = Rg.repeat(n, 1, 1) if n > 1 else Rg.contiguous()                # (MC, B, HW), edge-major
        a3, h, w = _dw_cm(Rr, K[SEP3][st.i], H, Wd, s, 1, 1)
        a5, _, _ = _dw_cm(Rr, K[SEP5][st.i], H, Wd, s, 2, 1)
        d3, _, _ = _dw_cm(Rr, K[DIL3][st.i], H, Wd, s, 2, 2)
        d5, _, _ = _dw_cm(Rr, K[DIL5][st.i], H, Wd, s, 4, 2)
        L = B * h * w
        y = torch.cat([a3, a5, d3, d5], 0).view(4 * M, C, L)               # (4M, C, B*hw)
        p1 = torch.bmm(P1[st.i].view(4 * M, C, C), y)       # (4M, C, B*hw)
        z1 = self._bn(p1.view(1, 4 * MC, L), st.bn1, pending).view(4 * MC, B, h * w)
        z1s, z1d = z1.split(2 * MC, 0)                                       # sep | dil parts
        r3, r5 = F.relu(z1s).split(MC, 0)
        b3, _, _ = _dw_cm(r3, K2[SEP3][st.i], h, w, 1, 1, 1)
        b5, _, _ = _dw_cm(r5, K2[SEP5][st.i], h, w, 1, 2, 1)
        p2 = torch.bmm(P2[st.i].view(2 * M, C, C), torch.cat([b3, b5], 0).view(2 * M, C, L))
        z2 = self._bn(p2.view(1, 2 * MC, L), st.bn2, pending)               # (1, 2MC, B*hw)
        out = (z2.view(2, n, S, C * L) * W[SEP3:SEP5 + 1].reshape(2, n, S, 1)).sum(0)
        out = out + (z1d.view(2, n, S, C * L) * W[DIL3:DIL5 + 1].reshape(2, n, S, 1)).sum(0)
        out = out.sum(1) if S > 1 else out.squeeze(1)                       # (n, C*B*hw)
        return out.view(n, C, B, h, w).permute(2, 0, 1, 3, 4), h, w         # (B, n, C, h, w) view
