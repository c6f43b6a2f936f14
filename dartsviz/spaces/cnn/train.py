"""The convolutional space's training from scratch: TrainConfig and its presets, and
CNNTrainer, which `dartsviz.train.Train` drives.

    train = Train(DARTS_V2, TrainConfig.preset("tiny"))      # dartsviz.train
    train.run()
    train.test_acc                 # accuracy on the held-out test split after the last epoch

What is the space's own: the evaluation network (`NetworkEval`, or `NetworkImageNet` on
image folders), cutout, drop-path ramped over the epochs, the auxiliary head's loss, label
smoothing, the step schedule of the ImageNet transfer, parameters and multiply-adds. Records
carry `extras` drop_path_prob (steps), params and macs (epochs). Training uses the whole
training set: the weight half and the alpha half of the search split together.

`dataset="imagenet"` (presets `imagenet`, `imagenet_tiny`) trains `NetworkImageNet` on
image folders read by DataLoader workers (`dartsviz.imagefolder`) and tests on `val/`.
A resume continues at the same pass and batch position with the same image order; with
`workers > 0` the augmentation of the rest of that pass is drawn anew, so only a
`workers=0` resume is exact.
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import torch
import torch.nn.functional as F

from ... import distributed
from ...config import ConfigBase, RunFields, WeightOptimFields
from ...data import BatchStream, DataSplits, check_dataset_name, iterate, load_data
from ...imagefolder import LoaderStream, load_image_folders
from ..trainer import SpaceTrainer
from .imagenet import NetworkImageNet
from .network import NetworkEval, count_macs, cutout
from .ops import check_even_channels


@dataclass
class TrainConfig(ConfigBase, WeightOptimFields, RunFields):
    """Training-from-scratch settings. Defaults are the paper's CIFAR-10 evaluation settings."""

    space: str = "cnn"                # fixed: a run directory says which space trained it
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
    # run (RunFields: steps_per_epoch, seed, device, dtype, sync_every)
    sync_bn: bool = False             # torchrun on CUDA: SyncBatchNorm, batch statistics over all ranks

    TUPLE_FIELDS = ("aux_widths",)

    def validate(self) -> "TrainConfig":
        if self.space != "cnn":
            raise ValueError(f"TrainConfig trains the cnn space, got space={self.space!r}")
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


def image_training_data(config, device, data=None) -> DataSplits:
    """The config's image data set (`data` when given) as one training split, read by rank 0 first
    under torchrun (it may download)."""
    with distributed.main_first(config.download):
        splits = data if data is not None else load_data(config.dataset, config.data_dir, config.download, device)
    return full_training_data(splits)


