"""The recurrent space's training from scratch: RNNTrainConfig and its presets, and
RNNTrainer, which `dartsviz.train.Train` drives: a genotype's language model.

    train = Train(DARTS_RNN_V2, RNNTrainConfig.preset("tiny"))      # the embedded corpus
    train.run()
    train.test_ppl          # test perplexity at the epoch of the best validation perplexity

The reference's final training (the DARTS code's rnn train.py, after AWD-LSTM): plain SGD
at a constant learning rate, gradient clip 0.25; a BPTT segment is `bptt` long with
probability 0.95, else `bptt / 2`, its length then jittered by N(0, 5) (at least 5 tokens)
and the step's learning rate scaled by length / bptt. After every epoch the validation
perplexity is measured; while on SGD, once it is worse than the best of all epochs but the
last `nonmono`, the optimiser switches to averaged SGD (ASGD with t0 = 0, lambda = 0: the
running mean of the iterates from the switch on), and from then on evaluations use the
averaged weights. The reported test perplexity is the one at the best validation epoch
(the reference keeps the best model and tests it at the end).

Records are `TrainStepRecord` (train loss and perplexity, lr; `extras`: segment length,
optimiser) and `TrainEpochRecord` (means, validation and test loss and perplexity;
`extras`: optimiser, whether ASGD began, parameters).
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import torch

from ...config import ConfigBase, RunFields, WeightOptimFields
from ...text import TextData, TextStream, check_text_dataset, load_text
from ..trainer import SpaceTrainer
from .genotype import GENOTYPES
from .model import FINAL_DROPOUTS, TAR_BETA, RNNModel

OPTIMISERS = ("sgd", "asgd")


@dataclass
class RNNTrainConfig(ConfigBase, WeightOptimFields, RunFields):
    """Final-training settings. Defaults are the paper's PTB evaluation (850 wide, batch 64)."""

    space: str = "rnn"                # fixed: a run directory says which space trained it
    dataset: str = "ptb"              # pydoc | shakespeare | ptb | wikitext2
    data_dir: str = "./data"
    download: bool = False
    vocab_size: int = 10000           # pydoc and shakespeare: most frequent words kept
    nhid: int = 850                   # embedding = hidden width (tied decoder)
    bptt: int = 35
    bptt_jitter: bool = True          # 35 w.p. 0.95 else 17, then + N(0, 5); lr scaled by length / bptt
    dropout: float = FINAL_DROPOUTS["dropout"]
    dropouth: float = FINAL_DROPOUTS["dropouth"]
    dropoutx: float = FINAL_DROPOUTS["dropoutx"]
    dropouti: float = FINAL_DROPOUTS["dropouti"]
    dropoute: float = FINAL_DROPOUTS["dropoute"]
    tar_beta: float = TAR_BETA
    nonmono: int = 5                  # epochs of patience before SGD becomes ASGD (0: never switch)
    eval_batch_size: int = 10
    # the weights' SGD (WeightOptimFields): a constant lr 20, no momentum
    batch_size: int = 64
    epochs: int = 8000                # the reference's cap: "until convergence"
    lr: float = 20.0
    lr_min: float = 20.0
    momentum: float = 0.0
    weight_decay: float = 8e-7
    grad_clip: float = 0.25
    # run (RunFields: steps_per_epoch, seed, device, dtype, sync_every), the reference's seed
    seed: int = 1267

    def validate(self) -> "RNNTrainConfig":
        if self.space != "rnn":
            raise ValueError(f"RNNTrainConfig trains the rnn space, got space={self.space!r}")
        self._check_positive(("nhid", "bptt", "batch_size", "epochs", "eval_batch_size", "sync_every"))
        self._check_positive(("lr", "grad_clip"), integer=False)
        self._check_common()
        check_text_dataset(self.dataset)
        for name in ("dropout", "dropouth", "dropoutx", "dropouti", "dropoute"):
            self._check_range(name, 0.0, 1.0)
        self._check_range("tar_beta", 0.0)
        if isinstance(self.nonmono, bool) or not isinstance(self.nonmono, int) or self.nonmono < 0:
            raise ValueError(f"nonmono must be an integer >= 0, got {self.nonmono!r}")
        v = self.vocab_size
        if isinstance(v, bool) or not isinstance(v, int) or not (v == 0 or v >= 3):
            raise ValueError(f"vocab_size must be 0 (every word) or at least 3, got {v!r}")
        return self


