"""DARTS- (Chu et al., ICLR 2021): an auxiliary skip connection outside the softmax.

Every edge outputs  sum_o softmax(alpha)_o * o(x) + beta_t * aux(x),  with aux the
identity, so the skip op no longer needs a large weight to pass its gradient-friendly
residual path through, and beta_t = beta_0 * (T - t) / T decays linearly over the epochs
t = 0 .. T-1 (the authors' `DecayScheduler`, linear, stepped once per epoch, in both the
weight and the architecture step).

Here the mixing returns one weight more than the ops: softmax(alpha) and, last, beta_t,
the weight of the edge's auxiliary skip. The supernet adds beta_t * aux(x) to every edge:
on stride-1 edges (all of the normal cell, and the reduction cell's edges between
intermediate nodes) aux is the identity; on the reduction cell's stride-2 edges it is a
FactorizedReduce of its own (`build_options`: aux_skip), as in the authors'
`src/search/model_search.py`, built after every other parameter so that the rest of the
supernet starts as DARTS' does.
"""
from __future__ import annotations

from typing import Dict

import torch

from ..spaces.supernet import softmax_weights
from .darts import Method


class DartsMinus(Method):
    """DARTS with an auxiliary skip beta_t * x on every edge, beta_t decaying linearly to 0."""

    capture_refusal = "its auxiliary skip decays with the search's progress, which a captured step would freeze"

    name = "darts_minus"
    DEFAULTS = {"beta_0": 1.0}                 # the authors' --skip_beta, linear decay
    SPACES = ("cnn",)
    SPACES_WHY = ("its auxiliary skip is built into the convolutional cells' stride-2 edges (the rnn space's "
                  "identity sits inside a gate, and nb201's reductions are fixed blocks)")
    presets = {
        # the authors' CIFAR-10 search (scripts/run_darts_minus.sh): DARTS' own settings
        # (50 epochs, batch 64, first order), beta_0 = 1, linear decay
        "paper": {"variant_options": {"beta_0": 1.0}},
        "tiny": {"variant_options": {"beta_0": 1.0}},
    }
    def beta_at(self, epoch: int) -> float:
        """beta_t = beta_0 * (T - t) / T."""
        return self.options["beta_0"] * (self.epochs - epoch) / self.epochs

    def check_option_values(self, options) -> None:
        self.check_number(options, "beta_0")

    def build_options(self):
        return {"aux_skip": True}                  # the stride-2 edges' own FactorizedReduce

    def edge_weights(self, alpha: torch.Tensor, phase: str = "arch", progress: float = 0.0) -> torch.Tensor:
        """[softmax(alpha), beta_t]: the ops' weights and, last, the auxiliary skip's. alpha: (E, O)."""
        probs = softmax_weights(alpha)                                        # (E, O)
        aux = probs.new_full((probs.shape[0], 1), self.beta_at(self.epoch_at(progress)))   # (E, 1)
        return torch.cat([probs, aux], -1)                                    # (E, O + 1)

    def monitors(self, search) -> Dict[str, torch.Tensor]:
        return {"beta_t": torch.tensor(self.beta_at(self.step_epoch(search)), device=search.device)}


