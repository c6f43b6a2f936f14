"""The method seam: the places where DARTS' successors differ from DARTS, as named hooks.

A `Method` is consulted by `Search` at fixed points of every step and epoch. Every
hook's default is plain DARTS, so `Method()` *is* DARTS; a variant (PC-DARTS, P-DARTS,
DARTS-, beta-DARTS, SDARTS-RS, ...) subclasses it and overrides the few hooks its paper
changes:

- `edge_weights(alpha, phase, progress)`: the mixing of the ops of an edge. DARTS: the
  softmax over the ops. `phase` is "weight" or "arch" (SDARTS-RS perturbs only the weight
  step's mixing; DARTS- adds a decaying skip outside the softmax).
- `weight_loss(loss, model, progress)`: the weight step's loss. DARTS: unchanged.
- `arch_penalty(alphas, progress)`: a term added to the architecture loss that depends on
  the alphas only (beta-DARTS' logsumexp regulariser). DARTS: none. Its gradient is added
  to the bilevel architecture gradient of either order.
- `arch_frozen(epoch)`: whether alpha rests this epoch (PC-DARTS freezes it early).
  DARTS: the config's `warmup_epochs`.
- `on_epoch_start(search, epoch)` / `on_epoch_end(search, epoch)`: schedules and
  changes of the supernet between epochs (P-DARTS' stages and op pruning).
- `derive(space, probs)`: the genotype from the softmax weights. DARTS: the space's rule.
- `monitors(search)`: extra numbers for the step record (a Hessian eigenvalue, say),
  as 0-dim device tensors so they travel with the step's other numbers.

`progress` is the fraction of the search done, in [0, 1]. Register a variant with
`register_method(MyMethod())`; `SearchConfig.variant` names it.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import torch

from ..spaces.supernet import softmax_weights


class Method:
    """Plain DARTS (Liu et al., ICLR 2019): every hook at its default."""

    name = "darts"

    def edge_weights(self, alpha: torch.Tensor, phase: str = "arch", progress: float = 0.0) -> torch.Tensor:
        """softmax over the ops of each edge (spaces.supernet.softmax_weights). alpha: (E, O)."""
        return softmax_weights(alpha)                       # (E, O)

    def weight_loss(self, loss: torch.Tensor, model, progress: float) -> torch.Tensor:
        return loss

    def arch_penalty(self, alphas: List[torch.Tensor], progress: float) -> Optional[torch.Tensor]:
        return None

    def arch_frozen(self, epoch: int, config) -> bool:
        return epoch < config.warmup_epochs

    def on_epoch_start(self, search, epoch: int) -> None:
        pass

    def on_epoch_end(self, search, epoch: int) -> None:
        pass

    def derive(self, space, probs: Dict[str, object]):
        return space.derive(probs)

    def monitors(self, search) -> Dict[str, torch.Tensor]:
        return {}


DARTS = Method()
_REGISTRY: Dict[str, Method] = {DARTS.name: DARTS}


def register_method(method: Method) -> Method:
    """Make `method` known by its name (a later registration under the name replaces it)."""
    _REGISTRY[method.name] = method
    return method


def get_method(name) -> Method:
    if isinstance(name, Method):
        return name
    if name not in _REGISTRY:
        raise ValueError(f"unknown variant {name!r}; known variants: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def method_names() -> List[str]:
    return sorted(_REGISTRY)
