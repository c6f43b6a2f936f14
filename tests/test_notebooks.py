"""The tutorial notebooks run top to bottom (with tiny budgets), show what they should, keep every cell's
output small (also at full budget), and are committed clean."""
import json
import math
import os
import re
import shutil
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]


# ---- what the executed notebooks must show ------------------------------------------------------
# `allow_errors=False` already fails the test on any exception; these checks look at what the cells
# printed and displayed, so a notebook that runs but shows the wrong thing (no figure, an empty
# table, a genotype that does not parse, a search that did not step) fails too.

def _code_cell(nb, marker):
    """The one code cell whose source contains `marker`."""
    cells = [c for c in nb.cells if c.cell_type == "code" and marker in c.source]
    assert len(cells) == 1, f"{len(cells)} code cells contain {marker!r}"
    return cells[0]


def _text(nb, marker):
    """What the cell printed, and the text of its result."""
    parts = []
    for out in _code_cell(nb, marker).get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif out.get("output_type") == "execute_result":
            parts.append(out.get("data", {}).get("text/plain", ""))
        elif out.get("output_type") == "display_data" and "text/markdown" in out.get("data", {}):
            text = out["data"]["text/markdown"]                   # a table rendered, not printed
            parts.append(text if text.endswith("\n") else text + "\n")
    return "".join(parts)


def _displayed(nb, marker, mime):
    """The `mime` payloads the cell displayed."""
    return [out["data"][mime] for out in _code_cell(nb, marker).get("outputs", [])
            if out.get("output_type") in ("display_data", "execute_result") and mime in out.get("data", {})]


def _genotype_in(text):
    """The genotype printed in `text` (it must parse, with four nodes per cell)."""
    from dartsviz.spaces.cnn.genotype import parse_genotype
    line = next((ln for ln in text.splitlines() if ln.startswith("Genotype(")), None)
    assert line is not None, f"no genotype printed in {text!r}"
    g = parse_genotype(line)
    assert g.nodes == 4 and all(len(node) == 2 for node in g.normal + g.reduce)
    return g


def _numbers(text):
    return [float(x) for x in re.findall(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text)]


def _check_01(nb, work):
    from dartsviz.spaces.cnn.ops import PRIMITIVES
    w = _numbers(_text(nb, "weights = F.softmax(alpha").split("torch.Size")[0])
    assert len(w) == 8 and abs(sum(w) - 1) < 1e-2 and all(abs(x - 1 / 8) < 1e-2 for x in w), w
    assert "torch.Size([2, 4, 8, 8])" in _text(nb, "weights = F.softmax(alpha")
    text = _text(nb, "loss.backward()\nfor name")
    grads = re.findall(r"^(\w+)\s+([-+]\d\.\d+)$", text, re.M)
    assert [name for name, _ in grads] == PRIMITIVES
    # the text says: avg_pool_3x3 gets the most negative gradient, and the eight sum to zero
    assert min(grads, key=lambda g: float(g[1]))[0] == "avg_pool_3x3", grads
    total = re.search(r"^sum of the eight: (\S+)$", text, re.M)
    assert total and abs(float(total.group(1))) < 1e-5, text
    assert len(_displayed(nb, "history.append", "image/png")) == 1            # the weight curves
    m = re.search(r"derived operation: (\w+) \(weight ([\d.]+)\)", _text(nb, "derived operation"))
    assert m, _text(nb, "derived operation")
    # the edge was trained to imitate avg_pool_3x3: the relaxation must have found it
    assert m.group(1) == "avg_pool_3x3" and float(m.group(2)) > 1 / 8


