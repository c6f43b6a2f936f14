"""The ImageNet evaluation network (DARTS paper, Table 3, mobile setting).

    net = NetworkImageNet(DARTS_V2, C=48, num_classes=1000, layers=14, auxiliary=True)
    logits = net.eval()(x)                        # x (B, 3, 224, 224) -> (B, 1000)
    logits, logits_aux = net.train()(x)           # auxiliary logits only in training

Three 3x3 stride-2 convolutions bring 224x224 down to 28x28 before the first cell:
stem0 (conv-BN-ReLU-conv-BN, C/2 then C channels, 56x56) and stem1 (ReLU-conv-BN, 28x28).
The first cell's s0 is stem0's 56x56 output, so it sees a reduction before it (its s0
goes through FactorizedReduce). The cells are NetworkEval's `EvalCell`; reductions at
layers//3 and 2*layers//3 (28 -> 14 -> 7); the auxiliary head reads the second reduction
cell's 7x7 output (pool 5 stride 2 -> 2x2, then the 2x2 conv); a 7x7 average pool (a
global average pool, so smaller crops work too) and the classifier close the network.
Drop-path is NetworkEval's: the `drop_path_prob` attribute, active only in training.

Size of DARTS_V2 at C=48, 14 cells, 1000 classes (auxiliary head excluded):

- parameters: 4,718,752, the count the authors' train_imagenet.py prints and the paper's
  4.7M (the evaluation ops have no BatchNorm after pooling, as in the authors' code).
- multiply-adds from `count_macs` at 1x3x224x224: 529,911,552 (530M), 7.7 % under the
  paper's 574M. `count_macs` counts Conv2d (output elements x C_in/groups x k x k) and
  Linear (in x out) only: 446.2M in the 1x1 convolutions, 56.9M in the stems' 3x3
  convolutions, 26.1M in the depthwise ones, 0.77M in the classifier. Counting the rest
  as one operation per element (BatchNorm 4.3M, ReLU 5.8M, the node additions 1.2M, the
  7x7 average pool 0.04M) and each 3x3 pooling window (1.3M) gives 542.5M, still 5.5 %
  under. So no usual convention (conv and linear only, or also BatchNorm, pooling and
  additions) reaches 574M; the paper does not say how it counted and its authors did not
  publish the counter (quark0/darts issue 46: others measured 523M for conv and linear
  layers and 544.6M with a counter that includes BatchNorm, ReLU and pooling). The count
  is never adjusted to match.
"""
from __future__ import annotations

from typing import Tuple

import torch.nn as nn
import torch.nn.functional as F

from .genotype import Genotype
from .network import AuxiliaryHead, EvalCell


class NetworkImageNet(nn.Module):
    """Stems (three stride-2 3x3 convs), `layers` cells of the genotype, average pooling,
    classifier (+ auxiliary head at 2/3 depth).

    In eval mode `forward` returns logits (B, num_classes); in training mode with
    `auxiliary=True` it returns (logits, logits_aux). `drop_path_prob` is set by the trainer.
    """

    def __init__(self, genotype: Genotype, C: int = 48, num_classes: int = 1000, layers: int = 14,
                 auxiliary: bool = True, in_channels: int = 3, image_size: int = 224,
                 aux_widths: Tuple[int, int] = (128, 768)):
        super().__init__()
        if not isinstance(genotype, Genotype):
            raise ValueError(f"NetworkImageNet needs a Genotype, got {type(genotype).__name__}")
        if C % 2:
            raise ValueError(f"channels must be even (stem0 and FactorizedReduce halve them), got {C}")
        if layers < 1:
            raise ValueError(f"layers must be positive, got {layers}")
        if image_size < 8:
            raise ValueError(f"image_size must be at least 8 (three stride-2 stems), got {image_size}")
        self.genotype, self.C, self.layers, self.num_classes = genotype, C, layers, num_classes
        self.auxiliary = auxiliary
        self.drop_path_prob = 0.0
        half = lambda n: (n + 1) // 2                 # a 3x3 stride-2 conv (padding 1) or a reduction
        self.stem0 = nn.Sequential(
            nn.Conv2d(in_channels, C // 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C // 2),
            nn.ReLU(inplace=False),
            nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C))
        self.stem1 = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C))
        size = half(half(half(image_size)))           # the cells' input size: 28 at 224
        C_pp, C_p, C_curr = C, C, C
        self.reduction_indices = sorted({layers // 3, 2 * layers // 3})
        self.aux_index = 2 * layers // 3
        self.cells = nn.ModuleList()
        reduction_prev, C_aux, size_aux = True, None, None     # stem1 reduced stem0's output
        for i in range(layers):
            reduction = i in self.reduction_indices
            if reduction:
                C_curr *= 2
                size = half(size)
            cell = EvalCell(genotype, C_pp, C_p, C_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            C_pp, C_p = C_p, cell.multiplier * C_curr
            if i == self.aux_index:
                C_aux, size_aux = C_p, size
        self.final_size = size                        # 7 at 224: the 7x7 average pool
        self.auxiliary_head = (AuxiliaryHead(C_aux, num_classes, size_aux, tuple(aux_widths), pool_stride=2)
                               if auxiliary else None)
        self.classifier = nn.Linear(C_p, num_classes)

    def forward(self, x):
        # x: (B, in_channels, H, W)
        logits_aux = None
        s0 = self.stem0(x)                                        # (B, C, H/4, W/4)
        s1 = self.stem1(s0)                                       # (B, C, H/8, W/8)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_index and self.auxiliary_head is not None and self.training:
                logits_aux = self.auxiliary_head(s1)              # (B, num_classes)
        out = F.adaptive_avg_pool2d(s1, 1).flatten(1)             # (B, C_final): the 7x7 pool at 224
        logits = self.classifier(out)                             # (B, num_classes)
        if logits_aux is not None:
            return logits, logits_aux
        return logits

    def num_parameters(self, auxiliary: bool = False) -> int:
        """Parameters of the network; the auxiliary head is left out unless asked for (as in the paper)."""
        return sum(p.numel() for n, p in self.named_parameters()
                   if auxiliary or not n.startswith("auxiliary_head."))
