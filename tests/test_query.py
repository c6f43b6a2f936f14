"""dartsviz.query and `dartsviz query`: the searches keep the benchmark's rules (signal, cost, budget,
chosen cell), each algorithm does what it says, runs repeat given the seed; the command reports
labelled numbers, writes its figure and refuses bad flags in one line."""
import json
import math
import random

import numpy as np
import pytest

from dartsviz import query, truth
from dartsviz.cli import main
from dartsviz.spaces.nb201.genotype import NB201Genotype

T = truth.table()
SIGNAL = getattr(T, query.SIGNAL)                                 # (N,) what the searches see
COST = T.train_seconds * 12 / 200                                 # (N,) simulated 12-epoch seconds


def _edges_changed(a: int, b: int) -> list:
    return [e for e, (x, y) in enumerate(zip(T.ops_of(a), T.ops_of(b))) if x != y]


def test_mutation_changes_exactly_one_edge_to_another_op():
    rng = random.Random(0)
    seen = set()
    for _ in range(3000):
        row = rng.randrange(truth.CELLS)
        child = query.mutate(row, rng)
        changed = _edges_changed(row, child)
        assert len(changed) == 1
        seen.add((changed[0], T.ops_of(child)[changed[0]]))
    assert len(seen) == 6 * 5                                     # every edge, every op reached


def test_the_24_neighbours_are_the_one_edge_changes():
    for row in (0, 6111, truth.CELLS - 1, 4242):
        around = query.neighbours(row)
        slow = {T.row_of(NB201Genotype(T.ops_of(row)[:e] + (op,) + T.ops_of(row)[e + 1:]))
                for e in range(6) for op in truth.PRIMITIVES if op != T.ops_of(row)[e]}
        assert len(around) == 24 and set(around) == slow


@pytest.mark.parametrize("algo", query.ALGOS)
def test_a_run_keeps_the_rules(algo):
    budget = 4000.0
    for seed in range(5):
        r = query.run(algo, budget, seed)
        assert len(set(r.rows.tolist())) == r.queries                          # each cell paid once
        assert np.allclose(r.seconds, np.cumsum(COST[r.rows]))                 # its 12-epoch cost
        assert r.spent >= budget and r.seconds[-2] < budget                    # started while budget was left
        assert r.spent <= budget + COST.max()
        chosen = [int(r.rows[:k + 1][np.argmax(SIGNAL[r.rows[:k + 1]])]) for k in range(r.queries)]
        assert r.row == chosen[-1]                                             # best signal so far, first of equals
        assert r.valid_acc.tolist() == T.valid_acc[chosen].tolist()
        assert r.test_acc.tolist() == T.test_acc[chosen].tolist()


def test_random_search_with_no_budget_limit_finds_the_best_signal():
    r = query.run("random", math.inf, seed=3)
    assert r.queries == truth.CELLS and r.row == int(np.argmax(SIGNAL))
    assert query.run("random", math.inf, seed=3, max_queries=50).queries == 50


def test_evolution_keeps_its_population_and_mutates_the_tournament_winner():
    oracle = query.Oracle(6000.0)
    cycles = []
    query.regularised_evolution(oracle, random.Random(1), on_cycle=lambda pop, parent, child:
                                cycles.append((list(pop), parent, child)))
    assert len(cycles) > 20
    for (before, _, _), (after, parent, child) in zip(cycles, cycles[1:]):
        assert len(after) == query.POPULATION and after == before[1:] + [child]   # the oldest leaves
        assert parent in before and len(_edges_changed(parent, child)) == 1


def test_local_search_ends_its_climbs_at_local_optima():
    optima = []
    oracle = query.Oracle(30000.0)
    query.local_search(oracle, random.Random(2), optima)
    assert optima
    for row in optima:
        assert all(SIGNAL[n] <= SIGNAL[row] for n in query.neighbours(row))
    r = query.run("ls", 30000.0, seed=2)
    assert list(r.local_optima) == optima and r.row in optima


