"""The search network: MixedOp, search cells and the supernet with registered alphas.

Two PC-DARTS options (Xu et al., ICLR 2020), both off by default (plain DARTS):
`partial_channels` K (each mixed op sees the first C/K channels, the rest bypass it,
then a channel shuffle) and `edge_norm` (one beta per edge, softmax over each node's
incoming edges, scaling the edge's output). Two P-DARTS options (Chen et al., ICCV 2019):
`op_masks` (each edge builds and mixes only its kept ops; alpha keeps every column, the
dropped ones masked to weight 0) and `set_skip_dropout(p)` (dropout after the identity
skip connections in training mode). One DARTS- option (Chu et al., ICLR 2021): `aux_skip`
gives every stride-2 edge a FactorizedReduce of its own for the auxiliary skip; a mixing
that returns one weight more than the ops (the last) adds weight * aux(x) to every edge
(the identity at stride 1)."""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..supernet import ArchProbs, SupernetBase, softmax_weights
from .genotype import Genotype, derive, derive_edge_normalised, edges_of
from .ops import PRIMITIVES, FactorizedReduce, ReLUConvBN, channel_shuffle, make_op

CELL_TYPES = ("normal", "reduce")


edge_weights = softmax_weights      # the softmax over each edge's ops (spaces.supernet)


def check_partial_channels(C: int, partial_channels: int) -> None:
    """K must be a positive integer dividing the channels C (one-line ValueError otherwise)."""
    K = partial_channels
    if isinstance(K, bool) or not isinstance(K, int) or K < 1:
        raise ValueError(f"partial_channels must be a positive integer, got {K!r}")
    if C % K:
        raise ValueError(f"channels ({C}) must be divisible by partial_channels K={K}")


def edge_softmax(beta: torch.Tensor, nodes: int) -> torch.Tensor:
    """PC-DARTS' edge normalisation: softmax of beta (E,) over each intermediate node's
    incoming edges (edge order of `edges_of`), in beta's own precision even under autocast."""
    with torch.autocast(beta.device.type, enabled=False):
        return torch.cat([F.softmax(b, 0) for b in beta.split(list(range(2, 2 + nodes)))])   # (E,)


class MixedOp(nn.Module):
    """One supernet edge: sum_k weights[k] * op_k(x) over all primitives.

    With `partial_channels` K > 1 (PC-DARTS) the ops are built for C/K channels and run on
    the first C/K channels of x; the other channels bypass them (2x2 max-pooled at
    stride 2) and [ops' sum ; bypass] is channel-shuffled with K groups."""

    skip_dropout = 0.0             # P-DARTS: dropout rate after the identity skip (training mode)

    def __init__(self, C: int, stride: int, primitives=PRIMITIVES, partial_channels: int = 1,
                 kept: Optional[List[int]] = None):
        super().__init__()
        check_partial_channels(C, partial_channels)
        self.primitives = list(primitives)
        self.kept = list(range(len(self.primitives))) if kept is None else list(kept)   # columns of weights
        self.stride = stride
        self.partial_channels = partial_channels
        self.C_op = C // partial_channels                 # the channels the ops see
        self.ops = nn.ModuleList(make_op(self.primitives[i], self.C_op, stride, affine=False) for i in self.kept)
        skip = [j for j, i in enumerate(self.kept) if self.primitives[i] == "skip_connect" and stride == 1]
        self.skip_at = skip[0] if skip else None          # the identity's place among self.ops
        self.aux = None                                   # DARTS-: the auxiliary skip's FactorizedReduce (stride 2)

    def _mix(self, x, weights):
        # x: (B, C_op, H, W); weights: (O,) over all primitives, of which the kept ones run
        out = 0
        for j, (i, op) in enumerate(zip(self.kept, self.ops)):
            y = op(x)                                                  # (B, C_op, H', W')
            if j == self.skip_at and self.skip_dropout > 0 and self.training:
                y = F.dropout(y, self.skip_dropout)
            out = out + weights[i] * y
        return out

    def aux_skip(self, x):
        """DARTS-' auxiliary skip on what the ops see: the identity at stride 1, the edge's own
        FactorizedReduce `aux` at stride 2 (built by SearchNetwork(aux_skip=True))."""
        if self.stride == 1:
            return x
        if self.aux is None:
            raise ValueError("an auxiliary skip weight reached a stride-2 edge built without one: "
                             "build the supernet with aux_skip=True")
        return self.aux(x)                                             # (B, C_op, H/2, W/2)

    def forward(self, x, weights):
        # x: (B, C, H, W); weights: (O,), or (O + 1,) with DARTS-' auxiliary skip weight last
        aux_w = None
        if weights.shape[-1] > len(self.primitives):
            weights, aux_w = weights[:-1], weights[-1]
        K = self.partial_channels
        if K == 1:
            if len(self.kept) == len(self.primitives) and not (self.skip_dropout and self.training):
                out = sum(w * op(x) for w, op in zip(weights, self.ops))
            else:
                out = self._mix(x, weights)
            return out if aux_w is None else out + aux_w * self.aux_skip(x)
        xo, xb = x[:, :self.C_op], x[:, self.C_op:]                    # (B, C/K, H, W), (B, C-C/K, H, W)
        out = self._mix(xo, weights)                                   # (B, C/K, H', W')
        if aux_w is not None:
            out = out + aux_w * self.aux_skip(xo)
        if self.stride == 2:
            xb = F.max_pool2d(xb, 2, 2, ceil_mode=True)                # (B, C-C/K, ceil(H/2), ceil(W/2))
        return channel_shuffle(torch.cat([out, xb], 1), K)             # (B, C, H', W')


