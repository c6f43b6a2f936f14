"""The views on the recurrent space: the Dashboard driving a small search from code (a 36 x 5
weight panel, the recurrent cell with x_t and h_{t-1} feeding s0 and nodes 1..8 averaged into
h_t, derived and continuous, live, the order toggle), the static export, Replay and Compare of
run directories, and the cell graph with and without Graphviz."""
import dataclasses
import html
import re

import numpy as np
import pytest
import torch

from dartsviz import Search, SearchConfig, StepRecord, get_space
from dartsviz.runs import RunDir
from dartsviz.spaces.rnn import DARTS_RNN_V1, DARTS_RNN_V2
from dartsviz.text import load_text
from dartsviz.viz import cellgraph as C
from dartsviz.viz import figures as F

torch.set_num_threads(1)

RNN = get_space("rnn")
NODES = {"x[t]", "h[t-1]", "s0", *map(str, range(1, 9)), "h[t]"}       # plain text: no "h_{t-1}" markup
needs_dot = pytest.mark.skipif(not C.dot_available(), reason="needs graphviz's dot and neato")


@pytest.fixture(scope="module")
def small():
    """The first 1,200 tokens of pydoc's splits (320 of the test split), 200 words."""
    data = load_text("pydoc", vocab_size=200).truncated(1200)
    return dataclasses.replace(data, test=data.test[:320], eval_batch_size=16)


def _config(**kw):
    # lr 1: a second-order step at tiny_rnn's lr 20 lands where the perplexity is huge
    return SearchConfig.preset("tiny_rnn", **{**dict(nhid=8, vocab_size=200, batch_size=4, bptt=5, epochs=1,
                                                     steps_per_epoch=3, lr=1.0, lr_min=1.0, device="cpu"), **kw})


@pytest.fixture(scope="module")
def runs(small, tmp_path_factory):
    """Two finished recurrent searches, first and second order, on the same data."""
    root = tmp_path_factory.mktemp("rnn_runs")
    for order in (1, 2):
        Search(_config(order=order), out=root / f"o{order}", data=small).run()
    return root / "o1", root / "o2"


@pytest.fixture
def no_dot(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))                  # an empty folder: no `dot`
    C.clear_cache()
    yield
    C.clear_cache()


def record(probs, step=1):
    """A step record of these (36, 5) weights, its genotype derived as the search does."""
    return StepRecord(step=step, epoch=0, space="rnn", probs={"recurrent": probs},
                      genotype=RNN.derive({"recurrent": probs}))


def texts(svg):
    """Every text of a drawing (graphviz's or matplotlib's SVG), unescaped."""
    return {html.unescape(t).strip() for t in re.findall(r"<text\b[^>]*>([^<]*)</text>", svg)}


def svg_edges(svg):
    """Graphviz SVG: {(src, dst): (solid, label)} for every drawn edge."""
    out = {}
    for body in re.findall(r'<g id="edge\d+" class="edge">(.*?)</g>', svg, re.S):
        src, dst = html.unescape(re.search(r"<title>(.*?)</title>", body).group(1)).split("->")
        label = re.search(r"<text\b[^>]*>([^<]*)</text>", body)
        out[(src, dst)] = ("stroke-dasharray" not in body, html.unescape(label.group(1)) if label else "")
    return out


def dot_edges(source):
    """DOT source: [(src, dst, attributes)] of every edge."""
    return re.findall(r"^\t(\w+) -> (\w+) \[(.*)\]$", source, re.M)


def searched(edges):
    """The edges between the cell's numbered nodes (not the feeds into s0, not those into h_t)."""
    return {(s, d): v for (s, d), v in edges.items() if s.isdigit() and d.isdigit()}


