"""The experiments runner: the random baseline and the end-to-end comparison at a tiny budget."""
import json
import random
import statistics

import pytest
import torch

from dartsviz import random_genotype
from dartsviz.cli import main
from dartsviz.experiments import compare_end_to_end, format_table, random_baseline, summarize, table_csv
from dartsviz.data import load_data
from dartsviz.search import SearchConfig
from dartsviz.train import TrainConfig

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", device="cpu")


def tiny_train(**kw):
    return TrainConfig.preset("tiny", **{**dict(device="cpu", layers=3, channels=4, epochs=1, steps_per_epoch=2,
                                                aux_widths=(8, 8)), **kw})


def tiny_search(**kw):
    return SearchConfig.preset("tiny", **{**dict(device="cpu", layers=3, channels=4, steps_per_epoch=2), **kw})


def test_random_baseline_is_seeded_and_reports_mean_std(digits):
    res = random_baseline(2, tiny_train(), seed=4, data=digits)
    rng = random.Random(4)
    assert [r["genotype"] for r in res["runs"]] == [random_genotype(rng).to_text() for _ in range(2)]
    accs = [r["test_acc"] for r in res["runs"]]
    assert res["test_acc_mean"] == pytest.approx(statistics.fmean(accs))
    assert res["test_acc_std"] == pytest.approx(statistics.stdev(accs))
    with pytest.raises(ValueError, match="positive"):
        random_baseline(0, tiny_train(), data=digits)


def test_an_interrupted_cell_ends_the_random_baseline_and_writes_no_summary(digits, tmp_path):
    def run(train, i):                                    # the command line's hook: here a Ctrl-C at step 1
        train.subscribe(lambda r: r.kind == "step" and r.step == 1 and train.pause())
        train.run()
    res = random_baseline(2, tiny_train(), data=digits, out=tmp_path, run=run)
    assert res["interrupted"] and res["runs"] == [] and not (tmp_path / "results.json").exists()
    runs = tmp_path / "runs"
    assert (runs / "train-random-seed0-0").is_dir() and not (runs / "train-random-seed0-1").exists()  # the cell reached is kept


def test_comparison_table_for_two_seeds(tmp_path, digits):
    lines = []
    res = compare_end_to_end(seeds=(0, 1), random=1, search_config=tiny_search(), train_config=tiny_train(),
                             search_epochs=1, out=tmp_path, data=digits, log=lines.append, isolate=False)
    assert all(a["search"]["warmup_epochs"] == 0                 # a 1-epoch search still moves alpha
               for a in res["settings"]["arms"] if a["search"])
    runs = res["runs"]
    assert [(r["method"], r["seed"]) for r in runs] == [
        ("DARTS (first order)", 0), ("DARTS (second order)", 0), ("random", 0),
        ("DARTS (first order)", 1), ("DARTS (second order)", 1), ("random", 1)]
    for r in runs:
        assert 0 <= r["test_acc"] <= 1 and r["params"] > 0 and r["macs"] > 0 and r["train_seconds"] > 0
        assert (r["search_seconds"] > 0) == (r["method"] != "random")
    # each searched cell is the genotype its search run directory recorded
    saved = json.loads((tmp_path / "runs" / "o2-seed1" / "genotype.json").read_text())
    from dartsviz import Genotype
    assert Genotype.from_dict(saved).to_text() == runs[4]["genotype"]
    rows = {r["method"]: r for r in res["rows"]}
    assert set(rows) == {"DARTS (first order)", "DARTS (second order)", "random"}
    o2 = [r["test_acc"] for r in runs if r["method"] == "DARTS (second order)"]
    assert rows["DARTS (second order)"]["runs"] == 2
    assert rows["DARTS (second order)"]["test_acc_mean"] == pytest.approx(statistics.fmean(o2))
    assert rows["DARTS (second order)"]["test_acc_std"] == pytest.approx(statistics.stdev(o2))
    for name in ("table.md", "table.csv", "results.json", "comparison.png", "index.html"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "results.json").read_text())["rows"] == json.loads(json.dumps(res["rows"]))
    assert "DARTS (second order)" in (tmp_path / "table.md").read_text()
    assert any("search DARTS (first order), seed 1" in m for m in lines)


def test_table_formats_against_hand_made_rows():
    runs = [{"arm": "random", "method": "random", "test_acc": a, "params": p, "macs": 10, "search_seconds": 0.0,
             "train_seconds": 2.0} for a, p in ((0.9, 100), (0.8, 300))]
    rows = summarize(runs)
    assert rows[0]["params_mean"] == 200 and rows[0]["test_acc_mean"] == pytest.approx(0.85)
    md = format_table(rows)
    assert md.splitlines()[0].startswith("| method | runs | test acc (%)")
    assert "| random | 2 | 85.00 ± 7.07 | 200 | 10 | 0.0 | 2.0 | 3.29 ± 0.15 |" in md
    assert table_csv(rows).splitlines()[0].startswith("method,arm,runs,test_acc_mean,test_acc_std")


def test_comparison_bad_settings_fail_before_training(digits):
    with pytest.raises(ValueError, match="at least one seed"):
        compare_end_to_end(seeds=(), data=digits)
    with pytest.raises(ValueError, match="orders"):
        compare_end_to_end(seeds=(0,), orders=(3,), data=digits)
    with pytest.raises(ValueError, match="differ"):
        compare_end_to_end(seeds=(0,), train_config=tiny_train(dataset="synthetic"), data=digits)


def test_compare_e2e_command(tmp_path, capsys):
    rc = main(["compare", "--end-to-end", "--seeds", "3", "--orders", "1", "--random", "1", "--search-epochs", "1",
                           "--train-epochs", "1", "--steps-per-epoch", "2", "--device", "cpu",
                           "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "| DARTS (first order) | 1 |" in out and "| random | 1 |" in out and "comparison.png" in out
    assert (tmp_path / "table.csv").is_file()
    assert main(["compare", "--end-to-end", "--seeds", "0", "--train-epochs", "0", "--out", str(tmp_path / "x")]) == 1
    assert "must be positive" in capsys.readouterr().err


def test_compare_end_to_end_options_parse():
    from dartsviz.cli import build_parser
    args = build_parser().parse_args(["compare", "--end-to-end", "--seeds", "0", "2", "--random", "3", "--out", "d",
                                      "--train-epochs", "4"])
    assert (args.seeds, args.random, args.out, args.train_epochs, args.orders) == ([0, 2], 3, "d", 4, [1, 2])


@pytest.mark.parametrize("space, heading", [("cnn", "parameter-free ops (normal cell)"),
                                            ("rnn", "identity edges (recurrent cell)")])
def test_the_search_table_names_what_it_counts_in_the_spaces_words(space, heading):
    from dartsviz.experiments import table_columns
    from dartsviz.summary import collapse_heading
    from dartsviz.spaces import get_space
    assert collapse_heading(get_space(space)) == heading
    rows = [{"method": "darts", "arm": "darts", "runs": 1, "param_free_ops": 3, "search_seconds_mean": 1.0}]
    headings = [h for h, _ in table_columns(rows, space, "search")]
    assert heading in headings and (space == "cnn") == any("normal cell" in h for h in headings)
