"""dartsviz.truth: the shipped NAS-Bench-201 table, checked against the published facts, against the
shared CSV it was made from (when present) and against slow recomputations of ranks and medians."""
import csv
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from dartsviz import truth
from dartsviz.spaces.nb201.genotype import ALL_SKIP, PRIMITIVES, all_genotypes, parse_genotype, random_genotype

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "nb201" / "cifar10_200ep_and_12ep.csv"


def test_the_published_cells():
    skip = truth.all_skip()
    assert skip.arch == ALL_SKIP.to_text() and round(skip.valid_acc, 2) == 39.77
    best = truth.lookup(BEST)
    assert best.rank == 1 and round(best.valid_acc, 2) == 91.61 and best.percentile == 100.0
    assert truth.best() == best


def test_cells_that_compute_nothing_score_at_chance_and_no_other_does():
    t = truth.table()
    dead = np.array([not g.reaches_output() for g in all_genotypes()])            # (N,)
    assert dead.any() and not dead.all()
    for acc in (t.valid_acc, t.test_acc, t.c10valid_valid_12):
        assert np.all(np.abs(acc[dead] - 10) < 1)                                 # 10 classes
    assert t.valid_acc[~dead].min() > 20


def test_rows_follow_all_genotypes_and_every_form_of_a_cell_agrees():
    t = truth.table()
    cells = all_genotypes()
    assert len(t) == truth.CELLS == len(cells) == 15625
    assert [t.row_of(g) for g in cells] == list(range(len(cells)))
    for i in random.Random(0).sample(range(len(cells)), 200) + [0, len(cells) - 1]:
        g = cells[i]
        by_genotype = truth.lookup(g)
        assert by_genotype.arch == g.to_text() and t.genotype(i) == g and by_genotype.genotype == g
        assert truth.lookup(g.to_text()) == by_genotype == truth.lookup(g.index_of_ops()) == truth.lookup_row(i)
        assert by_genotype.valid_acc == t.valid_acc[i] and by_genotype.bench_index == t.bench_index[i]


def test_rank_and_percentile_against_sorting_everything():
    values = truth.table().valid_acc.tolist()
    n = len(values)
    cells = [random_genotype(seed) for seed in range(40)] + [ALL_SKIP, parse_genotype(BEST)]
    for g in cells:
        c = truth.lookup(g)
        assert c.rank == 1 + sum(v > c.valid_acc for v in values)
        assert c.percentile == pytest.approx(100 * sum(v <= c.valid_acc for v in values) / n)
    worst = truth.lookup_row(int(np.argmin(values)))
    assert worst.rank == n - values.count(min(values)) + 1


def test_median():
    values = sorted(truth.table().valid_acc.tolist())
    m = truth.median()
    assert m.valid_acc == values[len(values) // 2] == float(np.median(values))
    assert round(m.valid_acc, 2) == 87.31
    assert sum(v < m.valid_acc for v in values) <= len(values) // 2 <= sum(v <= m.valid_acc for v in values) - 1


def test_labels_say_what_every_number_is():
    c = truth.lookup(BEST)
    assert truth.describe(BEST) == c.describe() == \
        "true accuracy 91.61 % (CIFAR-10, 200 epochs, validation, cifar10-valid split) · rank 1 of 15,625"
    assert c.describe("cifar10").startswith("true accuracy")
    other = truth.describe(ALL_SKIP, dataset="digits")
    assert other.startswith("what this cell scores on CIFAR-10") and "digits" in other and "39.77 %" in other
    lines = c.lines()
    for name in (*truth.NUMBERS, "rank", "percentile"):
        assert any(truth.LABELS[name] in line for line in lines), name
    assert set(c.to_dict()) - {"arch"} <= set(truth.LABELS)


def test_the_arrays_are_read_only():
    t = truth.table()
    with pytest.raises(ValueError):
        t.valid_acc[0] = 100.0


@pytest.mark.parametrize("bad", [
    "|nor_conv_3x3~0|+|bogus~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|",
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|",
    "Genotype(normal=[('sep_conv_3x3', 0)], normal_concat=[2], reduce=[], reduce_concat=[])",
    12, (0, 1, 2), (0, 1, 2, 3, 4, 5),
])
def test_bad_cells_get_one_line(bad):
    with pytest.raises(ValueError) as e:
        truth.lookup(bad)
    assert len(str(e.value).splitlines()) == 1 and not isinstance(e.value, truth.TruthTableError)


def test_another_space_s_genotype_gets_one_line():
    from dartsviz.spaces.cnn import DARTS_V2
    with pytest.raises(ValueError, match="nb201 cells only") as e:
        truth.lookup(DARTS_V2)
    assert len(str(e.value).splitlines()) == 1


def _one_line_damage(excinfo, path):
    msg = str(excinfo.value)
    assert len(msg.splitlines()) == 1 and str(path) in msg and "reinstall dartsviz" in msg
    return msg


def test_a_damaged_or_missing_table_fails_in_one_line(tmp_path, monkeypatch):
    data = bytearray(truth.TABLE_PATH.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "nb201_cifar10.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(truth.TruthTableError) as e:
        truth.load(bad)
    assert "damaged" in _one_line_damage(e, bad) and "sha256" in str(e.value)
    with pytest.raises(truth.TruthTableError) as e:
        truth.load(tmp_path / "gone.npz")
    _one_line_damage(e, tmp_path / "gone.npz")
    with pytest.raises(truth.TruthTableError) as e:               # not a zip at all, checksum not asked
        truth.load(bad, sha256=None)
    assert "damaged" in _one_line_damage(e, bad)
    # the module's own table: the first lookup reads the damaged file and says so
    monkeypatch.setattr(truth, "TABLE_PATH", bad)
    monkeypatch.setattr(truth, "_TABLE", None)
    with pytest.raises(truth.TruthTableError) as e:
        truth.lookup(BEST)
    _one_line_damage(e, bad)


def test_a_table_with_missing_rows_is_damaged(tmp_path):
    good = truth.TABLE_PATH
    with np.load(good) as z:
        arrays = {k: z[k] for k in z.files}
    short = dict(arrays, c10valid_valid_acc_200=arrays["c10valid_valid_acc_200"][:-1])
    np.savez_compressed(tmp_path / "short.npz", **short)
    with pytest.raises(truth.TruthTableError, match="15,625 rows"):
        truth.load(tmp_path / "short.npz", sha256=None)
    del arrays["in16_valid_acc_12"]
    np.savez_compressed(tmp_path / "lacking.npz", **arrays)
    with pytest.raises(truth.TruthTableError, match="no array"):
        truth.load(tmp_path / "lacking.npz", sha256=None)
    copy = tmp_path / "copy.npz"
    shutil.copy(good, copy)
    assert truth.load(copy).valid_acc.tolist() == truth.table().valid_acc.tolist()   # the checksum of a true copy


@pytest.mark.skipif(not CSV.is_file(), reason="the shared CSV the table was made from is not here")
def test_the_shipped_table_holds_the_csv_s_numbers():
    with open(CSV, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == truth.CELLS
    for r in rows:
        c = truth.lookup(r["arch"])
        assert c.bench_index == int(r["index"])
        for column, name in truth.FIELD_OF.items():
            assert getattr(c, name) == float(r[column]), (r["arch"], column)


def test_op_columns_are_the_genotype_s():
    assert truth.table().ops_of(0) == ("none",) * 6 and truth.table().ops_of(truth.CELLS - 1) == (PRIMITIVES[-1],) * 6
    with pytest.raises(ValueError):
        truth.lookup_row(truth.CELLS)