def check_cell_svg(svg, genotype, soft):
    """The recurrent cell as drawn by graphviz: x_t and h_{t-1} into s0, the kept edges of
    `genotype` solid and labelled with their op, each node's 2 strongest inputs when `soft`
    (15 of the 36 edges), 1..8 into h_t."""
    assert NODES | {"mean"} <= texts(svg)
    edges = svg_edges(svg)
    assert {e for e in edges if not e[0].isdigit()} == {("in0", "0"), ("in1", "0")}      # x_t, h_{t-1} -> s0
    assert {e for e in edges if e[1] == "out"} == {(str(k), "out") for k in range(1, 9)}  # the mean of 1..8
    cell = searched(edges)
    kept = {(str(s), str(d)): op for s, d, op in genotype.edges("recurrent")}
    assert len(kept) == 8
    assert {e for e, (solid, _) in cell.items() if solid} == set(kept)
    assert len(cell) == (15 if soft else 8)
    for e, op in kept.items():                                                # "relu 0.23" / "relu"
        assert cell[e][1].split()[0] == (RNN.op_short[op] if soft else op), (e, cell[e], op)
    assert all(label == "" for e, (solid, label) in cell.items() if not solid)     # only kept edges labelled


# ---- the dashboard, driven from code ---------------------------------------------------------------

@pytest.fixture
def dash(small):
    from dartsviz.viz.dashboard import Dashboard
    return Dashboard(Search(_config(epochs=2), data=small))


def weight_bars(dash):
    """The heights of the weight panel's bars: (edges, ops)."""
    ax = dash.panels.figs["weights"].axes[0]
    return np.array([[r.get_height() for r in bars] for bars in ax.containers]).T


def test_dashboard_steps_an_rnn_search_weights_cell_and_order(dash):
    assert [v for _, v in dash.panels.cell_type.options] == ["recurrent"]
    assert dash.panels.graph_kind.value == "soft"
    snap = dash.current()
    np.testing.assert_allclose(weight_bars(dash), snap.probs["recurrent"])            # drawn before any step
    before = bytes(dash.images["weights"].value)
    graph0 = dash.graph.value
    dash.step(2)
    rec = dash.current()
    assert rec.step == 2 and rec.space == "rnn" and rec.probs["recurrent"].shape == (36, 5)
    bars = weight_bars(dash)
    assert bars.shape == (36, 5)
    np.testing.assert_allclose(bars, rec.probs["recurrent"])                            # the record's probs
    assert not np.allclose(bars, snap.probs["recurrent"])
    weights = bytes(dash.images["weights"].value)
    assert weights != before and b"recurrent cell" in weights
    assert all(op.encode() in weights for op in RNN.ops)                                # the legend: 5 ops
    assert dash.graph.value != graph0
    assert "continuous recurrent cell" in dash.graph.value
    assert dash.genotype_text.value == rec.genotype.to_text() == dash.search.genotype.to_text()
    assert "val ppl" in dash.counter.value and "error" not in dash.status.value

    if C.dot_available():
        check_cell_svg(dash.graph.value, rec.genotype, soft=True)
    dash.panels.graph_kind.value = "derived"
    assert "derived recurrent cell" in dash.graph.value
    if C.dot_available():
        check_cell_svg(dash.graph.value, rec.genotype, soft=False)
    for _, _, op in rec.genotype.edges("recurrent"):
        assert op in texts(dash.graph.value)

    dash.order.value = 2                                        # the toggle: the next step is second order
    assert dash.search.config.order == 2 and not dash.hvp.disabled
    dash.step(1)
    last = dash.current()
    assert (last.step, last.order, last.hvp) == (3, 2, "finite") and "order 2" in dash.counter.value
    assert "derived recurrent cell" in dash.graph.value         # the choice of graph stays
    dash.order.value = 1
    dash.step(1)
    assert dash.search.config.order == 1 and dash.current().order == 1 and dash.hvp.disabled
    assert "error" not in dash.status.value, dash.status.value


def test_dashboard_redraws_the_cell_while_an_rnn_search_runs(small):
    from dartsviz.viz.dashboard import Dashboard
    d = Dashboard(Search(_config(), data=small), redraw_every=1, min_interval=0.0, budget=100.0)
    calls = []
    real = d.panels.draw
    d.panels.draw = lambda panels: (calls.append((d.search.step_count, tuple(panels))), real(panels))
    d.run(epochs=1)
    assert d.search.step_count == 3 and "done" in d.status.value
    assert any(n < 3 and "graph" in panels for n, panels in calls)      # drawn during the run, not only at its end
    assert all(kind == "step" for kind in [r.kind for r in d.history][:3]) and d.history[-1].kind == "epoch"
    d.redraw(everything=True)                                   # every tab: heat map, curves, collapse, cells
    for name, image in d.images.items():
        assert len(bytes(image.value)) > 1000, name
    assert b"perplexity" in bytes(d.images["curves"].value)
    assert b"identity edges" in bytes(d.images["collapse"].value)
    assert sorted(d.cells) == ["derived_recurrent", "soft_recurrent"]
    assert all("<svg" in w.value for w in d.cells.values())
    assert d.panels.edge.value == ("recurrent", (0, 1)) and len(d.panels.edge.options) == 36


