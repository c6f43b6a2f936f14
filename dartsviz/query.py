"""Searches that query the NAS-Bench-201 table: random search, regularised evolution, local search.

    >>> from dartsviz.query import run_many
    >>> s = run_many("rea", budget=20000, runs=100)
    >>> s.valid_mean, s.valid_std                  # the chosen cells' 200-epoch validation accuracy, %

The benchmark's rules (NAS-Bench-201 / NATS-Bench `exps/NATS-algos`):
- the search sees only a cell's 12-epoch validation accuracy on the cifar10-valid split (`SIGNAL`);
- each new cell it queries costs its simulated 12-epoch training time, taken here as the table's
  200-epoch seconds x 12/200 (the table has no 12-epoch time); a cell queried again costs nothing
  (its answer is remembered: NATS-Bench would charge it again);
- a query starts while the budget is not spent, so the total may pass the budget by one cell;
- the chosen cell is the one with the best signal so far (the first of equals), and a run is judged
  by that cell's 200-epoch accuracy (validation; test beside it).
The signal is the mean over the benchmark's seeds (NATS-Bench draws one seed's result at random).
A run also ends when it has queried every cell, or `max_queries` cells (evolution: or when `STALL`
cycles in a row bring no new cell). Cells are table rows (`truth.row_of`), so a query is list
indexing; 100 runs of 20,000 s take a fraction of a second.
"""
from __future__ import annotations

import functools
import math
import numbers
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from . import truth
from .spaces.nb201.genotype import EDGES, PRIMITIVES

SIGNAL = "c10valid_valid_12"                     # what a search sees (truth.LABELS[SIGNAL])
COST_FRACTION = 12 / 200                         # 12-epoch seconds = 200-epoch seconds x 12/200
POPULATION = 10                                  # regularised evolution: population, oldest removed
SAMPLE = 3                                       # ... and tournament sample (drawn with replacement)
STALL = truth.CELLS                              # evolution ends after this many cycles in a row with no new cell
NAMES = {"random": "random search", "rea": "regularised evolution", "ls": "local search"}
ALGOS = tuple(NAMES)

_OPS = len(PRIMITIVES)
_PLACE = tuple(_OPS ** (len(EDGES) - 1 - e) for e in range(len(EDGES)))   # row = sum(column * place)


@functools.lru_cache(maxsize=1)
def _lists(t: truth.TruthTable) -> Tuple[list, list, list, list]:
    """signal, cost, validation, test per row, as Python lists (fast scalar reads)."""
    return (getattr(t, SIGNAL).tolist(), (t.train_seconds * COST_FRACTION).tolist(),
            t.valid_acc.tolist(), t.test_acc.tolist())


# -- the cell's neighbourhood -------------------------------------------------------------
def neighbours(row: int) -> List[int]:
    """The 24 cells that differ from `row` on exactly one edge (edge order, then op order)."""
    out = []
    for place in _PLACE:
        col = row // place % _OPS
        out += [row + (c - col) * place for c in range(_OPS) if c != col]
    return out


def mutate(row: int, rng: random.Random) -> int:
    """Regularised evolution's mutation: one random edge's op changed to one of the 4 others."""
    place = _PLACE[rng.randrange(len(EDGES))]
    col = row // place % _OPS
    new = rng.randrange(_OPS - 1)
    new += new >= col                                # skip the current op
    return row + (new - col) * place


# -- the benchmark's side: answers, charges, remembers, keeps the anytime curve -------------
class Oracle:
    """Answers a search's queries by the signal and charges their simulated time."""

    def __init__(self, budget: float, max_queries: Optional[int] = None):
        self.signal, self.cost, self.valid, self.test = _lists(truth.table())
        self.budget, self.max_queries = budget, max_queries
        self.spent = 0.0
        self.seen: Dict[int, float] = {}                  # row -> signal
        self.best_row, self.best_signal = -1, -math.inf   # the chosen cell
        self.rows: List[int] = []                         # the new cells, in query order
        self.seconds: List[float] = []                    # per new cell: spent after it ...
        self.curve_valid: List[float] = []                # ... and the chosen cell's true accuracies
        self.curve_test: List[float] = []

    @property
    def left(self) -> bool:
        """Whether another query may start."""
        n = len(self.seen)
        return self.spent < self.budget and n < truth.CELLS and (self.max_queries is None or n < self.max_queries)

    def query(self, row: int) -> float:
        """The cell's signal; a new cell is charged and may become the chosen one."""
        s = self.seen.get(row)
        if s is not None:
            return s
        s = self.seen[row] = self.signal[row]
        self.spent += self.cost[row]
        if s > self.best_signal:
            self.best_row, self.best_signal = row, s
        self.rows.append(row)
        self.seconds.append(self.spent)
        self.curve_valid.append(self.valid[self.best_row])
        self.curve_test.append(self.test[self.best_row])
        return s

    def unseen(self, rng: random.Random) -> int:
        """A uniformly random cell not queried yet (call only while `left`)."""
        while True:
            row = rng.randrange(truth.CELLS)
            if row not in self.seen:
                return row


