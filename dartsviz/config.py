"""What the dataclass configs (SearchConfig, TrainConfig) share: named presets, dict
round trips, and the checks their `validate` methods are built from."""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Dict, Iterable, Optional, Sequence

import torch

DTYPES = {"float32": torch.float32, "float64": torch.float64}


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
        """The named preset with some fields replaced; unknown names and fields raise ValueError."""
        presets = cls.PRESETS or {}
        if name not in presets:
            raise ValueError(f"unknown preset {name!r}; choose from {', '.join(presets)}")
        fields = {f.name for f in dataclasses.fields(cls)}
        bad = [k for k in overrides if k not in fields]
        if bad:
            raise ValueError(f"unknown {cls.__name__} field(s): {', '.join(bad)}")
        return cls(**{**presets[name], **overrides})

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
            v = getattr(self, name)
            if (integer and (isinstance(v, bool) or not isinstance(v, int))) or not v > 0:
                raise ValueError(f"{name} must be a positive {'integer' if integer else 'number'}, got {v!r}")

    def _check_choice(self, name: str, choices: Iterable) -> None:
        choices = tuple(choices)
        if getattr(self, name) not in choices:
            raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}, got {getattr(self, name)!r}")

    def _check_common(self) -> None:
        """Fields both configs have: dtype, even channels, steps_per_epoch."""
        self._check_choice("dtype", DTYPES)
        if self.channels % 2:
            raise ValueError(f"channels must be even (FactorizedReduce halves them), got {self.channels}")
        if self.steps_per_epoch is not None and self.steps_per_epoch <= 0:
            raise ValueError("steps_per_epoch must be positive or None")
