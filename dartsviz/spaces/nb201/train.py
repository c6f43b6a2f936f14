"""The NAS-Bench-201 space's training from scratch: NB201TrainConfig and its presets, and
NB201Trainer, which `dartsviz.train.Train` drives.

    train = Train(parse_genotype("|nor_conv_3x3~0|+|...|"), NB201TrainConfig.preset("tiny"))
    train.run()

The `paper` preset is the benchmark's own recipe (`200E.config`): C = 16, 5 cells per stage,
SGD with Nesterov momentum 0.9, lr 0.1 cosine to 0, weight decay 5e-4, batch 256, 200 epochs,
no gradient clipping, random crops and flips. The benchmark trained on 25k images of the
CIFAR-10 training set ("cifar10-valid"); this trains on the data set's whole training split.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List

import torch

from ... import distributed
from ...config import ConfigBase, RunFields, WeightOptimFields
from ...data import BatchStream, check_dataset_name
from ..cnn.train import image_training_data
from ..trainer import SpaceTrainer
from .network import NB201Network


@dataclass
class NB201TrainConfig(ConfigBase, WeightOptimFields, RunFields):
    """Training-from-scratch settings of an nb201 cell; defaults are the benchmark's recipe."""

    space: str = "nb201"              # fixed: a run directory says which space trained it
    dataset: str = "cifar10"
    data_dir: str = "./data"
    download: bool = False
    channels: int = 16                # C: the stages are C, 2C, 4C wide
    layers: int = 5                   # cells per stage (N)
    batch_size: int = 256
    epochs: int = 200
    lr: float = 0.1
    lr_min: float = 0.0
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    grad_clip: float = 0.0            # 0: no clipping (the benchmark clips none)

    def validate(self) -> "NB201TrainConfig":
        if self.space != "nb201":
            raise ValueError(f"NB201TrainConfig trains the nb201 space, got space={self.space!r}")
        self._check_positive(("layers", "channels", "batch_size", "epochs", "sync_every"))
        self._check_positive(("lr",), integer=False)
        self._check_common()
        check_dataset_name(self.dataset)
        if not isinstance(self.nesterov, bool):
            raise ValueError(f"nesterov must be True or False, got {self.nesterov!r}")
        if self.grad_clip < 0:
            raise ValueError(f"grad_clip must be 0 (none) or positive, got {self.grad_clip}")
        return self


NB201TrainConfig.PRESETS = {
    # The benchmark's 200-epoch recipe on CIFAR-10 (needs --data-dir with CIFAR-10).
    "paper": dict(dataset="cifar10"),
    # Digits (8x8) on a laptop CPU in seconds: 8 channels, one cell per stage, 10 epochs.
    "tiny": dict(dataset="digits", channels=8, layers=1, batch_size=64, epochs=10, lr=0.05),
}


class NB201Trainer(SpaceTrainer):
    """An nb201 evaluation network of the genotype's cell, trained with the benchmark's SGD."""

    config_class = NB201TrainConfig
    data_parallel = True

    def __init__(self, space, genotype, config: NB201TrainConfig, device, dtype, data=None):
        super().__init__(space, genotype, config, device, dtype)
        c = config
        self.data = image_training_data(c, device, data)
        self.model = NB201Network(genotype, c.channels, c.layers, self.data.num_classes,
                                  self.data.in_channels).to(device, dtype)
        self.stream = BatchStream(self.data, "train", c.batch_size, c.seed + 1, dtype)

    def make_optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        return torch.optim.SGD(self.model.parameters(), lr=c.lr, momentum=c.momentum, nesterov=c.nesterov,
                               weight_decay=c.weight_decay, foreach=True)

    def shard(self, batch):
        return distributed.shard(batch)                  # (B/W, C, H, W), (B/W,)

    def end_epoch(self, epoch: int, steps: List):
        losses, metrics, _ = super().end_epoch(epoch, steps)
        return losses, metrics, {"params": self.params}

    def summary(self, history: List) -> Dict[str, Any]:
        out = super().summary(history)
        truth = self.space.truth_of(self.genotype)
        if truth is not None:
            out["true_valid_acc"] = truth["true_valid_acc"]
        return out

    def network_line(self) -> str:
        c = self.config
        return (f"network: {c.layers} cells per stage, {c.channels} channels, {self.params:,} parameters "
                f"(the benchmark's: C=16, N=5)")
