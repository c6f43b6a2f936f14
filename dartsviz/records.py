"""StepRecord and EpochRecord: the one contract between a search and every view.

A search emits one `StepRecord` per bilevel step and one `EpochRecord` per epoch;
views draw only the records they are pushed. Records are typed dataclasses inside the
process (the genotype is the space's genotype object, the softmax weights are arrays)
and JSON lines on disk (the genotype as its text). Files written before the schema
existed (flat `train_loss`, `val_acc`, ... keys) still load.

Collapse diagnostics: every step record carries `param_free_ops`, `max_none` and
`max_skip` (the derived normal cell); monitored steps add `lambda_max`, `lambda_iters`
and `lambda_seconds`; an epoch record carries its last `lambda_max` and, where DARTS-ES
stopped the search, `early_stop_epoch`. Records from files written before these fields
existed load with them None.

Names: `losses` by split (`train`, `val`, `test`), `metrics` by `SPLIT_NAME`
(`val_acc` for images, `val_ppl` for text), `probs` by cell type, each (edges, ops), and
under PC-DARTS' edge normalisation `edge_probs` by cell type, each (edges,) (else None).
For brevity a record also reads like the flat dict of earlier versions:
`record["val_loss"]`, `record["val_acc"]`, `record["probs"][cell_type]`.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Dict, Iterator, Optional, Tuple

import numpy as np

LEGACY_SPACE = "cnn"                # schema-1 files knew only the convolutional space
SCHEMA = 2                          # 1: the flat dicts before this module; 2: these records
PROB_DIGITS = 6                     # softmax weights are kept to 6 digits (display only)

Parser = Callable[[str, str], Any]  # (space name, genotype text) -> genotype object
TextReader = Callable[[str], Any]   # a space's genotype text -> genotype object
DictReader = Callable[[dict], Any]  # a space's genotype JSON dict -> genotype object


def _rounded(probs) -> Dict[str, np.ndarray]:
    """Cell type -> float64 array (edges, ops), rounded to PROB_DIGITS."""
    return {k: np.round(np.asarray(v, dtype=np.float64), PROB_DIGITS) for k, v in probs.items()}


# space name -> (genotype from its text, genotype from its JSON dict); `spaces.register_space`
# fills it, so that records and run directories read a space's genotypes without importing spaces
_GENOTYPE_READERS: Dict[str, Tuple[TextReader, DictReader]] = {}
_READER_SOURCES: list = []        # callables that register readers when asked (the built-in spaces, lazily)


def register_genotype_reader(space: str, parse_text: TextReader, from_dict: DictReader) -> None:
    """How genotypes of `space` are read (called by `dartsviz.spaces.register_space`)."""
    _GENOTYPE_READERS[space] = (parse_text, from_dict)


def register_reader_source(load: Callable[[], None]) -> None:
    """`load()` registers readers (`dartsviz.spaces` hands down its lazy loading of the built-in
    spaces); called when a space's reader is first missing."""
    _READER_SOURCES.append(load)


def genotype_reader(space: str) -> Tuple[TextReader, DictReader]:
    """(parse text, from a JSON dict) for genotypes of `space`; an unknown space raises ValueError."""
    if space not in _GENOTYPE_READERS:
        for load in _READER_SOURCES:
            load()
    if space not in _GENOTYPE_READERS:
        raise ValueError(f"unknown search space {space!r}; known spaces: {', '.join(sorted(_GENOTYPE_READERS))}")
    return _GENOTYPE_READERS[space]


def _default_parser(space: str, text: str):
    return genotype_reader(space)[0](text)