def _svg_size(html_or_svg):
    head = re.search(r"<svg\b[^>]*>", html_or_svg, re.S).group(0)
    return tuple(float(re.search(rf'\s{k}="([\d.]+)(?:pt)?"', head).group(1)) for k in ("width", "height"))


def test_the_rnn_dashboard_fits_the_same_screen_as_the_cnn_one(dash):
    """Controls, weights and live graph on one 1366x768 screen (tests/test_browser.py checks
    the CNN's there): the recurrent cell's weights and graph take no more height than the
    convolutional cell's, nothing is wider than a panel, no text is under 11 px."""
    from dartsviz.viz.cellgraph import as_html
    dash.step(1)
    cnn = _cnn_record()
    cnn_weights = F.draw_weights(cnn, cells=["normal"]).get_size_inches()[1] * F.PX_PER_INCH
    cnn_graph = max(_svg_size(as_html(C.soft_cell_svg(cnn, "normal")))[1],
                    _svg_size(as_html(C.cell_svg(cnn.genotype, "normal")))[1])
    heights = {}
    for kind in ("soft", "derived"):
        dash.panels.graph_kind.value = kind
        w, heights[kind] = _svg_size(dash.graph.value)
        assert w <= F.display_width(dash.panels.figs["weights"]) == 864, (kind, w)
        if C.dot_available():
            sizes = [float(x) for x in re.findall(r'font-size="([\d.]+)"', dash.graph.value)]
            assert sizes and min(sizes) >= 11
    weights = dash.panels.figs["weights"].get_size_inches() * F.PX_PER_INCH
    assert weights[0] == 864 and weights[1] <= cnn_weights + 20
    assert weights[1] + max(heights.values()) <= cnn_weights + cnn_graph, (weights, heights, cnn_weights, cnn_graph)
    image = bytes(dash.images["weights"].value)
    sizes = [float(x) for x in re.findall(rb"font-size: ?([\d.]+)px", image)]
    assert sizes and min(sizes) >= 11



def test_projector_draws_the_recurrent_cell_and_its_panels_for_16_px_text(dash):
    """1.5x: the 8-node recurrent graph (both kinds) and the weights are drawn narrow enough that,
    zoomed, they fit a notebook's column at 1366 px (860 px, not capped), so 11 pt is 16.5 px."""
    dash.step(1)
    dash.projector.value = True
    try:
        for kind in ("soft", "derived"):
            dash.panels.graph_kind.value = kind
            w, _ = _svg_size(dash.graph.value)
            assert w * 1.5 <= F.SCREEN_COLUMN, (kind, w)
            if C.dot_available():
                sizes = [float(x) for x in re.findall(r'font-size="([\d.]+)"', dash.graph.value)]
                assert sizes and min(sizes) * 1.5 >= 16, (kind, sorted(set(sizes)))
        width = int(dash.images["weights"].layout.width[:-2])
        sizes = [float(x) for x in re.findall(rb"font-size: ?([\d.]+)px", bytes(dash.images["weights"].value))]
        assert width * 1.5 <= F.SCREEN_COLUMN and sizes and min(sizes) * 1.5 >= 16
    finally:
        dash.projector.value = False


# ---- figures and cell graphs ------------------------------------------------------------------------