def _check_02(nb, work):
    assert _text(nb, "edges = edges_of(4)").startswith("14 edges")
    assert _text(nb, "per_cell = math.prod").startswith("one cell type: 1,037,664,180 discrete cells;")
    out = _text(nb, "net = SearchNetwork(")
    assert len(re.findall(r"^cell \d+: (?:normal|reduction)\s+14 mixed edges$", out, re.M)) == 5
    assert "alpha_normal (14, 8)  alpha_reduce (14, 8)" in out and "architecture parameters: 224" in out
    assert len(_displayed(nb, "soft_cell_svg(net.probs()", "image/svg+xml")) == 1
    svgs = _displayed(nb, 'cell_svg(DARTS_V2, "reduce")', "image/svg+xml")
    assert len(svgs) == 2 and all("<svg" in s for s in svgs)
    dot = _text(nb, "cell_dot(DARTS_V2")
    assert re.match(r"graphviz dot available: (True|False)\n(?://[^\n]*\n)*digraph \{", dot), dot[:200]   # comments may lead
    _genotype_in(_text(nb, "print(derive("))


def _check_03(nb, work):
    m = re.search(r"\|g1\| = (\S+)  \|g2\| = (\S+)  cosine = (\S+)", _text(nb, "g1, g2 = flat(g1)"))
    assert m, _text(nb, "g1, g2 = flat(g1)")
    g1, g2, cos = map(float, m.groups())
    assert g1 > 0 and g2 > 0 and -1.0 <= cos <= 1.0
    for marker in ("eps_sweep(model, train_batch", "eps_sweep(search.model"):
        text = _text(nb, marker)
        rows = re.findall(r"^\s*(1e-0\d)\s+(\S+)$", text, re.M)
        assert [eps for eps, _ in rows] == ["1e-02", "1e-03", "1e-04", "1e-05", "1e-06"], text
        assert all(math.isfinite(float(err)) for _, err in rows) and "|exact HVP|" in text
    timing = re.findall(r"^order (\d) \((\w+)\s*\):\s+([\d.]+) ms per gradient$", _text(nb, "import time"), re.M)
    assert [(o, h) for o, h, _ in timing] == [("1", "finite"), ("2", "finite"), ("2", "exact")]
    assert all(float(ms) > 0 for _, _, ms in timing)


def _check_04(nb, work):
    assert _displayed(nb, "display(dash.widget)", "application/vnd.jupyter.widget-view+json")
    # the low first test accuracy is explained (eval-mode BatchNorm with running statistics)
    assert any("first test accuracy" in c.source and "*running* statistics" in c.source for c in nb.cells)
    # FAST: 3 steps per epoch; the warm-up epoch, 3 first-order steps, then 3 second-order ones
    counter = _text(nb, "dash.set_order(2)")
    assert re.search(r"^step 9 / 9 .*order 2", counter) and "<" not in counter, counter   # plain text, no HTML
    cost = _text(nb, "median[order] = statistics.median")
    assert cost.startswith("3 warm-up steps (alpha frozen), 6 steps that updated alpha\n"), cost
    medians = re.findall(r"^order (\d): ([\d.]+) s per step \(median\)$", cost, re.M)
    assert [o for o, _ in medians] == ["1", "2"] and all(float(s) > 0 for _, s in medians), cost
    assert re.search(r"^second order / first order: [\d.]+x$", cost, re.M), cost
    text = _text(nb, 'last = dash.current()')
    assert text.startswith("step 9 order 2 ") and "arch_updated True" in text, text
    _genotype_in(text)


