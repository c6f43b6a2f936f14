"""RNNTrainConfig and RNNTrain: a recurrent genotype's language model trained from scratch.

    train = RNNTrain(DARTS_RNN_V2, RNNTrainConfig.preset("tiny"))   # the embedded corpus
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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Union

import torch

from ...config import DTYPES, ConfigBase, WeightOptimFields, make_sgd
from ...loop import Record, TrainingLoop, rng_state
from ...records import TrainEpochRecord, TrainStepRecord
from ...text import TextData, TextStream, check_text_dataset, load_text
from .genotype import GENOTYPES, RNNGenotype
from .model import FINAL_DROPOUTS, TAR_BETA, RNNModel

OPTIMISERS = ("sgd", "asgd")


@dataclass
class RNNTrainConfig(ConfigBase, WeightOptimFields):
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
    # run
    steps_per_epoch: Optional[int] = None   # None: one pass over the training split
    seed: int = 1267
    device: str = "auto"
    dtype: str = "float32"
    sync_every: int = 1

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


def resolve_rnn_genotype(spec: Union[str, RNNGenotype, Path]) -> RNNGenotype:
    """An RNNGenotype from a run directory, a .json/.txt file, DARTS_RNN_V1/V2, ENAS_RNN,
    random[:SEED] or `Genotype(recurrent=[...], concat=...)` text (parsed, never evaluated)."""
    from ...train import resolve_genotype
    from . import space
    return resolve_genotype(spec, space.RNN)


class RNNTrain(TrainingLoop):
    """Training from scratch: the genotype's RNNModel, SGD then ASGD, a jittered BPTT stream."""

    CONFIG_CLASS = RNNTrainConfig
    _genotype_from_text = staticmethod(resolve_rnn_genotype)

    def __init__(self, genotype: Union[RNNGenotype, str], config: Optional[RNNTrainConfig] = None, out=None,
                 callbacks: tuple = (), data: Optional[TextData] = None):
        from .space import RNN
        self.space = RNN
        self.genotype = resolve_rnn_genotype(genotype)
        self.config = config if config is not None else RNNTrainConfig.preset("tiny")
        self.config.validate()
        c = self.config
        from ...search import resolve_device
        self.device = resolve_device(c.device)
        self.dtype = DTYPES[c.dtype]
        torch.manual_seed(c.seed)
        data = data if data is not None else load_text(c.dataset, c.data_dir, c.vocab_size, self.device,
                                                       download=c.download)
        self.data = data.to(self.device)
        self.data.eval_batch_size = c.eval_batch_size
        self.model = RNNModel(self.data.ntokens, c.nhid, self.genotype, tar_beta=c.tar_beta,
                              dropout=c.dropout, dropouth=c.dropouth, dropoutx=c.dropoutx,
                              dropouti=c.dropouti, dropoute=c.dropoute).to(self.device, self.dtype)
        self.optimizer = make_sgd(self.model.parameters(), c)
        self.stream = TextStream(self.data, "train", c.batch_size, c.bptt, "train",
                                 jitter_seed=c.seed + 11 if c.bptt_jitter else None, jitter_sigma=5.0)
        self.params = sum(p.numel() for p in self.model.parameters())
        self.val_losses: List[float] = []     # one per epoch: the switching rule's memory
        self._init_loop(callbacks, out)
        if self.run_dir is not None:
            self.run_dir.write_config(c.to_dict())
            self.run_dir.write_genotype(self.genotype)

    # -- bookkeeping ---------------------------------------------------------------
    def _batches_per_pass(self) -> int:
        return len(self.stream)

    @property
    def optimiser_name(self) -> str:
        return "asgd" if isinstance(self.optimizer, torch.optim.ASGD) else "sgd"

    def _best_epoch(self) -> Optional[Record]:
        epochs = [r for r in self.history if r["kind"] == "epoch"]
        return min(epochs, key=lambda r: r["val_ppl"]) if epochs else None

    @property
    def test_ppl(self) -> Optional[float]:
        """Test perplexity at the epoch of the best validation perplexity (None before the first)."""
        best = self._best_epoch()
        return best["test_ppl"] if best else None

    # -- one step ------------------------------------------------------------------
    def step(self) -> Optional[Record]:
        """One SGD (or ASGD) step on the next BPTT segment, hidden state carried."""
        c = self.config
        t0 = time.perf_counter()
        epoch = self.epoch
        x, y, key = next(self.stream)                              # (T, B), (T, B)
        seq_len = x.shape[0]
        lr = self.lr_at(epoch) * seq_len / c.bptt
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.model.train()
        loss, _ = self.model.loss((x, y, key))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
        self.optimizer.step()
        self.step_count += 1
        base = {"step": self.step_count, "epoch": epoch, "lr": lr, "seq_len": seq_len,
                "optimizer": self.optimiser_name}
        return self._defer(base, {"train_loss": loss.detach()}, time.perf_counter() - t0)

    def _record(self, base: Record, values, seconds: float, peak_mem_mb: float) -> TrainStepRecord:
        loss = float(values["train_loss"])
        return TrainStepRecord(step=base["step"], epoch=base["epoch"], space="rnn", genotype=self.genotype,
                               losses={"train": loss}, metrics={"train_ppl": math.exp(min(loss, 700.0))},
                               lr=base["lr"], seconds=seconds, peak_mem_mb=peak_mem_mb, device=self.device.type,
                               extras={"seq_len": base["seq_len"], "optimizer": base["optimizer"]})

    @contextlib.contextmanager
    def averaged(self):
        """Under ASGD, the model holds the averaged weights inside the block (else: as is)."""
        if not isinstance(self.optimizer, torch.optim.ASGD):
            yield
            return
        saved = []
        with torch.no_grad():
            for p in self.model.parameters():
                st = self.optimizer.state.get(p)
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

    def _epoch_record(self, epoch: int, steps) -> TrainEpochRecord:
        val, test = self.evaluate("val"), self.evaluate("test")
        switched = self._maybe_switch(val["loss"])
        n = max(1, len(steps))
        train_loss = sum(r.losses["train"] for r in steps) / n
        return TrainEpochRecord(
            step=self.step_count, epoch=epoch, space="rnn", genotype=self.genotype,
            losses={"train": train_loss, "val": val["loss"], "test": test["loss"]},
            metrics={"train_ppl": math.exp(min(train_loss, 700.0)), "val_ppl": val["ppl"], "test_ppl": test["ppl"]},
            lr=steps[-1].lr if steps else self.lr_at(epoch), seconds=sum(r.seconds for r in steps),
            peak_mem_mb=max((r.peak_mem_mb for r in steps), default=0.0),
            extras={"optimizer": self.optimiser_name, "switched_to_asgd": switched, "params": self.params})

    def _maybe_switch(self, val_loss: float) -> bool:
        """The reference's rule: on SGD, switch to ASGD once the validation loss is worse than
        the best of all epochs but the last `nonmono`. Returns whether it switched now."""
        c = self.config
        switch = (c.nonmono > 0 and self.optimiser_name == "sgd" and len(self.val_losses) > c.nonmono
                  and val_loss > min(self.val_losses[:-c.nonmono]))
        self.val_losses.append(val_loss)
        if switch:
            self.optimizer = self._asgd()
        return switch

    def _asgd(self) -> torch.optim.ASGD:
        c = self.config
        return torch.optim.ASGD(self.model.parameters(), lr=c.lr, t0=0, lambd=0.0, weight_decay=c.weight_decay)

    def summary(self) -> dict:
        best = self._best_epoch()
        return {"genotype": self.genotype.to_text(), "params": self.params, "steps": self.step_count,
                "best_epoch": best["epoch"] if best else None,
                "val_ppl": best["val_ppl"] if best else None, "test_ppl": self.test_ppl,
                "asgd_from_epoch": next((r["epoch"] for r in self.history
                                         if r["kind"] == "epoch" and r["switched_to_asgd"]), None),
                "train_seconds": sum(r["seconds"] for r in self.history if r["kind"] == "step")}

    # -- state, checkpoints, run directory ------------------------------------------
    def state_dict(self) -> dict:
        return {"config": self.config.to_dict(), "genotype": self.genotype.to_text(), "step": self.step_count,
                "model": self.model.state_dict(), "optimizer_name": self.optimiser_name,
                "optimizer": self.optimizer.state_dict(), "stream": self.stream.state_dict(),
                "val_losses": list(self.val_losses), "rng": rng_state()}

    def _load_state(self, state: dict) -> None:
        if state["genotype"] != self.genotype.to_text():
            raise ValueError("the checkpoint was trained with another genotype")
        self.model.load_state_dict(state["model"])
        if state["optimizer_name"] == "asgd":
            self.optimizer = self._asgd()
        self.optimizer.load_state_dict(state["optimizer"])
        self.stream.load_state_dict(state["stream"])
        self.val_losses = [float(v) for v in state["val_losses"]]



__all__ = ["RNNTrainConfig", "RNNTrain", "RNN_TRAIN_PRESETS", "resolve_rnn_genotype", "GENOTYPES", "OPTIMISERS"]
