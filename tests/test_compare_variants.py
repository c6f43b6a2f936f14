"""Compare of any number of runs, and `dartsviz compare --variants`: one search per variant on
the same data and seed, one report with one row per variant."""
import csv
import json

import pytest
import torch

from dartsviz.cli import main
from dartsviz.runs import RunDir
from dartsviz.search import Search, SearchConfig

torch.set_num_threads(1)

SMALL = dict(layers=3, channels=4, batch_size=16, steps_per_epoch=2, epochs=1, warmup_epochs=0)
VARIANTS = ("darts", "darts_minus", "beta_darts")


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """Three finished searches, one per variant, same seed and data; the second measures lambda_max."""
    root = tmp_path_factory.mktemp("three")
    data = None
    for v in VARIANTS:
        extra = dict(monitor_every=1, monitor_iters=3) if v == "darts_minus" else {}
        s = Search(SearchConfig.preset("tiny", variant=v, **SMALL, **extra), out=root / v, data=data)
        s.run()
        data = s.data
    return [root / v for v in VARIANTS]


def _steps(path):
    return [r for r in RunDir(path).read_records() if r.kind == "step"]


def test_compare_widget_of_three_runs(three, expected_differences):
    from dartsviz.viz.compare import Compare
    cmp = Compare(*three)
    assert [r.label for r in cmp.runs] == list(VARIANTS)
    assert all(len(cmp.images[k].value) > 5000 for k in ("heat_a", "heat_b", "heat_c", "curves", "cost", "collapse"))
    assert "<svg" in cmp.cells["c_normal"].value and "<svg" in cmp.cells["c_reduce"].value
    assert all(v in cmp.summary.value for v in VARIANTS) and len(cmp.titles) == 3
    table = cmp.differences.value
    assert table.startswith(expected_differences([r.genotype for r in cmp.runs], cmp.runs[0].space))
    if "identical" not in table:
        assert all(f"<th>{v}</th>" in table for v in VARIANTS)
    assert cmp.step_button.disabled and cmp.step_button.description == "Step all"


def test_compare_needs_two_runs_and_one_label_per_run(three):
    from dartsviz.viz.compare import Compare, compare_report, load_runs
    assert [r.label for r in load_runs([three])] == list(VARIANTS)            # a list of runs works too
    with pytest.raises(ValueError, match="two or more runs, got 1"):
        Compare(three[0])
    with pytest.raises(ValueError, match="2 labels for 3 runs"):
        Compare(*three, labels=["x", "y"])
    with pytest.raises(ValueError, match="report folder"):
        compare_report(three[0], three[1])


def test_compare_report_of_three_runs_draws_their_diagnostics(three, tmp_path):
    from dartsviz.viz.compare import draw_compare_collapse, kept_ops_table
    from dartsviz.viz.rundata import load_run
    page = main(["compare", *map(str, three), "--out", str(tmp_path / "r"), "--labels", "A", "B", "C"])
    assert page == 0
    text = (tmp_path / "r" / "index.html").read_text()
    for k in "abc":
        assert (tmp_path / "r" / f"heatmap_{k}.png").stat().st_size > 5000
        assert (tmp_path / "r" / f"cell_{k}_normal.svg").is_file()
    assert (tmp_path / "r" / "collapse.png").stat().st_size > 5000 and "A vs B vs C" in text
    runs = [load_run(p) for p in three]
    fig = draw_compare_collapse(runs)
    free = [ln for ln in fig.axes[0].get_lines() if ln.get_label() in VARIANTS]
    assert [ln.get_label() for ln in free] == list(VARIANTS)
    for ln, path in zip(free, three):
        assert list(ln.get_ydata()) == [r.param_free_ops for r in _steps(path)]
    lam = fig.axes[1].get_lines()
    assert [ln.get_label() for ln in lam] == ["darts_minus"]                 # the only run that measured it
    assert list(lam[0].get_ydata()) == pytest.approx([r.lambda_max for r in _steps(three[1])])
    last = f"{_steps(three[1])[-1].lambda_max:.4g}"
    assert last in text                                                       # the summary's last lambda_max
    rows = kept_ops_table(runs)
    assert f"{len(rows)} kept edge(s) differ" in text if rows else "identical" in text


