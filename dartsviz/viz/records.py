"""Reading step and epoch records into what the figures draw (no widgets, no models).

Every number comes from a record; what a cell looks like (its ops, edges, skip op,
parameter-free ops) comes from the record's search space.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..records import EpochRecord, StepRecord, metric_title  # noqa: F401  (metric_title: the views' name too)
from ..spaces import SearchSpace
from .spaceof import space_of


def epoch_number(epoch: int) -> int:
    """An epoch as every view shows it, counted from 1 (records and `Search.epoch` count from
    0): the status line, the panels' titles and the replay say the same number."""
    return int(epoch) + 1


def step_records(records: Sequence) -> List[StepRecord]:
    return [r for r in records if isinstance(r, StepRecord)]


def epoch_records(records: Sequence) -> List[EpochRecord]:
    return [r for r in records if isinstance(r, EpochRecord)]


def probs_of(record_or_probs, cell: str) -> np.ndarray:
    """Softmax weights of one cell type as a float64 array (edges, ops)."""
    p = record_or_probs.probs if isinstance(record_or_probs, StepRecord) else record_or_probs
    if isinstance(p, dict):
        if cell not in p:
            raise ValueError(f"no weights for cell type {cell!r}; cell types: {', '.join(p)}")
        p = p[cell]
    if hasattr(p, "detach"):
        p = p.detach().cpu().double().numpy()
    arr = np.asarray(p, dtype=np.float64)                     # (E, O)
    if arr.ndim != 2:
        raise ValueError(f"expected weights of shape (edges, ops), got {arr.shape}")
    return arr


@dataclass
class Architecture:
    """One architecture as the weight panels and soft cells draw it."""

    space: SearchSpace
    probs: Dict[str, np.ndarray]      # cell type -> softmax weights (edges, ops)
    genotype: Any                     # the space's genotype of these weights
    record: Optional[StepRecord] = None

    def kept(self, cell: str) -> np.ndarray:
        """Boolean (edges, ops): True where the genotype keeps that op on that edge."""
        return self.space.kept_mask(self.genotype, cell, self.probs[cell].shape[0])

    def edges(self, cell: str) -> List[Tuple[int, int]]:
        return self.space.edges(cell, self.probs[cell].shape[0])


def architecture(data, space=None) -> Architecture:
    """A step record (or a list of records: its last step) as drawn; bare softmax weights
    by cell type (e.g. a supernet's `probs()`) are derived here, once, by their space's rule."""
    if isinstance(data, Architecture):
        return data
    if isinstance(data, (list, tuple)):
        steps = step_records(data)
        if not steps:
            raise ValueError("no step records to draw")
        data = steps[-1]
    if isinstance(data, StepRecord):
        return Architecture(space_of(data, space), dict(data.probs), data.genotype, data)
    if not isinstance(data, dict):
        raise ValueError("expected a step record, a list of records or softmax weights by cell type")
    sp = space_of(data, space)
    missing = [c for c in sp.cell_types if c not in data]
    if missing:
        raise ValueError(f"softmax weights of every cell type are needed ({', '.join(sp.cell_types)}); "
                         f"missing {', '.join(missing)}")
    probs = {c: probs_of(data, c) for c in sp.cell_types}
    _check_ops(sp, probs)
    return Architecture(sp, probs, sp.derive(probs))


def _check_ops(space: SearchSpace, probs: Dict[str, np.ndarray]) -> None:
    for cell, p in probs.items():
        if p.shape[1] != len(space.ops):
            raise ValueError(f"expected weights of shape (edges, {len(space.ops)}) for {cell}, got {p.shape}")


def strongest_ops(probs: np.ndarray, space: SearchSpace) -> np.ndarray:
    """Index of the largest weight other than the space's zero op on every edge, (edges,)."""
    masked = np.asarray(probs, dtype=np.float64).copy()      # (E, O)
    if space.zero_op is not None:
        masked[:, space.ops.index(space.zero_op)] = -np.inf
    return masked.argmax(axis=1)                              # (E,)


