"""TrainConfig and its presets, and Train: a genotype's network trained from scratch.

    train = Train(DARTS_V2, TrainConfig.preset("tiny"))
    train.subscribe(lambda r: print(r["step"], r["train_loss"]))
    train.run()                    # or train.step(), train.run(epochs=1)
    train.test_acc                 # accuracy on the held-out test split after the last epoch

Records are `TrainStepRecord` (loss and accuracy of the batch, lr, seconds, peak memory;
`extras`: the drop-path probability) and `TrainEpochRecord` (means over the epoch and the
test loss and accuracy; `extras`: parameters and multiply-adds). Training uses the whole training set: the weight half
and the alpha half of the search split together.

`dataset="imagenet"` (presets `imagenet`, `imagenet_tiny`) trains `NetworkImageNet` on
image folders read by DataLoader workers (`dartsviz.imagefolder`) and tests on `val/`.
A resume continues at the same pass and batch position with the same image order; with
`workers > 0` the augmentation of the rest of that pass is drawn anew, so only a
`workers=0` resume is exact.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Union

import torch
import torch.nn.functional as F

from .config import DTYPES, ConfigBase, WeightOptimFields, make_sgd
from .data import BatchStream, DataSplits, check_dataset_name, iterate, load_data
from .imagefolder import ImageFolderData, LoaderStream, load_image_folders
from .spaces.cnn.imagenet import NetworkImageNet
from .spaces.cnn.network import NetworkEval, count_macs, cutout
from .spaces.cnn.genotype import Genotype, parse_genotype
from .spaces.cnn.space import check_even_channels
from . import distributed
from .loop import Record, TrainingLoop, rng_state
from .records import TrainEpochRecord, TrainStepRecord
from .runs import RunDir, RunDirError
from .search import resolve_device


@dataclass
class TrainConfig(ConfigBase, WeightOptimFields):
    """Training-from-scratch settings. Defaults are the paper's CIFAR-10 evaluation settings."""

    # data
    dataset: str = "cifar10"
    data_dir: str = "./data"
    download: bool = False
    image_size: int = 224             # image folders (imagenet): side of the training and test crops
    workers: int = 4                  # image folders: DataLoader worker processes
    # network
    layers: int = 20                  # cells; reductions at layers//3 and 2*layers//3
    channels: int = 36                # initial channels C
    stem_multiplier: int = 3          # the CIFAR stem (the ImageNet stems are fixed)
    auxiliary: bool = True            # auxiliary head at 2/3 depth
    auxiliary_weight: float = 0.4     # loss = CE(logits) + auxiliary_weight * CE(logits_aux)
    aux_widths: tuple = (128, 768)    # auxiliary head: 1x1 conv width, 2x2 conv width
    drop_path_prob: float = 0.2       # ramped linearly from 0 (first epoch) towards this value
    cutout: bool = True
    cutout_length: int = 16           # pixels
    # the weights' SGD (WeightOptimFields) with the evaluation's batch, epochs and floor
    batch_size: int = 96
    epochs: int = 600
    lr_min: float = 0.0
    lr_schedule: str = "cosine"       # cosine: lr to lr_min over the epochs; step: lr * lr_gamma ** epoch
    lr_gamma: float = 0.97            # the step schedule's factor per epoch
    label_smoothing: float = 0.0      # cross-entropy target (1 - eps) one-hot + eps / classes
    # run
    steps_per_epoch: Optional[int] = None   # None: one pass over the training set
    seed: int = 0
    device: str = "auto"
    dtype: str = "float32"
    sync_every: int = 1               # steps whose records are read from the device together
    sync_bn: bool = False             # torchrun on CUDA: SyncBatchNorm, batch statistics over all ranks

    TUPLE_FIELDS = ("aux_widths",)

    def validate(self) -> "TrainConfig":
        self._check_positive(("layers", "channels", "stem_multiplier", "batch_size", "epochs", "sync_every"))
        self._check_positive(("lr", "grad_clip"), integer=False)
        self._check_common()
        check_dataset_name(self.dataset, folders=True)
        check_even_channels(self.channels)
        if not 0 <= self.drop_path_prob < 1:
            raise ValueError(f"drop_path_prob must be in [0, 1), got {self.drop_path_prob}")
        if self.auxiliary_weight < 0 or self.cutout_length < 0 or self.lr_min < 0:
            raise ValueError("auxiliary_weight, cutout_length and lr_min must be >= 0")
        if len(self.aux_widths) != 2 or any(int(w) <= 0 for w in self.aux_widths):
            raise ValueError(f"aux_widths must be two positive integers, got {self.aux_widths!r}")
        self._check_choice("lr_schedule", LR_SCHEDULES)
        if not isinstance(self.sync_bn, bool):
            raise ValueError(f"sync_bn must be True or False, got {self.sync_bn!r}")
        self._check_range("lr_gamma", 0.0, 1.0, low_open=True, high_open=False)
        self._check_range("label_smoothing", 0.0, 1.0)
        self._check_positive(("image_size",))
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise ValueError(f"workers must be an integer >= 0, got {self.workers!r}")
        if self.dataset == "imagenet" and self.image_size < 8:
            raise ValueError(f"image_size must be at least 8 for imagenet (three stride-2 stems), got {self.image_size}")
        return self

    @classmethod
    def _preset_layer(cls, name: str, fields: dict) -> dict:
        """`paper` and `tiny` with dataset imagenet are the `imagenet` and `imagenet_tiny` presets."""
        if fields.get("dataset") == "imagenet" and name in ("paper", "tiny"):
            defaults = {f.name: f.default for f in dataclasses.fields(cls)}
            return {**defaults, **TRAIN_PRESETS["imagenet" if name == "paper" else "imagenet_tiny"]}
        return {}


