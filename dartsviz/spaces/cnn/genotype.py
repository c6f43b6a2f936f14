"""Genotype: the discrete cell pair, the DARTS derivation rule, text and JSON forms.

A cell has two input nodes (0, 1) and ``nodes`` intermediate nodes (2, 3, ...).
Node k has one candidate edge from every earlier node, so the supernet cell has
``sum(range(2, 2 + nodes))`` edges, ordered node by node and source by source.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Iterable, List, Sequence, Tuple

import numpy as np

from ..genotype_text import parse_call
from .ops import PRIMITIVES

Edge = Tuple[int, int]          # (src, dst)
Choice = Tuple[str, int]        # (op, input node)
Node = Tuple[Choice, ...]       # the kept incoming edges of one intermediate node


def edges_of(nodes: int = 4) -> List[Edge]:
    """Supernet edges in alpha-row order: [(0,2), (1,2), (0,3), (1,3), (2,3), ...]."""
    return [(src, dst) for dst in range(2, 2 + nodes) for src in range(dst)]


def num_edges(nodes: int = 4) -> int:
    return len(edges_of(nodes))


def nodes_for_edges(n_edges: int) -> int:
    """Inverse of num_edges: 14 edges -> 4 nodes."""
    n = 0
    while num_edges(n) < n_edges:
        n += 1
    if num_edges(n) != n_edges:
        raise ValueError(f"{n_edges} edges do not form a DARTS cell")
    return n


def _check_cell(name: str, cell: Sequence[Node], concat: Sequence[int]) -> None:
    if len(cell) == 0:
        raise ValueError(f"genotype: {name} has no nodes")
    for i, node in enumerate(cell):
        dst = i + 2
        if len(node) == 0:
            raise ValueError(f"genotype: {name} node {dst} has no inputs")
        for choice in node:
            if (not isinstance(choice, tuple) or len(choice) != 2
                    or not isinstance(choice[0], str) or isinstance(choice[1], bool)
                    or not isinstance(choice[1], int)):
                raise ValueError(f"genotype: {name} node {dst}: expected (op, input) pairs, got {choice!r}")
            op, src = choice
            if op not in PRIMITIVES or op == "none":
                raise ValueError(f"genotype: {name} node {dst}: unknown op {op!r}; "
                                 f"known ops: {', '.join(PRIMITIVES[1:])}")
            if not 0 <= src < dst:
                raise ValueError(f"genotype: {name} node {dst}: input {src} must be in 0..{dst - 1}")
    n = len(cell) + 2
    for c in concat:
        if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < n:
            raise ValueError(f"genotype: {name}_concat entry {c!r} is not a node in 0..{n - 1}")
    if len(concat) == 0:
        raise ValueError(f"genotype: {name}_concat is empty")


@dataclass(frozen=True)
class Genotype:
    """A normal and a reduction cell: for each intermediate node its (op, input) pairs."""

    normal: Tuple[Node, ...]
    normal_concat: Tuple[int, ...]
    reduce: Tuple[Node, ...]
    reduce_concat: Tuple[int, ...]

    def __post_init__(self):
        for field in ("normal", "reduce"):
            cell = tuple(tuple((str(op) if isinstance(op, str) else op, src) for op, src in node)
                         if _is_seq(node) else node for node in getattr(self, field))
            object.__setattr__(self, field, cell)
        for field in ("normal_concat", "reduce_concat"):
            object.__setattr__(self, field, tuple(getattr(self, field)))
        _check_cell("normal", self.normal, self.normal_concat)
        _check_cell("reduce", self.reduce, self.reduce_concat)

    # -- views -------------------------------------------------------------
    def cell(self, cell_type: str) -> Tuple[Node, ...]:
        if cell_type not in ("normal", "reduce"):
            raise ValueError(f"cell type must be 'normal' or 'reduce', got {cell_type!r}")
        return getattr(self, cell_type)

    def concat(self, cell_type: str) -> Tuple[int, ...]:
        return getattr(self, f"{cell_type}_concat")

    def edges(self, cell_type: str) -> List[Tuple[int, int, str]]:
        """Kept edges as (src, dst, op)."""
        return [(src, i + 2, op) for i, node in enumerate(self.cell(cell_type)) for op, src in node]

    @property
    def nodes(self) -> int:
        return len(self.normal)

    # -- text form (the reference code's repr, parsed without eval) ---------
    def to_text(self) -> str:
        def flat(cell):
            return "[" + ", ".join(f"('{op}', {src})" for node in cell for op, src in node) + "]"
        return (f"Genotype(normal={flat(self.normal)}, normal_concat={list(self.normal_concat)}, "
                f"reduce={flat(self.reduce)}, reduce_concat={list(self.reduce_concat)})")

    __str__ = to_text

    @classmethod
    def from_text(cls, text: str) -> "Genotype":
        return parse_genotype(text)

    # -- JSON form ---------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "normal": [[[op, src] for op, src in node] for node in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [[[op, src] for op, src in node] for node in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict) -> "Genotype":
        if not isinstance(d, dict):
            raise ValueError(f"genotype JSON must be an object, got {type(d).__name__}")
        missing = [k for k in ("normal", "normal_concat", "reduce", "reduce_concat") if k not in d]
        if missing:
            raise ValueError(f"genotype JSON lacks {', '.join(missing)}")
        cells = {}
        for name in ("normal", "reduce"):
            raw = d[name]
            if not isinstance(raw, list):
                raise ValueError(f"genotype JSON: {name} must be a list")
            if raw and all(_is_pair(x) for x in raw):   # flat list of pairs, two per node
                cells[name] = _group_pairs(name, [tuple(x) for x in raw])
            else:
                cells[name] = tuple(tuple(tuple(c) for c in _as_list(name, node)) for node in raw)
        return cls(cells["normal"], tuple(_as_list("normal_concat", d["normal_concat"])),
                   cells["reduce"], tuple(_as_list("reduce_concat", d["reduce_concat"])))

    @classmethod
    def from_json(cls, text: str) -> "Genotype":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"genotype JSON does not parse: {e}") from None
        return cls.from_dict(d)


def _is_seq(x) -> bool:
    return isinstance(x, (list, tuple))


def _is_pair(x) -> bool:
    return _is_seq(x) and len(x) == 2 and isinstance(x[0], str)


def _as_list(name, x) -> list:
    if not _is_seq(x):
        raise ValueError(f"genotype: {name} must be a list, got {x!r}")
    return list(x)


def _group_pairs(name: str, pairs: List[Choice], per_node: int = 2) -> Tuple[Node, ...]:
    if len(pairs) % per_node:
        raise ValueError(f"genotype: {name} has {len(pairs)} (op, input) pairs, "
                         f"expected {per_node} per node")
    return tuple(tuple(pairs[i:i + per_node]) for i in range(0, len(pairs), per_node))


# -- text parser -------------------------------------------------------------

def parse_genotype(text: str) -> Genotype:
    """Parse `Genotype(normal=[('sep_conv_3x3', 1), ...], normal_concat=[2, 3, 4, 5], ...)`
    without evaluating it (`spaces.genotype_text`)."""
    values = parse_call(text, ["normal", "normal_concat", "reduce", "reduce_concat"],
                        hint="expected Genotype(normal=[...], ...)",
                        call="Genotype(normal=[...], normal_concat=[...], reduce=[...], reduce_concat=[...])")
    cells = {}
    for name in ("normal", "reduce"):
        pairs = values[name]
        if not isinstance(pairs, list) or not all(_is_pair(p) and isinstance(p[1], int) for p in pairs):
            raise ValueError(f"genotype text: {name} must be a list of ('op', input) pairs")
        cells[name] = _group_pairs(name, [tuple(p) for p in pairs])
    return Genotype(cells["normal"], tuple(values["normal_concat"]),
                    cells["reduce"], tuple(values["reduce_concat"]))


# -- derivation ---------------------------------------------------------------

def derive_cell(probs, k: int = 2, primitives: Sequence[str] = PRIMITIVES) -> Tuple[Node, ...]:
    """The DARTS rule on one cell's softmax weights `probs` (edges, ops).

    For each intermediate node keep the k incoming edges whose strongest non-`none`
    weight is largest, and on each kept edge the strongest op other than `none`.
    """
    probs = np.asarray(_to_numpy(probs), dtype=np.float64)  # (E, O)
    if probs.ndim != 2 or probs.shape[1] != len(primitives):
        raise ValueError(f"expected weights of shape (edges, {len(primitives)}), got {probs.shape}")
    nodes = nodes_for_edges(probs.shape[0])
    none = primitives.index("none") if "none" in primitives else None
    masked = probs.copy()
    if none is not None:
        masked[:, none] = -np.inf
    cell, row = [], 0
    for dst in range(2, 2 + nodes):
        rows = masked[row:row + dst]                         # (dst, O): one row per source node
        strength = rows.max(axis=1)                          # (dst,)
        keep = sorted(np.argsort(-strength, kind="stable")[:min(k, dst)])
        cell.append(tuple((primitives[int(rows[src].argmax())], int(src)) for src in keep))
        row += dst
    return tuple(cell)


def derive(probs_normal, probs_reduce, k: int = 2) -> Genotype:
    """Genotype from the softmax weights of both cell types."""
    normal = derive_cell(probs_normal, k)
    reduce = derive_cell(probs_reduce, k)
    concat = tuple(range(2, 2 + len(normal)))
    return Genotype(normal, concat, reduce, concat)


def _array(x) -> np.ndarray:
    return np.asarray(x.detach().cpu().double().numpy() if hasattr(x, "detach") else x, dtype=np.float64)


def derive_cell_edge_normalised(probs, edge_probs, k: int = 2):
    """PC-DARTS' rule on one cell: for each intermediate node keep the k incoming edges with
    the largest max over non-`none` ops of probs[e, o] * edge_probs[e], and on each kept
    edge the strongest non-`none` op of probs alone (beta picks edges, alpha picks ops).

    probs: softmax(alpha), (edges, ops); edge_probs: softmax(beta) per node, (edges,)."""
    p, b = _array(probs), _array(edge_probs)                 # (E, O), (E,)
    if b.shape != (p.shape[0],):
        raise ValueError(f"edge_probs must have shape ({p.shape[0]},) to match probs {p.shape}, got {b.shape}")
    ranked = derive_cell(p * b[:, None], k)                   # the kept edges; DARTS' ranking of the products
    masked = p.copy()
    masked[:, PRIMITIVES.index("none")] = -np.inf
    cell = []
    for dst, node in enumerate(ranked, start=2):
        first = sum(range(2, dst))                            # alpha row of edge (0, dst)
        cell.append(tuple((PRIMITIVES[int(masked[first + src].argmax())], src) for _, src in node))
    return tuple(cell)


def derive_edge_normalised(probs, edge_probs, k: int = 2) -> Genotype:
    """Genotype by PC-DARTS' rule from softmax(alpha) and softmax(beta) per cell type."""
    normal = derive_cell_edge_normalised(probs["normal"], edge_probs["normal"], k)
    reduce = derive_cell_edge_normalised(probs["reduce"], edge_probs["reduce"], k)
    concat = tuple(range(2, 2 + len(normal)))
    return Genotype(normal, concat, reduce, concat)