class CNNTrainer(SpaceTrainer):
    """An image classifier of the genotype's cells: cutout, drop-path, auxiliary head."""

    config_class = TrainConfig
    data_parallel = True

    def __init__(self, space, genotype, config: TrainConfig, device, dtype, data=None):
        super().__init__(space, genotype, config, device, dtype)
        c = config
        self.folders = c.dataset == "imagenet"        # image folders through DataLoader workers
        if self.folders:
            if c.download:
                raise ValueError("imagenet cannot be downloaded: point --data-dir at a folder holding train/ and val/")
            self.data = data if data is not None else load_image_folders(c.data_dir, c.image_size, c.workers)
            self.model = NetworkImageNet(genotype, c.channels, self.data.num_classes, c.layers, c.auxiliary,
                                         self.data.in_channels, self.data.image_size,
                                         c.aux_widths).to(device, dtype)
            self.stream = LoaderStream(self.data, c.batch_size, c.seed + 1, dtype, device)
            input_shape = self.data.input_shape
        else:
            self.data = image_training_data(c, device, data)
            self.model = NetworkEval(genotype, c.channels, self.data.num_classes, c.layers, c.auxiliary,
                                     self.data.in_channels, self.data.image_size, c.stem_multiplier,
                                     c.aux_widths).to(device, dtype)
            self.stream = BatchStream(self.data, "train", c.batch_size, c.seed + 1, dtype)
            input_shape = tuple(self.data.train[0].shape[1:])
        self.cutout_gen = torch.Generator().manual_seed(c.seed + 3)
        self.macs = count_macs(self.model, input_shape)

    @property
    def params(self) -> int:
        return self.model.num_parameters()        # without the auxiliary head, as the paper counts

    def lr_at(self, epoch: int, cosine: float) -> float:
        """lr_schedule "step": lr * lr_gamma ** epoch (the ImageNet transfer); "cosine": the loop's."""
        c = self.config
        if c.lr_schedule == "step":
            return c.lr * c.lr_gamma ** min(epoch, c.epochs)
        return cosine

    def drop_path_at(self, epoch: int) -> float:
        """drop_path_prob * epoch / epochs: 0 in the first epoch, ramped linearly."""
        return self.config.drop_path_prob * min(epoch, self.config.epochs) / self.config.epochs

    def before_step(self, epoch: int) -> Dict[str, Any]:
        self.model.drop_path_prob = self.drop_path_at(epoch)
        return {"drop_path_prob": self.model.drop_path_prob}

    def next_batch(self):
        x, y = next(self.stream)                                 # (B, C, H, W), (B,)
        if self.config.cutout:
            x = cutout(x, self.config.cutout_length, self.cutout_gen)   # (B, C, H, W)
        return x, y

    def shard(self, batch):
        return distributed.shard(batch)                          # (B/W, C, H, W), (B/W,)

    def loss(self, batch):
        c = self.config
        x, y = batch
        out = self.model(x)
        logits, logits_aux = out if isinstance(out, tuple) else (out, None)   # (B, K) each
        loss = F.cross_entropy(logits, y, label_smoothing=c.label_smoothing)
        if logits_aux is not None:
            loss = loss + c.auxiliary_weight * F.cross_entropy(logits_aux, y, label_smoothing=c.label_smoothing)
        with torch.no_grad():
            acc = (logits.argmax(1) == y).float().mean()
        return loss, {"train_loss": loss.detach(), "train_acc": acc}

    def end_epoch(self, epoch: int, steps: List):
        losses, metrics, _ = super().end_epoch(epoch, steps)       # the test split's loss and accuracy
        return losses, metrics, {"params": self.params, "macs": self.macs}

    def evaluate(self, split: str = "test") -> Dict[str, float]:
        """Mean loss and accuracy on a whole split, in eval mode (no drop-path, no auxiliary head);
        with image folders the test split is `val/`."""
        if self.folders:
            if split != "test":
                raise ValueError(f"image folders have a train and a test (val/) split; evaluate 'test', not {split!r}")
            batches = self.data.test_batches(self.config.batch_size, self.dtype, self.device)
            loss, acc = evaluate_batches(self.model, batches, self.dtype)
        else:
            loss, acc = evaluate_model(self.model, self.data, split, self.dtype)
        return {"loss": loss, "acc": acc}

    @property
    def test_acc(self) -> Optional[float]:
        """Test accuracy of the last finished epoch (None before the first)."""
        epochs = [r for r in self.loop.history if r.kind == "epoch"]
        return epochs[-1].metrics["test_acc"] if epochs else None

    def summary(self, history: List) -> Dict[str, Any]:
        return {"macs": self.macs, "test_acc": self.test_acc}      # None before the first epoch ends

    def network_line(self) -> str:
        c = self.config
        return f"network: {c.layers} cells, {c.channels} channels, {self.params:,} parameters, {self.macs:,} multiply-adds"

    def state_dict(self) -> dict:
        return {"stream": self.stream.state_dict(), "cutout_gen": self.cutout_gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.stream.load_state_dict(state["stream"])
        self.cutout_gen.set_state(state["cutout_gen"])


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
