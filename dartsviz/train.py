"""Train: a genotype's network trained from scratch, in any space.

    train = Train(DARTS_V2, TrainConfig.preset("tiny"))              # the cnn space, on digits
    train = Train(DARTS_RNN_V2, RNNTrainConfig.preset("tiny"))       # the rnn space, embedded corpus
    train.subscribe(lambda r: print(r.step, r.losses["train"]))
    train.run()                    # or train.step(), train.run(epochs=1)
    train.summary()                # genotype, parameters, the final test numbers, seconds

One loop for every space: the weights' optimiser and its schedule, records
(`TrainStepRecord`, `TrainEpochRecord`), checkpoints and bit-exact resume, the run
directory, Ctrl-C, torchrun. What differs between spaces is the space's trainer
(`SearchSpace.trainer()`, a `spaces.trainer.SpaceTrainer` beside the space), whose config
class declares the space's own fields: `TrainConfig` (cnn), `RNNTrainConfig` (rnn).
"""
from __future__ import annotations

import time
from typing import Optional

import torch

from . import distributed
from .config import DTYPES
from .loop import Record, TrainingLoop, rng_state
from .records import TrainEpochRecord, TrainStepRecord
from .spaces import get_space, space_names
from .spaces.cnn.train import (TRAIN_PRESETS, CNNTrainer, TrainConfig, evaluate_batches,  # noqa: F401
                               evaluate_model, full_training_data)
from .spaces.resolve import resolve_genotype
from .spaces.rnn.train import RNNTrainConfig  # noqa: F401  (a public name)


def _space_of(genotype, config, space):
    """The space trained: `space`, else the config's, else the genotype's kind, else cnn."""
    if space is not None:
        return get_space(space)
    if config is not None and getattr(config, "space", None):
        return get_space(config.space)
    return next((get_space(n) for n in space_names() if get_space(n).holds_genotype(genotype)), get_space("cnn"))