def test_weights_panel_groups_the_36_edges_by_node():
    p = np.random.default_rng(0).dirichlet(np.ones(5), size=36)                     # (36, 5)
    fig = F.draw_weights(record(p))
    ax = fig.axes[0]
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == [str(s) for s, _ in RNN.edges("recurrent", 36)]                  # the source of each edge
    groups = [t.get_text() for t in ax.texts]
    assert groups == [f"\u2192{d}" for d in range(1, 9)]                              # then the node it goes into
    kept = {(s, d) for s, d, _ in record(p).genotype.edges("recurrent")}
    bold = [t.get_fontweight() == "bold" for t in ax.get_xticklabels()]
    assert bold == [e in kept for e in RNN.edges("recurrent", 36)]
    cnn = F.draw_weights(_cnn_record())                                              # 14 edges: `0→2` as before
    assert [t.get_text() for t in cnn.axes[0].get_xticklabels()][:2] == ["0\u21922", "1\u21922"]
    assert not cnn.axes[0].texts


def _cnn_record():
    cnn = get_space("cnn")
    p = {c: np.full((14, 8), 1 / 8) for c in cnn.cell_types}
    return StepRecord(step=1, epoch=0, space="cnn", probs=p, genotype=cnn.derive(p))


def test_dot_source_draws_x_t_and_h_into_s0_and_every_node_into_h_t():
    src = C.cell_dot(DARTS_RNN_V2, "recurrent").source
    edges = dot_edges(src)
    assert sorted((s, d) for s, d, _ in edges if s.startswith("in")) == [("in0", "0"), ("in1", "0")]
    assert sorted(int(s) for s, d, _ in edges if d == "out") == list(range(1, 9))
    kept = [(int(s), int(d), re.search(r'label=(\w+)', a).group(1)) for s, d, a in edges
            if s.isdigit() and d.isdigit()]
    assert sorted(kept) == sorted(DARTS_RNN_V2.edges("recurrent"))
    for name, label in (("in0", "x[t]"), ("in1", "h[t-1]"), ("0", "s0"), ("out", "h[t]"), ("_combine", "mean")):
        assert re.search(rf'^\t{name} \[label="?{re.escape(label)}"? .*pos="[-\d.]+,[-\d.]+!"', src, re.M), name
    assert re.search(r'^\t0 \[.*shape=circle', src, re.M)     # s0 is computed: a node, not an input box
    # the soft cell: each node's 2 strongest inputs (15 edges), only the 8 kept ones solid and labelled
    p = np.random.default_rng(1).dirichlet(np.ones(5), size=36)
    rec = record(p)
    soft = [(s, d, a) for s, d, a in dot_edges(C.cell_digraph(*C._soft(rec, "recurrent", None, 2, None)).source)
            if s.isdigit() and d.isdigit()]
    assert len(soft) == 15
    solid = sorted((int(s), int(d)) for s, d, a in soft if "style=solid" in a)
    assert solid == sorted((s, d) for s, d, _ in rec.genotype.edges("recurrent"))
    assert sorted((int(s), int(d)) for s, d, a in soft if "label=" in a) == solid


def test_soft_edges_label_every_edge_on_request_and_grow_with_the_weight():
    p = np.full((36, 5), 0.2)
    p[3] = [0.01, 0.01, 0.95, 0.02, 0.01]                      # edge (0, 3): relu, sharp
    edges = C.soft_edges(record(p), "recurrent", strongest=0)              # every edge
    assert len(edges) == 36 and sum(e[6] for e in edges) == 8
    assert sum(bool(e[5]) for e in edges) == 8
    assert len([e for e in C.soft_edges(record(p), "recurrent", label_all=True, strongest=0) if e[5]]) == 36
    sharp, flat = edges[3], edges[4]                          # (0, 3) and (1, 3)
    assert sharp[:2] == (0, 3) and sharp[3] > flat[3] and sharp[4] > flat[4]
    assert sharp[5] == "relu 0.95" and sharp[6]


@needs_dot
def test_graphviz_svg_of_derived_and_soft_cells():
    C.clear_cache()
    check_cell_svg(C.cell_svg(DARTS_RNN_V2, "recurrent"), DARTS_RNN_V2, soft=False)
    rng = np.random.default_rng(2)
    rec = record(rng.dirichlet(np.ones(5), size=36))
    svg = C.soft_cell_svg(rec, "recurrent")
    check_cell_svg(svg, rec.genotype, soft=True)
    assert 'paint-order="stroke"' in svg                      # labels legible over other edges


SVG_NODE = re.compile(r'<g id="node\d+" class="node">\s*<title>([^<]*)</title>(.*?)</g>', re.S)


