"""RNNGenotype: the discrete recurrent cell, the DARTS derivation rule, text and JSON forms.

The cell has one input node, s0 (the highway from x_t and h_{t-1}), and STEPS = 8
intermediate nodes 1..8. In the supernet node i has one candidate edge from every
earlier node 0..i-1, so there are 1 + 2 + ... + 8 = 36 edges, ordered node by node and
source by source: [(0,1), (0,2), (1,2), (0,3), ...]. A genotype keeps one (op,
predecessor) pair per node; the cell's output is the mean of the `concat` nodes.

Text form (the reference code's repr, parsed without eval):

    Genotype(recurrent=[('sigmoid', 0), ('relu', 1), ...], concat=range(1, 9))
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np

from ..genotype_text import parse_call

PRIMITIVES = ("none", "tanh", "relu", "sigmoid", "identity")   # the columns of alpha
ACTIVATIONS = PRIMITIVES[1:]                                    # the ops a genotype may keep
STEPS = 8                                                       # intermediate nodes of the search cell
CELL_TYPE = "recurrent"

Edge = Tuple[int, int]            # (src, dst)
Choice = Tuple[str, int]          # (op, predecessor)


def edges_of(steps: int = STEPS) -> List[Edge]:
    """Supernet edges in alpha-row order: [(0,1), (0,2), (1,2), (0,3), (1,3), (2,3), ...]."""
    return [(src, dst) for dst in range(1, steps + 1) for src in range(dst)]


def steps_for_edges(n_edges: int) -> int:
    """Inverse of len(edges_of(steps)): 36 edges -> 8 nodes."""
    steps = 0
    while len(edges_of(steps)) < n_edges:
        steps += 1
    if len(edges_of(steps)) != n_edges:
        raise ValueError(f"{n_edges} edges do not form a recurrent DARTS cell")
    return steps


def _check_cell_type(cell_type: str) -> None:
    if cell_type != CELL_TYPE:
        raise ValueError(f"the recurrent space has one cell type, 'recurrent'; got {cell_type!r}")


@dataclass(frozen=True)
class RNNGenotype:
    """One recurrent cell: node i (1-based) computes op(s_pred) from `recurrent[i-1] = (op, pred)`."""

    recurrent: Tuple[Choice, ...]
    concat: Tuple[int, ...] = tuple(range(1, STEPS + 1))

    def __post_init__(self):
        if not isinstance(self.recurrent, (list, tuple)) or not isinstance(self.concat, (list, tuple, range)):
            raise ValueError("genotype: recurrent and concat must be lists")
        cell = []
        for i, choice in enumerate(self.recurrent, 1):
            if (not isinstance(choice, (list, tuple)) or len(choice) != 2 or not isinstance(choice[0], str)
                    or isinstance(choice[1], bool) or not isinstance(choice[1], int)):
                raise ValueError(f"genotype: node {i}: expected an (op, predecessor) pair, got {choice!r}")
            op, pred = choice
            if op not in ACTIVATIONS:
                raise ValueError(f"genotype: node {i}: unknown op {op!r}; known ops: {', '.join(ACTIVATIONS)}")
            if not 0 <= pred < i:
                raise ValueError(f"genotype: node {i}: predecessor {pred} must be in 0..{i - 1}")
            cell.append((op, pred))
        if not cell:
            raise ValueError("genotype: recurrent has no nodes")
        concat = tuple(self.concat)
        for c in concat:
            if isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= len(cell):
                raise ValueError(f"genotype: concat entry {c!r} is not a node in 1..{len(cell)}")
        if not concat:
            raise ValueError("genotype: concat is empty")
        object.__setattr__(self, "recurrent", tuple(cell))
        object.__setattr__(self, "concat", concat)

    # -- views (the SearchSpace's drawing calls these with cell_type="recurrent") -----
    @property
    def steps(self) -> int:
        return len(self.recurrent)

    def edges(self, cell_type: str = CELL_TYPE) -> List[Tuple[int, int, str]]:
        """Kept edges as (src, dst, op)."""
        _check_cell_type(cell_type)
        return [(pred, i, op) for i, (op, pred) in enumerate(self.recurrent, 1)]

    def concat_of(self, cell_type: str = CELL_TYPE) -> Tuple[int, ...]:
        _check_cell_type(cell_type)
        return self.concat

    # -- text form ----------------------------------------------------------------
    def to_text(self) -> str:
        pairs = ", ".join(f"('{op}', {pred})" for op, pred in self.recurrent)
        c = self.concat
        concat = f"range({c[0]}, {c[-1] + 1})" if c == tuple(range(c[0], c[-1] + 1)) else str(list(c))
        return f"Genotype(recurrent=[{pairs}], concat={concat})"

    __str__ = to_text

    @classmethod
    def from_text(cls, text: str) -> "RNNGenotype":
        return parse_genotype(text)

    # -- JSON form ----------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"recurrent": [[op, pred] for op, pred in self.recurrent], "concat": list(self.concat)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict) -> "RNNGenotype":
        if not isinstance(d, dict):
            raise ValueError(f"genotype JSON must be an object, got {type(d).__name__}")
        missing = [k for k in ("recurrent", "concat") if k not in d]
        if missing:
            raise ValueError(f"genotype JSON lacks {', '.join(missing)}")
        rec, concat = d["recurrent"], d["concat"]
        if not isinstance(rec, list) or not isinstance(concat, list):
            raise ValueError("genotype JSON: recurrent and concat must be lists")
        return cls(tuple(tuple(c) if isinstance(c, list) else c for c in rec), tuple(concat))


# -- text parser ------------------------------------------------------------------

def parse_genotype(text: str) -> RNNGenotype:
    """Parse `Genotype(recurrent=[('sigmoid', 0), ...], concat=range(1, 9))` without
    evaluating it (`spaces.genotype_text`); a negative predecessor is refused with its range."""
    values = parse_call(text, ["recurrent", "concat"], hint="expected Genotype(recurrent=[...], concat=...)",
                        call="Genotype(recurrent=[...], concat=...)", negative=True)
    rec = values["recurrent"]
    if not isinstance(rec, list) or not all(isinstance(p, list) and len(p) == 2 for p in rec):
        raise ValueError("genotype text: recurrent must be a list of ('op', predecessor) pairs")
    if not isinstance(values["concat"], list):
        raise ValueError("genotype text: concat must be a list or range(a, b)")
    return RNNGenotype(tuple(tuple(p) for p in rec), tuple(values["concat"]))


# -- derivation -----------------------------------------------------------------------

def _to_numpy(x):
    if hasattr(x, "detach"):
        return x.detach().cpu().double().numpy()
    return x


def derive(probs, primitives: Sequence[str] = PRIMITIVES) -> RNNGenotype:
    """The DARTS rule on the softmax weights `probs` (edges, ops) of the recurrent cell.

    For node i: the predecessor j whose strongest non-`none` weight is largest (the first
    on ties), then on edge (j, i) the strongest non-`none` op. concat = all nodes.
    """
    probs = np.asarray(_to_numpy(probs), dtype=np.float64)            # (E, O)
    if probs.ndim != 2 or probs.shape[1] != len(primitives):
        raise ValueError(f"expected weights of shape (edges, {len(primitives)}), got {probs.shape}")
    steps = steps_for_edges(probs.shape[0])
    masked = probs.copy()
    if "none" in primitives:
        masked[:, list(primitives).index("none")] = -np.inf
    cell, row = [], 0
    for i in range(1, steps + 1):
        rows = masked[row:row + i]                                     # (i, O): one row per predecessor
        pred = int(np.argmax(rows.max(axis=1)))                        # first of equals
        cell.append((primitives[int(np.argmax(rows[pred]))], pred))
        row += i
    return RNNGenotype(tuple(cell), tuple(range(1, steps + 1)))


def random_genotype(seed_or_rng=None, steps: int = STEPS) -> RNNGenotype:
    """A uniformly random cell of the space: per node a random predecessor and activation."""
    rng = seed_or_rng if isinstance(seed_or_rng, random.Random) else random.Random(seed_or_rng)
    cell = tuple((rng.choice(ACTIVATIONS), rng.randrange(i)) for i in range(1, steps + 1))
    return RNNGenotype(cell, tuple(range(1, steps + 1)))


# The cells of the reference code's genotypes.py (DARTS = DARTS_V2, the README's 55.68 test
# perplexity on PTB; which of the two came from second order is not stated there).
DARTS_RNN_V1 = parse_genotype(
    "Genotype(recurrent=[('relu', 0), ('relu', 1), ('tanh', 2), ('relu', 3), ('relu', 4), ('identity', 1), "
    "('relu', 5), ('relu', 1)], concat=range(1, 9))")
DARTS_RNN_V2 = parse_genotype(
    "Genotype(recurrent=[('sigmoid', 0), ('relu', 1), ('relu', 1), ('identity', 1), ('tanh', 2), "
    "('sigmoid', 5), ('tanh', 3), ('relu', 5)], concat=range(1, 9))")
ENAS_RNN = parse_genotype(
    "Genotype(recurrent=[('tanh', 0), ('tanh', 1), ('relu', 1), ('tanh', 3), ('tanh', 3), ('relu', 3), "
    "('relu', 4), ('relu', 7), ('relu', 8), ('relu', 8), ('relu', 8)], concat=[2, 5, 6, 9, 10, 11])")
GENOTYPES = {"DARTS_V1": DARTS_RNN_V1, "DARTS_V2": DARTS_RNN_V2, "DARTS": DARTS_RNN_V2, "ENAS": ENAS_RNN}
