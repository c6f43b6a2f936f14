"""The methods: plain DARTS (`darts.Method`, every hook at its default) and its successors,
one idea per module, and the registry by name. See `dartsviz.methods.darts` for the hooks.

Register a variant with `register_method(MyMethod())`; `SearchConfig.variant` names it.
"""
from __future__ import annotations

from typing import Dict, List

from .beta_darts import BetaDarts
from .darts import DARTS, Method
from .darts_minus import DartsMinus
from .p_darts import P_DARTS, PDarts  # noqa: F401  (public names)
from .pc_darts import PC_DARTS, PCDarts  # noqa: F401
from .sdarts_rs import SdartsRS

_REGISTRY: Dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Make `method` known by its name (a later registration under the name replaces it)."""
    _REGISTRY[method.name] = method
    return method


def get_method(name) -> Method:
    if isinstance(name, Method):
        return name
    if name not in _REGISTRY:
        known = [DARTS.name] + sorted(n for n in _REGISTRY if n != DARTS.name)
        raise ValueError(f"unknown variant {name!r}; known variants: {', '.join(known)}")
    return _REGISTRY[name]


def method_names() -> List[str]:
    return sorted(_REGISTRY)


for _method in (DARTS, BetaDarts(), DartsMinus(), P_DARTS, PC_DARTS, SdartsRS()):
    register_method(_method)