def node_places(svg):
    """{node name: every coordinate of its shape and label} and the drawing's frame."""
    nodes = {html.unescape(name): tuple(re.findall(r'\s(?:cx|cy|x|y|points|d)="([^"]+)"', body))
             for name, body in SVG_NODE.findall(svg)}
    head = re.search(r"<svg[^>]*>", svg, re.S).group(0)
    return nodes, re.findall(r'(?:width|height|viewBox)="([^"]+)"', head)


@needs_dot
def test_nodes_stay_put_whatever_the_weights():
    """Between two very different weight sets and two genotypes only edges change."""
    C.clear_cache()
    rng = np.random.default_rng(3)
    a, b = record(np.full((36, 5), 0.2)), record(rng.dirichlet(np.ones(5) * 0.3, size=36))
    pairs = [(C.soft_cell_svg(a, "recurrent"), C.soft_cell_svg(b, "recurrent")),
             (C.cell_svg(DARTS_RNN_V1, "recurrent"), C.cell_svg(DARTS_RNN_V2, "recurrent"))]
    for sa, sb in pairs:
        assert sa != sb
        na, fa = node_places(sa)
        nb, fb = node_places(sb)
        assert sorted(na) == sorted(["in0", "in1", "_combine", "out", *map(str, range(9))])
        assert na == nb and fa == fb


def test_layout_x_t_and_h_left_of_s0_then_nodes_left_to_right():
    edges, _, layout = C._derived(DARTS_RNN_V2, "recurrent", None, None)
    at = C._positions(layout)
    assert at["in0"][0] == at["in1"][0] < at[0][0] < at[1][0]
    assert at["in0"][1] > at[0][1] > at["in1"][1]             # x_t above h_{t-1}, s0 between them
    assert all(at[k][0] < at[k + 1][0] for k in range(8)) and at[8][0] < at["out"][0]
    assert at == C._positions(C._soft(record(np.full((36, 5), 0.2)), "recurrent", None, 2, None)[2])
    x0, y0, x1, y1 = C.cell_geometry(layout).bbox
    assert x1 - x0 <= 864 and y1 - y0 <= 230


def test_without_dot_the_matplotlib_cell_is_drawn_with_the_hint(no_dot):
    assert not C.dot_available()
    svg = C.cell_svg(DARTS_RNN_V2, "recurrent")
    assert NODES | {"mean", "derived recurrent cell"} <= texts(svg)
    assert {op for _, _, op in DARTS_RNN_V2.edges("recurrent")} <= texts(svg)
    assert "apt-get install graphviz" in C.as_html(svg)
    rec = record(np.random.default_rng(4).dirichlet(np.ones(5), size=36))
    soft = texts(C.soft_cell_svg(rec, "recurrent"))
    labels = {t for t in soft if re.fullmatch(r"\w+ \d\.\d\d", t)}
    assert NODES <= soft and len(labels) <= 8                 # only the kept edges are labelled
    assert C.cell_png(DARTS_RNN_V2, "recurrent")[:4] == b"\x89PNG"


def test_panels_without_dot_draw_the_recurrent_cell(no_dot):
    from dartsviz.viz.panels import PanelSet
    rec = record(np.random.default_rng(5).dirichlet(np.ones(5), size=36))
    panels = PanelSet(rec)
    panels.render(("cells", "graph", "weights"), rec, [rec])
    assert sorted(panels.cells) == ["derived_recurrent", "soft_recurrent"]
    assert all(NODES <= texts(w.value) for w in panels.cells.values())
    assert sum("apt-get install graphviz" in v for v in [panels.graph.value] + [w.value for w in panels.cells.values()]) == 1
    assert panels.genotype_text.value == rec.genotype.to_text()


# ---- run directories: export, Replay, Compare --------------------------------------------------------

