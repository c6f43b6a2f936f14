"""The search-space seam: what differs between DARTS' spaces, and the registry by name.

A `SearchSpace` says everything the search loop, the records and the views need to
know about one space, so none of them names a cell type, an op or a loss:

- settings: `search_fields` (its own, name -> default; `SearchConfig.space_options`, read
  with `options(config)`, checked by `check_search_values`) and `check_config(config)`;
- data: `load_data(config, device)` and `streams(data, config, dtype)` (two endless
  batch streams: the weight half and the architecture half);
- the supernet: `build(config, data, **options)` (the method's `build_options()`) returns
  a module with `weight_parameters()` / `weights()`, `arch_parameters()` / `alphas()`,
  `named_weight_parameters()`, `probs()` (cell type -> softmax weights (edges, ops)),
  `loss(batch) -> (loss, output)` (carrying a hidden state where the space has one) and
  `frozen_bn_stats()` (a context in which BatchNorm leaves its running statistics alone);
- numbers: `metrics(output, batch)` (e.g. accuracy) and `evaluate(model, data, split)`;
- the architecture: `cell_types`, `ops`, `zero_op` (never kept), `derive(probs)`,
  `parse_genotype(text)`, `genotype_from_dict(d)`, `paper_genotypes`, `random_genotype(seed)`;
- drawing: `edges(cell_type, n_edges)` (alpha-row order), `node_labels(cell_type, n_nodes)`,
  `output_label`, `input_feeds` (outside inputs feeding an input node), `output_combine`,
  `kept_edges(genotype, cell_type)`, `concat`, `op_colours`, `op_short`, `cell_title`.

Register a space with `register_space(MySpace())`; `get_space(name)` finds it.
"""
from __future__ import annotations

from typing import Dict, List

from ..records import register_genotype_reader, register_reader_source
from .base import Edge, SearchSpace  # noqa: F401  (public names)

_REGISTRY: Dict[str, SearchSpace] = {}


def register_space(space: SearchSpace) -> SearchSpace:
    """Make `space` known by its name (a later registration under the same name replaces it),
    and hand its genotype readers down to the records and run directories."""
    if not space.name:
        raise ValueError("a search space needs a name")
    _REGISTRY[space.name] = space
    register_genotype_reader(space.name, space.parse_genotype, space.genotype_from_dict)
    return space


def get_space(name) -> SearchSpace:
    """The registered space called `name` (a SearchSpace passes through)."""
    if isinstance(name, SearchSpace):
        return name
    _load_builtin()
    if name not in _REGISTRY:
        raise ValueError(f"unknown search space {name!r}; known spaces: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def space_names() -> List[str]:
    _load_builtin()
    return sorted(_REGISTRY)


_BUILTIN_LOADED = False
BUILTIN = ("cnn", "rnn", "nb201")          # the spaces every process knows without a registration of its own


def is_builtin(name) -> bool:
    """Whether a fresh process finds the space `name` (a built-in one that no registration replaced)."""
    _load_builtin()
    return name in BUILTIN and type(_REGISTRY.get(name)).__module__.startswith("dartsviz.spaces.")


def _load_builtin() -> None:
    """Register the built-in spaces, once (imported when first asked for: they pull in torch models)."""
    global _BUILTIN_LOADED
    if _BUILTIN_LOADED:
        return
    _BUILTIN_LOADED = True
    from .cnn.space import CNN
    from .nb201.space import NB201
    from .rnn.space import RNN
    for space in (CNN, RNN, NB201):
        if space.name not in _REGISTRY:       # a user's registration under the name wins
            register_space(space)


register_reader_source(_load_builtin)         # records and run directories read built-in genotypes unasked