class SearchCell(nn.Module):
    """A cell with every candidate edge present; `reduction` halves H and W."""

    def __init__(self, nodes: int, multiplier: int, C_pp: int, C_p: int, C: int,
                 reduction: bool, reduction_prev: bool, partial_channels: int = 1,
                 op_mask: Optional[torch.Tensor] = None):
        super().__init__()
        self.reduction = reduction
        self.nodes = nodes
        self.multiplier = multiplier
        self.partial_channels = partial_channels
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(C_pp, C, affine=False)
        else:
            self.preprocess0 = ReLUConvBN(C_pp, C, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0, affine=False)
        self.edges: List[Tuple[int, int]] = edges_of(nodes)
        kept = [None] * len(self.edges) if op_mask is None else [
            [int(i) for i in row.nonzero().flatten()] for row in op_mask]          # op_mask: (E, O) bool
        self.mixed = nn.ModuleList(
            MixedOp(C, 2 if reduction and src < 2 else 1, partial_channels=partial_channels, kept=kept[e])
            for e, (src, _) in enumerate(self.edges))

    def forward(self, s0, s1, weights, edge_probs=None):
        # s0: (B, C_pp, H0, W0), s1: (B, C_p, H, W), weights: (E, O), edge_probs: (E,) or None
        states = [self.preprocess0(s0), self.preprocess1(s1)]       # each (B, C, H, W)
        e = 0
        for dst in range(2, 2 + self.nodes):
            node = 0
            for src in range(dst):
                out = self.mixed[e](states[src], weights[e])        # (B, C, H', W')
                node = node + (out if edge_probs is None else edge_probs[e] * out)
                e += 1
            states.append(node)                                     # (B, C, H', W')
        return torch.cat(states[-self.multiplier:], dim=1)          # (B, multiplier*C, H', W')