def _check_05(nb, work):
    runs = re.findall(r"^order (\d): (\d+) steps, [\d.]+ s, final val acc ([\d.]+)$", _text(nb, "first.run()"), re.M)
    assert [(o, n) for o, n, _ in runs] == [("1", "6"), ("2", "6")], runs   # 2 epochs x 3 steps each
    assert all(0.0 <= float(acc) <= 1.0 for _, _, acc in runs)
    medians = re.findall(r"^order (\d): median ([\d.]+) s per step that updated alpha$", _text(nb, "first.run()"), re.M)
    assert [o for o, _ in medians] == ["1", "2"] and all(float(s) > 0 for _, s in medians), medians
    diff = _text(nb, "diff = cell_differences(")
    m = re.match(r"the derived cells differ on (\d+) edges\n", diff)
    assert m and len(re.findall(r"^  (normal|reduce) +edge \(\d, \d\): first order \w+, second order \w+$",
                                diff, re.M)) == int(m.group(1)), diff
    assert _displayed(nb, "display(cmp.widget)", "application/vnd.jupyter.widget-view+json")
    text = _text(nb, "page = compare_report(")
    assert "report written to runs/compare/index.html" in text, text
    report = work / "runs" / "compare"
    page = (report / "index.html").read_text()
    for name in ("cell_a_normal.svg", "cell_a_reduce.svg", "cell_b_normal.svg", "cell_b_reduce.svg",
                 "heatmap_a.png", "heatmap_b.png", "validation.png"):
        assert f"'{name}'" in text and (report / name).stat().st_size > 0, name
        assert name in page, f"index.html does not show {name}"


def _check_06(nb, work):
    assert len(_displayed(nb, "probs = search.model.probs()", "image/svg+xml")) == 1
    rows = _text(nb, 'print(probs["normal"][9:14]').split("\n", 1)[1]          # node 5's five edges
    w = _numbers(rows)
    assert len(w) == 40 and all(abs(sum(w[i:i + 8]) - 1) < 0.01 for i in range(0, 40, 8)), rows
    _genotype_in(_text(nb, "genotype = derive("))
    assert len(_displayed(nb, "genotype = derive(", "image/svg+xml")) == 2          # normal and reduce
    assert _text(nb, '("DARTS_V1", DARTS_V1)').split() == ["DARTS_V1", "DARTS_V2"]
    assert len(_displayed(nb, '("DARTS_V1", DARTS_V1)', "image/svg+xml")) == 2
    m = re.search(r"found cell: ([\d,]+) parameters, ([\d,]+) MACs, test accuracy ([\d.]+) after (\d+) steps",
                  _text(nb, "train = Train(genotype"))
    assert m, _text(nb, "train = Train(genotype")
    assert int(m.group(1).replace(",", "")) > 0 and int(m.group(2).replace(",", "")) > 0
    assert 0.0 <= float(m.group(3)) <= 1.0 and m.group(4) == "3"                   # 1 epoch x 3 steps
    b = re.search(r"random cells: ([\d.]+) \+- ([\d.]+)   found cell: ([\d.]+)", _text(nb, "random_baseline("))
    assert b, _text(nb, "random_baseline(")
    assert 0.0 <= float(b.group(1)) <= 1.0 and b.group(3) == m.group(3)           # the same found cell


def _check_07(nb, work):
    ran = _text(nb, "search = Search(config)")
    assert re.fullmatch(r"\d+ steps; derived cell: Genotype\(normal=.*\)\n", ran) and "records" not in ran, ran
    assert len(_displayed(nb, "draw_collapse(search.history)", "image/png")) == 2    # collapse and curves
    text = _text(nb, "for cell in (\"normal\", \"reduce\")")
    rows = re.findall(r"^(normal|reduce)\s*: (\d+) skip connections, (\d+) parameter-free of (\d+) kept edges$",
                      text, re.M)
    assert [r[0] for r in rows] == ["normal", "reduce"], text
    assert all(0 <= int(skip) <= int(free) <= int(n) == 8 for _, skip, free, n in rows)
    assert len(_displayed(nb, "for cell in (\"normal\", \"reduce\")", "image/svg+xml")) == 1
    course = _text(nb, "collapse_counts(r.genotype")
    seen = re.findall(r"^(normal|reduce)\s*: parameter-free ops among 8 kept edges: (\d+) after step 1, "
                      r"at most (\d+) \(first at step (\d+)\), (\d+) at step (\d+)$", course, re.M)
    assert [r[0] for r in seen] == ["normal", "reduce"], course
    for (cell, first, peak, _, last, end), (_, _, free, _) in zip(seen, rows):
        assert int(first) <= int(peak) and int(last) <= int(peak) and last == free and end == "6", course
    assert re.search(r"^supernet test accuracy: [\d.]+ after epoch 1, [\d.]+ after epoch 2$", course, re.M), course


