"""FastSearchNetwork: the supernet of supernet.py, computed edge-batched.

The same modules, parameters, buffers and state_dict keys as `SearchNetwork` (it is a
subclass that builds the very same cells); only the forward pass differs. It computes
what the reference computes, in fewer and larger kernels:

- the edges leaving the same source node run together ("a stage"); the two cell inputs
  form one stage (their channels side by side), each intermediate node another;
- one ReLU per stage, shared by every conv op of every edge of the stage;
- the depthwise convolutions of all edges of a stage run as one grouped convolution
  per kernel type, the pointwise ones as one grouped 1x1 convolution, and the
  non-affine BatchNorms after them as one BatchNorm over the stacked channels
  (non-affine BatchNorm is per channel, so stacking channels is exact);
- max and avg pooling run once per stage; in training mode their BatchNorm (batch
  statistics) gives the same tensor on every edge, so it runs once too;
- `none` is skipped (its output and its gradients are exactly zero);
- the weighted sum over ops and the sum over a node's incoming edges are a few
  broadcast multiply-adds per stage.

Running statistics are updated as the reference does (momentum, unbiased variance,
`num_batches_tracked`), from the batch statistics the BatchNorm kernels return, in
a handful of `_foreach` calls at the end of the forward pass. Weights and buffers are
read from the modules at forward time, so `torch.func.functional_call` (bilevel.py)
and double backward (exact Hessian-vector products) work unchanged.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .ops import PRIMITIVES
from .supernet import SearchCell, SearchNetwork

NONE, MAX, AVG, SKIP, SEP3, SEP5, DIL3, DIL5 = range(8)
CONV_KINDS = (SEP3, SEP5, DIL3, DIL5)
SEP_KINDS = (SEP3, SEP5)
POOL_KINDS = (MAX, AVG)


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
        self.srcs, self.dsts = srcs, dsts
        self.S, self.n = len(srcs), len(dsts)
        self.M = self.S * self.n
        self.offset = offset
        self.stride = 2 if cell.reduction and srcs[0] < 2 else 1
        # edge m = j * S + s joins srcs[s] to dsts[j]
        self.edges = [cell.edges.index((srcs[s], dsts[j])) for j in range(self.n) for s in range(self.S)]
        ops = [cell.mixed[e].ops for e in self.edges]
        self.e = slice(offset, offset + self.M)                 # columns of the stage-ordered weights
        self.ch = slice(offset * C, (offset + self.M) * C)       # rows of per-edge stacked kernels
        bn = lambda kinds, get: _BNGroup([get(o[k], k) for k in kinds for o in ops], C)
        self.bn1 = bn(CONV_KINDS, lambda op, k: op.op[0].op[3] if k in SEP_KINDS else op.op[3])
        self.bn2 = bn(SEP_KINDS, lambda op, k: op.op[1].op[3])
        self.pool_bn = bn(POOL_KINDS, lambda op, k: op[1])      # eval: one per edge, (k, j, s)
        # training: the pooled tensor of source s and kind k feeds edge (j, s) for every j
        self.pool_train_chunks = [k * self.S + (m % self.S) for k in range(2) for m in range(self.M)]
        if self.stride == 2:
            self.fr_bn = bn((SKIP,), lambda op, k: op.bn)
        else:
            self.fr_bn = None


class _CellPlan:
    """Static layout of one cell: its stages and the module lists in stage order."""

    def __init__(self, cell: SearchCell):
        self.cell = cell
        self.C = C = cell.preprocess1.op[1].out_channels
        self.reduction = cell.reduction
        self.stages: List[_Stage] = []
        order: List[int] = []
        for srcs, dsts in _stages_of(cell.nodes):
            st = _Stage(cell, srcs, dsts, len(order), C)
            self.stages.append(st)
            order += st.edges
        self.perm = order
        ops = [cell.mixed[e].ops for e in order]
        # per-edge kernels in stage order (one stacked tensor per kind and cell)
        self.dw1 = {k: [o[k].op[0].op[1] for o in ops] for k in SEP_KINDS}
        self.dw1.update({k: [o[k].op[1] for o in ops] for k in (DIL3, DIL5)})
        self.dw2 = {k: [o[k].op[1].op[1] for o in ops] for k in SEP_KINDS}
        # pointwise kernels in (stage, kind, edge) order, so each stage's block is contiguous
        pw1, pw2 = [], []
        for st in self.stages:
            sops = [cell.mixed[e].ops for e in st.edges]
            pw1 += [o[k].op[0].op[2] if k in SEP_KINDS else o[k].op[2] for k in CONV_KINDS for o in sops]
            pw2 += [o[k].op[1].op[2] for k in SEP_KINDS for o in sops]
        self.pw1, self.pw2 = pw1, pw2
        self.fr = []
        for st in self.stages:
            if st.stride == 2:
                for e in st.edges:
                    fr = cell.mixed[e].ops[SKIP]
                    self.fr += [fr.conv_1, fr.conv_2]
        self.all_bn = [m for m in cell.mixed.modules() if isinstance(m, nn.BatchNorm2d)]


def _is_standard(cell: SearchCell) -> bool:
    """The fast path knows the eight DARTS primitives with their usual modules."""
    for mixed in cell.mixed:
        if list(mixed.primitives) != list(PRIMITIVES):
            return False
    return True


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
        self._plans = [_CellPlan(c) for c in self.cells] if all(_is_standard(c) for c in self.cells) else None
        bns = [m for p in (self._plans or []) for m in p.all_bn]
        self._bn_eps = bns[0].eps if bns else 1e-5
        self._bn_momentum = bns[0].momentum if bns else 0.1
        if any(m.eps != self._bn_eps or m.momentum != self._bn_momentum or m.momentum is None for m in bns):
            self._plans = None
        self._perm_cache: Dict[torch.device, torch.Tensor] = {}

    # -- helpers ---------------------------------------------------------------
    def _perm(self, device) -> torch.Tensor:
        t = self._perm_cache.get(device)
        if t is None:
            t = torch.tensor(self._plans[0].perm, dtype=torch.long, device=device)
            self._perm_cache[device] = t
        return t

    def _bn(self, x, group: _BNGroup, pending, chunks=None):
        """Non-affine BatchNorm over stacked channels; training stats are queued in `pending`."""
        if self.training:
            out, mean, invstd = torch.native_batch_norm(x, None, None, None, None, True,
                                                        self._bn_momentum, self._bn_eps)
            n = x.numel() // x.shape[1]
            pending.append((mean, invstd, n, group, chunks))
            return out
        rm = _cat([m.running_mean for m in group.mods])
        rv = _cat([m.running_var for m in group.mods])
        return F.batch_norm(x, rm, rv, None, None, False, 0.0, self._bn_eps)

    @torch.no_grad()
    def _update_running_stats(self, pending) -> None:
        """running = (1 - momentum) running + momentum * batch statistic, as nn.BatchNorm2d does."""
        if not pending:
            return
        m, eps = self._bn_momentum, self._bn_eps
        invstd = [p[1] for p in pending]
        var = torch._foreach_pow(invstd, -2.0)
        torch._foreach_sub_(var, eps)
        torch._foreach_mul_(var, [n / max(n - 1, 1) for _, _, n, _, _ in pending])
        rms, rvs, means, vars_ = [], [], [], []
        for (mean, _, _, group, chunks), v in zip(pending, var):
            mc = mean.split(group.C)
            vc = v.split(group.C)
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

    # -- forward -----------------------------------------------------------------
    def forward(self, x):
        if self._plans is None:
            return super().forward(x)
        # x: (B, in_channels, H, W)
        perm = self._perm(self.alpha_normal.device)
        wn = F.softmax(self.alpha_normal, dim=-1).index_select(0, perm).t()   # (O, E), stage order
        wr = F.softmax(self.alpha_reduce, dim=-1).index_select(0, perm).t()   # (O, E)
        pending: list = []
        s0 = s1 = self.stem(x)                                               # (B, 3C, H, W)
        for cell, plan in zip(self.cells, self._plans):
            s0, s1 = s1, self._cell(plan, s0, s1, wr if cell.reduction else wn, pending)
        if self.training:
            self._update_running_stats(pending)
            torch._foreach_add_([m.num_batches_tracked for p in self._plans for m in p.all_bn], 1)
        out = F.adaptive_avg_pool2d(s1, 1).flatten(1)                       # (B, C_final)
        return self.classifier(out)                                         # (B, num_classes)

    def _cell(self, plan: _CellPlan, s0, s1, wt, pending):
        cell = plan.cell
        t0, t1 = cell.preprocess0(s0), cell.preprocess1(s1)                  # (B, C, H, W) each
        K = {k: _cat([c.weight for c in mods]) for k, mods in plan.dw1.items()}   # (E*C, 1, k, k)
        K2 = {k: _cat([c.weight for c in mods]) for k, mods in plan.dw2.items()}
        P1 = _cat([c.weight for c in plan.pw1])                             # (4*E*C, C, 1, 1)
        P2 = _cat([c.weight for c in plan.pw2])                             # (2*E*C, C, 1, 1)
        FR = _cat([c.weight for c in plan.fr]) if plan.fr else None         # (2*M*C/2, C, 1, 1)
        acc = None
        nodes = []
        for st in plan.stages:
            if st.S == 2:
                X = torch.cat([t0, t1], 1)                                   # (B, 2C, H, W)
            else:
                X = acc[:, 0]                                                # node st.srcs[0]
            out = self._stage(plan, st, X, wt, K, K2, P1, P2, FR, pending)  # (B, n, C, h, w)
            if acc is None:
                acc = out
            else:
                acc = acc[:, 1:] + out
            nodes.append(acc[:, 0])                                          # node st.srcs[-1] + 1
        return torch.cat(nodes[-cell.multiplier:], dim=1)                   # (B, multiplier*C, h, w)

    def _stage(self, plan, st: _Stage, X, wt, K, K2, P1, P2, FR, pending):
        C, S, n, M, s = plan.C, st.S, st.n, st.M, st.stride
        B = X.shape[0]
        MC = M * C
        R = F.relu(X)                                                        # shared ReLU
        Rr = R.repeat(1, n, 1, 1) if n > 1 else R                            # (B, M*C, H, W), edge-major
        ch = st.ch
        a3 = F.conv2d(Rr, K[SEP3][ch], None, s, 1, 1, MC)
        a5 = F.conv2d(Rr, K[SEP5][ch], None, s, 2, 1, MC)
        d3 = F.conv2d(Rr, K[DIL3][ch], None, s, 2, 2, MC)
        d5 = F.conv2d(Rr, K[DIL5][ch], None, s, 4, 2, MC)
        y = torch.cat([a3, a5, d3, d5], 1)                                   # (B, 4MC, h, w)
        h, w = y.shape[-2:]
        o = st.offset * C
        p1 = F.conv2d(y, P1[4 * o:4 * o + 4 * MC], None, 1, 0, 1, 4 * M)
        z1 = self._bn(p1, st.bn1, pending)                                   # (B, 4MC, h, w)
        r2 = F.relu(z1[:, :2 * MC])
        b3 = F.conv2d(r2[:, :MC], K2[SEP3][ch], None, 1, 1, 1, MC)
        b5 = F.conv2d(r2[:, MC:], K2[SEP5][ch], None, 1, 2, 1, MC)
        p2 = F.conv2d(torch.cat([b3, b5], 1), P2[2 * o:2 * o + 2 * MC], None, 1, 0, 1, 2 * M)
        z2 = self._bn(p2, st.bn2, pending)                                   # (B, 2MC, h, w)
        Xd = C * h * w
        W = wt[:, st.e]                                                      # (O, M)
        out = (z2.view(B, 2, n, S, Xd) * W[SEP3:SEP5 + 1].reshape(1, 2, n, S, 1)).sum(1)
        out = out + (z1[:, 2 * MC:].view(B, 2, n, S, Xd) * W[DIL3:DIL5 + 1].reshape(1, 2, n, S, 1)).sum(1)
        # pooling: once per stage
        pm = F.max_pool2d(X, 3, s, 1)
        pa = F.avg_pool2d(X, 3, s, 1, count_include_pad=False)
        pp = torch.cat([pm, pa], 1)                                          # (B, 2SC, h, w)
        if self.training:
            zp = self._bn(pp, st.pool_bn, pending, st.pool_train_chunks).view(B, 2, 1, S, Xd)
        else:
            ppr = pp.view(B, 2, 1, S * Xd).expand(B, 2, n, S * Xd).reshape(B, 2 * MC, h, w)
            zp = self._bn(ppr, st.pool_bn, pending).view(B, 2, n, S, Xd)
        out = out + (zp * W[MAX:AVG + 1].reshape(1, 2, n, S, 1)).sum(1)
        # skip_connect: identity at stride 1, FactorizedReduce at stride 2
        if s == 1:
            out = out + X.view(B, 1, S, Xd) * W[SKIP].reshape(1, n, S, 1)
        else:
            if R.shape[-2] % 2 or R.shape[-1] % 2:
                shifted = F.pad(R, (0, 1, 0, 1))[:, :, 1::2, 1::2]
            else:
                shifted = R[:, :, 1::2, 1::2]
            T = torch.stack([R[:, :, ::2, ::2].reshape(B, S, C, h, w), shifted.reshape(B, S, C, h, w)], 2)
            T = T.unsqueeze(1).expand(B, n, S, 2, C, h, w).reshape(B, 2 * MC, h, w)
            fr = F.conv2d(T, FR, None, 1, 0, 1, 2 * M)                      # (B, MC, h, w)
            zfr = self._bn(fr, st.fr_bn, pending)
            out = out + zfr.view(B, n, S, Xd) * W[SKIP].reshape(1, n, S, 1)
        if S > 1:
            out = out.sum(2)
        else:
            out = out.squeeze(2)
        return out.view(B, n, C, h, w)