@pytest.mark.parametrize("algo", query.ALGOS)
def test_runs_repeat_given_the_seed(algo):
    a, b = query.run_many(algo, 3000, runs=4, seed=7), query.run_many(algo, 3000, runs=4, seed=7)
    assert [r.rows.tolist() for r in a.runs] == [r.rows.tolist() for r in b.runs]
    assert np.array_equal(a.valid_curves, b.valid_curves, equal_nan=True)
    c = query.run_many(algo, 3000, runs=4, seed=8)
    assert [r.rows.tolist() for r in a.runs] != [r.rows.tolist() for r in c.runs]


def test_run_many_summarises_the_runs_and_their_curves():
    s = query.run_many("rea", 3000, runs=6, seed=0, points=50)
    finals = [r.valid_acc[-1] for r in s.runs]
    assert s.valid_mean == pytest.approx(np.mean(finals)) and s.valid_std == pytest.approx(np.std(finals))
    assert s.test_mean == pytest.approx(np.mean([T.test_acc[r.row] for r in s.runs]))
    assert s.grid.shape == (50,) and s.valid_curves.shape == (6, 50) and s.grid[-1] == max(r.spent for r in s.runs)
    mean, std = s.valid_curve
    assert math.isnan(mean[0]) and mean[-1] == pytest.approx(s.valid_mean) and std[-1] == pytest.approx(s.valid_std)
    d = json.loads(json.dumps(s.to_dict()))
    assert d["valid_acc"]["mean"] == s.valid_mean and len(d["chosen"]) == 6


@pytest.mark.parametrize("kw", [dict(algo="nope"), dict(budget=0), dict(budget=-5.0), dict(budget=math.nan),
                                dict(runs=0), dict(runs=2.5)])
def test_bad_arguments_get_one_line(kw):
    args = {"algo": "rea", "budget": 1000.0, "runs": 2, **kw}
    with pytest.raises(ValueError) as e:
        query.run_many(args.pop("algo"), **args)
    assert len(str(e.value).splitlines()) == 1


def test_the_command_prints_labelled_numbers_and_writes_the_figure(tmp_path, capsys):
    png, svg, out = tmp_path / "anytime.png", tmp_path / "anytime.svg", tmp_path / "q.json"
    assert main(["query", "--algo", "all", "--budget", "2500", "--runs", "3", "--seed", "5",
                 "--plot", str(png), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    for needle in ("random search", "regularised evolution", "local search", "best cell", "median cell",
                   truth.LABELS["valid_acc"], truth.LABELS["test_acc"], truth.LABELS[query.SIGNAL], "± "):
        assert needle in text, needle
    rea = query.run_many("rea", 2500, runs=3, seed=5)
    assert f"{rea.valid_mean:.2f} ± {rea.valid_std:.2f} %" in text
    assert f"{truth.best().valid_acc:.2f} %" in text and f"{truth.median().valid_acc:.2f} %" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(out.read_text())["summaries"][1]["valid_acc"]["mean"] == pytest.approx(rea.valid_mean)
    assert main(["query", "--algo", "random", "--budget", "2500", "--runs", "2", "--plot", str(svg)]) == 0
    assert b"<svg" in svg.read_bytes()[:400]


@pytest.mark.parametrize("flags", [["--budget", "-5"], ["--budget", "nan"], ["--runs", "0"], ["--algo", "bogus"]])
def test_bad_flags_exit_2_in_one_line(flags, capsys):
    with pytest.raises(SystemExit) as e:
        main(["query", *flags])
    assert e.value.code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize("plot", ["missing/folder/a.png", "a.txt"])
def test_an_unusable_plot_path_exits_1_in_one_line(plot, tmp_path, capsys):
    assert main(["query", "--runs", "1", "--budget", "500", "--plot", str(tmp_path / plot)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("dartsviz query: error:")
    assert not (tmp_path / plot).exists()


def test_a_damaged_table_stops_the_command_in_one_line(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "t.npz"
    bad.write_bytes(b"not a table")
    monkeypatch.setattr(truth, "TABLE_PATH", bad)
    monkeypatch.setattr(truth, "_TABLE", None)
    assert main(["query", "--runs", "1", "--budget", "500"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "damaged" in err and "reinstall dartsviz" in err
