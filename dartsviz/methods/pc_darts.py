"""PC-DARTS (Xu et al., ICLR 2020): partial channel connections and edge normalisation.

What changes against DARTS lives in the convolutional supernet, switched on by the
variant's two options (`variant_options`, the paper's values by default), which
`build_options` hands to the space's `build` (`spaces/cnn/supernet.py`):

- `partial_channels` K: each mixed op runs on the first C/K channels of its input, the
  other channels bypass it (2x2 max-pooled on reduction edges), then [ops ; bypass] is
  channel-shuffled with K groups (K=4 on CIFAR-10, 2 on ImageNet);
- `edge_norm`: one beta per edge, softmax over each node's incoming edges, multiplying
  the edge's output; the betas are architecture parameters (the same Adam as alpha).

Here: the derivation (edges ranked by max over non-`none` ops of softmax(alpha) *
softmax(beta), each edge's op by alpha), a monitor of how peaked softmax(beta) is, and
the presets. alpha (and beta) rest for the first `warmup_epochs` (the paper: 15 of 50),
DARTS' own rule. With K=1 and edge_norm off (`variant_options`) this is DARTS.
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import torch

from ..config import check_bool, check_positive
from .darts import Method

PAPER = dict(
    # the authors' train_search.py on CIFAR-10: 8 cells, 16 channels, 50 epochs, seed 2
    variant_options={"partial_channels": 4, "edge_norm": True},
    batch_size=256, lr=0.1, lr_min=0.0,               # SGD momentum 0.9, wd 3e-4, cosine to 0
    arch_lr=6e-4, arch_betas=(0.5, 0.999), arch_weight_decay=1e-3,   # Adam for alpha and beta
    warmup_epochs=15, epochs=50, order=1,             # alpha frozen for 15 of 50 epochs; first order
)
TINY = dict(
    # digits on a CPU: DARTS' tiny supernet at twice the channels, so that K=4 leaves each op
    # 4 channels (16/4; a multiple of K at every cell), twice the batch and learning rate
    # (the paper's trade: partial channels pay for a larger batch), alpha frozen for the
    # first 3 of 10 epochs (the paper's 30%)
    variant_options={"partial_channels": 4, "edge_norm": True}, channels=16,
    batch_size=64, lr=0.1, lr_min=0.01,
    warmup_epochs=3, epochs=10, order=1,
)
PRESETS: Dict[str, dict] = {"paper": PAPER, "tiny": TINY}


def edge_entropy(edge_probs: torch.Tensor, nodes: int) -> torch.Tensor:
    """Mean over intermediate nodes of the entropy of softmax(beta) over the node's incoming
    edges, each divided by its maximum log(inputs): 1 = uniform, 0 = one edge. 0-dim."""
    parts = edge_probs.split(list(range(2, 2 + nodes)))                        # (n_in,) per node
    h = [-(p * p.clamp_min(1e-30).log()).sum() / math.log(p.numel()) for p in parts]
    return torch.stack(h).mean()


class PCDarts(Method):
    """PC-DARTS: the supernet's partial channels and edge normalisation, beta-aware derivation."""

    name = "pc_darts"
    DEFAULTS = {"partial_channels": 4,  # K: mixed ops see 1/K of the channels (1: all, DARTS; ImageNet: 2)
                "edge_norm": True}      # one beta per edge, softmax over a node's inputs
    SPACES = ("cnn",)
    SPACES_WHY = ("its partial channels and edge normalisation act on the convolutional cells' mixed ops "
                  "and their nodes' two strongest inputs")
    presets = PRESETS

    def check_option_values(self, options) -> None:
        check_positive("partial_channels", options["partial_channels"])
        check_bool("edge_norm", options["edge_norm"])

    def check_config(self, config) -> None:
        """K must divide the channels (one line, before anything is built)."""
        from ..spaces.cnn.supernet import check_partial_channels
        options = self.check_options(getattr(config, "variant_options", {}) or {})
        check_partial_channels(config.channels, options["partial_channels"])

    def build_options(self):
        return {"partial_channels": self.options["partial_channels"], "edge_norm": self.options["edge_norm"]}

    def derive(self, space, probs, edge_probs: Optional[Dict[str, object]] = None):
        """PC-DARTS' rule when softmax(beta) per cell type is known (`edge_probs`, or
        `probs.edge_probs` as a supernet's `probs()` carries it), else DARTS' rule."""
        if edge_probs is None:
            edge_probs = getattr(probs, "edge_probs", None)
        if edge_probs is None:
            return space.derive(probs)
        return space.derive(probs, edge_probs=edge_probs)

    def monitors(self, search) -> Dict[str, torch.Tensor]:
        """`beta_entropy_<cell type>`: edge_entropy of softmax(beta) (none without edge_norm)."""
        model = search.model
        edge_probs = model.edge_probs() if hasattr(model, "edge_probs") else None
        if edge_probs is None:
            return {}
        return {f"beta_entropy_{k}": edge_entropy(p, model.nodes) for k, p in edge_probs.items()}


PC_DARTS = PCDarts()
