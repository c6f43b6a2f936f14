"""The NAS-Bench-201 space: genotype text, derivation, the authors' networks counted, search and
training through the seams, and every step's true accuracy."""
import itertools
import random
import re

import numpy as np
import pytest
import torch

from dartsviz import Search, SearchConfig, get_space, truth
from dartsviz.cli import main
from dartsviz.runs import RunDir
from dartsviz.spaces.nb201.genotype import (ALL_SKIP, EDGES, PRIMITIVES, NB201Genotype, all_genotypes, derive,
                                            parse_genotype, random_genotype)
from dartsviz.spaces.nb201.network import NB201Network, NB201SearchNetwork, SearchCell

torch.set_num_threads(1)
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


# ---- genotype ------------------------------------------------------------------------------
def test_text_round_trips_and_json_for_random_cells():
    rng = random.Random(0)
    for _ in range(50):
        g = random_genotype(rng)
        assert parse_genotype(g.to_text()) == g == NB201Genotype.from_dict(g.to_dict())
    assert parse_genotype(BEST).ops == ("nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect",
                                        "nor_conv_3x3", "nor_conv_1x1")
    assert len(set(all_genotypes())) == 5 ** 6


@pytest.mark.parametrize("text, message", [
    ("|conv_7x7~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|", "unknown op 'conv_7x7'"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|none~2|", "node 2 needs 2 edges"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|", "3 nodes separated by '+'"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~2|+|skip_connect~0|nor_conv_3x3~1|none~2|", "~2 in node 2 is out of range"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|none~2|", "two edges from node 0"),
    ("Genotype(normal=[('sep_conv_3x3', 0)], normal_concat=[2], reduce=[], reduce_concat=[2])", "DARTS cnn or rnn"),
    ("Genotype(recurrent=[('sigmoid', 0)], concat=range(1, 2))", "DARTS cnn or rnn"),
])
def test_bad_text_gets_one_line(text, message):
    with pytest.raises(ValueError, match=re.escape(message)) as e:
        parse_genotype(text)
    assert "\n" not in str(e.value)


def test_derivation_is_the_argmax_of_every_edge_none_included():
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.dirichlet(np.ones(5), size=6)                              # (6, 5)
        expected = tuple(PRIMITIVES[max(range(5), key=lambda o: p[e, o])] for e in range(6))
        assert derive(p).ops == expected
    p = np.full((6, 5), 0.1)
    p[:, 0] = 0.6                                                          # none strongest everywhere
    g = derive(p)
    assert g.ops == ("none",) * 6 and not g.reaches_output() and g.edges() == []


def test_reaches_output_against_paths():
    for g in itertools.islice(all_genotypes(), 0, None, 97):
        live = {p for p in [(0, 1, 3), (0, 2, 3), (0, 1, 2, 3), (0, 3)]
                if all(g.ops[EDGES.index((a, b))] != "none" for a, b in zip(p, p[1:]))}
        assert g.reaches_output() == bool(live)


# ---- the authors' networks, counted from the layer shapes -----------------------------------------
def _count(C, N, classes, in_ch, edge):
    """Stem, the two residual reductions, the head, and `edge(width)` per edge of each cell."""
    def rcb(cin, cout, k, affine=True):                        # ReLU, conv (bias iff not affine), BN
        return cin * cout * k * k + (0 if affine else cout) + (2 * cout if affine else 0)
    total = in_ch * C * 9 + 2 * C                              # stem conv (no bias) + BN
    for cin, cout in ((C, 2 * C), (2 * C, 4 * C)):             # conv_a, conv_b, 1x1 shortcut
        total += rcb(cin, cout, 3) + rcb(cout, cout, 3) + cin * cout
    total += 2 * 4 * C + 4 * C * classes + classes             # last BN, classifier
    return total + sum(N * edge(w) for w in (C, 2 * C, 4 * C))


def _eval_edge(ops):
    own = {"nor_conv_1x1": lambda c: c * c + 2 * c, "nor_conv_3x3": lambda c: 9 * c * c + 2 * c}
    return lambda w: sum(own.get(op, lambda c: 0)(w) for op in ops)


@pytest.mark.parametrize("C, N, classes, in_ch", [(16, 5, 10, 3), (8, 1, 10, 1), (12, 2, 100, 3)])
def test_parameter_counts_follow_the_layer_shapes(C, N, classes, in_ch):
    search = NB201SearchNetwork(C, N, classes, in_ch)
    searched = sum(p.numel() for p in search.weight_parameters())
    assert searched == _count(C, N, classes, in_ch, lambda w: 6 * ((w * w + w) + (9 * w * w + w)))
    assert [tuple(a.shape) for a in search.arch_parameters()] == [(6, 5)]
    rng = random.Random(C)
    for g in [ALL_SKIP, parse_genotype(BEST), NB201Genotype(("nor_conv_3x3",) * 6)] + \
             [random_genotype(rng) for _ in range(5)]:
        assert NB201Network(g, C, N, classes, in_ch).num_parameters() == _count(C, N, classes, in_ch, _eval_edge(g.ops))