def test_export_of_an_rnn_run_directory(runs, tmp_path):
    from dartsviz.viz.export import export_run
    out = tmp_path / "plots"
    written = {p.name for p in export_run(runs[0], out=out)}
    steps = [r for r in RunDir(runs[0]).read_records() if r.kind == "step"]
    last = steps[-1]
    for name in ("weights.png", "weights.svg", "heatmap.png", "curves.svg", "collapse.png", "cell_recurrent.gv",
                 "cell_recurrent.svg", "cell_recurrent.png", "soft_cell_recurrent.svg", "soft_cell_recurrent.png",
                 "genotype.txt", "alphas.gif", "alphas.html"):
        assert name in written and (out / name).stat().st_size > 0, name
    assert any(n.startswith("trajectories_recurrent_") for n in written)
    assert (out / "genotype.txt").read_text().strip() == last.genotype.to_text()
    gv = (out / "cell_recurrent.gv").read_text()
    edges = dot_edges(gv)
    assert len(edges) == 2 + 8 + 8                             # x_t, h_{t-1} -> s0; the kept edges; 1..8 -> h_t
    kept = sorted((int(s), int(d)) for s, d, _ in edges if s.isdigit() and d.isdigit())
    assert kept == sorted((s, d) for s, d, _ in last.genotype.edges("recurrent"))
    for name in ("cell_recurrent.svg", "soft_cell_recurrent.svg"):
        assert NODES <= texts((out / name).read_text()), name
    assert b"recurrent cell" in (out / "weights.svg").read_bytes()
    assert (out / "cell_recurrent.png").read_bytes()[:4] == b"\x89PNG"


def test_replay_of_an_rnn_run_directory(runs):
    from dartsviz.viz.replay import Replay
    rp = Replay(runs[1])
    steps = [r for r in RunDir(runs[1]).read_records() if r.kind == "step"]
    assert rp.slider.max == len(steps) == 3 and rp.record == steps[-1]
    last = {k: w.value for k, w in rp.images.items()}
    rp.show(step=1)
    assert rp.record == steps[0] and rp.genotype_text.value == steps[0].genotype.to_text()
    assert rp.images["weights"].value != last["weights"]
    assert f"val ppl {steps[0].metrics['val_ppl']:.2f}" in rp.title.value and "order 2" in rp.title.value
    assert NODES <= texts(rp.panels.graph.value)
    rp.panels.graph_kind.value = "derived"
    if C.dot_available():
        check_cell_svg(rp.panels.graph.value, steps[0].genotype, soft=False)
    rp.next_button.click()
    assert rp.record.step == 2 and "error" not in rp.status.value


def test_compare_of_two_rnn_runs(runs, tmp_path):
    from dartsviz.viz.compare import Compare, compare_report
    from dartsviz.viz.records import cell_differences
    cmp = Compare(*runs, labels=("first order", "second order"))
    assert all(len(cmp.images[k].value) > 5000 for k in ("heat_a", "heat_b", "curves", "cost"))
    assert sorted(cmp.cells) == ["a_recurrent", "b_recurrent"]
    for w in cmp.cells.values():                               # at its own width (1 pt = 1 px), wrapped if need be
        assert not w.layout.width and w.layout.max_width == "100%"
    genotypes = [r.latest().genotype for r in cmp.runs]
    for k, g in zip("ab", genotypes):
        assert NODES <= texts(cmp.cells[f"{k}_recurrent"].value)
        if C.dot_available():
            check_cell_svg(cmp.cells[f"{k}_recurrent"].value, g, soft=False)
    diff = cell_differences(*genotypes, RNN)
    assert (f"{len(diff)} kept edge(s) differ" if diff else "identical") in cmp.differences.value
    assert "last val ppl" in cmp.summary.value and "x</b> the time per step" in cmp.summary.value
    page = compare_report(*runs, tmp_path / "report")
    assert (tmp_path / "report" / "cell_a_recurrent.svg").is_file() and "ppl" in page.read_text()


def test_the_training_tab_trains_the_derived_recurrent_cell(dash):
    pytest.importorskip("dartsviz.spaces.rnn.train")          # the recurrent training from scratch
    dash.step(1)
    panel = dash.train_panel
    panel.overrides.update(nhid=8, vocab_size=200, batch_size=4, bptt=5)
    t = dash.train(steps=2)
    assert t.genotype == dash.search.genotype and t.step_count == 2
    assert "error" not in panel.status.value and "done at step 2" in panel.status.value
    assert b"perplexity" in bytes(panel.image.value) and panel.image.layout.display is None