def test_compare_of_one_run_directory_is_one_line(three, capsys):
    assert main(["compare", str(three[0])]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "dartsviz compare: error: compare needs two run directories (or more), got 1"


def test_dartsviz_compare_variants_writes_one_row_per_variant(tmp_path, capsys):
    out = tmp_path / "report"
    rc = main(["compare", "--variants", "darts", "beta_darts", "--epochs", "1", "--steps-per-epoch", "2",
               "--seed", "5", "--monitor-every", "2", "--monitor-iters", "3", "--out", str(out), "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert printed.count("| darts |") == 1 and printed.count("| beta_darts |") == 1
    rows = list(csv.DictReader((out / "table.csv").open()))
    assert [r["arm"] for r in rows] == ["darts", "beta_darts"]
    result = json.loads((out / "results.json").read_text())
    assert result["settings"]["seeds"] == [5] and result["settings"]["isolated"]     # a fresh process each on a CPU
    assert [r["arm"] for r in result["runs"]] == ["darts", "beta_darts"]
    for row, run in zip(result["rows"], result["runs"]):
        path = out / run["search_dir"]
        config = RunDir(path).read_config()
        assert (config["variant"], config["seed"], config["epochs"], config["steps_per_epoch"]) == \
            (row["arm"], 5, 1, 2)
        steps = _steps(path)
        assert len(steps) == row["steps"] == 2 and all(r.variant == row["arm"] for r in steps)
        assert row["param_free_ops"] == steps[-1].param_free_ops and row["max_skip"] == steps[-1].max_skip
        assert row["lambda_max"] == steps[1].lambda_max and steps[0].lambda_max is None
        assert row["genotype"] == RunDir(path).read_genotype().to_text()
        assert row["memory_mb"] > 0 and row["median_s"] > 0
    assert result["rows"][1]["monitors"] == {"lambda_t": 0.0}
    page = (out / "index.html").read_text()
    assert "<h2>Variants</h2>" in page and "lambda_t 0" in page and "Collapse diagnostics" in page
    assert (out / "collapse.png").is_file() and (out / "table.md").read_text().count("\n") == 4


@pytest.mark.parametrize("argv, message", [
    (["--variants", "darts", "nope"], "unknown variant 'nope'; known variants: darts, "),
    (["--variants", "darts", "darts"], "variant 'darts' is given twice"),
    (["--variants", "darts"], "two or more variants, got 1"),
    (["--variants", "darts", "pc_darts", "--space", "rnn"], "variant 'pc_darts' works in the cnn space"),
    (["--variants", "darts", "pc_darts", "--epochs", "0"], "--epochs must be positive, got 0"),
    (["--end-to-end", "--epochs", "3"], "--epochs goes with --variants; --end-to-end takes --search-epochs"),
])
def test_a_bad_variants_command_is_one_line_and_writes_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "report"
    assert main(["compare", *argv, "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dartsviz compare: error: ") and message in err, err
    assert not out.exists()


def test_variants_end_to_end_trains_each_derived_cell(tmp_path):
    from dartsviz.experiments import compare_variants, format_table
    res = compare_variants(["darts", "sdarts_rs"], tmp_path / "e2e", epochs=1, steps_per_epoch=2, end_to_end=True,
                           train_epochs=1, isolate=False, preset="tiny")
    assert [r["arm"] for r in res["rows"]] == ["darts", "sdarts_rs"] and not res["settings"]["isolated"]
    for row, run in zip(res["rows"], res["runs"]):
        train = RunDir(tmp_path / "e2e" / run["train_dir"])
        last = [r for r in train.read_records() if r.kind == "epoch"][-1]
        assert row["test_acc_mean"] == run["test_acc"] == last["test_acc"] and row["params_mean"] > 0
        assert train.read_genotype().to_text() == row["genotype"]                 # the searched cell
    assert "trained cell test acc" in format_table(res)
    assert "trained cell test acc" in (tmp_path / "e2e" / "index.html").read_text()