def _to_numpy(x):
    if hasattr(x, "detach"):
        return x.detach().cpu().double().numpy()
    return x


def random_genotype(seed_or_rng=None, nodes: int = 4, k: int = 2) -> Genotype:
    """A uniformly random cell pair from the DARTS space (the paper's random baseline)."""
    rng = seed_or_rng if isinstance(seed_or_rng, random.Random) else random.Random(seed_or_rng)
    ops = [p for p in PRIMITIVES if p != "none"]

    def cell():
        return tuple(tuple((rng.choice(ops), src) for src in sorted(rng.sample(range(dst), k)))
                     for dst in range(2, 2 + nodes))
    concat = tuple(range(2, 2 + nodes))
    return Genotype(cell(), concat, cell(), concat)


DARTS_V1 = parse_genotype(
    "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), "
    "('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], "
    "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
    "('max_pool_3x3', 0), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], "
    "reduce_concat=[2, 3, 4, 5])")
DARTS_V2 = parse_genotype(
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
    "normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), "
    "('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
    "reduce_concat=[2, 3, 4, 5])")
GENOTYPES = {"DARTS_V1": DARTS_V1, "DARTS_V2": DARTS_V2, "DARTS": DARTS_V2}


def count_ops(cells: Iterable[Node]) -> dict:
    """How many kept edges use each op."""
    counts = {p: 0 for p in PRIMITIVES if p != "none"}
    for node in cells:
        for op, _ in node:
            counts[op] += 1
    return counts