RNN_TRAIN_PRESETS: Dict[str, dict] = {
    # The paper's PTB evaluation: 850 wide, batch 64, SGD lr 20, weight decay 8e-7, clip 0.25,
    # dropoute 0.1, ASGD after 5 epochs without improvement, up to 8000 epochs. Needs PTB.
    "paper": dict(dataset="ptb"),
    # The embedded corpus on a laptop CPU in about a minute: 64 wide, 2,000 words, 10 epochs
    # of 60 steps, the dropouts lowered for the narrow model, ASGD after 2 flat epochs.
    "tiny": dict(dataset="pydoc", vocab_size=2000, nhid=64, batch_size=32, bptt=20, epochs=10,
                 steps_per_epoch=60, dropout=0.2, dropouth=0.1, dropoutx=0.1, dropouti=0.1,
                 dropoute=0.0, nonmono=2, eval_batch_size=64, seed=0),
}
RNNTrainConfig.PRESETS = RNN_TRAIN_PRESETS


class RNNTrainer(SpaceTrainer):
    """The genotype's RNNModel: SGD then ASGD, a jittered BPTT stream, perplexity."""

    config_class = RNNTrainConfig

    def __init__(self, space, genotype, config: RNNTrainConfig, device, dtype, data: Optional[TextData] = None):
        super().__init__(space, genotype, config, device, dtype)
        c = config
        data = data if data is not None else load_text(c.dataset, c.data_dir, c.vocab_size, device,
                                                       download=c.download)
        self.data = data.to(device)
        self.data.eval_batch_size = c.eval_batch_size
        self.model = RNNModel(self.data.ntokens, c.nhid, genotype, tar_beta=c.tar_beta,
                              dropout=c.dropout, dropouth=c.dropouth, dropoutx=c.dropoutx,
                              dropouti=c.dropouti, dropoute=c.dropoute).to(device, dtype)
        self.stream = TextStream(self.data, "train", c.batch_size, c.bptt, "train",
                                 jitter_seed=c.seed + 11 if c.bptt_jitter else None, jitter_sigma=5.0)
        self.val_losses: List[float] = []     # one per epoch: the switching rule's memory

    # -- one step ------------------------------------------------------------------------
    def lr_scale(self, batch) -> float:
        """A segment's learning rate scales with its length (the reference's jittered BPTT)."""
        return batch[0].shape[0] / self.config.bptt                # (T, B): T / bptt

    def loss(self, batch):
        loss, _ = self.model.loss(batch)                          # batch: (x, y, key), x and y (T, B)
        return loss, {"train_loss": loss.detach()}

    def step_numbers(self, values):
        loss = values["train_loss"]
        return {"train": loss}, {"train_ppl": math.exp(min(loss, 700.0))}

    def epoch_means(self, steps):
        """The mean training loss, and the perplexity of that mean (not the mean perplexity)."""
        loss = sum(r.losses["train"] for r in steps) / max(1, len(steps))
        return {"train": loss}, {"train_ppl": math.exp(min(loss, 700.0))}

    def step_extras(self, batch, settings) -> Dict[str, Any]:
        return {"seq_len": batch[0].shape[0], "optimizer": self.optimiser_name}

    @property
    def optimiser_name(self) -> str:
        return "asgd" if isinstance(self.loop.optimizer, torch.optim.ASGD) else "sgd"

    # -- the end of an epoch: perplexities, and the switch to averaged SGD ----------------------------
    @contextlib.contextmanager
    def averaged(self):
        """Under ASGD, the model holds the averaged weights inside the block (else: as is)."""
        optimizer = self.loop.optimizer
        if not isinstance(optimizer, torch.optim.ASGD):
            yield
            return
        saved = []
        with torch.no_grad():
            for p in self.model.parameters():
                st = optimizer.state.get(p)
                if st and "ax" in st:
                    saved.append((p, p.detach().clone()))
                    p.copy_(st["ax"])
        try:
            yield
        finally:
            with torch.no_grad():
                for p, w in saved:
                    p.copy_(w)

    def evaluate(self, split: str = "test") -> Dict[str, float]:
        """{"loss", "ppl"} of a whole split in eval mode (averaged weights under ASGD)."""
        with self.averaged():
            return self.space.evaluate(self.model, self.data, split, self.dtype)

    def end_epoch(self, epoch: int, steps: List):
        val, test = self.evaluate("val"), self.evaluate("test")
        switched = self._maybe_switch(val["loss"])
        return ({"val": val["loss"], "test": test["loss"]}, {"val_ppl": val["ppl"], "test_ppl": test["ppl"]},
                {"optimizer": self.optimiser_name, "switched_to_asgd": switched, "params": self.params})

    def _maybe_switch(self, val_loss: float) -> bool:
        """The reference's rule: on SGD, switch to ASGD once the validation loss is worse than
        the best of all epochs but the last `nonmono`. Returns whether it switched now."""
        c = self.config
        switch = (c.nonmono > 0 and self.optimiser_name == "sgd" and len(self.val_losses) > c.nonmono
                  and val_loss > min(self.val_losses[:-c.nonmono]))
        self.val_losses.append(val_loss)
        if switch:
            self.loop.optimizer = self._asgd()
        return switch

    def _asgd(self) -> torch.optim.ASGD:
        c = self.config
        return torch.optim.ASGD(self.model.parameters(), lr=c.lr, t0=0, lambd=0.0, weight_decay=c.weight_decay)

    # -- what the loop reports ------------------------------------------------------------------
    def _best_epoch(self):
        epochs = [r for r in self.loop.history if r.kind == "epoch"]
        return min(epochs, key=lambda r: r.metrics["val_ppl"]) if epochs else None

    @property
    def test_ppl(self) -> Optional[float]:
        """Test perplexity at the epoch of the best validation perplexity (None before the first)."""
        best = self._best_epoch()
        return best.metrics["test_ppl"] if best else None

    def summary(self, history: List) -> Dict[str, Any]:
        best = self._best_epoch()
        return {"best_epoch": best.epoch if best else None,
                "val_ppl": best.metrics["val_ppl"] if best else None, "test_ppl": self.test_ppl,
                "asgd_from_epoch": next((r.epoch for r in history
                                         if r.kind == "epoch" and r.extras.get("switched_to_asgd")), None)}

    def report_lines(self, summary) -> List[str]:
        if summary["val_ppl"] is None:
            return []
        switch = summary["asgd_from_epoch"]
        return [f"validation perplexity {summary['val_ppl']:.2f} at epoch {summary['best_epoch']}; "
                + (f"ASGD from epoch {switch}" if switch is not None else "SGD throughout")]

    def network_line(self) -> str:
        return f"network: {self.config.nhid} wide, vocabulary {self.data.ntokens:,}, {self.params:,} parameters"

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"stream": self.stream.state_dict(), "optimizer_name": self.optimiser_name,
                "val_losses": list(self.val_losses)}

    def load_state_dict(self, state: dict) -> None:
        self.stream.load_state_dict(state["stream"])
        self.val_losses = [float(v) for v in state["val_losses"]]

    def optimizer_for(self, state: dict):
        return self._asgd() if state["optimizer_name"] == "asgd" else None


__all__ = ["RNNTrainConfig", "RNNTrainer", "RNN_TRAIN_PRESETS", "GENOTYPES", "OPTIMISERS"]