LR_SCHEDULES = ("cosine", "step")


TRAIN_PRESETS: Dict[str, dict] = {
    # The paper's CIFAR-10 evaluation: 20 cells, 36 channels, batch 96, 600 epochs,
    # SGD 0.025 cosine to 0, momentum 0.9, wd 3e-4, clip 5, auxiliary 0.4, drop-path 0.2, cutout 16.
    "paper": dict(dataset="cifar10"),
    # Digits (8x8) on a 2-core CPU in about a minute: 3 cells, 8 channels, a slim
    # auxiliary head, cutout 3 (16 would blank the whole image), a larger learning rate.
    "tiny": dict(dataset="digits", layers=3, channels=8, batch_size=64, epochs=10, lr=0.05,
                 aux_widths=(32, 64), cutout_length=3, drop_path_prob=0.1),
    # The paper's ImageNet transfer (Table 3, mobile): 14 cells, 48 channels, batch 128, 250 epochs,
    # SGD 0.1 times 0.97 per epoch, momentum 0.9, wd 3e-5, clip 5, auxiliary 0.4, label smoothing 0.1,
    # no cutout; drop-path 0 (the reference train_imagenet.py's default; the paper names none).
    "imagenet": dict(dataset="imagenet", layers=14, channels=48, batch_size=128, epochs=250, lr=0.1,
                     lr_min=0.0, momentum=0.9, weight_decay=3e-5, grad_clip=5.0, auxiliary=True,
                     auxiliary_weight=0.4, drop_path_prob=0.0, cutout=False, label_smoothing=0.1,
                     lr_schedule="step", lr_gamma=0.97, image_size=224, workers=4),
}
# A tiny image folder on a CPU: 3 cells, 8 channels, 32x32 crops, one epoch, no worker processes.
TRAIN_PRESETS["imagenet_tiny"] = {**TRAIN_PRESETS["imagenet"], **dict(
    layers=3, channels=8, batch_size=8, epochs=1, aux_widths=(16, 32), image_size=32, workers=0)}
TrainConfig.PRESETS = TRAIN_PRESETS


def full_training_data(data: DataSplits) -> DataSplits:
    """The search split's weight half and alpha half joined into one training split."""
    x = torch.cat([data.train[0], data.val[0]])   # (N_w + N_a, C, H, W)
    y = torch.cat([data.train[1], data.val[1]])   # (N_w + N_a,)
    return dataclasses.replace(data, train=(x, y), val=(x[:0], y[:0]))


