"""SDARTS-RS (Chen & Hsieh, ICML 2020): random smoothing of the weight step.

The weight step trains the weights under a randomly perturbed architecture: the softmax
weights of each edge plus uniform noise delta ~ U[-eps, eps], clipped to [0, 1] and
renormalised per edge (an edge clipped to all zeros keeps only its largest entry), as the
authors' `Random_alpha` and `model.clip` do on softmax(alpha). The architecture step is
plain DARTS. The noise is drawn anew for every weight-step forward pass from torch's
global generator, which a search's checkpoint saves, so a resumed search draws the same
noise. eps_t = eps_min + (eps_max - eps_min) * t / T over the epochs t = 0 .. T-1
(0.03 to 0.3 in the paper).
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F

from ..spaces.supernet import softmax_weights
from .darts import Method


def perturbed_simplex(probs: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """clip(probs + delta, 0, 1) renormalised per edge; an edge clipped to all zeros becomes
    one-hot at the argmax of probs + delta. probs, delta: (E, O)."""
    noisy = probs + delta                                                     # (E, O)
    clipped = noisy.clamp(0.0, 1.0)                                           # (E, O)
    dead = clipped.sum(-1, keepdim=True) == 0                                 # (E, 1)
    onehot = F.one_hot(noisy.argmax(-1), probs.shape[-1]).to(probs.dtype)     # (E, O)
    clipped = torch.where(dead, onehot, clipped)
    return clipped / clipped.sum(-1, keepdim=True)                           # (E, O)


class SdartsRS(Method):
    """DARTS whose weight step mixes the ops with randomly perturbed softmax weights."""

    capture_refusal = "its perturbation follows the search's progress, which a captured step would freeze"

    name = "sdarts_rs"
    DEFAULTS = {"eps_min": 0.03, "eps_max": 0.3}
    presets = {
        # the authors' CIFAR-10 search (sota/cnn/train_search.py): DARTS' own settings,
        # eps from 0.03 to --epsilon_alpha 0.3
        "paper": {"variant_options": {"eps_min": 0.03, "eps_max": 0.3}},
        "tiny": {"variant_options": {"eps_min": 0.03, "eps_max": 0.3}},
    }

    def eps_at(self, epoch: int) -> float:
        """eps_t = eps_min + (eps_max - eps_min) * t / T."""
        lo, hi = self.options["eps_min"], self.options["eps_max"]
        return lo + (hi - lo) * epoch / self.epochs

    def check_option_values(self, options) -> None:
        self.check_number(options, "eps_min", 0.0, 1.0)
        self.check_number(options, "eps_max", 0.0, 1.0)
        if options["eps_min"] > options["eps_max"]:
            raise ValueError(f"variant option eps_min must not exceed eps_max, got "
                             f"{options['eps_min']} > {options['eps_max']}")

    def edge_weights(self, alpha: torch.Tensor, phase: str = "arch", progress: float = 0.0) -> torch.Tensor:
        """softmax(alpha); in the weight step perturbed (a constant there: no gradient to alpha). alpha: (E, O)."""
        probs = softmax_weights(alpha)                                        # (E, O)
        if phase != "weight":
            return probs
        eps = self.eps_at(self.epoch_at(progress))
        with torch.no_grad():
            delta = torch.empty_like(probs).uniform_(-eps, eps)               # (E, O), global RNG
            return perturbed_simplex(probs, delta)                            # (E, O)

    def monitors(self, search) -> Dict[str, torch.Tensor]:
        return {"eps_t": torch.tensor(self.eps_at(self.step_epoch(search)), device=search.device)}


