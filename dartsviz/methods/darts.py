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
  DARTS: the config's `warmup_epochs`. `lr_position(epoch)`: where the weights' cosine
  schedule stands (P-DARTS restarts it every stage).
- `on_epoch_start(search, epoch)` / `on_epoch_end(search, epoch)`: schedules and
  changes of the supernet between epochs (P-DARTS' stages and op pruning).
- `derive(space, probs)`: the genotype from the softmax weights. DARTS: the space's rule.
- `monitors(search)`: extra numbers for the step record (a Hessian eigenvalue, say),
  as 0-dim device tensors so they travel with the step's other numbers.
- `check_config(config)`: refuse settings the variant cannot run with;
  `state_dict()` / `load_state_dict(search, state)`: the method's own state in checkpoints
  (P-DARTS' stage and op masks, restored before the weights).

`progress` is the fraction of the search done, in [0, 1]. Register a variant with
`register_method(MyMethod())`; `SearchConfig.variant` names it.

A variant's settings (its paper's beta_0, lambda, eps, ...) live in
`SearchConfig.variant_options`: `DEFAULTS` holds the paper's values, `check_options`
refuses unknown keys and bad values in one line, and `bind(config, space)` gives the copy of
the method one search uses, with `options` filled in and `epochs` known (for per-epoch
schedules t/T, `epoch_at(progress)`). `presets` holds the variant's adjustments of the
config presets: {"paper": {...}, "tiny": {...}}, applied by `SearchConfig.preset(name, variant=...)`.
"""
from __future__ import annotations

import copy
import math
from typing import Dict, List, Optional

import torch

from ..spaces.supernet import softmax_weights


class Method:
    """Plain DARTS (Liu et al., ICLR 2019): every hook at its default."""

    name = "darts"
    DEFAULTS: Dict[str, object] = {}       # option -> the paper's value (SearchConfig.variant_options)
    presets: Dict[str, dict] = {}          # preset name -> SearchConfig overrides ("paper", "tiny")
    SPACES: Optional[tuple] = None         # the spaces the variant works in (None: every space)
    SPACES_WHY: str = ""                   # why not in the others, said with the refusal
    epochs: int = 50                       # the search's epochs, T of the schedules (bind sets it)
    space = None                           # the search's SearchSpace (bind sets it)
    capture_refusal: Optional[str] = None  # why its step cannot be a CUDA graph (None: it can, as DARTS)

    def __init__(self):
        self.options = dict(self.DEFAULTS)  # what `bind` checked; the paper's values until then

    # -- settings ---------------------------------------------------------------------
    def check_options(self, options, space: Optional[str] = None) -> Dict[str, object]:
        """`options` over `DEFAULTS`; unknown keys, bad values (see `check_option_values`)
        and spaces outside `SPACES` raise a one-line ValueError."""
        if not isinstance(options, dict):
            raise ValueError(f"variant_options must be a dict, got {options!r}")
        unknown = [k for k in options if k not in self.DEFAULTS]
        if unknown:
            known = ", ".join(self.DEFAULTS) or "none"
            raise ValueError(f"unknown option(s) {', '.join(map(repr, unknown))} for variant {self.name!r}; "
                             f"known options: {known}")
        if space is not None and self.SPACES is not None and space not in self.SPACES:
            raise ValueError(f"variant {self.name!r} works in the {' and '.join(self.SPACES)} space(s), "
                             f"not {space!r}" + (f": {self.SPACES_WHY}" if self.SPACES_WHY else ""))
        options = {**self.DEFAULTS, **options}
        self.check_option_values(options)
        return options

    def check_option_values(self, options: Dict[str, object]) -> None:
        """Raise a one-line ValueError for a bad value (a variant overrides this)."""

    def check_config(self, config) -> None:
        """Raise a one-line ValueError for search settings the variant cannot run with."""

    @staticmethod
    def check_number(options: Dict[str, object], key: str, low: float = 0.0, high: float = math.inf) -> None:
        """options[key] is a finite number in [low, high] (bools and strings refused)."""
        v = options[key]
        if (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                or not low <= v <= high):
            raise ValueError(f"variant option {key} must be a finite number in [{low}, {high}], got {v!r}")

    def bind(self, config, space=None) -> "Method":
        """The copy of this method one search uses: `options` from config.variant_options
        (checked, the paper's values filled in), `epochs` from config.epochs, `space`."""
        method = copy.copy(self)
        method.options = self.check_options(getattr(config, "variant_options", {}) or {},
                                            getattr(space, "name", space))
        method.epochs = config.epochs
        method.space = space
        return method

    def epoch_at(self, progress: float) -> int:
        """The 0-based epoch t that a step at `progress` belongs to (per-epoch schedules t/T).
        The test evaluation closing epoch t runs at the next epoch's progress, so sees t + 1
        (the last epoch's sees T - 1)."""
        return min(self.epochs - 1, int(progress * self.epochs + 1e-9))

    @staticmethod
    def step_epoch(search) -> int:
        """The epoch of the step `search` just took (for `monitors`, called after the step)."""
        return (search.step_count - 1) // search.steps_per_epoch

    # -- hooks ------------------------------------------------------------------------
    def edge_weights(self, alpha: torch.Tensor, phase: str = "arch", progress: float = 0.0) -> torch.Tensor:
        """softmax over the ops of each edge (spaces.supernet.softmax_weights). alpha: (E, O)."""
        return softmax_weights(alpha)                       # (E, O)

    def weight_loss(self, loss: torch.Tensor, model, progress: float) -> torch.Tensor:
        return loss

    def arch_penalty(self, alphas: List[torch.Tensor], progress: float) -> Optional[torch.Tensor]:
        return None

    def arch_frozen(self, epoch: int, config) -> bool:
        return epoch < config.warmup_epochs

    def build_options(self) -> Dict[str, object]:
        """Extra arguments of the space's `build` for this variant's supernet (DARTS-: aux_skip)."""
        return {}

    def lr_position(self, epoch: int):
        """(e, E): the weights' cosine schedule is at epoch e of E (P-DARTS restarts it per stage)."""
        return epoch, self.epochs

    def on_epoch_start(self, search, epoch: int) -> None:
        pass

    def on_epoch_end(self, search, epoch: int) -> None:
        pass

    def derive(self, space, probs: Dict[str, object]):
        return space.derive(probs)

    def monitors(self, search) -> Dict[str, torch.Tensor]:
        return {}

    # -- checkpoints ------------------------------------------------------------------
    def state_dict(self) -> dict:
        """What an exact resume needs of the method's own state (P-DARTS: stage, op masks)."""
        return {}

    def load_state_dict(self, search, state: dict) -> None:
        """Restore `state_dict()` into this search (before its model's weights are loaded)."""


DARTS = Method()
