"""SpaceTrainer: what training a genotype from scratch needs from one search space.

The generic loop (`dartsviz.train.Train`: optimiser and schedule, records, checkpoints and
exact resume, progress, torchrun) drives a space's trainer, which lives beside the space
(`spaces/cnn/train.py`: drop-path, auxiliary head, cutout, image folders, MACs;
`spaces/rnn/train.py`: BPTT, averaged SGD) and knows nothing of the loop's bookkeeping:

    trainer = space.trainer()(space, genotype, config, device, dtype, data)   # data, network, stream
    trainer.loop = the Train that drives it (its history and optimiser)
    batch = trainer.next_batch(); scale = trainer.lr_scale(batch)
    loss, values = trainer.loss(batch)           # values: device tensors, e.g. {"train_acc": ...}
    trainer.end_epoch(epoch, steps)              # the epoch's held-out numbers
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch

from ..config import make_sgd

Numbers = Dict[str, float]


class SpaceTrainer:
    """Base class: the defaults suit a classifier trained with SGD at the loop's learning rate."""

    config_class = None                # the space's training config dataclass (with its presets)
    data_parallel = False              # whether it runs under torchrun (its metric is the space's)

    loop = None                        # the Train driving this trainer (set by the loop)
    model: torch.nn.Module

    @property
    def params(self) -> int:
        """The network's parameters (a trainer may count otherwise, e.g. without a head)."""
        return sum(p.numel() for p in self.model.parameters())

    def __init__(self, space, genotype, config, device: torch.device, dtype: torch.dtype, data=None):
        self.space, self.genotype, self.config, self.device, self.dtype = space, genotype, config, device, dtype

    # -- the weights' optimisation ----------------------------------------------------
    def make_optimizer(self) -> torch.optim.Optimizer:
        return make_sgd(self.model.parameters(), self.config)

    def lr_at(self, epoch: int, cosine: float) -> float:
        """The learning rate of `epoch` (`cosine`: the loop's cosine schedule there)."""
        return cosine

    def batches_per_pass(self) -> int:
        return len(self.stream)

    # -- one step ------------------------------------------------------------------------
    def before_step(self, epoch: int) -> Dict[str, Any]:
        """Per-epoch settings of the network (e.g. drop-path); returns them for the record."""
        return {}

    def next_batch(self):
        return next(self.stream)

    def lr_scale(self, batch) -> float:
        """The factor on this batch's learning rate (1: none)."""
        return 1.0

    def shard(self, batch):
        """Data parallel: this rank's rows of the shared batch."""
        return batch

    def loss(self, batch) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """The training loss of a batch and its numbers for the record, as device tensors
        (no host sync): {"train_loss": ..., "train_<metric>": ...}. By default the model's
        `loss(batch) -> (loss, output)` (the supernet's contract) and the space's metrics."""
        loss, output = self.model.loss(batch)
        with torch.no_grad():
            metrics = self.space.metrics(output, batch)
        return loss, {"train_loss": loss.detach(), **{f"train_{k}": v for k, v in metrics.items()}}

    def step_numbers(self, values: Numbers) -> Tuple[Numbers, Numbers]:
        """(losses by split, metrics) of a step record from its values, now floats."""
        return {"train": values["train_loss"]}, {k: v for k, v in values.items() if k != "train_loss"}

    def step_extras(self, batch, settings: Dict[str, Any]) -> Dict[str, Any]:
        """What the step record carries beside losses and metrics (e.g. the drop-path probability)."""
        return dict(settings)

    # -- the end of an epoch ------------------------------------------------------------------
    def epoch_means(self, steps: List) -> Tuple[Numbers, Numbers]:
        """(losses, metrics) of the epoch's training batches: the means of its step records."""
        n = max(1, len(steps))
        metrics = {k: sum(r.metrics[k] for r in steps) / n for k in (steps[0].metrics if steps else {})}
        return {"train": sum(r.losses["train"] for r in steps) / n}, metrics

    def end_epoch(self, epoch: int, steps: List) -> Tuple[Numbers, Numbers, Dict[str, Any]]:
        """(losses, metrics, extras) of the held-out splits after `epoch`: by default the test split's."""
        test = self.evaluate("test")
        return {"test": test.pop("loss")}, {f"test_{k}": v for k, v in test.items()}, {}

    def evaluate(self, split: str = "test") -> Numbers:
        """{"loss": ..., METRIC: ...} of a whole split in eval mode: by default the space's evaluate."""
        return self.space.evaluate(self.model, self.data, split, self.dtype)

    def summary(self, history: List) -> Dict[str, Any]:
        """What the space adds to the training's summary: by default the last epoch's test numbers."""
        last = next((r for r in reversed(history) if r.kind == "epoch"), None)
        return {k: v for k, v in (last.metrics.items() if last else ()) if k.startswith("test_")}

    def report_lines(self, summary: Dict[str, Any]) -> List[str]:
        """Lines the command line prints after the final test number (none by default)."""
        return []

    def network_line(self) -> str:
        """One line that describes the trained network (the command line prints it)."""
        return f"network: {self.params:,} parameters"

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """What a checkpoint needs beyond the model and the optimiser (streams, generators)."""
        return {"stream": self.stream.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.stream.load_state_dict(state["stream"])

    def optimizer_for(self, state: dict) -> Optional[torch.optim.Optimizer]:
        """The optimiser a checkpoint's state belongs to, when it is not the first one (None)."""
        return None
