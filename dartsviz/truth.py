"""truth: what NAS-Bench-201 says of an nb201 cell, read from the table shipped in dartsviz/data.

    >>> from dartsviz import truth
    >>> truth.describe("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|")
    'true accuracy 91.61 % (CIFAR-10, 200 epochs, validation, cifar10-valid split) · rank 1 of 15,625'

Every number is a CIFAR-10 (or, for the 12-epoch runs, CIFAR-100 / ImageNet16-120) fact from the
benchmark, a mean over its training seeds; `LABELS` says what each one is. A search on another
data set (digits) can only ask "what this cell scores on CIFAR-10", and `describe` says so.
The table is read once, on first use, and checked (sha256, rows); a damaged or missing file
raises `TruthTableError` with one line. Provenance and licences: dartsviz/data/NB201_TABLE.md.
"""
from __future__ import annotations

import hashlib
import io
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from .spaces.nb201.genotype import ALL_SKIP, EDGES, FORM, PRIMITIVES, NB201Genotype, parse_genotype

TABLE_PATH = Path(__file__).resolve().parent / "data" / "nb201_cifar10.npz"
TABLE_SHA256 = "0be7a02fdf729c1bc33953b95b436fef2aaa81d9585a7dd577a9aa6885d00173"   # bench/make_nb201_table.py
CELLS = len(PRIMITIVES) ** len(EDGES)                       # 15,625

# the CSV's columns (bench/make_nb201_table.py) -> CellTruth's field names
FIELD_OF = {
    "c10valid_valid_acc_200": "valid_acc",
    "c10valid_test_acc_200": "test_acc",
    "c10valid_train_seconds_200": "train_seconds",
    "c10_test_acc_12": "c10_test_12",
    "c10valid_valid_acc_12": "c10valid_valid_12",
    "c100_test_acc_12": "c100_test_12",
    "c100_valid_acc_12": "c100_valid_12",
    "in16_test_acc_12": "in16_test_12",
    "in16_valid_acc_12": "in16_valid_12",
}
COLUMNS = tuple(FIELD_OF)
NUMBERS = tuple(FIELD_OF.values())

LABELS: Dict[str, str] = {
    "bench_index": "the cell's index in NAS-Bench-201 (NATS-Bench topology space)",
    "valid_acc": "CIFAR-10, 200 epochs, validation, cifar10-valid split",
    "test_acc": "CIFAR-10, 200 epochs, test set, cifar10-valid split (trained on 25k images)",
    "train_seconds": "CIFAR-10, 200 epochs, training time in seconds, cifar10-valid split",
    "c10_test_12": "CIFAR-10, 12 epochs, test set, cifar10 split (trained on all 50k images)",
    "c10valid_valid_12": "CIFAR-10, 12 epochs, validation, cifar10-valid split",
    "c100_test_12": "CIFAR-100, 12 epochs, test set",
    "c100_valid_12": "CIFAR-100, 12 epochs, validation",
    "in16_test_12": "ImageNet16-120, 12 epochs, test set",
    "in16_valid_12": "ImageNet16-120, 12 epochs, validation",
    "rank": f"rank among the {CELLS:,} cells by CIFAR-10, 200 epochs, validation (1 = best; ties share the better rank)",
    "percentile": f"% of the {CELLS:,} cells it beats or equals (itself included) by CIFAR-10, 200 epochs, validation",
}
UNITS = {name: ("s" if name == "train_seconds" else "%") for name in NUMBERS}

_OP_COLUMN = {op: i for i, op in enumerate(PRIMITIVES)}
_TEXT = FORM.replace("op", "{}")                            # "|{}~0|+|{}~0|{}~1|+|..."


class TruthTableError(ValueError):
    """The shipped table is missing or damaged (one line; reinstalling dartsviz fixes it)."""


