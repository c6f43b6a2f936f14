"""Which search space a view draws: named by a record, held by a search or a run, or
found in the registry for bare softmax weights or a bare genotype.

    space = space_of(record)               # get_space(record.space)
    space = space_of(DARTS_V2)             # the one registered space whose genotypes it fits
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..spaces import SearchSpace, get_space, space_names


def space_of(obj: Any = None, space: Any = None) -> SearchSpace:
    """`space` when given (a name or a SearchSpace); else the space of `obj`: a record, a
    list of records, anything with a `.space` (a Search, a RunData), a dict of softmax
    weights by cell type, or a genotype object."""
    if space is not None:
        return get_space(space)
    named = getattr(obj, "space", None)
    if isinstance(named, (str, SearchSpace)):
        return get_space(named)
    if isinstance(obj, (list, tuple)):
        for r in obj:
            if isinstance(getattr(r, "space", None), str):
                return get_space(r.space)
        raise ValueError("no records to tell the search space from; pass space=")
    fits = [s for s in map(get_space, space_names()) if _fits(s, obj)]
    if len(fits) != 1:
        which = "no" if not fits else f"{len(fits)} ({', '.join(s.name for s in fits)})"
        raise ValueError(f"{which} registered search spaces fit {type(obj).__name__}; pass space=")
    return fits[0]


def _fits(space: SearchSpace, obj) -> bool:
    """Softmax weights: known cell types, one column per op. A genotype: every cell type's
    kept edges use the space's ops."""
    if isinstance(obj, dict):
        return bool(obj) and all(k in space.cell_types and np.shape(_host(v))[-1:] == (len(space.ops),)
                                 for k, v in obj.items())
    try:
        return all(op in space.ops for ct in space.cell_types for _, _, op in space.kept_edges(obj, ct))
    except (AttributeError, KeyError, TypeError, ValueError):
        return False


def _host(v):
    return v.detach().cpu().numpy() if hasattr(v, "detach") else v
