"""Reading step and epoch records into arrays the figures draw (no torch, no widgets)."""
from __future__ import annotations

from functools import lru_cache
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..genotype import Genotype, derive_cell, edges_of, nodes_for_edges
from ..ops import PARAMETER_FREE, PRIMITIVES


def step_records(records: Sequence[dict]) -> List[dict]:
    return [r for r in records if r.get("kind") == "step"]


def epoch_records(records: Sequence[dict]) -> List[dict]:
    return [r for r in records if r.get("kind") == "epoch"]


def probs_of(record_or_probs, cell: str = "normal") -> np.ndarray:
    """Softmax weights of one cell type as an array (edges, ops)."""
    p = record_or_probs
    if isinstance(p, dict) and "probs" in p:
        p = p["probs"]
    if isinstance(p, dict):
        p = p[cell]
    if hasattr(p, "detach"):
        p = p.detach().cpu().numpy()
    arr = np.asarray(p, dtype=np.float64)  # (E, O)
    if arr.ndim != 2 or arr.shape[1] != len(PRIMITIVES):
        raise ValueError(f"expected weights of shape (edges, {len(PRIMITIVES)}), got {arr.shape}")
    return arr


def cell_edges(n_edges: int) -> List[Tuple[int, int]]:
    """The supernet edges in alpha-row order for a cell with `n_edges` rows."""
    return edges_of(nodes_for_edges(n_edges))


def kept_mask(probs: np.ndarray) -> np.ndarray:
    """Boolean (edges, ops): True where derivation keeps that op on that edge."""
    probs = np.asarray(probs)                                 # (E, O)
    edges = cell_edges(probs.shape[0])
    row = {e: i for i, e in enumerate(edges)}
    mask = np.zeros(probs.shape, dtype=bool)                  # (E, O)
    for i, node in enumerate(derive_cell(probs)):
        for op, src in node:
            mask[row[(src, i + 2)], PRIMITIVES.index(op)] = True
    return mask


def strongest_ops(probs: np.ndarray) -> np.ndarray:
    """Index of the largest non-`none` weight on every edge, shape (edges,)."""
    masked = np.asarray(probs, dtype=np.float64).copy()      # (E, O)
    masked[:, PRIMITIVES.index("none")] = -np.inf
    return masked.argmax(axis=1)                              # (E,)


def probs_series(records: Sequence[dict], cell: str) -> Tuple[np.ndarray, np.ndarray]:
    """Steps (T,) and weights (T, edges, ops) of every step record."""
    steps = step_records(records)
    if not steps:
        return np.zeros(0), np.zeros((0, 0, len(PRIMITIVES)))
    x = np.array([r["step"] for r in steps])                 # (T,)
    w = np.array([r["probs"][cell] for r in steps], dtype=np.float64)  # (T, E, O)
    return x, w


@lru_cache(maxsize=4096)
def _parse(text: str) -> Genotype:
    return Genotype.from_text(text)


def genotype_of(record_or_text) -> Genotype:
    """The genotype of a record (parsed from its text form, cached) or of a text/Genotype."""
    g = record_or_text
    if isinstance(g, dict):
        g = g["genotype"]
    if isinstance(g, Genotype):
        return g
    return _parse(str(g))


@lru_cache(maxsize=4096)
def collapse_counts(text: str) -> Dict[str, int]:
    """Skip connections and parameter-free ops among the kept edges of both cells."""
    g = _parse(text)
    out = {}
    for cell in ("normal", "reduce"):
        ops = [op for _, _, op in g.edges(cell)]
        out[f"{cell}_skip"] = sum(op == "skip_connect" for op in ops)
        out[f"{cell}_param_free"] = sum(op in PARAMETER_FREE for op in ops)
        out[f"{cell}_edges"] = len(ops)
    return out


def cell_differences(a: Genotype, b: Genotype) -> List[dict]:
    """Where two genotypes differ: one row per cell/edge kept by either, with both ops."""
    rows = []
    for cell in ("normal", "reduce"):
        ea = {(s, d): op for s, d, op in a.edges(cell)}
        eb = {(s, d): op for s, d, op in b.edges(cell)}
        for edge in sorted(set(ea) | set(eb), key=lambda e: (e[1], e[0])):
            if ea.get(edge) != eb.get(edge):
                rows.append({"cell": cell, "edge": edge, "a": ea.get(edge), "b": eb.get(edge)})
    return rows