def _rnn_genotype_in(text):
    """The recurrent genotype printed in `text` (it must parse, with eight nodes averaged into h_t)."""
    from dartsviz.spaces.rnn.genotype import parse_genotype
    line = next((ln for ln in text.splitlines() if ln.startswith("Genotype(recurrent=")), None)
    assert line is not None, f"no recurrent genotype printed in {text!r}"
    g = parse_genotype(line)
    assert g.steps == 8 and g.concat == tuple(range(1, 9)), line
    return g


def _check_08(nb, work):
    # 1. the embedded corpus, and a decoded batch whose targets are its inputs shifted by one word
    corpus = _text(nb, 'data = load_text("pydoc"')
    sizes = re.match(r"tokens: train ([\d,]+), validation ([\d,]+), test ([\d,]+); vocabulary 2,000 words\n", corpus)
    assert sizes and all(int(n.replace(",", "")) > 5000 for n in sizes.groups()), corpus
    batch = _text(nb, "stream = TextStream(")
    assert batch.startswith("x (12, 4)  y (12, 4)"), batch
    columns = re.findall(r"^column (\d) x: (.*)\ncolumn \1 y: (.*)$", batch, re.M)
    assert len(columns) == 2, batch
    for _, x, y in columns:
        x, y = x.split(), y.split()
        assert len(x) == len(y) == 12 and x[1:] == y[:-1], (x, y)
    # 2. s0 and node 1 by hand equal the library's genotype cell
    hand = _text(nb, "first = RNNGenotype(")
    assert re.search(r"^library h_t \(4, 16\)  allclose: True$", hand, re.M), hand
    # 3. alpha is 36 x 5; equation (3) by hand equals the search cell; none adds nothing
    model = _text(nb, "model = RNNSearchModel(")
    assert "alpha_recurrent (36, 5)" in model and "architecture parameters 180" in model, model
    mixed = _text(nb, "states.append(search_cell.bn(node))")
    assert re.search(r"^search cell h_t \(4, 16\)  allclose: True$", mixed, re.M), mixed
    none = _text(nb, "more_none = p.clone()")
    assert "none column set to zero, h_t unchanged: True" in none, none
    change = re.search(r"largest change of h_t (\S+), while \|h_t\| is (\S+) on average", none)
    assert change and float(change.group(1)) < 0.01 * float(change.group(2)), none
    # 4. the live search (FAST: 2 epochs x 3 steps) and the perplexity going down
    assert _displayed(nb, "display(dash.widget)", "application/vnd.jupyter.widget-view+json")
    ppl = _text(nb, "epochs = [r for r in dash.history")
    train = re.search(r"^training perplexity: (\d+) at step 1, (\d+) at step 6$", ppl, re.M)
    assert train and int(train.group(2)) < int(train.group(1)), ppl
    test = re.findall(r"^test perplexity after epoch (\d+): ([\d.]+)$", ppl, re.M)
    assert [e for e, _ in test] == ["1", "2"], ppl                            # epochs counted from 1, as on screen
    assert float(test[1][1]) < float(test[0][1]) < 2000, ppl                  # below a uniform guess, and falling
    assert len(_displayed(nb, "epochs = [r for r in dash.history", "image/png")) == 1   # the curves
    # 5. the derivation rule by hand picks what the library derives; the found and the paper's cell drawn
    text = _text(nb, "strength, op = p[row")
    g = _rnn_genotype_in(text)
    picks = re.findall(r"^node (\d): strengths [\d. ]+ -> (\w+)\((\d)\)$", text, re.M)
    assert [int(i) for i, _, _ in picks] == list(range(1, 9)), text
    assert [(op, int(j)) for _, op, j in picks] == list(g.recurrent), text
    svgs = _displayed(nb, 'cell_svg(DARTS_RNN_V2, "recurrent"', "image/svg+xml")
    assert len(svgs) == 2 and all("<svg" in s for s in svgs)
    assert _text(nb, "count_parameters(10_000, 850)").startswith("22,960,000 weights"), "the paper's 23M"