# -- the searches: each queries `oracle` until it says stop --------------------------------
def random_search(oracle: Oracle, rng: random.Random) -> None:
    """New uniformly random cells (never one already queried) until the budget is spent."""
    while oracle.left:
        oracle.query(oracle.unseen(rng))


def regularised_evolution(oracle: Oracle, rng: random.Random, on_cycle: Optional[Callable] = None) -> None:
    """Real et al. 2019 as NATS-Bench runs it: 10 random cells, then each cycle the best of 3 drawn
    (with replacement) is mutated on one edge, its child joins and the oldest leaves. A child
    already queried costs nothing, so the run also ends after `STALL` cycles in a row without a new cell.
    `on_cycle(population, parent, child)`, if given, sees each cycle's outcome (rows)."""
    population: deque = deque()                                   # (row, signal), oldest first
    while len(population) < POPULATION and oracle.left:
        row = rng.randrange(truth.CELLS)
        population.append((row, oracle.query(row)))
    stalled = 0
    while oracle.left and stalled < STALL:
        parent = max((rng.choice(population) for _ in range(SAMPLE)), key=lambda p: p[1])
        child = mutate(parent[0], rng)
        known = len(oracle.seen)
        population.append((child, oracle.query(child)))
        population.popleft()
        if on_cycle is not None:
            on_cycle([r for r, _ in population], parent[0], child)
        stalled = stalled + 1 if len(oracle.seen) == known else 0


def local_search(oracle: Oracle, rng: random.Random, optima: Optional[list] = None) -> None:
    """From a new random cell, query its 24 neighbours (in random order) and move to the best
    while it beats the current cell; at a local optimum (appended to `optima`), start again."""
    while oracle.left:
        cur = oracle.unseen(rng)
        cur_signal = oracle.query(cur)
        while oracle.left:
            around = neighbours(cur)
            rng.shuffle(around)
            best, best_signal, complete = None, cur_signal, True
            for n in around:
                if not oracle.left:
                    complete = False
                    break
                s = oracle.query(n)
                if s > best_signal:
                    best, best_signal = n, s
            if best is None:
                if complete and optima is not None:
                    optima.append(cur)
                break
            cur, cur_signal = best, best_signal


SEARCHES: Dict[str, Callable] = {"random": random_search, "rea": regularised_evolution, "ls": local_search}


# -- one run, many runs ----------------------------------------------------------------------
@dataclass(frozen=True)
class QueryRun:
    """One search: its anytime curve (one point per new cell) and the chosen cell."""

    algo: str
    rows: np.ndarray           # (Q,) the new cells queried (table rows), in order
    seconds: np.ndarray        # (Q,) simulated seconds spent after each new cell
    valid_acc: np.ndarray      # (Q,) the chosen cell's 200-epoch validation accuracy by then, %
    test_acc: np.ndarray       # (Q,) ... and its test accuracy, %
    row: int                   # the chosen cell's table row at the end
    local_optima: Tuple[int, ...] = ()   # local search: the rows where a climb ended

    @property
    def cell(self) -> truth.CellTruth:
        return truth.lookup_row(self.row)

    @property
    def queries(self) -> int:
        return len(self.seconds)

    @property
    def spent(self) -> float:
        return float(self.seconds[-1]) if len(self.seconds) else 0.0


def _check(algo: str, budget: float, max_queries: Optional[int]) -> None:
    if algo not in SEARCHES:
        raise ValueError(f"unknown query search {algo!r}; choose from {', '.join(ALGOS)}")
    if isinstance(budget, bool) or not isinstance(budget, numbers.Real) or math.isnan(budget) or budget <= 0:
        raise ValueError(f"the budget must be a number of simulated seconds above 0, got {budget!r}")
    if max_queries is not None and (not isinstance(max_queries, numbers.Integral) or max_queries < 1):
        raise ValueError(f"max_queries must be a whole number above 0 (or None), got {max_queries!r}")


def run(algo: str, budget: float, seed: int = 0, max_queries: Optional[int] = None) -> QueryRun:
    """One run of `algo` ("random", "rea", "ls") with `budget` simulated seconds (math.inf: until
    every cell is queried, or `max_queries`); the same seed gives the same run."""
    _check(algo, budget, max_queries)
    rng = random.Random(seed)
    oracle = Oracle(float(budget), max_queries)
    optima: list = []
    if algo == "ls":
        local_search(oracle, rng, optima)
    else:
        SEARCHES[algo](oracle, rng)
    return QueryRun(algo, np.array(oracle.rows), np.array(oracle.seconds), np.array(oracle.curve_valid),
                    np.array(oracle.curve_test), oracle.best_row, tuple(optima))


def run_seed(seed: int, i: int) -> int:
    """The seed of run `i` of `run_many(..., seed)`."""
    return int(np.random.SeedSequence([seed, i]).generate_state(1)[0])


