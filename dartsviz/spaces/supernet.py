"""What every space's supernet shares: weights vs alphas, the op mixing a method may
replace, the softmax weights per cell type, and BatchNorm statistics frozen for the
architecture step's passes."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


def softmax_weights(alpha: torch.Tensor) -> torch.Tensor:
    """softmax over the ops of each edge, (E, O), in the alphas' own precision even under
    autocast: bf16 would round weights of 1/8 +- 1e-3 to the same value."""
    with torch.autocast(alpha.device.type, enabled=False):
        return F.softmax(alpha, dim=-1)


@contextmanager
def running_stats_untouched(mods: List[nn.Module]) -> Iterator[None]:
    """Inside, the BatchNorms `mods` (in training mode) normalise with batch statistics and
    leave their running statistics and `num_batches_tracked` alone; restored on exit."""
    for m in mods:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in mods:
            m.track_running_stats = True


class ArchProbs(dict):
    """softmax(alpha) per cell type, each (edges, ops), plus `edge_probs`: softmax(beta)
    per cell type, each (edges,), when the supernet normalises edges (else None)."""

    def __init__(self, probs, edge_probs: Optional[Dict[str, torch.Tensor]] = None):
        super().__init__(probs)
        self.edge_probs = edge_probs


class SupernetBase(nn.Module):
    """A module whose parameters split into weights and alphas. A subclass names its alpha
    attributes in ARCH_NAMES and their cell types in CELL_TYPES (both empty for a
    genotype's final network, which has weights only)."""

    ARCH_NAMES: Tuple[str, ...] = ()
    CELL_TYPES: Tuple[str, ...] = ()
    mixing = None                  # set by a method: alpha (E, O) -> edge weights (E, O)
    _stats_frozen = False

    # -- parameters ----------------------------------------------------------
    def arch_parameters(self) -> List[nn.Parameter]:
        return [getattr(self, n) for n in self.ARCH_NAMES]

    def named_weight_parameters(self) -> Iterator[Tuple[str, nn.Parameter]]:
        return ((n, p) for n, p in self.named_parameters() if n not in self.ARCH_NAMES)

    def weight_parameters(self) -> List[nn.Parameter]:
        return [p for _, p in self.named_weight_parameters()]

    def weights(self) -> List[nn.Parameter]:
        """The network weights (the reference code's and most tutorials' name)."""
        return self.weight_parameters()

    def alphas(self) -> List[nn.Parameter]:
        """The architecture parameters (the reference code's and most tutorials' name)."""
        return self.arch_parameters()

    def alpha_of(self) -> Dict[str, nn.Parameter]:
        """alpha per cell type, each (edges, ops)."""
        return dict(zip(self.CELL_TYPES, self.arch_parameters()))

    def probs(self) -> Dict[str, torch.Tensor]:
        """softmax(alpha) per cell type, each (edges, ops), detached."""
        return {k: F.softmax(a.detach().float(), dim=-1) for k, a in self.alpha_of().items()}

    def edge_weights(self, alpha: torch.Tensor) -> torch.Tensor:
        """The weights that mix the ops of each edge: softmax(alpha) unless a method says else."""
        return softmax_weights(alpha) if self.mixing is None else self.mixing(alpha)

    # -- BatchNorm running statistics ------------------------------------------
    @contextmanager
    def frozen_bn_stats(self):
        """Inside, training-mode BatchNorm normalises with batch statistics as usual but
        leaves running statistics and `num_batches_tracked` alone (the arch step's passes)."""
        if not self.training or self._stats_frozen:
            yield
            return
        if "_bn_modules" not in self.__dict__:       # the module tree never changes: walk it once
            self.__dict__["_bn_modules"] = [m for m in self.modules()
                                            if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        mods = [m for m in self.__dict__["_bn_modules"] if m.track_running_stats]
        self._stats_frozen = True
        try:
            with running_stats_untouched(mods):
                yield
        finally:
            self._stats_frozen = False
