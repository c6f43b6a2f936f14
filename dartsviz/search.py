"""SearchConfig and its presets, and Search: the bilevel loop that emits plain records.

    search = Search(SearchConfig.preset("tiny"))
    search.subscribe(lambda record: print(record["step"], record["val_acc"]))
    search.run(epochs=1)          # or search.step() for one bilevel step
    search.genotype               # the derived cell pair now

Records are plain dicts (JSON-serialisable). Step records (`kind == "step"`) carry the
step, epoch, order, losses and accuracies of the step's batches, learning rates, the
softmax weights of both cell types, the derived genotype, seconds and peak memory.
Epoch records (`kind == "epoch"`) add the held-out test loss and accuracy.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

import torch
import torch.nn.functional as F

from .bilevel import HVP_MODES, arch_gradient, forward_with
from .config import DTYPES, ConfigBase
from .data import BatchStream, DataSplits, load_data
from .fastnet import FastSearchNetwork
from .genotype import Genotype, derive
from .loop import Record, StepLoop, evaluate_model, rng_state
from .runs import RunDir, RunDirError, load_checkpoint
from .supernet import SearchNetwork


IMPLS = ("fast", "reference")   # fast: fastnet.FastSearchNetwork (same function, edge-batched)
PRECISIONS = ("fp32", "bf16")


@dataclass
class SearchConfig(ConfigBase):
    """Search settings. Defaults are the paper's CIFAR-10 search settings."""

    # data
    dataset: str = "cifar10"          # digits | cifar10 | cifar100 | mnist | fashion_mnist | synthetic[:CxHxW]
    data_dir: str = "./data"
    download: bool = False            # fetch a torchvision data set when it is missing
    train_portion: float = 0.5        # weight half / alpha half of the training set
    # supernet
    layers: int = 8                   # cells; reductions at layers//3 and 2*layers//3
    channels: int = 16                # initial channels C
    nodes: int = 4                    # intermediate nodes per cell
    stem_multiplier: int = 3
    alpha_init_std: float = 1e-3      # alpha = alpha_init_std * randn
    # weights: SGD with cosine learning rate
    batch_size: int = 64
    epochs: int = 50
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    # architecture: Adam
    arch_lr: float = 3e-4
    arch_betas: tuple = (0.5, 0.999)
    arch_weight_decay: float = 1e-3
    warmup_epochs: int = 0            # epochs of weight-only training before alpha moves
    # bilevel
    order: int = 1                    # 1 = first order, 2 = second order (unrolled)
    hvp: str = "finite"               # second order: finite | exact Hessian-vector product
    eps_scale: float = 0.01           # finite differences: eps = eps_scale / ||v||
    # run
    steps_per_epoch: Optional[int] = None   # None: one pass over the weight half
    seed: int = 2
    device: str = "auto"              # auto | cpu | cuda | cuda:N
    dtype: str = "float32"            # float32 | float64 (tests)
    impl: str = "fast"                # supernet implementation: fast | reference
    sync_every: int = 1               # steps whose records are read from the device together
    precision: str = "fp32"           # fp32 | bf16 (autocast; alphas and their softmax stay fp32)

    TUPLE_FIELDS = ("arch_betas",)

    def validate(self) -> "SearchConfig":
        self._check_positive(("layers", "channels", "nodes", "stem_multiplier", "batch_size", "epochs",
                              "sync_every"))
        self._check_positive(("lr", "arch_lr", "grad_clip", "eps_scale"), integer=False)
        self._check_choice("order", (1, 2))
        self._check_choice("hvp", HVP_MODES)
        self._check_choice("precision", PRECISIONS)
        self._check_choice("impl", IMPLS)
        self._check_common()
        if self.precision == "bf16" and self.dtype != "float32":
            raise ValueError("precision bf16 autocasts float32 weights; it needs dtype float32")
        self._check_range("train_portion", 0.0, 1.0, low_open=True)
        self._check_range("alpha_init_std", 0.0)
        self._check_range("arch_weight_decay", 0.0)
        if len(self.arch_betas) != 2:
            raise ValueError(f"arch_betas must be two numbers in [0, 1), got {self.arch_betas!r}")
        for b in self.arch_betas:
            if isinstance(b, bool) or not isinstance(b, (int, float)) or not 0 <= b < 1:
                raise ValueError(f"arch_betas must be two numbers in [0, 1), got {self.arch_betas!r}")
        if self.warmup_epochs < 0:
            raise ValueError("warmup_epochs must be >= 0")
        return self