def on_grid(seconds: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """A run's anytime values at the grid's times: the last value reached by then (nan before the first)."""
    if not len(values):
        return np.full(grid.shape, np.nan)
    i = np.searchsorted(seconds, grid, side="right") - 1                   # (T,) last point by then
    return np.where(i >= 0, values[np.maximum(i, 0)], np.nan)              # (T,)


def _mean_std(a: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and std over runs (axis 0) at each time; nan until every run has chosen a cell."""
    ok = np.isfinite(a).all(axis=0)                                        # (T,)
    x = np.where(ok, a, 0.0)                                               # (R, T)
    return np.where(ok, x.mean(axis=0), np.nan), np.where(ok, x.std(axis=0), np.nan)


@dataclass(frozen=True)
class QuerySummary:
    """`runs` runs of one search: the chosen cells' accuracies and the anytime curves on one time grid.
    Standard deviations are over runs (numpy's default, ddof=0)."""

    algo: str
    budget: float
    seed: int
    runs: Tuple[QueryRun, ...] = field(repr=False)
    grid: np.ndarray = field(repr=False)          # (T,) simulated seconds, 0 .. the longest run's total
    valid_curves: np.ndarray = field(repr=False)  # (R, T) chosen cell's 200-epoch validation accuracy, %
    test_curves: np.ndarray = field(repr=False)   # (R, T) ... its test accuracy, % (nan before a run's first cell)

    @property
    def name(self) -> str:
        return NAMES[self.algo]

    @property
    def valid_final(self) -> np.ndarray:
        return np.array([r.valid_acc[-1] for r in self.runs])             # (R,)

    @property
    def test_final(self) -> np.ndarray:
        return np.array([r.test_acc[-1] for r in self.runs])              # (R,)

    @property
    def valid_mean(self) -> float:
        return float(self.valid_final.mean())

    @property
    def valid_std(self) -> float:
        return float(self.valid_final.std())

    @property
    def test_mean(self) -> float:
        return float(self.test_final.mean())

    @property
    def test_std(self) -> float:
        return float(self.test_final.std())

    @property
    def queries_mean(self) -> float:
        """Cells queried (and paid) per run, on average."""
        return float(np.mean([r.queries for r in self.runs]))

    @property
    def valid_curve(self) -> Tuple[np.ndarray, np.ndarray]:
        """(mean, std) over runs of the chosen cell's validation accuracy at each grid time, each (T,);
        nan until every run has queried its first cell."""
        return _mean_std(self.valid_curves)

    @property
    def test_curve(self) -> Tuple[np.ndarray, np.ndarray]:
        return _mean_std(self.test_curves)

    def to_dict(self) -> dict:
        """Plain numbers for JSON: the summary, the mean curves, each run's chosen cell."""
        vm, vs = self.valid_curve
        tm, ts = self.test_curve
        nan_none = lambda a: [None if not math.isfinite(x) else round(float(x), 4) for x in a]   # noqa: E731
        return {
            "algo": self.algo, "name": self.name, "budget_seconds": self.budget, "runs": len(self.runs),
            "seed": self.seed, "signal": truth.LABELS[SIGNAL],
            "valid_acc": {"mean": self.valid_mean, "std": self.valid_std, "label": truth.LABELS["valid_acc"]},
            "test_acc": {"mean": self.test_mean, "std": self.test_std, "label": truth.LABELS["test_acc"]},
            "queries_mean": self.queries_mean,
            "curve": {"seconds": nan_none(self.grid), "valid_mean": nan_none(vm), "valid_std": nan_none(vs),
                      "test_mean": nan_none(tm), "test_std": nan_none(ts)},
            "chosen": [{"arch": r.cell.arch, "valid_acc": r.cell.valid_acc, "test_acc": r.cell.test_acc,
                        "queries": r.queries, "seconds": r.spent} for r in self.runs],
        }


def run_many(algo: str, budget: float = 20000.0, runs: int = 100, seed: int = 0, points: int = 200,
             max_queries: Optional[int] = None) -> QuerySummary:
    """`runs` runs of `algo` (run i seeded by `run_seed(seed, i)`), their anytime curves on a grid of
    `points` times from 0 to the longest run's total seconds."""
    _check(algo, budget, max_queries)
    for name, v, least in (("runs", runs, 1), ("points", points, 2)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < least:
            raise ValueError(f"{name} must be a whole number of at least {least}, got {v!r}")
    done = tuple(run(algo, budget, run_seed(seed, i), max_queries) for i in range(runs))
    grid = np.linspace(0.0, max(r.spent for r in done), points)                   # (T,)
    valid = np.stack([on_grid(r.seconds, r.valid_acc, grid) for r in done])       # (R, T)
    test = np.stack([on_grid(r.seconds, r.test_acc, grid) for r in done])         # (R, T)
    return QuerySummary(algo, float(budget), seed, done, grid, valid, test)