def _check_09(nb, work):
    # 1. the collapse preset searched live, the collapse panel in the main view (FAST: 2 epochs x 3 steps, lambda_max every 3)
    assert _displayed(nb, "display(dash.widget)", "application/vnd.jupyter.widget-view+json")
    text = _text(nb, "lam = [(r.step, r.lambda_max)")
    m = re.search(r"^identity on (\d) of 8 nodes of the derived cell at step 6 \(at most (\d) during the search\)$",
                  text, re.M)
    assert m and int(m.group(1)) <= int(m.group(2)) <= 8, text
    lam = re.search(r"^lambda_max: (.*)$", text, re.M)
    assert lam and [s for _, s in re.findall(r"(\S+) at step (\d+)", lam.group(1))] == ["3", "6"], text
    assert all(math.isfinite(float(v)) for v, _ in re.findall(r"(\S+) at step (\d+)", lam.group(1))), text
    g = _rnn_genotype_in(text)
    assert sum(op == "identity" for op, _ in g.recurrent) == int(m.group(1)), text
    assert len(_displayed(nb, "lam = [(r.step, r.lambda_max)", "image/png")) == 1          # draw_collapse
    assert len(_displayed(nb, "lam = [(r.step, r.lambda_max)", "image/svg+xml")) == 1      # the derived cell
    # 2. the variants that work in the recurrent space
    spaces = _text(nb, "applicable = [v for v")
    assert re.search(r"^applicable in the rnn space: beta_darts, darts, sdarts_rs$", spaces, re.M), spaces
    assert re.search(r"^pc_darts +spaces: \('cnn',\)$", spaces, re.M), spaces
    # 3. the comparison: one row per fix, the same seed, a report with the collapse figure and the cells
    text = _text(nb, "res = compare_variants(")
    rows = re.findall(r"^\| (\w+) \| (\d) \| ([\d.]+) \| ([\d.e-]+) \| ", text, re.M)
    assert [r[0] for r in rows] == ["darts", "beta_darts", "sdarts_rs"], text
    assert all(int(free) <= 8 and 0 < float(skip) <= 1 and math.isfinite(float(lam)) for _, free, skip, lam in rows)
    for v in ("darts", "beta_darts", "sdarts_rs"):
        _rnn_genotype_in(next(ln[len(v):].strip() for ln in text.splitlines() if ln.startswith(v + " ")))
    assert "report written to runs/fixes/index.html" in text, text
    page = (work / "runs" / "fixes" / "index.html").read_text()
    assert "collapse.png" in page and "Variants" in page
    assert len(_displayed(nb, 'Image(filename="runs/fixes/collapse.png")', "image/png")) == 1
    assert len(_displayed(nb, 'Image(filename="runs/fixes/collapse.png")', "image/svg+xml")) == 3
    # 4. P-DARTS in stages: one line per epoch (FAST: one per stage), deeper and fewer ops each stage
    text = _text(nb, "pd = Search(pd_config)")
    stages = re.findall(r"^epoch (\d): stage (\d), (\d) cells, (\d) ops per edge, skip dropout ([\d.]+)", text, re.M)
    assert [(s, c, o) for _, s, c, o, _ in stages] == [("1", "3", "8"), ("2", "4", "5"), ("3", "5", "3")], text
    derived = next(ln for ln in text.splitlines() if ln.startswith("derived: "))
    g = _genotype_in(derived[len("derived: "):])
    assert sum(op == "skip_connect" for op, _ in g.normal) <= 2
    assert len(_displayed(nb, "draw_weights(pd.history)", "image/png")) == 1
    assert len(_displayed(nb, "draw_weights(pd.history)", "image/svg+xml")) == 1


