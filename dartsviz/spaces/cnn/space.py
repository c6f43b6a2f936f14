"""The convolutional space of the DARTS paper (CIFAR-10): a normal and a reduction cell,
each 4 intermediate nodes over 14 edges of the 8 primitives, and the DARTS derivation
(two strongest incoming edges per node, the strongest non-`none` op per edge)."""
from __future__ import annotations

from typing import Dict, List

from ...data import check_dataset_name, load_data
from .. import SearchSpace, register_space
from .genotype import GENOTYPES, Genotype, derive, edges_of, nodes_for_edges, random_genotype
from .ops import PARAMETER_FREE, PRIMITIVES

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


def check_even_channels(channels: int) -> None:
    if channels % 2:
        raise ValueError(f"channels must be even (FactorizedReduce halves them), got {channels}")


class CNNSpace(SearchSpace):
    """Image classification with convolutional cells (DARTS section 2, CIFAR-10 search)."""

    name = "cnn"
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

    def build(self, config, data):
        from .fastnet import FastSearchNetwork
        from .supernet import SearchNetwork
        net_cls = FastSearchNetwork if config.impl == "fast" else SearchNetwork
        return net_cls(config.channels, data.num_classes, config.layers, data.in_channels, config.nodes,
                       stem_multiplier=config.stem_multiplier, alpha_init_std=config.alpha_init_std)

    # -- the architecture ------------------------------------------------------------
    def derive(self, probs) -> Genotype:
        return derive(probs["normal"], probs["reduce"])

    def parse_genotype(self, text: str) -> Genotype:
        return Genotype.from_text(text)

    def genotype_from_dict(self, d: dict) -> Genotype:
        return Genotype.from_dict(d)

    def random_genotype(self, seed=None) -> Genotype:
        return random_genotype(seed)

    def trainer(self):
        from ...train import Train, TrainConfig
        return Train, TrainConfig

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


CNN = register_space(CNNSpace())
