"""What the dataclass configs (SearchConfig, TrainConfig) share: named presets, dict
round trips, and the checks their `validate` methods are built from."""
from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Dict, Iterable, Optional, Sequence

import torch

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclasses.dataclass
class WeightOptimFields:
    """The weights' optimisation, shared by a search and a training from scratch: SGD with
    momentum and weight decay, a cosine learning rate per epoch, gradient clipping."""

    batch_size: int = 64
    epochs: int = 50
    lr: float = 0.025
    lr_min: float = 0.001             # the cosine schedule's floor
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0            # max gradient norm


@dataclasses.dataclass
class RunFields:
    """The run settings of a training config, whatever its space."""

    steps_per_epoch: Optional[int] = None   # None: one pass over the training data
    seed: int = 0
    device: str = "auto"              # auto | cpu | cuda | cuda:N
    dtype: str = "float32"            # float32 | float64 (tests)
    sync_every: int = 1               # steps whose records are read from the device together


class ConfigBase:
    """Mixin for a config dataclass: set PRESETS after the class; TUPLE_FIELDS are tuples
    in the config and lists in JSON."""

    PRESETS: ClassVar[Optional[Dict[str, dict]]] = None
    TUPLE_FIELDS: ClassVar[Sequence[str]] = ()

    def __post_init__(self):
        for n in self.TUPLE_FIELDS:
            setattr(self, n, tuple(getattr(self, n)))
        self.validate()

    def validate(self):
        return self

    @classmethod
    def preset(cls, name: str, **overrides):
        """The named preset with some fields replaced; unknown names and fields raise ValueError.
        With `space=S` given, the preset `NAME_S` is taken where one exists ("tiny" with
        space="rnn" is "tiny_rnn"). Between the preset and `overrides` come the adjustments
        `_preset_layer` adds (a variant's own, for SearchConfig); dict fields merge key by key."""
        presets = cls.PRESETS or {}
        space = overrides.get("space")
        if space and f"{name}_{space}" in presets:
            name = f"{name}_{space}"
        if name not in presets:
            raise ValueError(f"unknown preset {name!r}; choose from {', '.join(presets)}")
        fields = {f.name for f in dataclasses.fields(cls)}
        overrides = cls._route_fields(overrides, presets[name])
        bad = [k for k in overrides if k not in fields]
        if bad:
            raise ValueError(f"unknown {cls.__name__} field(s): {', '.join(bad)}")
        merged: dict = {}
        for layer in (presets[name], cls._preset_layer(name, {**presets[name], **overrides}), overrides):
            for k, v in layer.items():
                both_dicts = isinstance(v, dict) and isinstance(merged.get(k), dict)
                merged[k] = {**merged[k], **v} if both_dicts else dict(v) if isinstance(v, dict) else v
        return cls(**merged)

    @classmethod
    def _preset_layer(cls, name: str, fields: dict) -> dict:
        """Overrides of preset `name` that depend on the chosen `fields` (none here)."""
        return {}

    @classmethod
    def _route_fields(cls, values: dict, base: Optional[dict] = None, strict: bool = True) -> dict:
        """`values` with names that are not fields of their own moved where they belong
        (SearchConfig: into space_options); unchanged here."""
        return values

    @classmethod
    def from_dict(cls, d: dict):
        """From `to_dict()` output; keys this version does not know are ignored."""
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for n in self.TUPLE_FIELDS:
            d[n] = list(d[n])
        return d

    # -- checks for validate() -----------------------------------------------------
    def _check_positive(self, names: Iterable[str], integer: bool = True) -> None:
        for name in names:
            check_positive(name, getattr(self, name), integer)

    def _check_choice(self, name: str, choices: Iterable) -> None:
        choices = tuple(choices)
        if getattr(self, name) not in choices:
            raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}, got {getattr(self, name)!r}")

    def _check_finite(self) -> None:
        """Every float field (and every float inside a tuple field) is a finite number."""
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            for x in (v if isinstance(v, tuple) else (v,)):
                if isinstance(x, float) and not math.isfinite(x):
                    raise ValueError(f"{f.name} must be a finite number, got {v!r}")

    def _check_range(self, name: str, low: float, high: float = math.inf,
                     low_open: bool = False, high_open: bool = True) -> None:
        """low <= value <= high, with open ends where asked; bools and strings are refused."""
        check_range(name, getattr(self, name), low, high, low_open, high_open)

    def _check_common(self) -> None:
        """Fields both configs have: finite floats, learning rates and their floor, momentum,
        weight decay, dtype, steps_per_epoch."""
        self._check_finite()
        self._check_range("lr_min", 0.0)
        if self.lr_min > self.lr:
            raise ValueError(f"lr_min must not exceed lr, got lr_min={self.lr_min} > lr={self.lr}")
        self._check_range("momentum", 0.0, 1.0)
        self._check_range("weight_decay", 0.0)
        self._check_choice("dtype", DTYPES)
        if self.steps_per_epoch is not None and self.steps_per_epoch <= 0:
            raise ValueError("steps_per_epoch must be positive or None")


def check_positive(name: str, v, integer: bool = True) -> None:
    """`v` (the setting `name`) is a positive integer (or number); a one-line ValueError if not."""
    if (integer and (isinstance(v, bool) or not isinstance(v, int))) or not v > 0:
        raise ValueError(f"{name} must be a positive {'integer' if integer else 'number'}, got {v!r}")


def check_range(name: str, v, low: float, high: float = math.inf,
                low_open: bool = False, high_open: bool = True) -> None:
    """low <= v <= high, with open ends where asked; bools and strings are refused (one line)."""
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ok = ok and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
    if not ok:
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueError(f"{name} must be in {lo}{low}, {high}{hi}, got {v!r}")


def check_bool(name: str, v) -> None:
    if not isinstance(v, bool):
        raise ValueError(f"{name} must be True or False, got {v!r}")


def make_sgd(params, config) -> torch.optim.SGD:
    """SGD with the config's lr, momentum and weight decay (the weights of a search and of a
    training from scratch); foreach updates."""
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                           weight_decay=config.weight_decay, foreach=True)