def resolve_genotype(spec, space=None):
    """A genotype of `space` (default: the convolutional one) from a run directory, a
    .json/.txt file, a paper cell's name (DARTS_V1, DARTS_V2; DARTS_RNN_V1, DARTS_RNN_V2),
    random[:SEED], or genotype text.

    Text is parsed, never evaluated. Errors are one-line ValueError/RunDirError messages.
    """
    from .spaces import get_space
    space = get_space("cnn") if space is None else space
    kind = type(next(iter(space.paper_genotypes.values())))
    if isinstance(spec, kind):
        return spec
    names = ", ".join(space.paper_genotypes)
    s = str(spec).strip()
    if not s:
        raise ValueError(f"empty genotype: give a run directory, {names} or genotype text")
    if s.upper() in space.paper_genotypes:
        return space.paper_genotypes[s.upper()]
    if s.lower() == "random" or s.lower().startswith("random:"):
        seed = s.split(":", 1)[1] if ":" in s else "0"
        try:
            return space.random_genotype(int(seed))
        except ValueError:
            raise ValueError(f"random genotype seed must be an integer, got {seed!r}") from None
    if s.startswith("{"):
        return _from_json(space, s)
    if "Genotype" in s and "(" in s:
        return space.parse_genotype(s)
    path = Path(s).expanduser()
    if path.is_dir():
        run_dir = RunDir(path)
        if (path / "genotype.json").is_file() or (path / "genotype.txt").is_file():
            if run_dir.space_name != space.name:
                raise RunDirError(f"{path} holds a genotype of the {run_dir.space_name} space, "
                                  f"not of the {space.name} space (pass --space {run_dir.space_name})")
            return run_dir.read_genotype()
        raise RunDirError(f"{path} holds no genotype.json or genotype.txt (is it a dartsviz search run directory?)")
    if path.is_file():
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read genotype file {path}: {e}") from None
        try:
            return _from_json(space, text) if text.lstrip().startswith("{") else space.parse_genotype(text)
        except ValueError as e:                     # the file's name first: the user knows which one
            raise ValueError(f"{path}: {e}") from None
    if "/" in s or "\\" in s or s.endswith((".json", ".txt")) or s.startswith("."):
        raise RunDirError(f"run directory or genotype file {s} does not exist")
    raise ValueError(f"genotype {s!r} is not a run directory, a file, {names}, "
                     f"random[:SEED] or {space.name} genotype text")


def _from_json(space, text: str):
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"genotype JSON does not parse: {e}") from None
    if not isinstance(d, dict):
        raise ValueError("genotype JSON must be an object")
    return space.genotype_from_dict(d)