def test_the_benchmark_networks_have_the_authors_counts():
    """C=16, N=5: the formula above gives the numbers the authors' code prints."""
    assert _count(16, 5, 10, 3, lambda w: 6 * (10 * w * w + 2 * w)) == 1_692_826          # TinyNetworkDarts
    assert _count(16, 5, 10, 3, _eval_edge(ALL_SKIP.ops)) == 73_306
    assert _count(16, 5, 10, 3, _eval_edge(parse_genotype(BEST).ops)) == 1_073_466
    assert _count(16, 5, 10, 3, _eval_edge(("nor_conv_3x3",) * 6)) == 1_531_546


def test_search_cell_sums_every_edge_into_its_node():
    torch.manual_seed(0)
    cell = SearchCell(4).eval()
    x = torch.randn(2, 4, 6, 6)
    w = torch.softmax(torch.randn(6, 5), -1)                               # (6, 5)

    def edge(e, h):
        return sum(w[e, o] * cell.edges[e][o](h) for o in range(5))
    n1 = edge(0, x)
    n2 = edge(1, x) + edge(2, n1)
    n3 = edge(3, x) + edge(4, n1) + edge(5, n2)
    assert torch.allclose(cell(x, w), n3, atol=1e-6)


def test_one_hot_search_cell_is_the_genotype_cell():
    """With alpha one-hot on a genotype's ops, the supernet's cell computes that cell (the
    `none` edges add zero): checked against the evaluation cell with the same weights."""
    from dartsviz.spaces.nb201.network import InferCell
    torch.manual_seed(1)
    g = parse_genotype("|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|")
    cell, infer = SearchCell(4).eval(), InferCell(g, 4).eval()
    for e, o in enumerate(g.index_of_ops()):
        src = cell.edges[e][o]
        for a, b in zip(src.modules(), infer.ops[e].modules()):
            if isinstance(a, torch.nn.Conv2d):
                b.weight.data.copy_(a.weight.data)
                b.bias = None if a.bias is None else torch.nn.Parameter(a.bias.data.clone())
    for m in infer.modules():                                              # the search BN is not affine
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.fill_(1.0), m.bias.data.zero_()
    w = torch.zeros(6, 5)
    w[range(6), list(g.index_of_ops())] = 1.0
    x = torch.randn(2, 4, 5, 5)
    assert torch.allclose(cell(x, w), infer(x), atol=1e-6)


# ---- search and training through the seams ---------------------------------------------------
@pytest.fixture(scope="module")
def nb_data():
    from dartsviz.data import load_data
    return load_data("digits", device="cpu")


@pytest.mark.parametrize("order, variant", [(1, "darts"), (2, "darts"), (1, "beta_darts"), (1, "sdarts_rs")])
def test_search_steps_and_every_record_carries_the_cells_truth(nb_data, order, variant):
    config = SearchConfig.preset("tiny", space="nb201", device="cpu", epochs=1, steps_per_epoch=2, order=order,
                                 variant=variant, warmup_epochs=0)
    search = Search(config, data=nb_data)
    search.run()
    steps = [r for r in search.history if r.kind == "step"]
    assert len(steps) == 2 and steps[-1].probs["cell"].shape == (6, 5)
    for r in steps:
        t = truth.lookup(r.genotype)
        assert r.monitors["true_valid_acc"] == t.valid_acc and r.monitors["true_rank"] == t.rank
    assert isinstance(search.genotype, NB201Genotype)


@pytest.mark.parametrize("variant, why", [("pc_darts", "partial channels"), ("p_darts", "prunes"),
                                          ("darts_minus", "auxiliary skip")])
def test_the_variants_that_do_not_apply_say_why_in_one_line(variant, why):
    with pytest.raises(ValueError, match=f"variant '{variant}' works in the cnn space") as e:
        SearchConfig.preset("tiny", space="nb201", variant=variant)
    assert "\n" not in str(e.value) and why in str(e.value) and "not 'nb201': " in str(e.value)


def test_presets_hold_the_authors_settings():
    paper = SearchConfig.preset("paper", space="nb201")
    assert (paper.dataset, paper.channels, paper.layers, paper.batch_size, paper.epochs) == ("cifar10", 16, 5, 64, 50)
    assert (paper.lr, paper.lr_min, paper.weight_decay, paper.arch_lr, paper.arch_betas, paper.arch_weight_decay) == \
        (0.025, 0.001, 5e-4, 3e-4, (0.5, 0.999), 1e-3)
    from dartsviz.spaces.nb201.train import NB201TrainConfig
    bench = NB201TrainConfig.preset("paper")
    assert (bench.lr, bench.lr_min, bench.momentum, bench.nesterov, bench.weight_decay, bench.batch_size,
            bench.epochs, bench.grad_clip) == (0.1, 0.0, 0.9, True, 5e-4, 256, 200, 0.0)


