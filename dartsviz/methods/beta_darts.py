"""beta-DARTS (Ye et al., CVPR 2022): a logsumexp regulariser on the architecture loss.

The architecture step minimises  L_val + lambda_t * mean over edges of logsumexp(alpha_edge),
the mean taken over the edges of every cell type together. The gradient of the term
with respect to alpha_o of an edge is lambda_t * softmax(alpha)_o / (number of edges): each
op decays in proportion to its own weight, which keeps the alphas from running away
(the authors' `mlc_loss`, optimizers/darts/architect.py).

lambda_t = lambda_max * t / T over the epochs t = 0 .. T-1 (the authors' code has
50 * epoch / 100 with 100 epochs on NAS-Bench-201; their DARTS-space script passes no
epoch, so the ramp is written here against the search's own T).
"""
from __future__ import annotations

from typing import Dict, List, Optional

import torch

from .darts import Method


def logsumexp_penalty(alphas: List[torch.Tensor]) -> torch.Tensor:
    """mean over the edges of every alpha of logsumexp over the ops; 0-dim."""
    return torch.cat([torch.logsumexp(a, dim=-1) for a in alphas]).mean()      # (E_total,) -> ()


class BetaDarts(Method):
    """DARTS whose architecture loss adds lambda_t * mean logsumexp(alpha), lambda ramping up."""

    capture_refusal = "its regulariser's weight follows the search's progress, which a captured step would freeze"

    name = "beta_darts"
    DEFAULTS = {"lambda_max": 50.0}            # lambda_t = lambda_max * t / T
    presets = {
        # the authors' settings: DARTS' own (batch 64, lr 0.025, arch Adam 3e-4, 50 epochs),
        # the regulariser ramping to 50
        "paper": {"variant_options": {"lambda_max": 50.0}},
        "tiny": {"variant_options": {"lambda_max": 50.0}},
    }

    def lambda_at(self, epoch: int) -> float:
        """lambda_t = lambda_max * t / T."""
        return self.options["lambda_max"] * epoch / self.epochs

    def check_option_values(self, options) -> None:
        self.check_number(options, "lambda_max")

    def arch_penalty(self, alphas: List[torch.Tensor], progress: float) -> Optional[torch.Tensor]:
        return self.lambda_at(self.epoch_at(progress)) * logsumexp_penalty(alphas)

    def monitors(self, search) -> Dict[str, torch.Tensor]:
        return {"lambda_t": torch.tensor(self.lambda_at(self.step_epoch(search)), device=search.device)}