class Train(TrainingLoop):
    """Training from scratch: network, SGD, one batch stream, a cutout generator, a step counter."""

    DATA_PARALLEL = True               # runs under torchrun (dartsviz.distributed)

    def __init__(self, genotype: Union[Genotype, str], config: Optional[TrainConfig] = None, out=None,
                 callbacks: tuple = (), data: Optional[Union[DataSplits, ImageFolderData]] = None):
        self.genotype = resolve_genotype(genotype)
        self.config = config if config is not None else TrainConfig.preset("tiny")
        self.config.validate()
        c = self.config
        self.device = resolve_device(c.device)
        if c.sync_bn:
            distributed.check_sync_bn(self.device)
        self.dtype = DTYPES[c.dtype]
        torch.manual_seed(c.seed)
        self.folders = c.dataset == "imagenet"        # image folders through DataLoader workers
        if self.folders:
            if c.download:
                raise ValueError("imagenet cannot be downloaded: point --data-dir at a folder holding train/ and val/")
            self.data = data if data is not None else load_image_folders(c.data_dir, c.image_size, c.workers)
            self.model = NetworkImageNet(self.genotype, c.channels, self.data.num_classes, c.layers, c.auxiliary,
                                         self.data.in_channels, self.data.image_size,
                                         c.aux_widths).to(self.device, self.dtype)
            self.stream = LoaderStream(self.data, c.batch_size, c.seed + 1, self.dtype, self.device)
            input_shape = self.data.input_shape
        else:
            with distributed.main_first(c.download):     # torchrun: rank 0 downloads, then the others read
                splits = data if data is not None else load_data(c.dataset, c.data_dir, c.download, self.device)
            self.data = full_training_data(splits)
            self.model = NetworkEval(self.genotype, c.channels, self.data.num_classes, c.layers, c.auxiliary,
                                     self.data.in_channels, self.data.image_size, c.stem_multiplier,
                                     c.aux_widths).to(self.device, self.dtype)
            self.stream = BatchStream(self.data, "train", c.batch_size, c.seed + 1, self.dtype)
            input_shape = tuple(self.data.train[0].shape[1:])
        self.optimizer = make_sgd(self.model.parameters(), c)
        self.cutout_gen = torch.Generator().manual_seed(c.seed + 3)
        self.params = self.model.num_parameters()
        self.macs = count_macs(self.model, input_shape)
        # data parallel (dartsviz.distributed): each rank takes its rows of the shared batch and
        # draws its own drop-path; gradients are averaged. One process: nothing changes.
        if c.sync_bn:
            self.model = distributed.sync_batchnorm(self.model, self.device)   # the same parameters
        distributed.check_batch_size(self.stream.batch_size)
        self._shard = distributed.shard if distributed.world_size() > 1 else None
        distributed.seed_rank(c.seed, 0)
        self._init_loop(callbacks, out)
        if self.run_dir is not None:
            self.run_dir.write_config(c.to_dict())
            self.run_dir.write_genotype(self.genotype)

    # -- bookkeeping -----------------------------------------------------------
    def _batches_per_pass(self) -> int:
        return len(self.stream)

    @property
    def test_acc(self) -> Optional[float]:
        """Test accuracy of the last finished epoch (None before the first)."""
        epochs = [r for r in self.history if r["kind"] == "epoch"]
        return epochs[-1]["test_acc"] if epochs else None

    def lr_at(self, epoch: int) -> float:
        """lr_schedule "step": lr * lr_gamma ** epoch (the ImageNet transfer); "cosine": the loop's."""
        c = self.config
        if c.lr_schedule == "step":
            return c.lr * c.lr_gamma ** min(epoch, c.epochs)
        return super().lr_at(epoch)

    def drop_path_at(self, epoch: int) -> float:
        """drop_path_prob * epoch / epochs: 0 in the first epoch, ramped linearly."""
        return self.config.drop_path_prob * min(epoch, self.config.epochs) / self.config.epochs

    # -- one step ----------------------------------------------------------------
    def step(self) -> Optional[Record]:
        """One SGD step on a training batch (cutout, drop-path, auxiliary loss). Returns its
        record; with `sync_every` > 1, None on steps whose record is still on the device."""
        c = self.config
        t0 = time.perf_counter()
        epoch = self.epoch
        lr = self.lr_at(epoch)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        model = self.model
        model.drop_path_prob = self.drop_path_at(epoch)
        model.train()
        x, y = next(self.stream)                                 # (B, C, H, W), (B,)
        if c.cutout:
            x = cutout(x, c.cutout_length, self.cutout_gen)      # (B, C, H, W)
        if self._shard is not None:                              # data parallel: this rank's rows
            x, y = self._shard((x, y))                           # (B/W, C, H, W), (B/W,)
        out = model(x)
        logits, logits_aux = out if isinstance(out, tuple) else (out, None)   # (B, K) each
        loss = F.cross_entropy(logits, y, label_smoothing=c.label_smoothing)
        if logits_aux is not None:
            loss = loss + c.auxiliary_weight * F.cross_entropy(logits_aux, y, label_smoothing=c.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self._shard is not None:                              # data parallel: the whole batch's gradient
            distributed.all_reduce_grads(model.parameters())
        torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
        self.optimizer.step()
        self.step_count += 1
        base = {"step": self.step_count, "epoch": epoch, "lr": lr, "drop_path_prob": model.drop_path_prob}
        with torch.no_grad():                                    # stays on the device until flush()
            values = {"train_loss": loss.detach(), "train_acc": (logits.argmax(1) == y).float().mean()}
            if self._shard is not None:                          # data parallel: the whole batch's numbers
                values = dict(zip(values, distributed.all_reduce_mean(list(values.values()))))
        return self._defer(base, values, time.perf_counter() - t0)

    def _record(self, base: Record, values, seconds: float, peak_mem_mb: float) -> TrainStepRecord:
        return TrainStepRecord(step=base["step"], epoch=base["epoch"], space="cnn", genotype=self.genotype,
                               losses={"train": float(values["train_loss"])},
                               metrics={"train_acc": float(values["train_acc"])}, lr=base["lr"],
                               seconds=seconds, peak_mem_mb=peak_mem_mb, device=self.device.type,
                               extras={"drop_path_prob": base["drop_path_prob"]})

    def _epoch_record(self, epoch: int, steps) -> TrainEpochRecord:
        test_loss, test_acc = self.evaluate("test")
        n = max(1, len(steps))
        return TrainEpochRecord(
            step=self.step_count, epoch=epoch, space="cnn", genotype=self.genotype,
            losses={"train": sum(r.losses["train"] for r in steps) / n, "test": test_loss},
            metrics={"train_acc": sum(r.metrics["train_acc"] for r in steps) / n, "test_acc": test_acc},
            lr=steps[-1].lr if steps else self.lr_at(epoch), seconds=sum(r.seconds for r in steps),
            peak_mem_mb=max((r.peak_mem_mb for r in steps), default=0.0),
            extras={"params": self.params, "macs": self.macs})

    def evaluate(self, split: str = "test"):
        """Mean loss and accuracy on a whole split, in eval mode (no drop-path, no auxiliary head);
        with image folders the test split is `val/`."""
        if self.folders:
            if split != "test":
                raise ValueError(f"image folders have a train and a test (val/) split; evaluate 'test', not {split!r}")
            batches = self.data.test_batches(self.config.batch_size, self.dtype, self.device)
            return evaluate_batches(self.model, batches, self.dtype)
        return evaluate_model(self.model, self.data, split, self.dtype)

    def summary(self) -> dict:
        """Genotype, parameters, multiply-adds, final test accuracy, training seconds."""
        return {"genotype": self.genotype.to_text(), "params": self.params, "macs": self.macs,
                "test_acc": self.test_acc, "steps": self.step_count,
                "train_seconds": sum(r["seconds"] for r in self.history if r["kind"] == "step")}

    # -- state, checkpoints, run directory --------------------------------------------
    CONFIG_CLASS = TrainConfig
    _genotype_from_text = staticmethod(parse_genotype)

    def state_dict(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "genotype": self.genotype.to_text(),
            "step": self.step_count,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "stream": self.stream.state_dict(),
            "cutout_gen": self.cutout_gen.get_state(),
            "rng": rng_state(),
        }

    def _load_state(self, state: dict) -> None:
        if state["genotype"] != self.genotype.to_text():
            raise ValueError("the checkpoint was trained with another genotype")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.stream.load_state_dict(state["stream"])
        self.cutout_gen.set_state(state["cutout_gen"])

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        distributed.seed_rank(self.config.seed, self.step_count)   # data parallel: ranks > 0 draw their own



@torch.no_grad()
def evaluate_model(model, data: DataSplits, split: str, dtype, autocast=contextlib.nullcontext):
    """Mean loss and accuracy of `model` on a whole split, in eval mode, one host sync."""
    return evaluate_batches(model, iterate(data, split, 256, dtype), dtype, autocast)


@torch.no_grad()
def evaluate_batches(model, batches, dtype, autocast=contextlib.nullcontext):
    """Mean loss and accuracy of `model` over (x, y) batches, in eval mode, one host sync."""
    model.eval()
    total, sums = 0, []
    for x, y in batches:
        with autocast():
            out = model(x)
        logits = (out[0] if isinstance(out, tuple) else out).to(dtype)   # (B, num_classes)
        sums.append(torch.stack([F.cross_entropy(logits, y, reduction="sum"),
                                 (logits.argmax(1) == y).sum().to(dtype)]))
        total += len(y)
    model.train()
    if not sums:
        return 0.0, 0.0
    loss_sum, correct = torch.stack(sums).double().sum(0).tolist()
    return loss_sum / total, correct / total
