"""The evaluation network: a genotype's cells stacked and trained from scratch.

    net = NetworkEval(DARTS_V2, C=36, num_classes=10, layers=20, auxiliary=True)
    net.drop_path_prob = 0.2 * epoch / epochs     # the trainer ramps this
    logits = net.eval()(x)                        # (B, num_classes)
    logits, logits_aux = net.train()(x)           # auxiliary logits only in training

The ops are the search ops (`dartsviz.ops.make_op`) with BatchNorm affine and, as in the
authors' code, no BatchNorm after pooling: DARTS_V2 at C=36, 20 cells has 3,349,342
parameters without the auxiliary head (the paper's 3.3M). Cells at
index layers//3 and 2*layers//3 are reduction cells; the auxiliary head reads the
output of the second reduction cell (2/3 depth). Drop-path acts only in training.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .genotype import Genotype
from .ops import FactorizedReduce, Identity, ReLUConvBN, make_op


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples with probability drop_prob and rescale the rest by 1/(1-p)."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.bernoulli(torch.full((x.shape[0], 1, 1, 1), keep, device=x.device, dtype=x.dtype))  # (B, 1, 1, 1)
    return x / keep * mask                                                                          # (B, C, H, W)


class EvalCell(nn.Module):
    """One discrete cell: for each node, the sum of its kept (op, input) edges."""

    def __init__(self, genotype: Genotype, C_pp: int, C_p: int, C: int,
                 reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        cell_type = "reduce" if reduction else "normal"
        self.nodes = genotype.cell(cell_type)
        self.concat = genotype.concat(cell_type)
        self.multiplier = len(self.concat)
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(C_pp, C, affine=True)
        else:
            self.preprocess0 = ReLUConvBN(C_pp, C, 1, 1, 0, affine=True)
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0, affine=True)
        # one ModuleList per node, in genotype order
        self.ops = nn.ModuleList(
            nn.ModuleList(make_op(op, C, 2 if reduction and src < 2 else 1, affine=True) for op, src in node)
            for node in self.nodes)
        self.sources: List[Tuple[int, ...]] = [tuple(src for _, src in node) for node in self.nodes]

    def forward(self, s0, s1, drop_prob: float = 0.0):
        # s0: (B, C_pp, H0, W0), s1: (B, C_p, H, W)
        states = [self.preprocess0(s0), self.preprocess1(s1)]     # each (B, C, H, W)
        for ops, sources in zip(self.ops, self.sources):
            node = 0
            for op, src in zip(ops, sources):
                h = op(states[src])                               # (B, C, H', W')
                if self.training and drop_prob > 0 and not isinstance(op, Identity):
                    h = drop_path(h, drop_prob)
                node = node + h
            states.append(node)
        return torch.cat([states[i] for i in self.concat], dim=1)  # (B, multiplier*C, H', W')


class AuxiliaryHead(nn.Module):
    """The DARTS auxiliary classifier (CIFAR: 8x8 input, pool 5 stride 3, 1x1 and 2x2 convs;
    ImageNet: 7x7 input, pool 5 stride 2, via `pool_stride=2`).

    On inputs smaller than 5x5 (digits) the pooling is skipped and the 2x2 conv
    shrinks to fit; a global average pool makes the head work at any size.
    """

    def __init__(self, C: int, num_classes: int, size: int, widths: Tuple[int, int] = (128, 768),
                 pool_stride: int = 3):
        super().__init__()
        w1, w2 = widths
        pool = nn.AvgPool2d(5, stride=pool_stride, padding=0, count_include_pad=False) if size >= 5 else nn.Identity()
        pooled = (size - 5) // pool_stride + 1 if size >= 5 else size
        k = min(2, pooled)
        self.features = nn.Sequential(
            nn.ReLU(inplace=False), pool,
            nn.Conv2d(C, w1, 1, bias=False), nn.BatchNorm2d(w1), nn.ReLU(inplace=False),
            nn.Conv2d(w1, w2, k, bias=False), nn.BatchNorm2d(w2), nn.ReLU(inplace=False))
        self.classifier = nn.Linear(w2, num_classes)

    def forward(self, x):
        # x: (B, C, size, size)
        h = F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)  # (B, w2)
        return self.classifier(h)                                  # (B, num_classes)


class NetworkEval(nn.Module):
    """Stem, `layers` cells of the genotype, global pooling, classifier (+ auxiliary head).

    In eval mode `forward` returns logits (B, num_classes). In training mode with
    `auxiliary=True` it returns (logits, logits_aux). `drop_path_prob` is an attribute
    the trainer sets each epoch; it acts only in training.
    """

    def __init__(self, genotype: Genotype, C: int = 36, num_classes: int = 10, layers: int = 20,
                 auxiliary: bool = True, in_channels: int = 3, image_size: int = 32,
                 stem_multiplier: int = 3, aux_widths: Tuple[int, int] = (128, 768)):
        super().__init__()
        if not isinstance(genotype, Genotype):
            raise ValueError(f"NetworkEval needs a Genotype, got {type(genotype).__name__}")
        if C % 2:
            raise ValueError(f"channels must be even (FactorizedReduce halves them), got {C}")
        if layers < 1:
            raise ValueError(f"layers must be positive, got {layers}")
        self.genotype, self.C, self.layers, self.num_classes = genotype, C, layers, num_classes
        self.auxiliary = auxiliary
        self.drop_path_prob = 0.0
        C_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C_curr, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(C_curr))
        C_pp, C_p, C_curr = C_curr, C_curr, C
        self.reduction_indices = sorted({layers // 3, 2 * layers // 3})
        self.aux_index = 2 * layers // 3
        self.cells = nn.ModuleList()
        reduction_prev, size, C_aux, size_aux = False, image_size, None, None
        for i in range(layers):
            reduction = i in self.reduction_indices
            if reduction:
                C_curr *= 2
                size = (size + 1) // 2
            cell = EvalCell(genotype, C_pp, C_p, C_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            C_pp, C_p = C_p, cell.multiplier * C_curr
            if i == self.aux_index:
                C_aux, size_aux = C_p, size
        self.auxiliary_head = AuxiliaryHead(C_aux, num_classes, size_aux, tuple(aux_widths)) if auxiliary else None
        self.classifier = nn.Linear(C_p, num_classes)

    def forward(self, x):
        # x: (B, in_channels, H, W)
        logits_aux = None
        s0 = s1 = self.stem(x)                                    # (B, 3C, H, W)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_index and self.auxiliary_head is not None and self.training:
                logits_aux = self.auxiliary_head(s1)              # (B, num_classes)
        out = F.adaptive_avg_pool2d(s1, 1).flatten(1)             # (B, C_final)
        logits = self.classifier(out)                             # (B, num_classes)
        if logits_aux is not None:
            return logits, logits_aux
        return logits

    def num_parameters(self, auxiliary: bool = False) -> int:
        """Parameters of the network; the auxiliary head is left out unless asked for (as in the paper)."""
        return sum(p.numel() for n, p in self.named_parameters()
                   if auxiliary or not n.startswith("auxiliary_head."))


def count_macs(model: nn.Module, input_shape, skip=("auxiliary_head",)) -> int:
    """Multiply-adds of one forward pass in eval mode for one input of `input_shape` (C, H, W).

    Counts Conv2d (out elements x C_in/groups x kh x kw) and Linear (in x out); pooling,
    BatchNorm and additions are not counted, as is usual. Modules under `skip` are left out.
    """
    total = 0
    skipped = {m for name, mod in model.named_modules() if any(name.startswith(s) for s in skip)
               for m in mod.modules()}

    def conv_hook(m, inp, out):
        nonlocal total
        kh, kw = m.kernel_size
        total += out.numel() // out.shape[0] * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m, inp, out):
        nonlocal total
        total += m.in_features * m.out_features

    handles = []
    for m in model.modules():
        if m in skipped:
            continue
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        p = next(model.parameters())
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=p.device, dtype=p.dtype))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total


def cutout(x: torch.Tensor, length: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Zero one length x length square per image (clipped at the border), centres drawn from `generator`.

    The centres are drawn on the CPU generator, so a saved generator state resumes exactly.
    """
    if length <= 0:
        return x
    B, C, H, W = x.shape
    centres = torch.stack([torch.randint(0, H, (B,), generator=generator),
                           torch.randint(0, W, (B,), generator=generator)])   # (2, B)
    if x.device.type == "cuda":                  # pinned: the copy does not wait for the GPU
        centres = centres.pin_memory()
    cy, cx = centres.to(x.device, non_blocking=True)                    # (B,) each
    half = length // 2
    rows = torch.arange(H, device=x.device)[None]                      # (1, H)
    cols = torch.arange(W, device=x.device)[None]                      # (1, W)
    in_y = (rows >= (cy - half)[:, None]) & (rows < (cy + half)[:, None])   # (B, H)
    in_x = (cols >= (cx - half)[:, None]) & (cols < (cx + half)[:, None])   # (B, W)
    hole = in_y[:, :, None] & in_x[:, None, :]                                # (B, H, W)
    return x.masked_fill(hole[:, None], 0.0)                                  # (B, C, H, W)
