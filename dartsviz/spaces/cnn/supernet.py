"""The search network: MixedOp, search cells and the supernet with registered alphas."""
from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..supernet import SupernetBase, softmax_weights
from .genotype import Genotype, derive, edges_of
from .ops import PRIMITIVES, FactorizedReduce, ReLUConvBN, make_op

CELL_TYPES = ("normal", "reduce")


edge_weights = softmax_weights      # the softmax over each edge's ops (spaces.supernet)


class MixedOp(nn.Module):
    """One supernet edge: sum_k weights[k] * op_k(x) over all primitives."""

    def __init__(self, C: int, stride: int, primitives=PRIMITIVES):
        super().__init__()
        self.primitives = list(primitives)
        self.ops = nn.ModuleList(make_op(p, C, stride, affine=False) for p in self.primitives)

    def forward(self, x, weights):
        # x: (B, C, H, W); weights: (O,)
        return sum(w * op(x) for w, op in zip(weights, self.ops))


class SearchCell(nn.Module):
    """A cell with every candidate edge present; `reduction` halves H and W."""

    def __init__(self, nodes: int, multiplier: int, C_pp: int, C_p: int, C: int,
                 reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        self.nodes = nodes
        self.multiplier = multiplier
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(C_pp, C, affine=False)
        else:
            self.preprocess0 = ReLUConvBN(C_pp, C, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0, affine=False)
        self.edges: List[Tuple[int, int]] = edges_of(nodes)
        self.mixed = nn.ModuleList(
            MixedOp(C, 2 if reduction and src < 2 else 1) for src, _ in self.edges)

    def forward(self, s0, s1, weights):
        # s0: (B, C_pp, H0, W0), s1: (B, C_p, H, W), weights: (E, O)
        states = [self.preprocess0(s0), self.preprocess1(s1)]       # each (B, C, H, W)
        e = 0
        for dst in range(2, 2 + self.nodes):
            node = 0
            for src in range(dst):
                node = node + self.mixed[e](states[src], weights[e])
                e += 1
            states.append(node)                                     # (B, C, H', W')
        return torch.cat(states[-self.multiplier:], dim=1)          # (B, multiplier*C, H', W')


class SearchNetwork(SupernetBase):
    """Stem, `layers` search cells (reductions at layers//3 and 2*layers//3), pooling, classifier.

    The architecture logits `alpha_normal` and `alpha_reduce`, each (edges, ops), are
    registered parameters: saved in `state_dict`, moved by `.to()`, and returned by
    `arch_parameters()`, never by `weight_parameters()`.
    """

    def __init__(self, C: int = 16, num_classes: int = 10, layers: int = 8, in_channels: int = 3,
                 nodes: int = 4, multiplier: int = 4, stem_multiplier: int = 3,
                 alpha_init_std: float = 1e-3):
        super().__init__()
        self.C, self.num_classes, self.layers, self.nodes = C, num_classes, layers, nodes
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
            cell = SearchCell(nodes, multiplier, C_pp, C_p, C_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            C_pp, C_p = C_p, multiplier * C_curr
        self.classifier = nn.Linear(C_p, num_classes)
        n_edges, n_ops = len(edges_of(nodes)), len(PRIMITIVES)
        self.alpha_normal = nn.Parameter(alpha_init_std * torch.randn(n_edges, n_ops))
        self.alpha_reduce = nn.Parameter(alpha_init_std * torch.randn(n_edges, n_ops))

    ARCH_NAMES = ("alpha_normal", "alpha_reduce")
    CELL_TYPES = CELL_TYPES

    def genotype(self) -> Genotype:
        p = self.probs()
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
        w_normal = self.edge_weights(self.alpha_normal)    # (E, O)
        w_reduce = self.edge_weights(self.alpha_reduce)    # (E, O)
        s0 = s1 = self.stem(x)                             # (B, 3C, H, W)
        for cell in self.cells:
            weights = w_reduce if cell.reduction else w_normal
            s0, s1 = s1, cell(s0, s1, weights)
        out = F.adaptive_avg_pool2d(s1, 1).flatten(1)      # (B, C_final)
        return self.classifier(out)                        # (B, num_classes)