@dataclass(frozen=True)
class CellTruth:
    """What the benchmark says of one cell; `LABELS[name]` says what each number is."""

    arch: str
    bench_index: int
    valid_acc: float
    test_acc: float
    train_seconds: float
    c10_test_12: float
    c10valid_valid_12: float
    c100_test_12: float
    c100_valid_12: float
    in16_test_12: float
    in16_valid_12: float
    rank: int
    percentile: float

    @property
    def genotype(self) -> NB201Genotype:
        return parse_genotype(self.arch)

    def describe(self, dataset: Optional[str] = None) -> str:
        """One labelled line; `dataset`: where the search ran (not "cifar10": said as such)."""
        where = "true accuracy" if dataset is None or str(dataset).strip().lower() == "cifar10" else \
            f"what this cell scores on CIFAR-10 (the search ran on {dataset}):"
        return f"{where} {self.valid_acc:.2f} % ({LABELS['valid_acc']}) · rank {self.rank:,} of {CELLS:,}"

    def lines(self) -> List[str]:
        """Every number with its unit and label, one per line."""
        out = [f"{self.arch}  (NB-201 index {self.bench_index})"]
        out += [f"{getattr(self, n):9.3f} {UNITS[n]}  {LABELS[n]}" for n in NUMBERS]
        out += [f"{self.rank:9,d}    {LABELS['rank']}", f"{self.percentile:9.3f} %  {LABELS['percentile']}"]
        return out

    def to_dict(self) -> dict:
        return asdict(self)


class TruthTable:
    """The whole table as read-only arrays of shape (15625,), row r = the cell at position r of
    `all_genotypes()` (r = sum(op_column[e] * 5 ** (5 - e))): `bench_index`, the numbers of
    `NUMBERS` (valid_acc, test_acc, ...), `rank`, `percentile`."""

    def __init__(self, bench_index: np.ndarray, numbers: Dict[str, np.ndarray]):
        self.bench_index = bench_index                                         # (N,) int
        for name, a in numbers.items():
            setattr(self, name, a)                                             # (N,) float64
        v = numbers["valid_acc"]
        s = np.sort(v)                                                         # (N,) ascending
        at_most = np.searchsorted(s, v, side="right")                          # (N,) cells <= each
        self.rank = 1 + (len(v) - at_most)                                     # (N,) 1 + strictly better
        self.percentile = 100.0 * at_most / len(v)                             # (N,)
        for a in (self.bench_index, self.rank, self.percentile, *numbers.values()):
            a.flags.writeable = False
        # Python lists: a row's numbers in microseconds, no numpy scalars
        self._rows = list(zip(self.bench_index.tolist(), *(numbers[n].tolist() for n in NUMBERS),
                              self.rank.tolist(), self.percentile.tolist()))
        self._cells: Dict[int, CellTruth] = {}                                 # row -> CellTruth, as asked

    def __len__(self) -> int:
        return len(self.bench_index)

    def row_of(self, cell) -> int:
        """The row of `cell`: an NB201Genotype, its text, or its 6 op columns (0..4, edge order)."""
        if type(cell) is NB201Genotype:                                        # the fast path
            ops = cell.ops
        elif isinstance(cell, str):
            ops = parse_genotype(cell).ops
        elif isinstance(cell, NB201Genotype):
            ops = cell.ops
        elif isinstance(cell, (tuple, list, np.ndarray)) and len(cell) == len(EDGES) and \
                all(isinstance(c, (int, np.integer)) and 0 <= c < len(PRIMITIVES) for c in cell):
            r = 0
            for c in cell:
                r = r * len(PRIMITIVES) + int(c)
            return r
        else:
            raise ValueError(f"the NB-201 table holds nb201 cells only (an NB201Genotype, its text or its "
                             f"{len(EDGES)} op columns); got {type(cell).__name__} {str(cell)[:60]!r}")
        r = 0
        for op in ops:
            r = r * len(PRIMITIVES) + _OP_COLUMN[op]
        return r

    def ops_of(self, row: int) -> Tuple[str, ...]:
        """The op names of the cell at `row`, in edge order."""
        if not 0 <= row < CELLS:
            raise ValueError(f"row {row} is outside the table's 0..{CELLS - 1}")
        out = []
        for _ in EDGES:
            row, c = divmod(row, len(PRIMITIVES))
            out.append(PRIMITIVES[c])
        return tuple(reversed(out))

    def genotype(self, row: int) -> NB201Genotype:
        return NB201Genotype(self.ops_of(row))

    def truth(self, row: int) -> CellTruth:
        """The CellTruth of the cell at `row`."""
        c = self._cells.get(row)
        if c is None:
            c = self._cells[row] = CellTruth(_TEXT.format(*self.ops_of(row)), *self._rows[row])
        return c

    def lookup(self, cell) -> CellTruth:
        return self.truth(self.row_of(cell))


