"""NB201Genotype: one cell of the NAS-Bench-201 space, its text and JSON forms, the derivation.

The cell has 4 nodes: node 0 is its input, nodes 1, 2, 3 each sum one edge from every
earlier node, and node 3 is its output. Its 6 edges, in alpha-row order, are
1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2; each carries one of 5 ops. Every cell of a network
is the same cell, so a genotype is six op names.

Text form (the benchmark's, parsed by splitting, never evaluated):

    |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|

one `|op~source|` per edge, nodes 1, 2, 3 separated by `+`.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np

PRIMITIVES = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")   # alpha's columns
NODES = 4                                                   # node 0 (input) .. node 3 (output)
EDGES: Tuple[Tuple[int, int], ...] = tuple((src, dst) for dst in range(1, NODES) for src in range(dst))
CELL_TYPE = "cell"
FORM = "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|"


@dataclass(frozen=True)
class NB201Genotype:
    """The cell: `ops[e]` is the op on edge `EDGES[e]` (src, dst)."""

    ops: Tuple[str, ...]

    def __post_init__(self):
        if not isinstance(self.ops, (list, tuple)) or len(self.ops) != len(EDGES):
            raise ValueError(f"an nb201 cell has {len(EDGES)} edges; got {self.ops!r}")
        for (src, dst), op in zip(EDGES, self.ops):
            if op not in PRIMITIVES:
                raise ValueError(f"nb201 cell: unknown op {op!r} on edge {dst}<-{src}; "
                                 f"known ops: {', '.join(PRIMITIVES)}")
        object.__setattr__(self, "ops", tuple(self.ops))

    # -- the cell's graph --------------------------------------------------------------
    def edges(self, cell_type: str = CELL_TYPE) -> List[Tuple[int, int, str]]:
        """The edges that carry something, as (src, dst, op): `none` edges are left out."""
        return [(src, dst, op) for (src, dst), op in zip(EDGES, self.ops) if op != "none"]

    def concat(self, cell_type: str = CELL_TYPE) -> Tuple[int, ...]:
        return (NODES - 1,)                                  # node 3 alone is the output

    def index_of_ops(self) -> Tuple[int, ...]:
        """The column of each edge's op in alpha."""
        return tuple(PRIMITIVES.index(op) for op in self.ops)

    def reaches_output(self) -> bool:
        """Whether some path from the input to node 3 has no `none` on it (else the cell outputs zeros)."""
        live = {0}
        for (src, dst), op in zip(EDGES, self.ops):        # sources come before their targets
            if op != "none" and src in live:
                live.add(dst)
        return NODES - 1 in live

    # -- text and JSON -------------------------------------------------------------------
    def to_text(self) -> str:
        nodes, e = [], 0
        for dst in range(1, NODES):
            nodes.append("|" + "|".join(f"{self.ops[e + src]}~{src}" for src in range(dst)) + "|")
            e += dst
        return "+".join(nodes)

    __str__ = to_text

    def to_dict(self) -> dict:
        return {"arch": self.to_text()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_text(cls, text: str) -> "NB201Genotype":
        return parse_genotype(text)

    @classmethod
    def from_dict(cls, d: dict) -> "NB201Genotype":
        if not isinstance(d, dict) or not isinstance(d.get("arch"), str):
            raise ValueError('nb201 genotype JSON must be {"arch": "|op~0|+|op~0|op~1|+|...|"}')
        return parse_genotype(d["arch"])


def parse_genotype(text: str) -> NB201Genotype:
    """The cell written `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`; anything else is a one-line ValueError."""
    if not isinstance(text, str):
        raise ValueError(f"nb201 genotype text must be a string, got {type(text).__name__}")
    s = text.strip()
    if s.startswith("Genotype(") or "Genotype(" in s[:40]:
        raise ValueError("that is a DARTS cnn or rnn genotype, not an nb201 cell; an nb201 cell reads " + FORM)
    groups = s.split("+")
    if len(groups) != NODES - 1:
        raise ValueError(f"nb201 genotype text must have {NODES - 1} nodes separated by '+' ({FORM}); "
                         f"got {len(groups)}")
    ops: List[str] = []
    for dst, group in enumerate(groups, 1):
        if not (group.startswith("|") and group.endswith("|") and len(group) > 1):
            raise ValueError(f"nb201 genotype text: node {dst} must be written |op~j|...|, got {group!r}")
        entries = group[1:-1].split("|")
        if len(entries) != dst:
            raise ValueError(f"nb201 genotype text: node {dst} needs {dst} edges (one from each of nodes "
                             f"0..{dst - 1}), got {len(entries)}")
        by_src = {}
        for entry in entries:
            op, tilde, src = entry.partition("~")
            if not tilde or not src.isdigit():
                raise ValueError(f"nb201 genotype text: {entry!r} in node {dst} must be op~j")
            if not int(src) < dst:
                raise ValueError(f"nb201 genotype text: ~{src} in node {dst} is out of range 0..{dst - 1}")
            if int(src) in by_src:
                raise ValueError(f"nb201 genotype text: node {dst} has two edges from node {src}")
            if op not in PRIMITIVES:
                raise ValueError(f"nb201 genotype text: unknown op {op!r}; known ops: {', '.join(PRIMITIVES)}")
            by_src[int(src)] = op
        ops.extend(by_src[src] for src in range(dst))
    return NB201Genotype(tuple(ops))


def derive(probs, primitives: Sequence[str] = PRIMITIVES) -> NB201Genotype:
    """The benchmark's derivation: on every edge the op with the largest weight, `none`
    included (the first on ties). `probs`: (6, 5) softmax weights."""
    p = np.asarray(probs.detach().cpu().double().numpy() if hasattr(probs, "detach") else probs,
                   dtype=np.float64)                                     # (E, O)
    if p.shape != (len(EDGES), len(primitives)):
        raise ValueError(f"expected nb201 weights of shape ({len(EDGES)}, {len(primitives)}), got {p.shape}")
    return NB201Genotype(tuple(primitives[int(i)] for i in p.argmax(axis=1)))


def random_genotype(seed_or_rng=None) -> NB201Genotype:
    """A uniformly random cell: each edge's op drawn from all five."""
    rng = seed_or_rng if isinstance(seed_or_rng, random.Random) else random.Random(seed_or_rng)
    return NB201Genotype(tuple(rng.choice(PRIMITIVES) for _ in EDGES))


def all_genotypes() -> List[NB201Genotype]:
    """The 15,625 cells of the space, the first edge's op varying slowest."""
    import itertools
    return [NB201Genotype(ops) for ops in itertools.product(PRIMITIVES, repeat=len(EDGES))]


ALL_SKIP = NB201Genotype(("skip_connect",) * len(EDGES))   # where DARTS collapses on this space
