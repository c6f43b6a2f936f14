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

The parts: `fast_plan` (op positions by name, the stages of a cell, what the fast path
supports), `fast_kernels` (the kernels and the switches that choose among them), and this
module (the network's forward pass).

Cells the fast path does not know (other primitives or modules, affine BatchNorms, mixed
BatchNorm eps/momentum) run the reference forward instead. That fallback is visible:
`fallback_reason` says why, `last_path` ("fast" or "reference"), `fast_path_calls` and
`reference_fallbacks` record what each forward pass took, and the first fallback of a
network warns (RuntimeWarning).
"""
from __future__ import annotations

import warnings
from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import fast_kernels
from .fast_kernels import (_PAD_DIL, _channel_scale, _cpu_kernels, _dw_cm, _Mixer, _tile, dwconv, dwconv_cl,
                           pools, pwconv)
from .fast_plan import (AVG, CONV_KINDS, DIL3, DIL5, MAX, SEP3, SEP5, SEP_KINDS, SKIP, _BNGroup, _CellPlan, _Stage,
                        _unsupported)
from .ops import PRIMITIVES, FactorizedReduce, ReLUConvBN, channel_shuffle
from .supernet import SearchNetwork, edge_softmax


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
        the op weights W (K, M) into `mix`: inside the BatchNorm (`fast_kernels.FOLD_WEIGHTS`) or by `mix`."""
        if fast_kernels.FOLD_WEIGHTS:
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
        if not (_cpu_kernels(x) and isinstance(mod, ReLUConvBN) and fast_kernels.PREPROCESS_MATMUL
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
        if _cpu_kernels(X) and H * Wd >= fast_kernels.CL_MIN_PIXELS and fast_kernels.CHANNELS_LAST:
            return self._stage_cl(plan, st, X, W, K, K2, P1, P2, FR, pending)
        R = F.relu(X)                                                        # shared ReLU
        if _cpu_kernels(X) and H * Wd <= fast_kernels.DENSE_MAX_PIXELS and fast_kernels.CHANNEL_MAJOR:
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
        `fast_kernels.CL_PARTS` (depthwise convs by `dwconv_cl`, pointwise ones as grouped 1x1 conv2d, one
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
        if s == 2 and fast_kernels.SHARED_EVEN:
            # the dilated stride-2 convs (and FactorizedReduce) read only the even pixels: slice
            # them once per stage, before repeating (one small slice gradient, not one per conv)
            Re = R[:, :, ::2, ::2]                                           # (B, SC, h, w) view
            Rre = torch.cat([Re] * n, 1) if n > 1 else Re.contiguous(memory_format=cl)   # (B, MC, h, w) CL
        pm = lambda t: t.permute(0, 2, 3, 1)                                 # CL (B, c, h, w) -> (B, h, w, c) view
        mix = None
        P1s, P2s = P1[st.i], P2[st.i]                                        # (4MC, C, 1, 1), (2MC, C, 1, 1)
        for part in fast_kernels.CL_PARTS:                                                # indices into CONV_KINDS
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
            if fast_kernels.FOLD_WEIGHTS and nsep == 0:                                  # dil convs: their only BatchNorm
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