PRESETS: Dict[str, dict] = {
    # The paper's CIFAR-10 search: 8 cells, 16 channels, batch 64, 50 epochs, seed 2.
    "paper": dict(dataset="cifar10"),
    # Digits on a laptop CPU: a small supernet (the paper's 4-node cell, 3 cells, 8 channels),
    # one epoch of weight warm-up, then an architecture learning rate 330x the paper's with
    # Adam's usual beta1 = 0.9 (averaging the noisy alpha gradients of small batches) and no
    # alpha weight decay, so the weights visibly separate within a minute. See README, "Presets".
    "tiny": dict(dataset="digits", layers=3, channels=8, batch_size=32, epochs=10,
                 arch_lr=0.1, arch_betas=(0.9, 0.999), arch_weight_decay=0.0, warmup_epochs=1,
                 lr=0.05, lr_min=0.005, seed=2),
}
SearchConfig.PRESETS = PRESETS


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda was asked for but CUDA is not available (try --device cpu)")
    return dev


def _rounded(t: torch.Tensor, digits: int = 6) -> list:
    return [[round(float(v), digits) for v in row] for row in t.tolist()]


class Search(StepLoop):
    """A DARTS search: supernet, two optimisers, two batch streams, a step counter."""

    def __init__(self, config: Optional[SearchConfig] = None, out=None,
                 callbacks: tuple = (), data: Optional[DataSplits] = None):
        self.config = config if config is not None else SearchConfig.preset("tiny")
        self.config.validate()
        c = self.config
        self.device = resolve_device(c.device)
        self.dtype = DTYPES[c.dtype]
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True     # fixed shapes: let cuDNN pick its kernels
            if c.precision == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
                warnings.warn("this GPU has no native bf16 (a T4, for one): precision='bf16' is emulated "
                              "and slow there; use precision='fp32'", RuntimeWarning, stacklevel=2)
        torch.manual_seed(c.seed)
        self.data = data if data is not None else load_data(
            c.dataset, c.data_dir, c.download, self.device, c.train_portion)
        net_cls = FastSearchNetwork if c.impl == "fast" else SearchNetwork
        self.model = net_cls(c.channels, self.data.num_classes, c.layers, self.data.in_channels,
                             c.nodes, stem_multiplier=c.stem_multiplier,
                             alpha_init_std=c.alpha_init_std).to(self.device, self.dtype)
        self.w_opt = torch.optim.SGD(self.model.weight_parameters(), lr=c.lr, momentum=c.momentum,
                                     weight_decay=c.weight_decay, foreach=True)
        self.a_opt = torch.optim.Adam(self.model.arch_parameters(), lr=c.arch_lr, betas=c.arch_betas,
                                      weight_decay=c.arch_weight_decay)
        self.train_stream = BatchStream(self.data, "train", c.batch_size, c.seed + 1, self.dtype)
        self.val_stream = BatchStream(self.data, "val", c.batch_size, c.seed + 2, self.dtype, augment=False)
        self._init_loop(callbacks, out)
        if self.run_dir is not None:
            self.run_dir.write_config(c.to_dict())

    # -- bookkeeping -----------------------------------------------------------
    def _batches_per_pass(self) -> int:
        return len(self.train_stream)

    @property
    def genotype(self) -> Genotype:
        return self.model.genotype()

    def set(self, **settings) -> None:
        """Change settings between steps, e.g. search.set(order=2, hvp="exact")."""
        allowed = {"order", "hvp", "eps_scale", "arch_lr", "warmup_epochs", "sync_every"}
        bad = [k for k in settings if k not in allowed]
        if bad:
            raise ValueError(f"cannot change {', '.join(bad)} during a search; changeable: {', '.join(sorted(allowed))}")
        new = dataclasses.replace(self.config, **settings)
        self.flush()
        self.config = new
        for g in self.a_opt.param_groups:
            g["lr"] = new.arch_lr

    # -- one bilevel step --------------------------------------------------------
    def step(self) -> Optional[Record]:
        """One architecture step (alpha half) then one weight step (weight half).

        Returns the step's record. With `sync_every` > 1 the numbers stay on the device
        and records are read and emitted `sync_every` steps at a time (and at the end of
        an epoch, of `run()`, at `save()` and `flush()`); steps in between return None.
        """
        c = self.config
        if c.order not in (1, 2) or c.hvp not in HVP_MODES:
            c.validate()
        t0 = time.perf_counter()
        epoch = self.epoch
        lr = self.lr_at(epoch)
        for g in self.w_opt.param_groups:
            g["lr"] = lr
        model = self.model
        model.train()
        x_t, y_t = next(self.train_stream)            # (B, C, H, W), (B,)
        x_v, y_v = next(self.val_stream)              # (B, C, H, W), (B,)
        arch_updated = epoch >= c.warmup_epochs
        if arch_updated:
            buffers = self._momentum_buffers() if c.order == 2 else None
            with self._autocast():
                grads, val_loss, val_logits = arch_gradient(
                    model, (x_t, y_t), (x_v, y_v), order=c.order, hvp=c.hvp, xi=lr,
                    momentum=c.momentum, weight_decay=c.weight_decay,
                    momentum_buffers=buffers, eps_scale=c.eps_scale)
            for a, g in zip(model.arch_parameters(), grads):
                a.grad = g
            self.a_opt.step()
            self.a_opt.zero_grad(set_to_none=True)
        else:
            with torch.no_grad(), self._autocast():
                val_logits = forward_with(model, None, x_v)
                val_loss = F.cross_entropy(val_logits, y_v)
        # weight step
        weights = model.weight_parameters()
        with self._autocast():
            logits = model(x_t)                       # (B, num_classes)
            loss = F.cross_entropy(logits, y_t)
        self.w_opt.zero_grad(set_to_none=True)
        loss.backward(inputs=weights)
        torch.nn.utils.clip_grad_norm_(weights, c.grad_clip)
        self.w_opt.step()
        self.step_count += 1
        with torch.no_grad():                         # stays on the device until flush()
            metrics = torch.stack([loss.detach(), (logits.argmax(1) == y_t).float().mean(),
                                   val_loss.detach(), (val_logits.argmax(1) == y_v).float().mean()])
            probs = torch.stack([model.probs()[k] for k in ("normal", "reduce")])   # (2, E, O)
        base = {"kind": "step", "step": self.step_count, "epoch": epoch, "order": c.order,
                "hvp": c.hvp if c.order == 2 else None, "arch_updated": arch_updated,
                "lr": lr, "arch_lr": c.arch_lr}
        return self._defer(base, {"metrics": metrics, "probs": probs}, time.perf_counter() - t0)

    def _record_values(self, values) -> Record:
        train_loss, train_acc, val_loss, val_acc = values["metrics"].tolist()   # (4,)
        normal, reduce = values["probs"]                                          # (E, O) each
        return {"train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss, "val_acc": val_acc,
                "probs": {"normal": _rounded(normal), "reduce": _rounded(reduce)},
                "genotype": derive(normal, reduce).to_text()}

    def _autocast(self):
        """bf16 autocast for forward passes when precision="bf16", else nothing."""
        if self.config.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _momentum_buffers(self) -> Dict[str, torch.Tensor]:
        out = {}
        for n, p in self.model.named_weight_parameters():
            buf = self.w_opt.state.get(p, {}).get("momentum_buffer")
            if buf is not None:
                out[n] = buf
        return out

    EPOCH_MEANS = ("train_loss", "train_acc", "val_loss", "val_acc")

    def _epoch_extra(self) -> dict:
        return {"genotype": self.model.genotype().to_text()}

    def evaluate(self, split: str = "test"):
        """Mean loss and accuracy of the supernet on a whole split, in eval mode."""
        return evaluate_model(self.model, self.data, split, self.dtype, self._autocast)

    # -- state, checkpoints, run directory --------------------------------------------
    CHECKPOINT_KIND = NOUN = "search"

    def state_dict(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "step": self.step_count,
            "model": self.model.state_dict(),
            "w_opt": self.w_opt.state_dict(),
            "a_opt": self.a_opt.state_dict(),
            "streams": {"train": self.train_stream.state_dict(), "val": self.val_stream.state_dict()},
            "rng": rng_state(),
        }

    def _load_state(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.w_opt.load_state_dict(state["w_opt"])
        self.a_opt.load_state_dict(state["a_opt"])
        self.train_stream.load_state_dict(state["streams"]["train"])
        self.val_stream.load_state_dict(state["streams"]["val"])

    @classmethod
    def resume(cls, path, callbacks: tuple = (), data: Optional[DataSplits] = None,
               **overrides) -> "Search":
        """Continue a search from a run directory (or a checkpoint file inside one)."""
        path = Path(path)
        run_dir = RunDir(path if path.is_dir() else path.parent)
        state = load_checkpoint(path, map_location="cpu", kind="search")
        history = cls._saved_history(run_dir)     # checked before anything is written
        try:
            config = SearchConfig.from_dict({**state["config"], **overrides})
        except (KeyError, TypeError) as e:
            raise RunDirError(f"checkpoint {path} holds no usable config: {e}") from None
        search = cls(config, out=run_dir.path, callbacks=callbacks, data=data)
        search.load_state_dict(state)
        search._restore_history(history)
        return search