class SearchNetwork(SupernetBase):
    """Stem, `layers` search cells (reductions at layers//3 and 2*layers//3), pooling, classifier.

    The architecture logits `alpha_normal` and `alpha_reduce`, each (edges, ops), are
    registered parameters: saved in `state_dict`, moved by `.to()`, and returned by
    `arch_parameters()`, never by `weight_parameters()`. With `edge_norm` the edge logits
    `beta_normal` and `beta_reduce`, each (edges,), follow them in `arch_parameters()`
    (so the architecture optimiser moves them too); `partial_channels` K > 1 makes every
    mixed op partial-channel (see MixedOp).
    """

    def __init__(self, C: int = 16, num_classes: int = 10, layers: int = 8, in_channels: int = 3,
                 nodes: int = 4, multiplier: Optional[int] = None, stem_multiplier: int = 3,
                 alpha_init_std: float = 1e-3, partial_channels: int = 1, edge_norm: bool = False,
                 op_masks: Optional[Dict[str, torch.Tensor]] = None, aux_skip: bool = False):
        super().__init__()
        check_partial_channels(C, partial_channels)
        if not isinstance(edge_norm, bool):
            raise ValueError(f"edge_norm must be True or False, got {edge_norm!r}")
        self.C, self.num_classes, self.layers, self.nodes = C, num_classes, layers, nodes
        self.partial_channels, self.edge_norm = partial_channels, edge_norm
        multiplier = nodes if multiplier is None else multiplier   # DARTS: every intermediate node is output
        C_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C_curr, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(C_curr))
        C_pp, C_p, C_curr = C_curr, C_curr, C
        self.reduction_indices = sorted({layers // 3, 2 * layers // 3})
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in self.reduction_indices
            if reduction:
                C_curr *= 2
            mask = None if op_masks is None else op_masks["reduce" if reduction else "normal"]
            cell = SearchCell(nodes, multiplier, C_pp, C_p, C_curr, reduction, reduction_prev, partial_channels, mask)
            self.cells.append(cell)
            reduction_prev = reduction
            C_pp, C_p = C_p, multiplier * C_curr
        self.classifier = nn.Linear(C_p, num_classes)
        n_edges, n_ops = len(edges_of(nodes)), len(PRIMITIVES)
        self.alpha_normal = nn.Parameter(alpha_init_std * torch.randn(n_edges, n_ops))
        self.alpha_reduce = nn.Parameter(alpha_init_std * torch.randn(n_edges, n_ops))
        if edge_norm:                                      # drawn after the alphas: those stay DARTS'
            self.beta_normal = nn.Parameter(alpha_init_std * torch.randn(n_edges))
            self.beta_reduce = nn.Parameter(alpha_init_std * torch.randn(n_edges))
            self.ARCH_NAMES = self.ARCH_NAMES + self.BETA_NAMES
        self.op_masks = None                               # P-DARTS: cell type -> kept ops (E, O) bool
        if op_masks is not None:
            for k in CELL_TYPES:
                m = torch.as_tensor(op_masks[k], dtype=torch.bool)
                if m.shape != (n_edges, n_ops) or not m.any(1).all():
                    raise ValueError(f"op_masks[{k!r}] must be ({n_edges}, {n_ops}) booleans with an op kept "
                                     f"on every edge, got shape {tuple(m.shape)}")
                self.register_buffer(f"op_mask_{k}", m, persistent=False)
            self.op_masks = {k: getattr(self, f"op_mask_{k}") for k in CELL_TYPES}
        self.aux_skip = bool(aux_skip)
        if aux_skip:                                       # built last: every other parameter stays DARTS'
            for cell in self.cells:
                for m in cell.mixed:
                    if m.stride == 2:
                        m.aux = FactorizedReduce(m.C_op, m.C_op, affine=False)

    ARCH_NAMES = ("alpha_normal", "alpha_reduce")
    BETA_NAMES = ("beta_normal", "beta_reduce")            # edge_norm only
    CELL_TYPES = CELL_TYPES

    def alpha_of(self) -> Dict[str, nn.Parameter]:
        """alpha per cell type, each (edges, ops) (the betas are not alphas)."""
        return {"normal": self.alpha_normal, "reduce": self.alpha_reduce}

    def _edge_probs_live(self) -> Dict[str, Optional[torch.Tensor]]:
        """softmax(beta) over each node's incoming edges per cell type, each (edges,), with
        gradients; None per cell type without edge normalisation."""
        if not self.edge_norm:
            return {"normal": None, "reduce": None}
        return {"normal": edge_softmax(self.beta_normal, self.nodes),
                "reduce": edge_softmax(self.beta_reduce, self.nodes)}

    def edge_probs(self) -> Optional[Dict[str, torch.Tensor]]:
        """softmax(beta) per cell type, each (edges,), detached; None without edge_norm."""
        if not self.edge_norm:
            return None
        return {k: v.detach().float() for k, v in self._edge_probs_live().items()}

    def masked_alpha(self, cell_type: str) -> torch.Tensor:
        """alpha of `cell_type`, (E, O), with the ops dropped by `op_masks` at -inf (weight 0)."""
        a = self.alpha_of()[cell_type]
        if self.op_masks is None:
            return a
        return a.masked_fill(~getattr(self, f"op_mask_{cell_type}"), float("-inf"))   # (E, O)

    def set_skip_dropout(self, p: float) -> None:
        """P-DARTS: dropout rate p after every identity skip op (training mode only)."""
        for m in self.modules():
            if isinstance(m, MixedOp):
                m.skip_dropout = float(p)

    def probs(self) -> ArchProbs:
        """softmax(alpha) per cell type, each (edges, ops), detached (dropped ops: 0);
        `.edge_probs` as edge_probs()."""
        probs = {k: F.softmax(self.masked_alpha(k).detach().float(), dim=-1) for k in CELL_TYPES}
        return ArchProbs(probs, self.edge_probs())

    def genotype(self) -> Genotype:
        """The derived cells: DARTS' rule, or PC-DARTS' (edges ranked with beta) under edge_norm."""
        p = self.probs()
        if p.edge_probs is not None:
            return derive_edge_normalised(p, p.edge_probs)
        return derive(p["normal"], p["reduce"])

    # -- the loss of a batch (the space's contract) -------------------------------
    def loss(self, batch):
        """Cross-entropy of a batch (x: (B, C, H, W), y: (B,)); returns (loss, logits)."""
        x, y = batch
        logits = self(x)                                   # (B, num_classes)
        return F.cross_entropy(logits, y), logits

    # -- forward -------------------------------------------------------------
    def forward(self, x):
        # x: (B, in_channels, H, W)
        w_normal = self.edge_weights(self.masked_alpha("normal"))    # (E, O)
        w_reduce = self.edge_weights(self.masked_alpha("reduce"))    # (E, O)
        edge_p = self._edge_probs_live()                    # softmax(beta) (E,) per cell type, or None
        s0 = s1 = self.stem(x)                             # (B, 3C, H, W)
        for cell in self.cells:
            weights = w_reduce if cell.reduction else w_normal
            s0, s1 = s1, cell(s0, s1, weights, edge_p["reduce" if cell.reduction else "normal"])
        out = F.adaptive_avg_pool2d(s1, 1).flatten(1)      # (B, C_final)
        return self.classifier(out)                        # (B, num_classes)