def _check_10(nb, work):
    from dartsviz import truth
    from dartsviz.query import run_many
    from dartsviz.spaces.nb201.genotype import all_genotypes, parse_genotype
    # 1. the space: a cell parsed, its six edges, the count, the drawing; its truth, said as a CIFAR-10 fact
    text = _text(nb, "cell = parse_genotype(")
    assert len(re.findall(r"^edge [123] <- [012]: \w+$", text, re.M)) == 6, text
    assert "5 operations on each of 6 edges: 15,625 cells" in text, text
    assert len(_displayed(nb, "cell = parse_genotype(", "image/svg+xml")) == 1
    text = _text(nb, "found = truth.lookup(cell)")
    assert "what this cell scores on CIFAR-10 (the search ran on digits)" in text, text
    # 2. the landscape: the numbers printed are the table's, and the histogram is shown
    text = _text(nb, "worst = table.truth(")
    rows = {name: (float(acc), int(rank.replace(",", "")), arch) for name, acc, rank, arch in
            re.findall(r"^(best|median|worst|all-skip)\s+([\d.]+) %  rank\s+([\d,]+)  (\S+)$", text, re.M)}
    assert list(rows) == ["best", "median", "worst", "all-skip"], text
    for name, cell in (("best", truth.best()), ("median", truth.median()), ("all-skip", truth.all_skip())):
        assert rows[name] == (round(cell.valid_acc, 2), cell.rank, cell.arch), (name, rows[name])
    assert rows["worst"][0] == round(float(truth.table().valid_acc.min()), 2), text
    dead = sum(not g.reaches_output() for g in all_genotypes())
    assert f"cells that compute nothing (a none on every path to node 3): {dead} of 15,625;" in text, text
    assert len(_displayed(nb, "ax.hist(table.valid_acc", "image/png")) == 1
    # 3. the query searches: three rows, mean ± std, the numbers run_many gives; the anytime figure
    text = _text(nb, "summaries = [run_many(")
    found = re.findall(r"^(random search|regularised evolution|local search)\s+([\d.]+)\s+([\d.]+) ± ([\d.]+) %\s+"
                       r"([\d.]+) ± ([\d.]+) %$", text, re.M)
    assert [f[0] for f in found] == ["random search", "regularised evolution", "local search"], text
    for (_, queries, vm, vs, tm, ts), algo in zip(found, ("random", "rea", "ls")):
        s = run_many(algo, budget=20_000, runs=100, seed=0)
        assert (vm, vs, tm, ts) == (f"{s.valid_mean:.2f}", f"{s.valid_std:.2f}", f"{s.test_mean:.2f}",
                                    f"{s.test_std:.2f}"), (algo, text)
        assert queries == f"{s.queries_mean:.1f}"
    assert len(_displayed(nb, "draw_anytime(summaries", "image/png")) == 1
    # 4. the DARTS search, live with the Truth tab (FAST: 2 epochs x 3 steps), and its truth per epoch
    assert _displayed(nb, "display(dash.widget)", "application/vnd.jupyter.widget-view+json")
    assert "6 step records" in _text(nb, "dash.run()"), _text(nb, "dash.run()")
    text = _text(nb, "last, peak = steps[-1]")
    lines = re.findall(r"^\s*(\d+)\s+(\d+)\s+([\d.]+) %\s+([\d,]+)\s+(\d) of 6\s+(\S+)$", text, re.M)
    assert [(e, s) for e, s, *_ in lines] == [("1", "3"), ("2", "6")], text    # epochs counted from 1
    for _, _, acc, rank, skip, arch in lines:
        g, cell = parse_genotype(arch), truth.lookup(arch)
        assert (acc, int(rank.replace(",", "")), int(skip)) == (f"{cell.valid_acc:.2f}", cell.rank,
                                                                 g.ops.count("skip_connect")), text
    final = parse_genotype(lines[-1][-1])
    assert f"at the end (step 6): {truth.describe(final, 'digits')}" in text, text
    m = re.search(r"^skip_connect on (\d) of 6 edges at the end, at most (\d) during the search; "
                  r"the all-skip cell derived at any step: (True|False)$", text, re.M)
    assert m and int(m.group(1)) == int(lines[-1][4]) and int(m.group(2)) >= max(int(x[4]) for x in lines), text
    assert (m.group(3) == "True") <= (int(m.group(2)) == 6), text
    peak = re.search(r"^best true accuracy during the search: ([\d.]+) % \(first at step (\d+)\); "
                     r"the end is ([\d.]+) points below it$", text, re.M)
    assert peak and float(peak.group(1)) >= max(float(x[2]) for x in lines), text
    assert abs(float(peak.group(1)) - float(peak.group(3)) - float(lines[-1][2])) < 0.006, text
    assert re.search(r"^the supernet's test accuracy on digits: [\d.]+ after epoch 1, [\d.]+ after epoch 2$",
                     _text(nb, "last, peak = steps[-1]"), re.M), text
    assert len(_displayed(nb, "draw_truth(dash.history)", "image/png")) == 1         # the truth panel's figure
    assert len(_displayed(nb, "draw_truth(dash.history)", "image/svg+xml")) == 1     # the derived cell
    # 5. the variants on the same seed, by their cells' true accuracy; the report and its truth figure
    text = _text(nb, "res = compare_variants(")
    table = re.findall(r"^\| (\w+) \| 1 \| ([\d.]+) ± [\d.]+ \| ([\d.]+) ± [\d.]+ \| (\d) \| ", text, re.M)
    assert [t[0] for t in table] == ["darts", "beta_darts", "sdarts_rs"], text
    cells = dict(re.findall(r"^(\w+)\s+rank\s+[\d,]+  (\S+)$", text, re.M))
    assert list(cells) == ["darts", "beta_darts", "sdarts_rs"], text
    for arm, acc, test_acc, skip in table:
        g, cell = parse_genotype(cells[arm]), truth.lookup(cells[arm])
        assert (acc, test_acc, int(skip)) == (f"{cell.valid_acc:.2f}", f"{cell.test_acc:.2f}",
                                              g.ops.count("skip_connect")), (arm, text)
    assert cells["darts"] == final.to_text()                                  # the same seed and settings
    assert "the darts row derived the same cell as section 4: True" in text, text
    assert "report written to runs/nb201-variants/index.html" in text, text
    assert "truth.png" in (work / "runs" / "nb201-variants" / "index.html").read_text()
    assert len(_displayed(nb, 'Image(filename="runs/nb201-variants/truth.png")', "image/png")) == 1