class _Record:
    """What both record types share: flat read access, JSON lines, equality by value."""

    kind: ClassVar[str] = ""
    run: ClassVar[str] = "search"               # what emitted it: "search" or "train"
    _PLAIN: ClassVar[tuple] = ()                # fields written to JSON as they are

    # -- the flat view: record["val_loss"], record["val_acc"], record["kind"] ---------
    def flat(self) -> Dict[str, Any]:
        out = {"kind": self.kind}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "losses":
                out.update({f"{k}_loss": x for k, x in v.items()})
            elif f.name in ("metrics", "monitors", "extras"):
                out.update(v)
            else:
                out[f.name] = v
        return out

    def __getitem__(self, key: str):
        if key == "kind":
            return self.kind
        if key in self.__dataclass_fields__:
            return getattr(self, key)
        if key.endswith("_loss") and key[:-5] in self.losses:
            return self.losses[key[:-5]]
        for extra in ("metrics", "monitors", "extras"):
            d = getattr(self, extra, {})
            if key in d:
                return d[key]
        raise KeyError(key)

    def get(self, key: str, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: str) -> bool:
        return self.get(key, _MISSING) is not _MISSING

    def keys(self):
        return self.flat().keys()

    def items(self):
        return self.flat().items()

    def __iter__(self) -> Iterator[str]:
        return iter(self.flat())

    # -- JSON ----------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict: arrays as nested lists, the genotype as its text."""
        d = {"schema": SCHEMA, "kind": self.kind}
        if self.run != "search":
            d["run"] = self.run
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name in ("probs", "edge_probs") and v is not None:
                v = {k: a.tolist() for k, a in v.items()}
            elif f.name == "genotype":
                v = None if v is None else v.to_text()
            elif isinstance(v, dict):
                v = dict(v)
            d[f.name] = v
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    def __repr__(self) -> str:
        """One line: the softmax weights by shape, numbers to 4 digits, the genotype as text."""
        def show(name, v):
            if name == "probs":
                return "{" + ", ".join(f"{k!r}: <{a.shape[0]}x{a.shape[1]}>" for k, a in v.items()) + "}"
            if name == "edge_probs" and v is not None:
                return "{" + ", ".join(f"{k!r}: <{a.shape[0]}>" for k, a in v.items()) + "}"
            if isinstance(v, dict):
                return "{" + ", ".join(f"{k!r}: {x:.4g}" if isinstance(x, float) else f"{k!r}: {x!r}"
                                       for k, x in v.items()) + "}"
            if name == "genotype" and v is not None:
                return v.to_text()
            return f"{v:.4g}" if isinstance(v, float) else repr(v)
        return f"{type(self).__name__}(" + ", ".join(
            f"{f.name}={show(f.name, getattr(self, f.name))}" for f in dataclasses.fields(self)) + ")"

    _repr_pretty_ = lambda self, p, cycle: p.text(repr(self))   # IPython's display

    def __eq__(self, other) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return _same(self.to_dict(), other.to_dict())


_MISSING = object()


