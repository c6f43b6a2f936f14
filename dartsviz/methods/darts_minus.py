"""DARTS- (Chu et al., ICLR 2021): an auxiliary skip connection outside the softmax.

Every edge outputs  sum_o softmax(alpha)_o * o(x) + beta_t * aux(x),  with aux the
identity, so the skip op no longer needs a large weight to pass its gradient-friendly
residual path through, and beta_t = beta_0 * (T - t) / T decays linearly over the epochs
t = 0 .. T-1 (the authors' `DecayScheduler`, linear, stepped once per epoch, in both the
weight and the architecture step).

Here aux is the skip op's own column of the mixing: the weights are softmax(alpha) plus
beta_t on the skip op, and the supernet's sum over ops does the rest. On stride-1 edges
(all of the normal cell, and the reduction cell's edges between intermediate nodes) the
skip op is the identity, so this is exactly the authors' aux. On the reduction cell's
stride-2 edges the skip op is a FactorizedReduce: the authors add a *separate*
FactorizedReduce with its own weights there (`src/search/model_search.py`), while here
beta_t scales the skip op's own FactorizedReduce, sharing its weights. Doing it the
authors' way needs a hook the seam lacks: a term added to each edge's output by a module
of the method's own (`edge_extra(x, edge, stride)`), in supernet.py and fastnet.py.
"""
from __future__ import annotations

from typing import Dict

import torch

from ..spaces.supernet import softmax_weights
from . import Method, register_method


class DartsMinus(Method):
    """DARTS with an auxiliary skip beta_t * x on every edge, beta_t decaying linearly to 0."""

    name = "darts_minus"
    DEFAULTS = {"beta_0": 1.0}                 # the authors' --skip_beta, linear decay
    SPACES = ("cnn",)                          # the rnn space's identity op sits inside a gate
    presets = {
        # the authors' CIFAR-10 search (scripts/run_darts_minus.sh): DARTS' own settings
        # (50 epochs, batch 64, first order), beta_0 = 1, linear decay
        "paper": {"variant_options": {"beta_0": 1.0}},
        "tiny": {"variant_options": {"beta_0": 1.0}},
    }
    skip_index = 3                             # the skip op's column (cnn: skip_connect); bind sets it

    def bind(self, config, space=None) -> "DartsMinus":
        method = super().bind(config, space)
        if space is not None and getattr(space, "skip_op", None) in getattr(space, "ops", ()):
            method.skip_index = space.ops.index(space.skip_op)
        return method

    def beta_at(self, epoch: int) -> float:
        """beta_t = beta_0 * (T - t) / T."""
        return self.options["beta_0"] * (self.epochs - epoch) / self.epochs

    def check_option_values(self, options) -> None:
        self.check_number(options, "beta_0")

    def edge_weights(self, alpha: torch.Tensor, phase: str = "arch", progress: float = 0.0) -> torch.Tensor:
        """softmax(alpha) plus beta_t on the skip op's column. alpha: (E, O)."""
        probs = softmax_weights(alpha)                                        # (E, O)
        ops = torch.arange(probs.shape[-1], device=probs.device)              # (O,)
        aux = (ops == self.skip_index).to(probs.dtype) * self.beta_at(self.epoch_at(progress))   # (O,)
        return probs + aux                                                    # (E, O)

    def monitors(self, search) -> Dict[str, torch.Tensor]:
        return {"beta_t": torch.tensor(self.beta_at(self.step_epoch(search)), device=search.device)}


register_method(DartsMinus())