def probs_series(records: Sequence, cell: str) -> Tuple[np.ndarray, np.ndarray]:
    """Steps (T,) and weights (T, edges, ops) of every step record."""
    steps = step_records(records)
    if not steps:
        return np.zeros(0), np.zeros((0, 0, 0))
    x = np.array([r.step for r in steps])                    # (T,)
    w = np.stack([r.probs[cell] for r in steps])              # (T, E, O)
    return x, w


def collapse_counts(genotype, space: SearchSpace) -> Dict[str, Dict[str, int]]:
    """Per cell type: kept edges, those with the space's skip op, those parameter-free."""
    out = {}
    for cell in space.cell_types:
        ops = [op for _, _, op in space.kept_edges(genotype, cell)]
        out[cell] = {"edges": len(ops), "skip": sum(op == space.skip_op for op in ops),
                     "param_free": sum(op in space.parameter_free for op in ops)}
    return out


def cell_differences(a, b, space: SearchSpace) -> List[dict]:
    """Where two genotypes differ: one row per cell/edge kept by either, with both ops."""
    rows = []
    for cell in space.cell_types:
        ea = {(s, d): op for s, d, op in space.kept_edges(a, cell)}
        eb = {(s, d): op for s, d, op in space.kept_edges(b, cell)}
        for edge in sorted(set(ea) | set(eb), key=lambda e: (e[1], e[0])):
            if ea.get(edge) != eb.get(edge):
                rows.append({"cell": cell, "edge": edge, "a": ea.get(edge), "b": eb.get(edge)})
    return rows


METRIC_LIMITS = {"acc": (0, 1.02)}                  # y-range of a metric's curves, where fixed


def metric_of(record, split: str, metric: str) -> float:
    """`record.metrics[f"{split}_{metric}"]`, NaN when the record has none (a snapshot)."""
    return float(record.metrics.get(f"{split}_{metric}", np.nan))


def loss_of(record, split: str) -> float:
    return float(record.losses.get(split, np.nan))


# the quantities the variants put in `record.monitors`, by name, as the views label them
MONITOR_LABELS = {"beta_t": "\u03b2_t", "lambda_t": "\u03bb_t", "eps_t": "\u03b5_t", "beta_entropy": "H(\u03b2)",
                  "stage": "stage", "layers": "cells", "ops_kept": "ops/edge", "skip_dropout": "skip drop",
                  "true_valid_acc": "true acc % (CIFAR-10)", "true_rank": "rank"}


def monitor_items(record, cell_types: Sequence[str] = ()) -> List[str]:
    """The variant's quantities of a step record (`record.monitors`) as short texts, e.g.
    ["\u03b2_t 0.8"] or ["H(\u03b2) normal 0.998, reduce 0.97"]: a name ending in `_<cell type>`
    is grouped with its siblings; known names get their paper's symbol (MONITOR_LABELS)."""
    groups: Dict[str, List[str]] = {}
    for name, value in (getattr(record, "monitors", None) or {}).items():
        base, cell = name, None
        for c in cell_types:
            if name.endswith(f"_{c}"):
                base, cell = name[: -len(c) - 1], c
                break
        label = MONITOR_LABELS.get(base, base)
        text = f"{int(value):,}" if float(value).is_integer() and abs(value) >= 1000 else f"{value:.3g}"
        groups.setdefault(label, []).append(f"{cell} {text}" if cell else text)
    return [f"{label} {', '.join(parts)}" for label, parts in groups.items()]


def last_lambda(records: Sequence) -> Optional[Tuple[int, float]]:
    """(step, lambda_max) of the last step record that measured it, or None."""
    for r in reversed(step_records(records)):
        if r.lambda_max is not None:
            return r.step, float(r.lambda_max)
    return None


def training_metric(steps: Sequence) -> Optional[str]:
    """The quality metric a training's step records hold besides the loss (`train_<metric>`), e.g. "acc"."""
    return next((k[len("train_"):] for k in (steps[0].metrics if steps else ()) if k.startswith("train_")), None)