def _same(a, b) -> bool:
    """Equality of JSON-like values where NaN equals NaN (a record with no loss yet)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@dataclass(eq=False, repr=False)
class StepRecord(_Record):
    """One bilevel step: where the search is, how well it does, and the architecture now."""

    kind: ClassVar[str] = "step"

    step: int                                  # steps done, this one included (0: the snapshot)
    epoch: int
    space: str                                 # the search space's name, e.g. "cnn"
    probs: Dict[str, np.ndarray]               # cell type -> softmax weights (edges, ops)
    genotype: Any                              # the space's genotype derived from `probs`
    losses: Dict[str, float] = field(default_factory=dict)    # split -> loss ("train", "val")
    metrics: Dict[str, float] = field(default_factory=dict)   # e.g. "train_acc", "val_acc"
    order: int = 1
    hvp: Optional[str] = None
    variant: str = "darts"
    arch_updated: bool = True
    lr: float = 0.0
    arch_lr: float = 0.0
    seconds: float = 0.0
    peak_mem_mb: float = 0.0
    device: str = "cpu"
    monitors: Dict[str, float] = field(default_factory=dict)  # extra numbers a method adds
    mem_baseline_mb: float = 0.0               # CPU: the process's RSS before the search was built
    # collapse diagnostics (dartsviz.diagnostics); None in files written before them
    param_free_ops: Optional[int] = None       # parameter-free ops kept in the derived normal cell (rnn: identity)
    max_none: Optional[float] = None           # largest `none` weight over the normal cell's edges
    max_skip: Optional[float] = None           # largest skip weight (skip_connect, rnn: identity) there
    lambda_max: Optional[float] = None         # Hessian's dominant eigenvalue in alpha; on monitored steps only
    lambda_iters: Optional[int] = None         # its Hessian-vector products
    lambda_seconds: Optional[float] = None     # its seconds (not in `seconds`)
    edge_probs: Optional[Dict[str, np.ndarray]] = None   # PC-DARTS: cell type -> softmax(beta) (edges,)

    def __post_init__(self):
        self.probs = _rounded(self.probs)
        if self.edge_probs is not None:
            self.edge_probs = _rounded(self.edge_probs)

    @classmethod
    def from_dict(cls, d: dict, parse: Parser = _default_parser) -> "StepRecord":
        """From `to_dict()` output or a step line of a schema-1 history file."""
        d = _upgrade(d)
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["genotype"] = parse(kw["space"], kw["genotype"]) if isinstance(kw.get("genotype"), str) else kw.get("genotype")
        return cls(**kw)


@dataclass(eq=False, repr=False)
class EpochRecord(_Record):
    """One epoch: step means of the losses and metrics, and the held-out test split."""

    kind: ClassVar[str] = "epoch"

    step: int
    epoch: int
    space: str
    genotype: Any = None
    losses: Dict[str, float] = field(default_factory=dict)    # "train", "val", "test"
    metrics: Dict[str, float] = field(default_factory=dict)   # "train_acc", "val_acc", "test_acc"
    seconds: float = 0.0
    variant: str = "darts"
    lambda_max: Optional[float] = None         # the epoch's last lambda_max (None: not measured)
    early_stop_epoch: Optional[int] = None     # DARTS-ES stopped here: the epoch whose genotype the search returns

    @classmethod
    def from_dict(cls, d: dict, parse: Parser = _default_parser) -> "EpochRecord":
        d = _upgrade(d)
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if isinstance(kw.get("genotype"), str):
            kw["genotype"] = parse(kw["space"], kw["genotype"])
        return cls(**kw)


# the flat keys of schema 1, by where they go now
_V1_SKIP = {"kind", "schema", "probs", "genotype", "step", "epoch", "order", "hvp", "arch_updated",
            "lr", "arch_lr", "seconds", "peak_mem_mb", "device", "space", "variant", "mem_baseline_mb"}


def _upgrade(d: dict) -> dict:
    """A schema-1 record (flat keys) in schema-2 form; schema-2 records pass through."""
    if "schema" in d or "losses" in d:
        return d
    out = {k: v for k, v in d.items() if k in _V1_SKIP}
    out.setdefault("space", LEGACY_SPACE)
    out["losses"] = {k[:-5]: v for k, v in d.items() if k.endswith("_loss") and isinstance(v, (int, float))}
    out["metrics"] = {k: v for k, v in d.items()
                      if k not in _V1_SKIP and not k.endswith("_loss") and isinstance(v, (int, float))}
    return out


@dataclass(eq=False, repr=False)
class TrainStepRecord(_Record):
    """One SGD step of a training from scratch: losses and metrics of the training batch."""

    kind: ClassVar[str] = "step"
    run: ClassVar[str] = "train"

    step: int
    epoch: int
    space: str
    genotype: Any = None                       # the genotype being trained
    losses: Dict[str, float] = field(default_factory=dict)    # "train"
    metrics: Dict[str, float] = field(default_factory=dict)   # "train_acc" | "train_ppl"
    lr: float = 0.0
    seconds: float = 0.0
    peak_mem_mb: float = 0.0
    device: str = "cpu"
    extras: Dict[str, Any] = field(default_factory=dict)     # the space's trainer's own: drop_path_prob, seq_len, ...

    @classmethod
    def from_dict(cls, d: dict, parse: Parser = _default_parser, space: str = LEGACY_SPACE) -> "TrainStepRecord":
        return _train_record(cls, d, parse, space)


@dataclass(eq=False, repr=False)
class TrainEpochRecord(_Record):
    """One epoch of a training from scratch: step means, and the held-out splits."""

    kind: ClassVar[str] = "epoch"
    run: ClassVar[str] = "train"

    step: int
    epoch: int
    space: str
    genotype: Any = None
    losses: Dict[str, float] = field(default_factory=dict)    # "train", "val", "test"
    metrics: Dict[str, float] = field(default_factory=dict)   # "train_acc", "test_acc" | "val_ppl", ...
    lr: float = 0.0                            # the epoch's learning rate (its last step's)
    seconds: float = 0.0
    peak_mem_mb: float = 0.0
    extras: Dict[str, Any] = field(default_factory=dict)     # params, macs; optimizer, switched_to_asgd, ...

    @classmethod
    def from_dict(cls, d: dict, parse: Parser = _default_parser, space: str = LEGACY_SPACE) -> "TrainEpochRecord":
        return _train_record(cls, d, parse, space)


_SPLITS = ("train", "val", "test")


def _train_record(cls, d: dict, parse: Parser, space: str):
    """A training record from `to_dict()` output, or from a flat dict of the files written
    before training records were typed (`space` names the run's space: they did not)."""
    names = {f.name for f in dataclasses.fields(cls)}
    if "schema" not in d:                      # flat: train_loss, test_acc, drop_path_prob, ...
        kw = {"space": d.get("space", space), "losses": {}, "metrics": {}, "extras": {}}
        for k, v in d.items():
            split, _, name = k.partition("_")
            if k in names and k not in ("losses", "metrics", "extras", "genotype"):
                kw[k] = v
            elif split in _SPLITS and name == "loss":
                kw["losses"][split] = v
            elif split in _SPLITS and name and isinstance(v, (int, float)) and not isinstance(v, bool):
                kw["metrics"][k] = v
            elif k not in ("kind", "run", "genotype"):
                kw["extras"][k] = v
        d = {**kw, "genotype": d.get("genotype")}
    kw = {k: v for k, v in d.items() if k in names}
    if isinstance(kw.get("genotype"), str):
        kw["genotype"] = parse(kw["space"], kw["genotype"])
    return cls(**kw)


METRIC_TITLES = {"acc": "accuracy", "ppl": "perplexity"}


def metric_title(metric: Optional[str]) -> str:
    """A metric's name in words ("acc" -> "accuracy"), for every table and figure."""
    return METRIC_TITLES.get(metric, metric or "metric")


def numbers_by_split(r) -> Dict[str, Dict[str, float]]:
    """A record's losses and metrics by split, losses first: {"train": {"loss": .., "acc": ..}, ...}."""
    out: Dict[str, Dict[str, float]] = {}
    for split, v in r.losses.items():
        out.setdefault(split, {})["loss"] = v
    for key, v in r.metrics.items():
        split, _, name = key.partition("_")
        if split in _SPLITS and name:
            out.setdefault(split, {})[name] = v
    return out


def record_from_dict(d: dict, parse: Parser = _default_parser, space: str = LEGACY_SPACE):
    """The typed record of a JSON dict, whichever loop wrote it: StepRecord, EpochRecord,
    TrainStepRecord or TrainEpochRecord. Lines of older files load too: a search's flat
    schema-1 records, and a training's flat records (whose space is `space`)."""
    kind = d.get("kind")
    if kind not in ("step", "epoch"):
        raise ValueError(f"a record's kind is 'step' or 'epoch', got {kind!r}")
    training = d.get("run") == "train" or ("schema" not in d and (
        (kind == "step" and "probs" not in d) or (kind == "epoch" and "genotype" not in d)))
    if training:
        return (TrainStepRecord if kind == "step" else TrainEpochRecord).from_dict(d, parse, space)
    return (StepRecord if kind == "step" else EpochRecord).from_dict(d, parse)


def record_to_dict(r) -> dict:
    return r.to_dict() if isinstance(r, _Record) else r
