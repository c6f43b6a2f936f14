"""The convolutional space of the DARTS paper (CIFAR-10): a normal and a reduction cell,
each 4 intermediate nodes over 14 edges of the 8 primitives, and the DARTS derivation
(two strongest incoming edges per node, the strongest non-`none` op per edge)."""
from __future__ import annotations

from typing import Dict, List, Optional


from ...data import check_dataset_name, load_data
from ..base import SearchSpace
from .genotype import (GENOTYPES, Genotype, derive, derive_cell, derive_cell_edge_normalised,  # noqa: F401
                       derive_edge_normalised, edges_of, nodes_for_edges, random_genotype)
from .ops import PARAMETER_FREE, PRIMITIVES, check_even_channels

IMPLS = ("fast", "reference")   # fast: FastSearchNetwork (the same function, edge-batched)

# Parameter-free ops in greys and warm colours, convolutions in cool ones.
OP_COLOURS: Dict[str, str] = {
    "none": "#b0b0b0",
    "max_pool_3x3": "#e6a100",
    "avg_pool_3x3": "#f2d24b",
    "skip_connect": "#d62728",
    "sep_conv_3x3": "#1f77b4",
    "sep_conv_5x5": "#17becf",
    "dil_conv_3x3": "#2ca02c",
    "dil_conv_5x5": "#9467bd",
}
OP_SHORT: Dict[str, str] = {
    "none": "none", "max_pool_3x3": "max3", "avg_pool_3x3": "avg3", "skip_connect": "skip",
    "sep_conv_3x3": "sep3", "sep_conv_5x5": "sep5", "dil_conv_3x3": "dil3", "dil_conv_5x5": "dil5",
}
CELL_TITLES = {"normal": "normal cell", "reduce": "reduction cell"}


class CNNSpace(SearchSpace):
    """Image classification with convolutional cells (DARTS section 2, CIFAR-10 search)."""

    name = "cnn"
    genotype_class = Genotype
    unused_train_flags = {"nhid": "its width is --channels"}
    cell_types = ("normal", "reduce")
    ops = tuple(PRIMITIVES)
    zero_op = "none"
    default_dataset = "cifar10"
    skip_op = "skip_connect"
    parameter_free = tuple(PARAMETER_FREE)
    metric = "acc"
    paper_genotypes = GENOTYPES

    def check_config(self, config) -> None:
        check_dataset_name(config.dataset)
        check_even_channels(config.channels)
        config._check_choice("impl", IMPLS)

    def load_data(self, config, device):
        return load_data(config.dataset, config.data_dir, config.download, device,
                         getattr(config, "train_portion", 0.5))   # a TrainConfig has none: all its data trains

    def build(self, config, data, op_masks: Optional[dict] = None, aux_skip: bool = False,
              partial_channels: int = 1, edge_norm: bool = False):
        """The supernet of `config`; `op_masks` (cell type -> (edges, ops) bool, P-DARTS) builds
        only the kept ops of every edge, on the reference implementation; `aux_skip` (DARTS-)
        gives every stride-2 edge its own FactorizedReduce for the auxiliary skip;
        `partial_channels` K and `edge_norm` are PC-DARTS' (its `build_options`)."""
        from .fastnet import FastSearchNetwork
        from .supernet import SearchNetwork
        net_cls = FastSearchNetwork if config.impl == "fast" else SearchNetwork
        extra = {}
        if op_masks is not None:
            if config.impl == "fast":
                raise ValueError("per-edge op sets (P-DARTS) run on the reference supernet: use impl='reference'")
            extra["op_masks"] = op_masks
        if aux_skip:
            extra["aux_skip"] = True
        return net_cls(config.channels, data.num_classes, config.layers, data.in_channels, config.nodes,
                       stem_multiplier=config.stem_multiplier, alpha_init_std=config.alpha_init_std,
                       partial_channels=partial_channels, edge_norm=edge_norm, **extra)

    # -- the architecture ------------------------------------------------------------
    def derive(self, probs, edge_probs: Optional[dict] = None) -> Genotype:
        """DARTS' rule on softmax(alpha) per cell type; with `edge_probs` (softmax(beta) per
        cell type, each (edges,)) PC-DARTS' rule, edges ranked with beta."""
        if edge_probs is not None:
            return derive_edge_normalised(probs, edge_probs)
        return derive(probs["normal"], probs["reduce"])

    def random_genotype(self, seed=None) -> Genotype:
        return random_genotype(seed)

    def trainer(self):
        from .train import CNNTrainer        # torch data loading and the evaluation networks: when asked for
        return CNNTrainer

    # -- drawing ---------------------------------------------------------------------
    def edges(self, cell_type: str, n_edges: int) -> List[tuple]:
        return edges_of(nodes_for_edges(n_edges))

    def node_labels(self, cell_type: str, n_nodes: int) -> List[str]:
        return ["c[k-2]", "c[k-1]"] + [str(i) for i in range(2, n_nodes)]

    def output_label(self, cell_type: str) -> str:
        return "c[k]"

    @property
    def op_colours(self) -> Dict[str, str]:
        return OP_COLOURS

    @property
    def op_short(self) -> Dict[str, str]:
        return OP_SHORT

    def cell_title(self, cell_type: str) -> str:
        return CELL_TITLES[cell_type]


CNN = CNNSpace()          # registered by dartsviz.spaces