_TABLE: Optional[TruthTable] = None
_LOCK = threading.Lock()


def _damaged(path, why: str) -> TruthTableError:
    return TruthTableError(f"the NB-201 table {path} is damaged ({why}); reinstall dartsviz")


def load(path=None, sha256: Optional[str] = TABLE_SHA256) -> TruthTable:
    """Read and check a table file (default: the shipped one; `sha256=None` skips the checksum).
    Use `table()` for the shipped table, read once."""
    path = Path(path) if path is not None else TABLE_PATH
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TruthTableError(f"the NB-201 table {path} cannot be read ({e.strerror or e}); "
                              f"reinstall dartsviz") from None
    got = hashlib.sha256(data).hexdigest()
    if sha256 is not None and got != sha256:
        raise _damaged(path, f"sha256 {got[:16]}..., expected {sha256[:16]}...")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {name: z[name] for name in ("index", "scale", *COLUMNS)}
    except KeyError as e:
        raise _damaged(path, f"no array {e}") from None
    except Exception as e:                   # a zip or .npy that does not read: one line, whatever numpy says
        raise _damaged(path, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'unreadable'}") from None
    index = arrays.pop("index")
    scale = arrays.pop("scale")
    shapes = {a.shape for a in arrays.values()} | {index.shape}
    if shapes != {(CELLS,)}:
        raise _damaged(path, f"expected {CELLS:,} rows in every column, got shapes {sorted(shapes)}")
    if scale.shape != () or scale <= 0:
        raise _damaged(path, f"its scale is {scale!r}, not one positive number")
    if not np.array_equal(np.sort(index), np.arange(CELLS)):
        raise _damaged(path, "its benchmark indices are not 0..15624 once each")
    numbers = {FIELD_OF[c]: a.astype(np.float64) / float(scale) for c, a in arrays.items()}   # (N,) each
    return TruthTable(index.astype(np.int64), numbers)


def table() -> TruthTable:
    """The shipped table, read and checked on first use."""
    global _TABLE
    if _TABLE is None:
        with _LOCK:
            if _TABLE is None:
                _TABLE = load()
    return _TABLE


def lookup(cell) -> CellTruth:
    """What the benchmark says of `cell` (an NB201Genotype, its text, or its 6 op columns).
    Bad text or another space's genotype: a one-line ValueError. A few microseconds for a genotype."""
    t = _TABLE if _TABLE is not None else table()
    return t.truth(t.row_of(cell))


def row_of(cell) -> int:
    """`cell`'s row in the table = its position in `all_genotypes()`."""
    return table().row_of(cell)


def lookup_row(row: int) -> CellTruth:
    return table().truth(row)


def describe(cell, dataset: Optional[str] = None) -> str:
    """One labelled line, e.g. 'true accuracy 91.61 % (CIFAR-10, 200 epochs, validation,
    cifar10-valid split) · rank 1 of 15,625'; a search on another data set gets 'what this
    cell scores on CIFAR-10 (the search ran on digits) ...'."""
    return lookup(cell).describe(dataset)


def best() -> CellTruth:
    """The cell with the highest 200-epoch validation accuracy (the first row on a tie)."""
    t = table()
    return t.truth(int(np.argmax(t.valid_acc)))


def median() -> CellTruth:
    """The median cell by 200-epoch validation accuracy: 15,625 is odd, so its `valid_acc` is
    the median accuracy (the first row holding it, if several do)."""
    t = table()
    m = np.sort(t.valid_acc)[CELLS // 2]
    return t.truth(int(np.flatnonzero(t.valid_acc == m)[0]))


def all_skip() -> CellTruth:
    """The all-`skip_connect` cell, where DARTS collapses on this space."""
    return lookup(ALL_SKIP)
