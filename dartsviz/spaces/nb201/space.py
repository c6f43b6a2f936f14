"""The NAS-Bench-201 space (Dong & Yang, ICLR 2020): one cell of 4 nodes over 6 edges of 5 ops,
shared by every cell of a three-stage network, and the benchmark's derivation (the strongest op
of every edge, `none` included). Its 15,625 cells were all trained on CIFAR-10, so every derived
cell's true accuracy is known (`dartsviz.truth`): each step record carries it in `monitors`.

Config fields of SearchConfig here: `channels` is C (stages C, 2C, 4C), `layers` the cells per
stage (N; the benchmark's 5); `nodes` and `impl` do not apply.
"""
from __future__ import annotations

from typing import Dict, List, Optional

from ...data import check_dataset_name, load_data
from ..base import SearchSpace
from .genotype import (ALL_SKIP, CELL_TYPE, EDGES, NODES, PRIMITIVES, NB201Genotype, derive, parse_genotype,
                       random_genotype)
from .network import NB201SearchNetwork

OP_COLOURS: Dict[str, str] = {
    "none": "#b0b0b0",
    "skip_connect": "#d62728",
    "avg_pool_3x3": "#f2d24b",
    "nor_conv_1x1": "#17becf",
    "nor_conv_3x3": "#1f77b4",
}
OP_SHORT: Dict[str, str] = {"none": "none", "skip_connect": "skip", "nor_conv_1x1": "conv1",
                            "nor_conv_3x3": "conv3", "avg_pool_3x3": "avg3"}


class NB201Space(SearchSpace):
    """Image classification in the NAS-Bench-201 cell space, with every cell's true accuracy."""

    name = "nb201"
    genotype_class = NB201Genotype
    cell_types = (CELL_TYPE,)
    ops = PRIMITIVES
    zero_op = "none"
    skip_op = "skip_connect"
    parameter_free = ("none", "skip_connect", "avg_pool_3x3")
    metric = "acc"
    default_dataset = "cifar10"
    unused_search_flags = {"nodes": f"the nb201 cell has {NODES} nodes", "impl": "one implementation"}
    unused_train_flags = {"nhid": "its width is --channels", "drop_path_prob": "no drop-path",
                          "no_auxiliary": "no auxiliary head", "no_cutout": "no cutout", "workers": "no workers"}
    paper_genotypes = {"ALL_SKIP": ALL_SKIP,
                       "NB201_BEST": parse_genotype("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
                                                    "|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|")}

    def check_config(self, config) -> None:
        check_dataset_name(config.dataset)
        if getattr(config, "nodes", 4) != 4:
            raise ValueError(f"the nb201 cell has {NODES} nodes (node 0 the input, node 3 the output); "
                             f"got nodes={config.nodes}")

    def load_data(self, config, device):
        return load_data(config.dataset, config.data_dir, config.download, device,
                         getattr(config, "train_portion", 0.5))

    def build(self, config, data) -> NB201SearchNetwork:
        return NB201SearchNetwork(config.channels, config.layers, data.num_classes, data.in_channels,
                                  alpha_init_std=config.alpha_init_std)

    # -- the architecture ------------------------------------------------------------
    def derive(self, probs, edge_probs=None) -> NB201Genotype:
        return derive(probs[CELL_TYPE])

    def random_genotype(self, seed=None) -> NB201Genotype:
        return random_genotype(seed)

    def trainer(self):
        from .train import NB201Trainer
        return NB201Trainer

    # -- ground truth ------------------------------------------------------------------
    def truth_of(self, genotype) -> Optional[Dict[str, float]]:
        """The cell's true CIFAR-10 numbers from the shipped table: {"true_valid_acc" and
        "true_test_acc" (%, 200 epochs, cifar10-valid split), "true_rank" (1 = best of 15,625)}."""
        from ... import truth
        t = truth.lookup(genotype)
        return {"true_valid_acc": float(t.valid_acc), "true_test_acc": float(t.test_acc), "true_rank": float(t.rank)}

    def record_numbers(self, genotype) -> Dict[str, float]:
        """What each step record carries: the true validation accuracy and rank."""
        t = self.truth_of(genotype)
        return {"true_valid_acc": t["true_valid_acc"], "true_rank": t["true_rank"]}

    def genotype_notes(self, genotype, dataset: str) -> List[str]:
        """The cell's true accuracy and rank, said as what it scores on CIFAR-10."""
        from ... import truth
        return [truth.describe(genotype, dataset)]

    # -- drawing ---------------------------------------------------------------------
    def edges(self, cell_type: str, n_edges: int) -> List[tuple]:
        return list(EDGES)

    def node_labels(self, cell_type: str, n_nodes: int) -> List[str]:
        return ["in"] + [str(i) for i in range(1, n_nodes)]

    def output_label(self, cell_type: str) -> str:
        return "out"

    def output_combine(self, cell_type: str) -> Optional[str]:
        return None

    @property
    def op_colours(self) -> Dict[str, str]:
        return OP_COLOURS

    @property
    def op_short(self) -> Dict[str, str]:
        return OP_SHORT

    def cell_title(self, cell_type: str) -> str:
        return "shared cell"                 # one cell for the whole network


NB201 = NB201Space()          # registered by dartsviz.spaces