class Train(TrainingLoop):
    """Training from scratch: the space's trainer (network, data, losses), SGD, a step counter.

    Attributes the space's trainer adds (`params`, `macs`, `test_acc`, `test_ppl`,
    `stream`, `drop_path_at`, `averaged`, ...) read through the Train."""

    DATA_PARALLEL = True               # under torchrun where the space's trainer allows (dartsviz.distributed)

    def __init__(self, genotype, config=None, out=None, callbacks: tuple = (), data=None, space=None):
        self.space = _space_of(genotype, config, space)
        trainer_cls = self.space.trainer()
        self.genotype = resolve_genotype(genotype, self.space)
        self.config = config if config is not None else trainer_cls.config_class.preset("tiny")
        if not isinstance(self.config, trainer_cls.config_class):
            raise ValueError(f"the {self.space.name} space trains with a {trainer_cls.config_class.__name__}, "
                             f"got a {type(self.config).__name__}")
        self.config.validate()
        c = self.config
        if distributed.world_size() > 1 and not trainer_cls.data_parallel:
            raise ValueError(f"the {self.space.name} space's training runs on one process only; "
                             "start it without torchrun")
        self.device = distributed.resolve_device(c.device)
        if getattr(c, "sync_bn", False):
            distributed.check_sync_bn(self.device)
        self.dtype = DTYPES[c.dtype]
        torch.manual_seed(c.seed)
        self.trainer = trainer_cls(self.space, self.genotype, c, self.device, self.dtype, data)
        self.trainer.loop = self
        self.data = self.trainer.data
        self.optimizer = self.trainer.make_optimizer()
        # data parallel (dartsviz.distributed): each rank takes its rows of the shared batch and
        # draws its own randomness (drop-path); gradients are averaged. One process: nothing changes.
        if getattr(c, "sync_bn", False):
            self.trainer.model = distributed.sync_batchnorm(self.trainer.model, self.device)   # same parameters
        self._sharded = distributed.world_size() > 1
        if self._sharded:
            distributed.check_batch_size(self.trainer.stream.batch_size)
        distributed.seed_rank(c.seed, 0)
        self._init_loop(callbacks, out)
        if self.run_dir is not None:
            self.run_dir.write_config(c.to_dict())
            self.run_dir.write_genotype(self.genotype)

    def __getattr__(self, name):
        trainer = self.__dict__.get("trainer")
        if trainer is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(trainer, name)

    @property
    def model(self) -> torch.nn.Module:
        return self.trainer.model

    # -- bookkeeping -----------------------------------------------------------
    def _batches_per_pass(self) -> int:
        return self.trainer.batches_per_pass()

    def lr_at(self, epoch: int) -> float:
        """The space trainer's schedule; by default the loop's cosine from lr to lr_min."""
        return self.trainer.lr_at(epoch, super().lr_at(epoch))

    # -- one step ----------------------------------------------------------------
    def step(self) -> Optional[TrainStepRecord]:
        """One SGD step on a training batch. Returns its record; with `sync_every` > 1,
        None on steps whose record is still on the device."""
        t0 = time.perf_counter()
        epoch = self.epoch
        trainer, model = self.trainer, self.trainer.model
        settings = trainer.before_step(epoch)
        model.train()
        batch = trainer.next_batch()
        lr = self.lr_at(epoch) * trainer.lr_scale(batch)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        if self._sharded:                                        # data parallel: this rank's rows
            batch = trainer.shard(batch)
        loss, values = trainer.loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self._sharded:                                        # the whole batch's gradient and numbers
            distributed.all_reduce_grads(model.parameters())
            values = dict(zip(values, distributed.all_reduce_mean(list(values.values()))))
        if self.config.grad_clip:                                # 0: no clipping (a space's recipe may have none)
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.step_count += 1
        base = {"step": self.step_count, "epoch": epoch, "lr": lr, "extras": trainer.step_extras(batch, settings)}
        return self._defer(base, values, time.perf_counter() - t0)

    def _record(self, base: Record, values, seconds: float, peak_mem_mb: float) -> TrainStepRecord:
        losses, metrics = self.trainer.step_numbers({k: float(v) for k, v in values.items()})
        return TrainStepRecord(step=base["step"], epoch=base["epoch"], space=self.space.name, genotype=self.genotype,
                               losses=losses, metrics=metrics, lr=base["lr"], seconds=seconds,
                               peak_mem_mb=peak_mem_mb, device=self.device.type, extras=base["extras"])

    def _epoch_record(self, epoch: int, steps) -> TrainEpochRecord:
        mean_losses, mean_metrics = self.trainer.epoch_means(steps)
        losses, metrics, extras = self.trainer.end_epoch(epoch, steps)
        return TrainEpochRecord(
            step=self.step_count, epoch=epoch, space=self.space.name, genotype=self.genotype,
            losses={**mean_losses, **losses}, metrics={**mean_metrics, **metrics},
            lr=steps[-1].lr if steps else self.lr_at(epoch), seconds=sum(r.seconds for r in steps),
            peak_mem_mb=max((r.peak_mem_mb for r in steps), default=0.0), extras=extras)

    def evaluate(self, split: str = "test"):
        """{"loss": ..., METRIC: ...} of a whole split, in eval mode."""
        return self.trainer.evaluate(split)

    def summary(self) -> dict:
        """Genotype, parameters, steps, training seconds, and the space's final numbers."""
        return {"genotype": self.genotype.to_text(), "params": self.trainer.params, "steps": self.step_count,
                **self.trainer.summary(self.history),
                "train_seconds": sum(r.seconds for r in self.history if r.kind == "step")}

    # -- state, checkpoints, run directory --------------------------------------------
    def state_dict(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "genotype": self.genotype.to_text(),
            "step": self.step_count,
            "model": self.trainer.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "trainer": self.trainer.state_dict(),
            "rng": rng_state(),
        }

    def _load_state(self, state: dict) -> None:
        if state["genotype"] != self.genotype.to_text():
            raise ValueError("the checkpoint was trained with another genotype")
        self.trainer.model.load_state_dict(state["model"])
        trainer_state = state.get("trainer") or state      # checkpoints of earlier versions: at the top level
        self.optimizer = self.trainer.optimizer_for(trainer_state) or self.optimizer
        self.optimizer.load_state_dict(state["optimizer"])
        self.trainer.load_state_dict(trainer_state)

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        distributed.seed_rank(self.config.seed, self.step_count)   # data parallel: ranks > 0 draw their own

    @classmethod
    def _config_from_dict(cls, d: dict):
        """The training config of a checkpoint, of its space's config class (no space: cnn)."""
        return get_space(d.get("space", "cnn")).trainer().config_class.from_dict(d)

    @classmethod
    def _genotype_from_text(cls, text: str, config=None):
        return resolve_genotype(text, getattr(config, "space", "cnn"))


__all__ = ["Train", "TrainConfig", "RNNTrainConfig", "TRAIN_PRESETS", "resolve_genotype", "full_training_data",
           "evaluate_model", "evaluate_batches"]
