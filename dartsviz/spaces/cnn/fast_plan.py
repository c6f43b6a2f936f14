"""The fast path's plan of a search cell: where each op sits in the primitive list, the
stages (the edges leaving one source node run together), the module lists in stage order,
and why a cell cannot take the fast path (`_unsupported`). See `fastnet` for the whole."""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch.nn as nn

from .ops import PRIMITIVES, DilConv, FactorizedReduce, Identity, PoolBN, SepConv, Zero
from .supernet import SearchCell

# each op's place among the primitives (the columns of alpha), by name
NONE, MAX, AVG, SKIP = (PRIMITIVES.index(n) for n in ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect"))
SEP3, SEP5, DIL3, DIL5 = (PRIMITIVES.index(n) for n in ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"))
CONV_KINDS = (SEP3, SEP5, DIL3, DIL5)
SEP_KINDS = (SEP3, SEP5)
POOL_KINDS = (MAX, AVG)
CONV_GEOMETRY = {SEP3: (3, 1), SEP5: (5, 1), DIL3: (3, 2), DIL5: (5, 2)}   # (kernel, dilation)


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
        kinds = {NONE: Zero, MAX: PoolBN, AVG: PoolBN, SKIP: Identity if stride == 1 else FactorizedReduce,
                 SEP3: SepConv, SEP5: SepConv, DIL3: DilConv, DIL5: DilConv}
        types = [kinds[k] for k in range(len(PRIMITIVES))]
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