CHECKS = {"01_continuous_relaxation": _check_01, "02_search_space": _check_02, "03_bilevel": _check_03,
          "04_live_search": _check_04, "05_first_vs_second": _check_05, "06_supernet_to_network": _check_06,
          "07_collapse": _check_07, "08_recurrent_cells": _check_08,
          "09_fixing_collapse": _check_09, "10_was_the_search_any_good": _check_10}


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 7, NOTEBOOKS


# ---- every cell's output stays small -------------------------------------------------------------
# A cell whose outputs are large (a whole history printed, a huge image) makes the notebook slow to
# open and to diff; the bound is checked at the FAST budgets on every test run, and at the full
# budgets by the slow test below.

MAX_CELL_OUTPUT_BYTES = 200_000


def _check_output_sizes(nb, name):
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        size = len(json.dumps(cell.get("outputs", [])))
        assert size <= MAX_CELL_OUTPUT_BYTES, (
            f"{name}: cell {i} has {size / 1000:.0f} kB of output (bound {MAX_CELL_OUTPUT_BYTES / 1000:.0f} kB); "
            f"it starts {cell.source[:80]!r}")


def test_output_bound_catches_a_large_output():
    """What the bound is for: a cell ending in a call that returns a long history (300 kB printed) fails."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("search.run()")])
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="x" * 150_000)]
    _check_output_sizes(nb, "small.ipynb")
    nb.cells[0].outputs.append(nbformat.v4.new_output("stream", name="stdout", text="x" * 150_000))
    with pytest.raises(AssertionError, match=r"small.ipynb: cell 0 has 300 kB of output \(bound 200 kB\)"):
        _check_output_sizes(nb, "small.ipynb")


def _check_no_printed_tables(nb, name):
    """A Markdown table is displayed rendered (IPython's Markdown), never printed as raw text."""
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            text = out.get("text", "") if out.get("output_type") == "stream" else ""
            assert not re.search(r"^\|[-| :]+\|$", text, re.M), f"{name}: cell {i} prints a Markdown table as text"


def _execute(path, tmp_path, fast, timeout, times=1):
    """Run a copy of the notebook `times` times in a row in one tmp working directory, as a
    class does (each time a fresh kernel, the files of the run before left in place);
    (the last executed notebook, its directory)."""
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    work = tmp_path / "work"
    work.mkdir()
    copy = work / path.name
    shutil.copy(path, copy)
    # the kernel gets its own backend (inline), the budgets asked for, and a tmp working directory
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "DARTSVIZ_NB_FAST")}
    if fast:
        env["DARTSVIZ_NB_FAST"] = "1"
    for i in range(times):
        nb = nbformat.read(copy, as_version=4)
        client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                         resources={"metadata": {"path": str(work)}}, allow_errors=False)
        t0 = time.perf_counter()
        client.execute(env=env, cwd=str(work))
        print(f"{path.name} ({'FAST' if fast else 'full'} budgets, run {i + 1}): {time.perf_counter() - t0:.1f} s")
    return nb, work


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_twice_in_the_same_folder(path, tmp_path):
    """A class runs a notebook again where it ran before: the second run works and shows the same."""
    nb, work = _execute(path, tmp_path, fast=True, timeout=300, times=2)
    CHECKS[path.stem](nb, work)
    _check_output_sizes(nb, path.name)
    _check_no_printed_tables(nb, path.name)
    keep = os.environ.get("DARTSVIZ_EXECUTED_DIR")       # CI: the documentation site shows this run
    if keep:
        import hashlib
        nb.metadata["dartsviz_docs"] = {"source_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                                        "mode": "executed"}
        Path(keep).mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(Path(keep) / path.name))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_output_stays_small_at_full_budget(path, tmp_path):
    """Without DARTSVIZ_NB_FAST (the budgets a student runs) no cell prints or shows more than the bound."""
    nb, _ = _execute(path, tmp_path, fast=False, timeout=1800)
    _check_output_sizes(nb, path.name)


