"""The NAS-Bench-201 networks: the ops, the search cell and supernet (one 6 x 5 alpha shared by
every cell), and the evaluation network of one genotype, as in the benchmark's code.

Both networks: stem (3x3 conv, BatchNorm), three stages of `cells_per_stage` cells at C, 2C, 4C
with a fixed residual block (stride 2) between stages, then BatchNorm, ReLU, global average
pooling and a linear classifier. In the search network the cells' BatchNorms are not affine
and their convolutions carry a bias instead (the authors' `bias=not affine`); in the
evaluation network the BatchNorms are affine and the convolutions have no bias.
"""
from __future__ import annotations

from typing import Dict, List

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..supernet import SupernetBase
from .genotype import CELL_TYPE, EDGES, NODES, PRIMITIVES, NB201Genotype, derive


class ReLUConvBN(nn.Sequential):
    """ReLU, k x k convolution (bias exactly when the BatchNorm is not affine), BatchNorm."""

    def __init__(self, C_in: int, C_out: int, k: int, stride: int, affine: bool):
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(C_in, C_out, k, stride, padding=k // 2, bias=not affine),
                         nn.BatchNorm2d(C_out, affine=affine))


class Zero(nn.Module):
    def forward(self, x):
        return x.mul(0.0)                                  # (B, C, H, W) zeros, in the graph


def make_op(name: str, C: int, affine: bool) -> nn.Module:
    """One op of a cell edge (stride 1, C channels in and out)."""
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(C, C, 1, 1, affine)
    if name == "nor_conv_3x3":
        return ReLUConvBN(C, C, 3, 1, affine)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown nb201 op {name!r}; known ops: {', '.join(PRIMITIVES)}")


class ResidualReduction(nn.Module):
    """The fixed block between stages (a ResNet basic block, stride 2): two ReLUConvBN 3x3 and a
    shortcut of 2x2 average pooling and a 1x1 convolution."""

    def __init__(self, C_in: int, C_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(C_in, C_out, 3, 2, affine=True)
        self.conv_b = ReLUConvBN(C_out, C_out, 3, 1, affine=True)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(C_in, C_out, 1, bias=False))

    def forward(self, x):                                  # x: (B, C_in, H, W)
        return self.shortcut(x) + self.conv_b(self.conv_a(x))   # (B, C_out, H/2, W/2)


class SearchCell(nn.Module):
    """Every edge mixes all five ops; node j sums its incoming edges; node 3 is the output."""

    def __init__(self, C: int):
        super().__init__()
        self.edges = nn.ModuleList(nn.ModuleList(make_op(op, C, affine=False) for op in PRIMITIVES)
                                   for _ in EDGES)

    def forward(self, x, weights):                         # x: (B, C, H, W), weights: (6, 5)
        nodes = [x]
        for dst in range(1, NODES):
            node = 0
            for e, (src, d) in enumerate(EDGES):
                if d == dst:
                    node = node + sum(w * op(nodes[src]) for w, op in zip(weights[e], self.edges[e]))
            nodes.append(node)                             # (B, C, H, W)
        return nodes[-1]


class InferCell(nn.Module):
    """The genotype's cell: one op per edge, node j the sum of its edges (`none` edges add zero)."""

    def __init__(self, genotype: NB201Genotype, C: int):
        super().__init__()
        self.genotype = genotype
        self.ops = nn.ModuleList(make_op(op, C, affine=True) for op in genotype.ops)

    def forward(self, x):                                  # x: (B, C, H, W)
        nodes = [x]
        for dst in range(1, NODES):
            node = 0
            for e, (src, d) in enumerate(EDGES):
                if d == dst and self.genotype.ops[e] != "none":
                    node = node + self.ops[e](nodes[src])
            nodes.append(node if torch.is_tensor(node) else torch.zeros_like(x))
        return nodes[-1]                                   # (B, C, H, W)


class _Body(nn.Module):
    """Stem, stages of cells with the residual reductions between them, head."""

    def _build(self, make_cell, C: int, cells_per_stage: int, num_classes: int, in_channels: int):
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        layers: List[nn.Module] = []
        for stage, width in enumerate((C, 2 * C, 4 * C)):
            if stage:
                layers.append(ResidualReduction(width // 2, width))
            layers.extend(make_cell(width) for _ in range(cells_per_stage))
        self.cells = nn.ModuleList(layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(4 * C), nn.ReLU(inplace=False))
        self.classifier = nn.Linear(4 * C, num_classes)

    def _head(self, s):                                    # s: (B, 4C, h, w)
        out = F.adaptive_avg_pool2d(self.lastact(s), 1).flatten(1)   # (B, 4C)
        return self.classifier(out)                        # (B, num_classes)

    def loss(self, batch):
        """Cross-entropy of a batch (x: (B, C, H, W), y: (B,)); returns (loss, logits)."""
        x, y = batch
        logits = self(x)                                   # (B, num_classes)
        return F.cross_entropy(logits, y), logits


class NB201SearchNetwork(SupernetBase, _Body):
    """The supernet: every cell a SearchCell mixing with softmax(alpha), alpha (6, 5) shared."""

    ARCH_NAMES = ("alpha",)
    CELL_TYPES = (CELL_TYPE,)

    def __init__(self, C: int = 16, cells_per_stage: int = 5, num_classes: int = 10, in_channels: int = 3,
                 alpha_init_std: float = 1e-3):
        super().__init__()
        self._build(SearchCell, C, cells_per_stage, num_classes, in_channels)
        self.alpha = nn.Parameter(alpha_init_std * torch.randn(len(EDGES), len(PRIMITIVES)))   # (6, 5)

    def alpha_of(self) -> Dict[str, nn.Parameter]:
        return {CELL_TYPE: self.alpha}

    def genotype(self) -> NB201Genotype:
        return derive(self.probs()[CELL_TYPE])

    def forward(self, x):                                  # x: (B, in_channels, H, W)
        weights = self.edge_weights(self.alpha)            # (6, 5)
        s = self.stem(x)                                   # (B, C, H, W)
        for cell in self.cells:
            s = cell(s, weights) if isinstance(cell, SearchCell) else cell(s)
        return self._head(s)


class NB201Network(_Body):
    """The evaluation network of one genotype (the benchmark trains it with C=16, 5 cells per stage)."""

    def __init__(self, genotype: NB201Genotype, C: int = 16, cells_per_stage: int = 5, num_classes: int = 10,
                 in_channels: int = 3):
        super().__init__()
        self._build(lambda width: InferCell(genotype, width), C, cells_per_stage, num_classes, in_channels)

    def forward(self, x):                                  # x: (B, in_channels, H, W)
        s = self.stem(x)                                   # (B, C, H, W)
        for cell in self.cells:
            s = cell(s)
        return self._head(s)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
