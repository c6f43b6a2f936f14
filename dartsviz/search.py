"""SearchConfig and its presets, and Search: the bilevel loop that emits typed records.

    search = Search(SearchConfig.preset("tiny"))
    search.subscribe(lambda record: print(record.step, record.metrics))
    search.run(epochs=1)          # or search.step() for one bilevel step
    search.genotype               # the derived genotype now

The loop knows no space: what the supernet is, its loss and metrics, how a genotype is
derived and drawn, all come from the `SearchSpace` named by `config.space`; where a
variant departs from DARTS comes from the `Method` named by `config.variant`. Every step
emits a `StepRecord`, every epoch an `EpochRecord` (`dartsviz.records`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

import torch

from . import distributed
from .bilevel import HVP_MODES, ORDERS, arch_gradient, loss_with
from .config import DTYPES, ConfigBase, WeightOptimFields, make_sgd
from .data import BatchStream, DataSplits
from .diagnostics import (MONITOR_SEED, EarlyStop, collapse_stats, darts_es, hessian_max_eigenvalue, local_average,
                          monitor_batch)
from .loop import Record, StepLoop, cosine_lr, current_rss_mb, rng_state
from .methods import get_method
from .records import EpochRecord, StepRecord
from .runs import RunDir, RunDirError, atomic_write_text, load_checkpoint
from .spaces import get_space, space_names
from .spaces.supernet import ArchProbs

PRECISIONS = ("fp32", "bf16", "fp16")


def _routes_space_fields(cls):
    """`cls(...)` takes a space's own setting by name (`SearchConfig(space="rnn", nhid=32)`),
    into space_options (`_route_fields`)."""
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        init(self, *args, **cls._route_fields(kwargs))
    cls.__init__ = __init__
    return cls


@_routes_space_fields
@dataclass
class SearchConfig(ConfigBase, WeightOptimFields):
    """Search settings. Defaults are the paper's CIFAR-10 search settings (the weights'
    optimiser fields, batch_size to grad_clip, are in `WeightOptimFields`). A space's own
    settings (the rnn space's nhid, bptt, ...: `SearchSpace.search_fields`) live in
    space_options, a variant's (PC-DARTS' partial_channels, ...) in variant_options;
    `SearchConfig(space="rnn", nhid=32)` routes such a name there, `config.nhid` reads it."""

    space: str = "cnn"                # the search space (dartsviz.spaces): cnn
    variant: str = "darts"            # the method (dartsviz.methods): darts
    variant_options: dict = dataclasses.field(default_factory=dict)   # the variant's settings, e.g. {"beta_0": 1.0}
    space_options: dict = dataclasses.field(default_factory=dict)     # the space's (`search_fields`): {"nhid": 32}
    # data
    dataset: Optional[str] = None     # None: the space's default (cnn: cifar10, rnn: pydoc, the embedded corpus)
    data_dir: str = "./data"
    download: bool = False            # fetch a torchvision data set when it is missing
    train_portion: float = 0.5        # weight half / alpha half of the training set
    # supernet
    layers: int = 8                   # cells; reductions at layers//3 and 2*layers//3
    channels: int = 16                # initial channels C
    nodes: int = 4                    # intermediate nodes per cell
    stem_multiplier: int = 3
    alpha_init_std: float = 1e-3      # alpha = alpha_init_std * randn
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
    precision: str = "fp32"           # fp32 | bf16 | fp16 (autocast; fp16 with gradient scalers; alphas stay fp32)
    sync_bn: bool = False             # torchrun on CUDA: SyncBatchNorm, batch statistics over all ranks (impl reference)
    cuda_graphs: bool = False         # CUDA: the first-order step captured as CUDA graphs (dartsviz.cudagraph)
    # --- collapse diagnostics (dartsviz.diagnostics; checked by _check_monitor_fields) ---
    monitor_every: int = 0            # lambda_max (the Hessian's dominant eigenvalue in alpha) every N steps; 0: off
    monitor_tol: float = 1e-2         # power iteration: stop at residual ||Hv - lambda v|| <= tol * |lambda|
    monitor_iters: int = 50           # power iteration: at most this many Hessian-vector products (per run)
    early_stop: bool = False          # DARTS-ES: lambda_max also at every epoch's end; stop when it grows
    early_stop_window: int = 5        # k: compare lambda_max with its value k epochs earlier (Zela et al.)
    early_stop_ratio: float = 1.3     # stop when lambda_max(e) / lambda_max(e - k) > ratio (authors' code)
    early_stop_smooth: int = 1        # compare local averages of this many epochs' lambda_max (authors: 5)
    early_stop_start: int = 0         # the earlier epoch compared must be this one or later (authors: 10)

    def _check_monitor_fields(self) -> None:
        v = self.monitor_every
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"monitor_every must be 0 (off) or a positive number of steps, got {v!r}")
        self._check_positive(("monitor_iters", "early_stop_window", "early_stop_smooth"))
        v = self.early_stop_start
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"early_stop_start must be an epoch (0 or more), got {v!r}")
        self._check_positive(("monitor_tol",), integer=False)
        if not isinstance(self.early_stop, bool):
            raise ValueError(f"early_stop must be True or False, got {self.early_stop!r}")
        self._check_range("early_stop_ratio", 1.0, low_open=True)
    # --- end of the collapse diagnostics' fields ---

    TUPLE_FIELDS = ("arch_betas",)
    # fields of older versions that a method now holds as its options, with the value that meant "off"
    RETIRED_FIELDS = {"partial_channels": 1, "edge_norm": False}     # PC-DARTS' (variant_options)

    @classmethod
    def _route_fields(cls, values: dict, base: Optional[dict] = None, strict: bool = True) -> dict:
        """`values` with every name the chosen space declares (`SearchSpace.search_fields`: the
        rnn space's nhid, bptt, ...) moved into space_options; the space is values', else
        base's, else the default. A name only another space declares: a one-line ValueError
        (`strict`) or dropped (from_dict: old config.json files hold every space's fields)."""
        names = {f.name for f in dataclasses.fields(cls)}
        extra = [k for k in values if k not in names]
        if not extra:
            return values
        space = values.get("space", (base or {}).get("space", cls.space))
        declared = {n: get_space(n).search_fields for n in space_names()}
        own = declared.get(space, {}) if isinstance(space, str) else getattr(space, "search_fields", {})
        values, given = dict(values), values.get("space_options") or {}
        moved = {k: values.pop(k) for k in extra if k in own}
        if moved:
            values["space_options"] = {**given, **moved} if isinstance(given, dict) else given
        for k in [k for k in extra if k in values]:
            owners = [n for n, f in declared.items() if k in f]
            if owners and strict:
                raise ValueError(f"{k} is a setting of the {' and '.join(owners)} space, not the {space} space")
            if owners:
                del values[k]
        return values

    @classmethod
    def from_dict(cls, d: dict) -> "SearchConfig":
        """From `to_dict()` output, also an older version's: its top-level space fields (nhid,
        ...) go into space_options, PC-DARTS' partial_channels and edge_norm into its
        variant_options; other keys this version does not know are ignored."""
        d = dict(d)
        retired = {k: d.pop(k) for k in cls.RETIRED_FIELDS if k in d}
        if retired:
            method = get_method(d.get("variant", cls.variant))
            taken = {k: v for k, v in retired.items() if k in method.DEFAULTS}
            if taken:
                d["variant_options"] = {**taken, **(d.get("variant_options") or {})}
            lost = [f"{k}={v!r}" for k, v in retired.items() if k not in taken and v != cls.RETIRED_FIELDS[k]]
            if lost:
                raise ValueError(f"this config sets {', '.join(lost)}, which only variant pc_darts takes now "
                                 f"(in variant_options); its variant is {method.name!r}")
        return super().from_dict(cls._route_fields(d, strict=False))

    def __getattr__(self, name: str):
        """Read-only: a setting the space declares (`config.nhid`), from `space.options(config)`."""
        d = self.__dict__
        if not name.startswith("_") and "space" in d and "space_options" in d:
            try:
                space = get_space(d["space"])
            except (ValueError, TypeError):
                space = None
            if space is not None and name in space.search_fields:
                return space.options(self)[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value) -> None:
        if name not in self.__dataclass_fields__ and any(name in get_space(n).search_fields for n in space_names()):
            raise AttributeError(f"{name} is a space setting: set space_options (SearchConfig({name}=...) "
                                 f"or dataclasses.replace(config, {name}=...) route it there)")
        super().__setattr__(name, value)

    @classmethod
    def _preset_layer(cls, name: str, fields: dict) -> dict:
        """The variant's own adjustments of preset `name` (`Method.presets`)."""
        return get_method(fields.get("variant", cls.variant)).presets.get(name, {})

    def __post_init__(self):
        if self.dataset is None and isinstance(self.space, str):
            if self.space in space_names():
                self.dataset = get_space(self.space).default_dataset
        super().__post_init__()

    def validate(self) -> "SearchConfig":
        self._check_positive(("layers", "channels", "nodes", "stem_multiplier", "batch_size", "epochs",
                              "sync_every"))
        self._check_positive(("lr", "arch_lr", "grad_clip", "eps_scale"), integer=False)
        self._check_choice("order", ORDERS)
        self._check_choice("hvp", HVP_MODES)
        self._check_choice("precision", PRECISIONS)
        self._check_common()
        self._check_monitor_fields()
        get_method(self.variant).check_options(self.variant_options, self.space)
        get_method(self.variant).check_config(self)
        get_space(self.space).check_search_options(self.space_options)
        get_space(self.space).check_config(self)
        if not isinstance(self.sync_bn, bool):
            raise ValueError(f"sync_bn must be True or False, got {self.sync_bn!r}")
        if self.sync_bn and self.impl != "reference":
            raise ValueError("sync_bn needs impl='reference' (--impl reference): "
                             "the fast supernet computes its BatchNorms itself")
        if not isinstance(self.cuda_graphs, bool):
            raise ValueError(f"cuda_graphs must be True or False, got {self.cuda_graphs!r}")
        if self.cuda_graphs:                          # what a captured step cannot run (dartsviz.cudagraph)
            from .cudagraph import check_config
            check_config(self)
        if self.precision != "fp32" and self.dtype != "float32":
            raise ValueError(f"precision {self.precision} autocasts float32 weights; it needs dtype float32")
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


# the rnn space's settings (space_options) of its tiny and collapse presets
TINY_RNN_OPTIONS = dict(vocab_size=2000, nhid=32, bptt=20, dropout=0.2, dropouth=0.1, dropoutx=0.2, dropouti=0.1,
                        dropoute=0.0, eval_batch_size=64)

PRESETS: Dict[str, dict] = {
    # The paper's CIFAR-10 search: 8 cells, 16 channels, batch 64, 50 epochs, seed 2.
    "paper": dict(dataset="cifar10"),
    # CIFAR-10 in a class on a Colab T4, first order, in about 15 minutes: an ESTIMATE from
    # multiply-adds (count_macs: 186.7M per image here, 300.3M for `paper`) scaled from the paper's
    # 0.375 GPU-days per first-order run on a GTX 1080Ti, not a measurement (README, "Presets").
    # 5 cells of 16 channels, batch 128, 8 epochs of 30 steps, 1 warm-up epoch; weight lr doubled
    # with the batch; alpha's Adam lr 0.03 so that its 210 steps move it as far as the paper's
    # 19,500 steps at 3e-4 (lr x steps = 5.9), beta1 0.9 as in `tiny`.
    "classroom": dict(dataset="cifar10", layers=5, channels=16, batch_size=128, epochs=8, steps_per_epoch=30,
                      warmup_epochs=1, lr=0.05, lr_min=0.001, arch_lr=0.03, arch_betas=(0.9, 0.999),
                      arch_weight_decay=1e-3, seed=2),
    # Digits on a laptop CPU: a small supernet (the paper's 4-node cell, 3 cells, 8 channels),
    # one epoch of weight warm-up, then an architecture learning rate 330x the paper's with
    # Adam's usual beta1 = 0.9 (averaging the noisy alpha gradients of small batches) and no
    # alpha weight decay, so the weights visibly separate within a minute. See README, "Presets".
    "tiny": dict(dataset="digits", layers=3, channels=8, batch_size=32, epochs=10,
                 arch_lr=0.1, arch_betas=(0.9, 0.999), arch_weight_decay=0.0, warmup_epochs=1,
                 lr=0.05, lr_min=0.005, seed=2),
    # --- recurrent space ---
    # The paper's PTB search (the reference's train_search.py): 300 wide, batch 256, BPTT 35,
    # plain SGD at a constant lr 20 (no momentum), weight decay 5e-7, clip 0.25; alphas by
    # Adam lr 3e-3, default betas, weight decay 1e-3; 50 epochs. Needs --data-dir with PTB.
    "paper_rnn": dict(space="rnn", dataset="ptb", space_options=dict(nhid=300, bptt=35, bptt_jitter=True),
                      batch_size=256, epochs=50,
                      lr=20.0, lr_min=20.0, momentum=0.0, weight_decay=5e-7, grad_clip=0.25,
                      arch_lr=3e-3, arch_betas=(0.9, 0.999), arch_weight_decay=1e-3, seed=2),
    # The embedded pydoc corpus (Python's own docs, ~85k training tokens) on a laptop CPU in about
    # two minutes: 32 wide, 2,000 words, 4 epochs of 40 steps. The paper's SGD (lr 20, clip 0.25,
    # no momentum) with a cosine to 5; dropouts lowered for the narrow model; an architecture lr
    # 10x the paper's so the weights visibly separate in 160 steps (3e-3 moves them by ~0.04).
    "tiny_rnn": dict(space="rnn", dataset="pydoc", space_options=TINY_RNN_OPTIONS, batch_size=32,
                     epochs=4, steps_per_epoch=40, lr=20.0, lr_min=5.0, momentum=0.0, weight_decay=5e-7,
                     grad_clip=0.25, arch_lr=0.03, arch_betas=(0.9, 0.999), arch_weight_decay=1e-3, seed=2),
    # Collapse within a minute (`preset("collapse", space="rnn")`, `dartsviz search --preset collapse
    # --space rnn`): tiny_rnn with lambda_max measured every 40 steps (each epoch's end). Measured on
    # the 2-core development machine (one torch thread, two searches at a time), first order, seeds
    # 0 / 1 / 2: `identity`, the space's skip-like op, on 8 / 2 / 5 of the derived cell's 8 nodes;
    # lambda_max at step 40 -> 160: 5.8 -> 0.005 / 0.019 -> 0.011 / 0.005 -> 0.10 (noisy, no common
    # trend); 67 s per search with the monitor (about 45 s without). Second order: 3 / 0 / 2.
    # The digits `tiny` supernet does not collapse: 30 epochs (660 steps, about 3 min) ended with
    # 1 of 8 parameter-free ops in the normal cell (at most 4 on the way), lambda_max 0.16 -> 0.14.
    # The fixes' numbers: README, "DARTS' successors and its collapse"; notebook 09.
    "collapse_rnn": dict(space="rnn", dataset="pydoc", space_options=TINY_RNN_OPTIONS, batch_size=32,
                         epochs=4, steps_per_epoch=40, lr=20.0, lr_min=5.0, momentum=0.0, weight_decay=5e-7,
                         grad_clip=0.25, arch_lr=0.03, arch_betas=(0.9, 0.999), arch_weight_decay=1e-3,
                         seed=2, monitor_every=40),
    # --- end of the recurrent space's presets ---
    # --- NAS-Bench-201 space (`preset(..., space="nb201")`; layers = cells per stage, channels = C) ---
    # The benchmark authors' DARTS on their space (algos/DARTS.config): C 16, 5 cells per stage, batch 64,
    # 50 epochs, SGD 0.025 cosine to 0.001 (they use Nesterov momentum, plain momentum here), momentum 0.9,
    # wd 5e-4; alphas by Adam 3e-4, betas (0.5, 0.999), wd 1e-3; half the CIFAR-10 training set each.
    "paper_nb201": dict(space="nb201", dataset="cifar10", channels=16, layers=5, batch_size=64, epochs=50,
                        lr=0.025, lr_min=0.001, momentum=0.9, weight_decay=5e-4, grad_clip=5.0,
                        arch_lr=3e-4, arch_betas=(0.5, 0.999), arch_weight_decay=1e-3, seed=2),
    # Digits on a laptop CPU: 8 channels, one cell per stage, the tiny preset's learning rates.
    "tiny_nb201": dict(space="nb201", dataset="digits", channels=8, layers=1, batch_size=32, epochs=10,
                       arch_lr=0.1, arch_betas=(0.9, 0.999), arch_weight_decay=0.0, warmup_epochs=1,
                       lr=0.05, lr_min=0.005, seed=2),
}
SearchConfig.PRESETS = PRESETS


class Search(StepLoop):
    """A DARTS search: a space's supernet, a method's hooks, two optimisers, two batch
    streams, a step counter."""

    DATA_PARALLEL = True               # runs under torchrun (dartsviz.distributed)

    def __init__(self, config: Optional[SearchConfig] = None, out=None,
                 callbacks: tuple = (), data=None):
        self.config = config if config is not None else SearchConfig.preset("tiny")
        self.config.validate()
        c = self.config
        self.mem_baseline_mb = round(current_rss_mb(), 2)    # before data and supernet exist
        self.space = get_space(c.space)
        self.method = get_method(c.variant).bind(c, self.space)     # this search's copy, options checked
        self.device = distributed.resolve_device(c.device)
        if c.sync_bn:
            distributed.check_sync_bn(self.device)
        if c.cuda_graphs:                             # before any data loads: CUDA, one process
            from .cudagraph import check_search
            check_search(self.device)
        self.dtype = DTYPES[c.dtype]
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True     # fixed shapes: let cuDNN pick its kernels
            if c.precision == "bf16" and not torch.cuda.is_bf16_supported(including_emulation=False):
                warnings.warn("this GPU has no native bf16 (a T4, for one): precision='bf16' is emulated "
                              "and slow there; use precision='fp32'", RuntimeWarning, stacklevel=2)
        torch.manual_seed(c.seed)
        with distributed.main_first(c.download):     # torchrun: rank 0 downloads, then the others read
            self.data = data if data is not None else self.space.load_data(c, self.device)
        self._adopt(self.space.build(c, self.data, **self.method.build_options()))
        self.train_stream, self.val_stream = self.space.streams(self.data, c, self.dtype)
        self._data_parallel()
        # fp16: one gradient scaler per optimiser; a step whose scaled gradients overflow is skipped
        fp16 = c.precision == "fp16"
        self.w_scaler = torch.amp.GradScaler(self.device.type, enabled=fp16)
        self.a_scaler = torch.amp.GradScaler(self.device.type, enabled=fp16)
        self._init_loop(callbacks, out)
        self._monitor_batch = None                # the fixed validation batch of lambda_max, drawn when first needed
        self._epoch_lambdas: Dict[int, tuple] = {}   # epoch -> (lambda_max, genotype text) for DARTS-ES
        self.early_stopped: Optional[EarlyStop] = None
        if self.run_dir is not None:
            self.run_dir.write_config(c.to_dict())
        self._graphs = None                           # dartsviz.cudagraph: the step replayed from CUDA graphs
        if c.cuda_graphs:
            from .cudagraph import attach
            attach(self)

    def replace_model(self, model) -> None:
        """Search `model` from now on (P-DARTS' next stage): moved to the device and dtype,
        with fresh optimisers of the config's settings; the gradient scalers, streams and
        step counter carry on."""
        self.flush()
        self._adopt(model)

    def _adopt(self, model) -> None:
        """`model` on the device and dtype (SyncBatchNorm with sync_bn) and fresh optimisers."""
        c = self.config
        self.model = model.to(self.device, self.dtype)
        if c.sync_bn:
            self.model = distributed.sync_batchnorm(self.model, self.device)
        self.w_opt = make_sgd(self.model.weight_parameters(), c)
        self.a_opt = torch.optim.Adam(self.model.arch_parameters(), lr=c.arch_lr, betas=c.arch_betas,
                                      weight_decay=c.arch_weight_decay)

    def _data_parallel(self) -> None:
        """torchrun (dartsviz.distributed): every rank draws the same batches and takes its
        rows of them (`_shard`); every gradient is averaged over the ranks (`_reduce`). One
        process: both None, nothing changes."""
        self._shard = self._reduce = None
        if distributed.world_size() == 1:
            return
        if not all(isinstance(s, BatchStream) for s in (self.train_stream, self.val_stream)):
            raise ValueError(f"the {self.space.name} space runs on one process: its batches carry state "
                             "that is not split across ranks")
        for stream in (self.train_stream, self.val_stream):
            distributed.check_batch_size(stream.batch_size)
        self._shard, self._reduce = distributed.shard, distributed.all_reduce_mean

    # -- bookkeeping -----------------------------------------------------------
    def lr_at(self, epoch: int) -> float:
        """The weights' learning rate in `epoch`: the cosine schedule where the method puts it."""
        return cosine_lr(self.config, *self.method.lr_position(epoch))

    def _batches_per_pass(self) -> int:
        return len(self.train_stream)

    @property
    def progress(self) -> float:
        """The fraction of the configured search done, in [0, 1] (the methods' schedules)."""
        return min(1.0, self.step_count / max(1, self.total_steps))

    @property
    def genotype(self):
        """The genotype derived from the architecture weights now; once DARTS-ES stopped the
        search, the genotype of the epoch it selected (what the run directory keeps)."""
        if self.early_stopped is not None:
            return self.early_stopped.genotype
        return self.method.derive(self.space, self.model.probs())

    @property
    def done(self) -> bool:
        """The configured steps are done, or DARTS-ES stopped the search."""
        return self.early_stopped is not None or self.step_count >= self.total_steps

    # -- collapse diagnostics (dartsviz.diagnostics) ------------------------------------
    def monitor_batch(self):
        """The fixed validation batch lambda_max is measured on: drawn once (seeded, from a
        stream of its own), kept, checkpointed."""
        if self._monitor_batch is None:
            self._monitor_batch = monitor_batch(self.space, self.data, self.config, self.dtype)
        return self._monitor_batch

    def hessian_eigen(self):
        """lambda_max now (`diagnostics.hessian_max_eigenvalue`): the architecture phase's
        mixing, the fixed batch, plus arch_weight_decay * I as in RobustDARTS. Takes nothing
        from the search's random streams and changes no weight, statistic or state."""
        c, saved = self.config, self.model.mixing
        self._mixing("arch")
        try:
            return hessian_max_eigenvalue(self.model, self.monitor_batch(), tol=c.monitor_tol,
                                          max_iters=c.monitor_iters, weight_decay=c.arch_weight_decay,
                                          seed=c.seed + MONITOR_SEED)
        finally:
            self.model.mixing = saved

    def _monitor_due(self) -> bool:
        """Whether the step just taken measures lambda_max: every monitor_every steps, and with
        early_stop at every epoch's last step."""
        c, n = self.config, self.step_count
        return bool((c.monitor_every and n % c.monitor_every == 0)
                    or (c.early_stop and n % self.steps_per_epoch == 0))

    def _with_collapse(self, record: StepRecord) -> StepRecord:
        """The record with its collapse statistics, from its own (rounded) probs and genotype,
        and the numbers its space adds about the derived cell (`record_numbers`: nb201's truth)."""
        for k, v in collapse_stats(self.space, record.genotype, record.probs).items():
            setattr(record, k, v)
        record.monitors.update(self.space.record_numbers(record.genotype))
        return record

    def _early_stop_check(self, record: EpochRecord) -> None:
        """DARTS-ES at the end of an epoch: remember its lambda_max and genotype; when the rule
        fires, mark the record and stop the search with the genotype of `window` epochs before."""
        c, e = self.config, record.epoch
        if record.lambda_max is None:
            return
        self._epoch_lambdas[e] = (record.lambda_max, record.genotype.to_text())
        if not c.early_stop or self.early_stopped is not None:
            return
        chosen = darts_es({k: v[0] for k, v in self._epoch_lambdas.items()}, e, c.early_stop_window,
                          c.early_stop_ratio, c.early_stop_smooth, c.early_stop_start)
        if chosen is not None:
            record.early_stop_epoch = chosen
            lams = {k: v[0] for k, v in self._epoch_lambdas.items()}
            n = c.early_stop_smooth
            self.early_stopped = EarlyStop(e, chosen, local_average(lams, e, n), local_average(lams, chosen, n),
                                           c.early_stop_ratio,
                                           self.space.parse_genotype(self._epoch_lambdas[chosen][1]), n)

    def _write_extra(self, run_dir) -> None:
        """early_stop.txt: the one line saying where DARTS-ES stopped, when it did."""
        if self.early_stopped is not None:
            atomic_write_text(run_dir.path / "early_stop.txt", self.early_stopped.message() + "\n")

    SETTABLE = ("order", "hvp", "eps_scale", "arch_lr", "warmup_epochs", "sync_every",
                "monitor_every", "monitor_tol", "monitor_iters")

    def set(self, **settings) -> None:
        """Change settings between steps, e.g. search.set(order=2, hvp="exact")."""
        bad = [k for k in settings if k not in self.SETTABLE]
        if bad:
            raise ValueError(f"cannot change {', '.join(bad)} during a search; changeable: {', '.join(sorted(self.SETTABLE))}")
        new = dataclasses.replace(self.config, **settings)     # validates
        self.flush()
        self.config = new
        for g in self.a_opt.param_groups:
            g["lr"] = new.arch_lr

    def _mixing(self, phase: str) -> None:
        """Let the supernet mix its ops the way the method does in this phase."""
        self.model.mixing = functools.partial(self.method.edge_weights, phase=phase, progress=self.progress)

    # -- one bilevel step --------------------------------------------------------
    def step(self) -> Optional[StepRecord]:
        """One architecture step (alpha half) then one weight step (weight half).

        Returns the step's record. With `sync_every` > 1 the numbers stay on the device
        and records are read and emitted `sync_every` steps at a time (and at the end of
        an epoch, of `run()`, at `save()` and `flush()`); steps in between return None.
        """
        c, method, space = self.config, self.method, self.space
        if self.early_stopped is not None:            # DARTS-ES ended the search
            return None
        t0 = time.perf_counter()
        epoch = self.epoch
        if self.step_count % self.steps_per_epoch == 0:
            method.on_epoch_start(self, epoch)        # P-DARTS may replace the supernet here
        self.model.train()
        train_batch = next(self.train_stream)
        val_batch = next(self.val_stream)
        if self._shard is not None:                   # data parallel: this rank's rows of the shared batches
            train_batch, val_batch = self._shard(train_batch), self._shard(val_batch)
        lr = self.lr_at(epoch) * space.lr_scale(train_batch, c)      # a jittered BPTT length scales it
        for g in self.w_opt.param_groups:
            g["lr"] = lr
        arch_updated = not method.arch_frozen(epoch, c)
        if self._graphs is not None:                  # cuda_graphs: the same function, replayed from a capture
            values, metrics, monitors = self._graphs.run(self.device_step, train_batch, val_batch, lr, arch_updated)
        else:
            values, metrics, monitors = self.device_step(train_batch, val_batch, lr, arch_updated)
        base = {"step": self.step_count, "epoch": epoch, "order": c.order,
                "hvp": c.hvp if c.order == 2 else None, "arch_updated": arch_updated,
                "lr": lr, "arch_lr": c.arch_lr, "_metric_names": list(metrics), "_monitor_names": list(monitors)}
        monitor_seconds = 0.0
        if self._monitor_due():                       # reads to the host: the power iteration's tests
            eig = self.hessian_eigen()
            base.update(lambda_max=eig.value, lambda_iters=eig.iters, lambda_seconds=eig.seconds)
            monitor_seconds = eig.seconds
        return self._defer(base, values, time.perf_counter() - t0 - monitor_seconds)

    def device_step(self, train_batch, val_batch, lr: float, arch_updated: bool):
        """The step itself, no host read: the architecture step on the alpha half (unless alpha
        rests), the weight step on the weight half (`w_opt`'s lr is set), the step counted, and
        its numbers (the method's monitors see the step taken) as device tensors, `(values,
        metric names, monitor names)`. What `cudagraph` captures and replays."""
        c, method, space, model = self.config, self.method, self.space, self.model
        self._mixing("arch")
        if arch_updated:
            buffers = self._momentum_buffers() if c.order == 2 else None
            scale = (self.a_scaler.scale(torch.ones((), device=self.device))      # fp16: the scale as a
                     if self.a_scaler.is_enabled() else None)                        # 0-dim tensor, no sync
            with self._autocast():
                grads, val_loss, val_out = arch_gradient(
                    model, train_batch, val_batch, order=c.order, hvp=c.hvp, xi=lr,
                    momentum=c.momentum, weight_decay=c.weight_decay,
                    momentum_buffers=buffers, eps_scale=c.eps_scale,
                    unrolled_clip=c.grad_clip if space.clip_unrolled else None, loss_scale=scale,
                    reduce=self._reduce)
            self._set_arch_grads(grads, scale)
            self.a_scaler.step(self.a_opt)             # fp16: unscales, skips the step on inf/NaN
            self.a_scaler.update()
            self.a_opt.zero_grad(set_to_none=True)
        else:
            with torch.no_grad(), self._autocast():
                val_loss, val_out = loss_with(model, None, val_batch)
        # weight step
        self._mixing("weight")
        weights = model.weight_parameters()
        with self._autocast():
            loss, out = model.loss(train_batch)
            objective = method.weight_loss(loss, model, self.progress)
        self.w_opt.zero_grad(set_to_none=True)
        self.w_scaler.scale(objective).backward(inputs=weights)
        if self._reduce is not None:                  # data parallel: the whole batch's weight gradient
            distributed.all_reduce_grads(weights)
        self.w_scaler.unscale_(self.w_opt)
        torch.nn.utils.clip_grad_norm_(weights, c.grad_clip)
        self.w_scaler.step(self.w_opt)                 # fp16: skipped on inf/NaN; else w_opt.step()
        self.w_scaler.update()
        self.step_count += 1
        return self._step_values(loss, val_loss, out, val_out, train_batch, val_batch)

    def _set_arch_grads(self, grads, scale=None) -> None:
        """Set the architecture parameters' .grad: the bilevel gradient `grads` plus the method's
        penalty on the alphas (zero for PC-DARTS' betas), times the fp16 loss `scale` if any."""
        model = self.model
        params = model.arch_parameters()            # the alphas, then (PC-DARTS) the betas
        alphas = list(model.alpha_of().values()) if hasattr(model, "alpha_of") else params
        penalty = self.method.arch_penalty(alphas, self.progress)
        if penalty is not None:
            extra = torch.autograd.grad(penalty, params, allow_unused=True, materialize_grads=True)
            grads = [g + (p if scale is None else p * scale) for g, p in zip(grads, extra)]
        for a, g in zip(params, grads):
            a.grad = g

    def _step_values(self, loss, val_loss, out, val_out, train_batch, val_batch):
        """The step's numbers as device tensors, no host read: (values, metric names, monitors)
        with values {"losses", "metrics", "probs/<cell>", "edge_probs/<cell>", ["monitors"]};
        under data parallelism the losses and metrics of the whole batch."""
        with torch.no_grad():
            space = self.space
            metrics = {f"train_{k}": v for k, v in space.metrics(out.detach(), train_batch).items()}
            metrics.update({f"val_{k}": v for k, v in space.metrics(val_out, val_batch).items()})
            arch_probs = self.model.probs()
            values = {"losses": torch.stack([loss.detach().float(), val_loss.float()]),
                      "metrics": torch.stack([v.float() for v in metrics.values()]),
                      **{f"probs/{k}": p for k, p in arch_probs.items()},
                      **{f"edge_probs/{k}": p for k, p in (getattr(arch_probs, "edge_probs", None) or {}).items()}}
            if self._reduce is not None:
                values["losses"], values["metrics"] = self._reduce([values["losses"], values["metrics"]])
            monitors = self.method.monitors(self)
            if monitors:
                values["monitors"] = torch.stack([m.float() for m in monitors.values()])
        return values, metrics, monitors

    def _probs_of(self, values) -> Dict[str, torch.Tensor]:
        return {k.split("/", 1)[1]: v for k, v in values.items() if k.startswith("probs/")}

    @staticmethod
    def _with_edge_probs(probs: dict, edge_probs: dict):
        """`probs` carrying softmax(beta) per cell type as `.edge_probs` (PC-DARTS' edge
        normalisation, which its derivation ranks edges by); `probs` itself without them."""
        if not edge_probs:
            return probs
        return ArchProbs(probs, edge_probs)

    def _record(self, base: Record, values, seconds: float, peak_mem_mb: float) -> StepRecord:
        base = dict(base)
        metric_names, monitor_names = base.pop("_metric_names"), base.pop("_monitor_names")
        probs = {k: v.numpy() for k, v in self._probs_of(values).items()}                # (E, O) each
        edge = {k.split("/", 1)[1]: v.numpy() for k, v in values.items() if k.startswith("edge_probs/")}  # (E,)
        train_loss, val_loss = values["losses"].tolist()
        monitors = dict(zip(monitor_names, values["monitors"].tolist())) if monitor_names else {}
        return self._with_collapse(StepRecord(
            space=self.space.name, variant=self.method.name, probs=probs,
            genotype=self.method.derive(self.space, self._with_edge_probs(probs, edge)),   # full precision, once
            edge_probs=edge or None,
            losses={"train": train_loss, "val": val_loss},
            metrics=dict(zip(metric_names, values["metrics"].tolist())),
            monitors=monitors, seconds=seconds, peak_mem_mb=peak_mem_mb,
            mem_baseline_mb=self.mem_baseline_mb, device=self.device.type, **base))

    def snapshot(self) -> StepRecord:
        """The record of the architecture now, before the next step: no losses or metrics
        yet. What a view draws before the first step."""
        self.flush()
        arch_probs = self.model.probs()
        probs = {k: v.detach().double().cpu().numpy() for k, v in arch_probs.items()}
        edge = {k: v.detach().double().cpu().numpy()
                for k, v in (getattr(arch_probs, "edge_probs", None) or {}).items()}
        c = self.config
        return self._with_collapse(StepRecord(
            step=self.step_count, epoch=self.epoch, space=self.space.name,
            variant=self.method.name, probs=probs,
            genotype=self.method.derive(self.space, self._with_edge_probs(probs, edge)), order=c.order,
            edge_probs=edge or None,
            hvp=c.hvp if c.order == 2 else None, arch_updated=False,
            lr=self.lr_at(self.epoch), arch_lr=c.arch_lr, device=self.device.type))

    def _epoch_record(self, epoch: int, steps) -> EpochRecord:
        test = self.evaluate("test")
        n = max(1, len(steps))
        losses = {k: sum(r.losses[k] for r in steps) / n for k in (steps[0].losses if steps else ())}
        metrics = {k: sum(r.metrics[k] for r in steps) / n for k in (steps[0].metrics if steps else ())}
        losses["test"] = test.pop("loss", float("nan"))
        metrics.update({f"test_{k}": v for k, v in test.items()})
        lambdas = [r.lambda_max for r in steps if r.lambda_max is not None]
        record = EpochRecord(step=self.step_count, epoch=epoch, space=self.space.name, genotype=self.genotype,
                             losses=losses, metrics=metrics, seconds=sum(r.seconds for r in steps),
                             variant=self.method.name, lambda_max=lambdas[-1] if lambdas else None)
        self._early_stop_check(record)
        self.method.on_epoch_end(self, epoch)
        return record

    def _autocast(self):
        """Autocast for forward passes when precision is bf16 or fp16, else nothing (inside a
        CUDA-graph capture without the weight cast cache, which a capture must not keep)."""
        if self.config.precision in ("bf16", "fp16"):
            dtype = torch.bfloat16 if self.config.precision == "bf16" else torch.float16
            return torch.autocast(self.device.type, dtype=dtype, cache_enabled=getattr(self, "_graphs", None) is None)
        return contextlib.nullcontext()

    def _momentum_buffers(self) -> Dict[str, torch.Tensor]:
        out = {}
        for n, p in self.model.named_weight_parameters():
            buf = self.w_opt.state.get(p, {}).get("momentum_buffer")
            if buf is not None:
                out[n] = buf
        return out

    def evaluate(self, split: str = "test") -> Dict[str, float]:
        """Loss and metrics of the supernet on a whole split, in eval mode."""
        self._mixing("arch")
        return self.space.evaluate(self.model, self.data, split, self.dtype, self._autocast)

    # -- state, checkpoints, run directory --------------------------------------------
    CHECKPOINT_KIND = NOUN = "search"

    def state_dict(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "step": self.step_count,
            "model": self.model.state_dict(),
            "w_opt": self.w_opt.state_dict(),
            "a_opt": self.a_opt.state_dict(),
            "scalers": {"w": self.w_scaler.state_dict(), "a": self.a_scaler.state_dict()},
            "streams": {"train": self.train_stream.state_dict(), "val": self.val_stream.state_dict()},
            "rng": rng_state(),
            "diagnostics": self._diagnostics_state(),
            "method": self.method.state_dict(),
        }

    def _diagnostics_state(self) -> dict:
        """The fixed lambda_max batch (when drawn), the epochs' lambda_max and genotypes, and
        where DARTS-ES stopped: what an exact resume of the diagnostics needs."""
        es = self.early_stopped
        return {"monitor_batch": None if self._monitor_batch is None else list(self._monitor_batch),
                "epoch_lambdas": [[e, lam, text] for e, (lam, text) in sorted(self._epoch_lambdas.items())],
                "early_stop": None if es is None else [es.epoch, es.selected_epoch, es.lambda_now,
                                                       es.lambda_before, es.ratio, es.smooth]}

    def _load_diagnostics(self, state: Optional[dict]) -> None:
        """Restore `_diagnostics_state()`; a checkpoint from before it holds none."""
        state = state or {}
        batch = state.get("monitor_batch")
        self._monitor_batch = None if batch is None else tuple(t.to(self.device) for t in batch)
        self._epoch_lambdas = {int(e): (float(lam), text) for e, lam, text in state.get("epoch_lambdas", [])}
        es = state.get("early_stop")
        self.early_stopped = None if es is None else EarlyStop(
            int(es[0]), int(es[1]), float(es[2]), float(es[3]), float(es[4]),
            self.space.parse_genotype(self._epoch_lambdas[int(es[1])][1]), int(es[5]) if len(es) > 5 else 1)

    def _load_state(self, state: dict) -> None:
        self.method.load_state_dict(self, state.get("method") or {})   # P-DARTS: its stage's supernet
        self.model.load_state_dict(state["model"])
        self.w_opt.load_state_dict(state["w_opt"])
        self.a_opt.load_state_dict(state["a_opt"])
        scalers = state.get("scalers") or {}
        if self.w_scaler.is_enabled() and scalers.get("w"):
            self.w_scaler.load_state_dict(scalers["w"])
            self.a_scaler.load_state_dict(scalers["a"])
        self.train_stream.load_state_dict(state["streams"]["train"])
        self.val_stream.load_state_dict(state["streams"]["val"])
        self._load_diagnostics(state.get("diagnostics"))

    @classmethod
    def resume(cls, path, callbacks: tuple = (), data: Optional[DataSplits] = None,
               **overrides) -> "Search":
        """Continue a search from a run directory (or a checkpoint file inside one)."""
        path = Path(path)
        run_dir = RunDir(path if path.is_dir() else path.parent)
        state = load_checkpoint(path, map_location="cpu", kind="search")
        history = cls._saved_history(run_dir)     # checked before anything is written
        fixed = [k for k in ("space", "variant") if k in overrides and overrides[k] != state["config"].get(k, overrides[k])]
        if fixed:
            raise RunDirError(f"a resumed search keeps its {' and '.join(fixed)}: {path} searched "
                              + ", ".join(f"{k} {state['config'][k]!r}" for k in fixed))
        try:
            config = SearchConfig.from_dict({**state["config"], **overrides})
        except (KeyError, TypeError) as e:
            raise RunDirError(f"checkpoint {path} holds no usable config: {e}") from None
        search = cls(config, out=run_dir.path, callbacks=callbacks, data=data)
        search.load_state_dict(state)
        search._restore_history(history)
        return search