def test_cli_search_prints_the_true_accuracy_and_train_takes_the_run(tmp_path, capsys):
    run = tmp_path / "s"
    assert main(["search", "--space", "nb201", "--epochs", "1", "--steps", "2", "--quiet", "--no-plots",
                 "--out", str(run)]) == 0
    out = capsys.readouterr().out
    g = RunDir(run).read_genotype()
    t = truth.lookup(g)
    assert f"{t.valid_acc:.2f} % (CIFAR-10, 200 epochs, validation" in out and f"rank {t.rank:,} of 15,625" in out
    assert "what this cell scores on CIFAR-10 (the search ran on digits)" in out
    assert main(["train", "--space", "nb201", "--genotype", str(run), "--epochs", "1", "--steps", "2", "--quiet",
                 "--no-plots", "--out", str(tmp_path / "t")]) == 0
    out = capsys.readouterr().out
    assert f"genotype: {g.to_text()}" in out and "test accuracy:" in out
    trained = RunDir(tmp_path / "t")
    assert trained.read_genotype() == g and trained.loop == "train"
    assert main(["train", "--space", "nb201", "--genotype", BEST, "--epochs", "1", "--steps", "1", "--quiet",
                 "--no-plots", "--out", str(tmp_path / "b")]) == 0
    assert "rank 1 of 15,625" in capsys.readouterr().out


def test_cli_refuses_bad_nb201_input_in_one_line(tmp_path, capsys):
    assert main(["train", "--space", "nb201", "--genotype", "|nor_conv_3x3~0|+|bogus~0|none~1|+|a~0|b~1|c~2|",
                 "--out", str(tmp_path / "x"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown op 'bogus'" in err
    assert main(["search", "--space", "nb201", "--nodes", "5", "--out", str(tmp_path / "y"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--nodes does not apply to the nb201 space" in err


def test_the_dashboard_and_the_export_draw_the_truth_panel(nb_data, tmp_path):
    from dartsviz.viz import Dashboard, export_run
    config = SearchConfig.preset("tiny", space="nb201", device="cpu", epochs=1, steps_per_epoch=2, warmup_epochs=0)
    search = Search(config, out=tmp_path / "run", data=nb_data)
    dash = Dashboard(search)
    assert "truth" in dash.panels.figure_panels and any(t == "Truth" for t, _ in dash.panels.tab_panels)
    search.run()
    written = {p.name for p in export_run(tmp_path / "run", out=tmp_path / "plots")}
    assert {"truth.png", "truth.svg"} <= written
    from dartsviz.viz import Replay
    replay = Replay(tmp_path / "run")
    assert "truth" in replay.panels.figure_panels and any(t == "Truth" for t, _ in replay.panels.tab_panels)
    cnn = Search(SearchConfig.preset("tiny", device="cpu", epochs=1, steps_per_epoch=1), data=nb_data)
    assert "truth" not in Dashboard(cnn).panels.figure_panels                # only where the space has truth


def test_compare_truth_puts_searched_and_query_cells_in_one_report(tmp_path, capsys):
    from dartsviz.experiments import compare_truth, format_table
    from dartsviz.query import run_many
    res = compare_truth(seeds=(0, 1), orders=(1,), variants=("beta_darts",), out=tmp_path / "r", epochs=1,
                        steps_per_epoch=2, query_runs=4, isolate=False)
    rows = {r["method"]: r for r in res["rows"]}
    assert list(rows) == ["DARTS (first order)", "beta_darts", "random search", "regularised evolution",
                          "local search", "best cell"]
    for arm in ("o1", "beta_darts"):
        accs = [truth.lookup(RunDir(tmp_path / "r" / run["search_dir"]).read_genotype()).valid_acc
                for run in res["runs"] if run["arm"] == arm]
        row = next(r for r in res["rows"] if r["arm"] == arm)
        assert len(accs) == 2 and row["true_valid_acc_mean"] == pytest.approx(np.mean(accs))
    rea = run_many("rea", budget=20000, runs=4, seed=0)
    assert rows["regularised evolution"]["true_valid_acc_mean"] == pytest.approx(rea.valid_mean)
    assert rows["best cell"]["true_valid_acc_mean"] == truth.best().valid_acc
    table = format_table(res)
    assert '| DARTS (first order) | 2 |' in table and "| 54.30 ± 0.00 |" in table and "| 93.92 ± 0.30 |" in table
    assert "cifar10" in table.splitlines()[0]
    # the query searches' cost is the simulated training they paid (at least the budget), not this machine's time
    header = [h.strip() for h in table.splitlines()[0].strip("|").split("|")]
    col = header.index("simulated training (s)")
    cells = {r.split("|")[1].strip(): r.split("|")[col + 1].strip() for r in table.splitlines()[2:]}
    assert cells["regularised evolution"] == f"{np.mean([r.spent for r in rea.runs]):,.0f}"
    assert min(r.spent for r in rea.runs) >= 20000 and cells["DARTS (first order)"] == cells["best cell"] == "-"
    assert "search, this machine (s)" in header
    page = (tmp_path / "r" / "index.html").read_text()
    assert "True accuracy" in page and (tmp_path / "r" / "anytime.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["compare", "--truth", "--budget", "-3", "--out", str(tmp_path / "x"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--budget must be a positive number" in err and not (tmp_path / "x").exists()