def test_every_notebook_has_output_checks():
    assert sorted(CHECKS) == IDS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_committed_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert "widgets" not in nb.metadata, "widget state saved in the notebook metadata"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.get("outputs") == [], f"cell {i} has outputs"
            assert cell.get("execution_count") is None, f"cell {i} has an execution count"
        assert "widgets" not in cell.get("metadata", {}), f"cell {i} holds widget state"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_conventions(path):
    """Colab badge, a Colab-only install cell, the FAST/GPU settings cell, and an import of dartsviz."""
    nb = nbformat.read(path, as_version=4)
    text = [c.source for c in nb.cells]
    from dartsviz.notebooks import HOME
    url = f"https://colab.research.google.com/github/{HOME}/blob/main/notebooks/{path.name}"
    assert url in text[0]
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert '"google.colab" in sys.modules' in code[0] and 'pip install -q "dartsviz @ git+' in code[0]
    assert "|| pip install" not in code[0] and "dartsviz is not installed" in code[0]
    pip_line = next(line for line in code[0].splitlines() if "pip install" in line)
    for banned in ("torch", "numpy", "ipykernel", "--upgrade", "-U "):
        assert banned not in pip_line
    assert any('FAST = os.environ.get("DARTSVIZ_NB_FAST") == "1"' in c and "GPU = False" in c for c in code[:3])
    assert any("dartsviz" in c and "import" in c for c in code[1:])
