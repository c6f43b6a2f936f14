"""SearchSpace: what a space must provide (see the package's docstring for the list)."""
from __future__ import annotations

import contextlib
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

Edge = Tuple[int, int]                     # (src, dst), the space's input nodes first


class SearchSpace:
    """Base class: a space overrides what differs; the defaults suit image classification."""

    name: str = ""
    cell_types: Tuple[str, ...] = ()
    ops: Tuple[str, ...] = ()              # candidate ops: the columns of every alpha
    zero_op: Optional[str] = None          # the op derivation never keeps ("none")
    skip_op: Optional[str] = None          # the identity op whose spread marks collapse
    parameter_free: Tuple[str, ...] = ()   # ops without weights
    metric: str = "acc"                    # the quality number of a batch: acc | ppl
    higher_is_better: bool = True          # for `metric`
    clip_unrolled: bool = False            # second order: clip the virtual step's gradient to grad_clip
    default_dataset: str = ""                # what SearchConfig(space=NAME) searches when no dataset is named
    unused_search_flags: Dict[str, str] = {}   # `dartsviz search` flags (dest name -> why) that mean nothing here
    unused_train_flags: Dict[str, str] = {}    # the same for `dartsviz train`; both refused in one line
    paper_genotypes: Dict[str, Any] = {}
    genotype_class = None                  # its genotype type: `from_text`, `from_dict` (or override the readers)
    trainer_class = None                   # the space's SpaceTrainer (or override `trainer()`)
    capture_refusal: Optional[str] = None  # why its step cannot be a CUDA graph (None: it can)
    search_fields: Dict[str, Any] = {}     # its own search settings, name -> default (SearchConfig.space_options)

    def __repr__(self):
        return f"<search space {self.name!r}>"

    # -- config and data ------------------------------------------------------------
    def check_config(self, config) -> None:
        """Raise ValueError for settings this space cannot use (e.g. an unknown data set)."""

    def check_search_options(self, options) -> Dict[str, Any]:
        """`options` (SearchConfig.space_options) over `search_fields`: a one-line ValueError for
        an unknown name or (`check_search_values`) a bad value."""
        if not isinstance(options, dict):
            raise ValueError(f"space_options must be a dict, got {options!r}")
        unknown = [k for k in options if k not in self.search_fields]
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(map(repr, unknown))} for the {self.name} space; "
                             f"known options: {', '.join(self.search_fields) or 'none'}")
        options = {**self.search_fields, **options}
        self.check_search_values(options)
        return options

    def check_search_values(self, options: Dict[str, Any]) -> None:
        """Raise a one-line ValueError for a bad value of `search_fields` (a space overrides this)."""

    def options(self, config) -> Dict[str, Any]:
        """The space's own search settings of `config`: its space_options over `search_fields`."""
        return self.check_search_options(getattr(config, "space_options", None) or {})

    def load_data(self, config, device):
        raise NotImplementedError(f"space {self.name!r} loads no data; pass data= to Search")

    def streams(self, data, config, dtype):
        """(weight-half stream, architecture-half stream): endless, with len() batches per
        pass and state_dict()/load_state_dict() for exact resume."""
        from ..data import BatchStream
        return (BatchStream(data, "train", config.batch_size, config.seed + 1, dtype),
                BatchStream(data, "val", config.batch_size, config.seed + 2, dtype, augment=False))

    # -- the supernet -------------------------------------------------------------------
    def build(self, config, data) -> torch.nn.Module:
        raise NotImplementedError

    def metrics(self, output, batch) -> Dict[str, torch.Tensor]:
        """Quality numbers of one batch as 0-dim tensors (no host sync): accuracy here."""
        return {"acc": (output.argmax(-1) == batch[1]).float().mean()}

    @torch.no_grad()
    def evaluate(self, model, data, split: str, dtype, autocast=contextlib.nullcontext) -> Dict[str, float]:
        """Loss and metrics of `model` on a whole split in eval mode, batch-size weighted,
        one host sync: {"loss": ..., METRIC: ...}."""
        from ..data import iterate
        model.eval()
        sums, total = [], 0
        for x, y in iterate(data, split, 256, dtype):
            with autocast():
                loss, out = model.loss((x, y))
            m = self.metrics(out.to(dtype) if out.is_floating_point() else out, (x, y))
            sums.append(torch.stack([loss.to(torch.float64)] + [v.to(torch.float64) for v in m.values()]) * len(y))
            names = ["loss", *m]
            total += len(y)
        model.train()
        if not sums:
            return {}
        return dict(zip(names, (torch.stack(sums).sum(0) / total).tolist()))

    # -- the architecture ---------------------------------------------------------------
    def derive(self, probs: Dict[str, Any]):
        raise NotImplementedError

    def parse_genotype(self, text: str):
        """A genotype from its text (one-line ValueError when it does not parse); by default
        `genotype_class.from_text`."""
        return self._genotype_type().from_text(text)

    def genotype_from_dict(self, d: dict):
        """A genotype from its JSON form; by default `genotype_class.from_dict`."""
        return self._genotype_type().from_dict(d)

    def _genotype_type(self):
        if self.genotype_class is None:
            raise NotImplementedError(f"the {self.name} space reads no genotypes (set genotype_class)")
        return self.genotype_class

    def random_genotype(self, seed=None):
        raise NotImplementedError

    def holds_genotype(self, obj) -> bool:
        """Whether `obj` is a genotype object of this space (its `genotype_class`, else the type of
        its paper cells)."""
        kinds = ((self.genotype_class,) if self.genotype_class is not None
                 else tuple({type(g) for g in self.paper_genotypes.values()}))
        return bool(kinds) and isinstance(obj, kinds)

    def trainer(self):
        """The `spaces.trainer.SpaceTrainer` subclass that trains a genotype of this space from
        scratch (driven by `dartsviz.train.Train`); its `config_class` holds the space's fields.
        By default `trainer_class`."""
        if self.trainer_class is None:
            raise NotImplementedError(f"the {self.name} space has no training from scratch")
        return self.trainer_class

    def truth_of(self, genotype) -> Optional[Dict[str, float]]:
        """The cell's true numbers where the space knows them (nb201: a table of every cell's
        accuracy); None by default."""
        return None

    def record_numbers(self, genotype) -> Dict[str, float]:
        """Numbers a step record carries about its derived cell (in `monitors`), e.g. a space
        with ground truth its true accuracy; none by default. Cheap: called every step."""
        return {}

    def genotype_notes(self, genotype, dataset: str) -> List[str]:
        """Lines the command line prints about a derived or trained cell (nb201: its true
        accuracy and rank); none by default."""
        return []

    def lr_scale(self, batch, config) -> float:
        """The factor on the weights' learning rate for this training batch (1: none)."""
        return 1.0

    # -- drawing ------------------------------------------------------------------------
    def edges(self, cell_type: str, n_edges: int) -> List[Edge]:
        """The candidate edges of a cell in alpha-row order."""
        raise NotImplementedError

    def node_labels(self, cell_type: str, n_nodes: int) -> List[str]:
        """Plain-text labels of the cell's nodes, input nodes first (n_nodes counts them all)."""
        return [str(i) for i in range(n_nodes)]

    def output_label(self, cell_type: str) -> str:
        return "out"

    def input_feeds(self, cell_type: str) -> List[Tuple[str, int]]:
        """Outside inputs drawn feeding an input node, as (label, input node): e.g. x_t and
        h_{t-1} into the recurrent cell's s0. None by default (the input nodes are the inputs)."""
        return []

    def output_combine(self, cell_type: str) -> Optional[str]:
        """How the output combines its nodes, written beside it ("mean"); None draws nothing
        (the default: a concatenation, as the output's label says)."""
        return None

    def kept_edges(self, genotype, cell_type: str) -> List[Tuple[int, int, str]]:
        """The edges a genotype keeps in one cell, as (src, dst, op)."""
        return genotype.edges(cell_type)

    def concat(self, genotype, cell_type: str) -> Sequence[int]:
        """The nodes whose outputs make the cell's output."""
        return genotype.concat(cell_type)

    @property
    def op_colours(self) -> Dict[str, str]:
        """One colour per op, fixed for the space (the figures' legend); parameter-free ops
        in warm colours and greys, the others in cool ones, unless a space says otherwise."""
        warm, cool = iter(_WARM), iter(_COOL)
        return {op: "#b0b0b0" if op == self.zero_op else
                next(warm, "#444444") if op in self.parameter_free else next(cool, "#444444")
                for op in self.ops}

    @property
    def op_short(self) -> Dict[str, str]:
        """A short label per op for crowded figures."""
        return {op: op for op in self.ops}

    def cell_title(self, cell_type: str) -> str:
        return f"{cell_type} cell"

    def kept_mask(self, genotype, cell_type: str, n_edges: int) -> np.ndarray:
        """Boolean (edges, ops): True where the genotype keeps that op on that edge."""
        row = {e: i for i, e in enumerate(self.edges(cell_type, n_edges))}
        mask = np.zeros((n_edges, len(self.ops)), dtype=bool)             # (E, O)
        for src, dst, op in self.kept_edges(genotype, cell_type):
            mask[row[(src, dst)], self.ops.index(op)] = True
        return mask


_WARM = ("#d62728", "#e6a100", "#f2d24b", "#8c564b", "#ff9896")
_COOL = ("#1f77b4", "#17becf", "#2ca02c", "#9467bd", "#7f7f7f", "#bcbd22", "#aec7e8", "#98df8a")
