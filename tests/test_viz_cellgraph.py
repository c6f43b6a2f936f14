"""Cell graphs: graphviz SVG naming every op, the soft cell, and the no-`dot` fallback."""
import re
import shutil

import numpy as np
import pytest

from dartsviz import DARTS_RNN_V1, DARTS_V1, DARTS_V2, StepRecord, derive, get_space
from dartsviz.spaces.cnn.genotype import derive_cell
from dartsviz.viz import cellgraph as C
from test_viz_figures import fake_history, toy, toy_history  # noqa: F401  (toy: a fixture)

CNN = get_space("cnn")
OP_OF_LABEL = {short: op for op, short in CNN.op_short.items()}
# one drawn edge in DOT source: `\t0 -> 2 [label="sep3 0.13" ... style=solid]`
DOT_EDGE = re.compile(r'^\t(\d+) -> (\d+) \[label="?([^" \]]+)[^\]]*style=(solid|dashed)', re.M)


def record(normal, reduce=None, step=1):
    """A step record of these weights, as the search builds it (genotype derived at full precision)."""
    probs = {"normal": normal, "reduce": normal if reduce is None else reduce}
    return StepRecord(step=step, epoch=0, space="cnn", probs=probs, genotype=CNN.derive(probs))


@pytest.fixture
def no_dot(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))                  # an empty folder: no `dot`
    C.clear_cache()
    yield
    C.clear_cache()


@pytest.mark.skipif(not C.dot_available(), reason="needs graphviz's dot")
@pytest.mark.parametrize("genotype", [DARTS_V1, DARTS_V2])
def test_dot_svg_names_every_op_and_both_cells(genotype):
    for cell, title in (("normal", "normal cell"), ("reduce", "reduction cell")):
        svg = C.cell_svg(genotype, cell)
        assert svg.startswith("<?xml") and "<svg" in svg and svg.rstrip().endswith("</svg>")   # dot's whole SVG
        assert title in svg
        for _, _, op in genotype.edges(cell):
            assert op in svg
        assert "0: c[k&#45;2]" in svg and "1: c[k&#45;1]" in svg and "c[k]" in svg


def test_dot_source_is_available_without_rendering():
    src = C.cell_dot(DARTS_V2, "reduce").source
    assert "max_pool_3x3" in src and "reduction cell" in src
    assert src.count("->") == 8 + 4                             # kept edges + concat edges


def test_soft_cell_draws_every_edge_sharper_with_stronger_weights():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(8), size=14)                 # (14, 8)
    edges = C.soft_edges(record(probs), "normal")
    assert len(edges) == 14 and sum(e[6] for e in edges) == 8  # all edges drawn, 8 kept
    sharp = probs.copy()
    sharp[0] = 0.01
    sharp[0, 4] = 0.93
    e_sharp = C.soft_edges(record(sharp), "normal")[0]
    e_soft = C.soft_edges(record(np.full((14, 8), 1 / 8)), "normal")[0]
    assert e_sharp[5].startswith("sep3") and e_sharp[3] > e_soft[3] and e_sharp[4] > e_soft[4]


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs graphviz's dot")
def test_soft_cell_svg_from_dot_draws_every_edge():
    probs = np.random.default_rng(0).dirichlet(np.ones(8), size=14)   # (14, 8)
    C.clear_cache()
    svg = C.soft_cell_svg(record(probs), "normal")
    assert svg.count("<g id=\"edge") == 14 + 4                 # supernet edges + concat edges


def _solid(edges):
    """The solid (kept) edges of a drawing as sorted (src, dst, op)."""
    return sorted((src, dst, OP_OF_LABEL.get(label.split()[0], label.split()[0]))
                  for src, dst, _, _, _, label, kept in edges if kept)


def _solid_in_dot(source):
    return sorted((int(s), int(d), OP_OF_LABEL.get(lab, lab))
                  for s, d, lab, style in DOT_EDGE.findall(source) if style == "solid")


def _derived(cell):
    return sorted((src, i + 2, op) for i, node in enumerate(cell) for op, src in node)


def test_soft_cell_and_derived_cell_agree_on_near_uniform_weights():
    """Early in a search the weights are all near 1/8: rounding them before deciding which
    edges are kept (and which op is strongest) would make the soft cell's solid edges and
    the derived cell beside it disagree. Both must equal `derive` on every draw."""
    rng = np.random.default_rng(0)
    draws, bad = 200, []
    for i in range(draws):
        alphas = 1e-3 * rng.standard_normal((2, 14, 8))                  # (cells, E, O)
        probs = np.exp(alphas) / np.exp(alphas).sum(-1, keepdims=True)   # (cells, E, O)
        g = derive(probs[0], probs[1])
        # a step record as the search builds it: the weights (kept to 6 digits) and the genotype
        # derived from them at full precision
        rec = StepRecord(step=i, epoch=0, space="cnn", probs={"normal": probs[0], "reduce": probs[1]}, genotype=g)
        for c, cell in enumerate(("normal", "reduce")):
            expected = _derived(derive_cell(probs[c]))
            soft = C.soft_edges(rec, cell)
            derived = C.discrete_edges(g, cell)
            assert len(soft) == 14
            got = {"soft_edges": _solid(soft), "discrete_edges": _solid(derived),
                   "soft dot": _solid_in_dot(C.cell_digraph(soft, "soft").source),
                   "derived dot": _solid_in_dot(C.cell_digraph(derived, "derived").source)}
            wrong = [name for name, edges in got.items() if edges != expected]
            if wrong:
                bad.append((i, cell, wrong))
    assert not bad, f"{len(bad)} of {2 * draws} cells drawn differently from derive: {bad[:5]}"


def _count_calls(monkeypatch, name):
    calls = []
    real = getattr(C, name)
    monkeypatch.setattr(C, name, lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def _check_cached_by_picture(calls):
    C.clear_cache()
    a = C.cell_svg(DARTS_V2, "normal")
    assert len(calls) == 1
    assert C.cell_svg(DARTS_V2, "normal") == a and len(calls) == 1      # same picture: from the cache
    p = np.random.default_rng(1).dirichlet(np.ones(8), size=14).round(2)   # (14, 8)
    s = C.soft_cell_svg({"normal": p, "reduce": p}, "reduce")            # bare weights, e.g. model.probs()
    assert len(calls) == 2
    assert C.soft_cell_svg(record(p + 1e-3), "reduce") == s              # same picture after rounding
    assert len(calls) == 2
    assert C.soft_cell_svg(record(p[::-1]), "reduce") != s               # a new picture
    assert len(calls) == 3
    assert C.cell_svg(DARTS_V1, "normal") != a and len(calls) == 4
    C.clear_cache()
    C.cell_svg(DARTS_V2, "normal")
    assert len(calls) == 5                                              # drawn again once cleared
    C.clear_cache()


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs graphviz's dot (render_svg runs only with it)")
def test_svg_is_cached_by_picture(monkeypatch):
    _check_cached_by_picture(_count_calls(monkeypatch, "render_svg"))


def test_fallback_svg_is_cached_by_picture(no_dot, monkeypatch):
    _check_cached_by_picture(_count_calls(monkeypatch, "fallback_svg"))


def test_without_dot_fallback_is_drawn_and_nothing_raises(no_dot):
    assert not C.dot_available()
    for cell in ("normal", "reduce"):
        svg = C.cell_svg(DARTS_V2, cell)
        assert "<svg" in svg and len(svg) > 5000
        html = C.as_html(svg)
        assert "apt-get install graphviz" in html
    svg = C.soft_cell_svg(record(np.full((14, 8), 1 / 8)), "normal")
    assert "<svg" in svg


def test_panels_without_dot_show_fallback_and_hint_once(no_dot):
    from dartsviz.viz.panels import PanelSet
    h = fake_history(3)
    last = [r for r in h if r.kind == "step"][-1]
    panels = PanelSet(last)
    panels.render(("cells", "graph"), last, h)
    html = [w.value for w in panels.cells.values()] + [panels.graph.value]
    assert all("<svg" in v for v in html)
    assert sum("apt-get install graphviz" in v for v in html) == 1
    assert "apt-get install graphviz" in panels.graph.value           # under the graph in view
    assert panels.genotype_text.value == last.genotype.to_text()
    assert sorted(panels.cells) == ["derived_normal", "derived_reduce", "soft_normal", "soft_reduce"]


def test_broken_dot_falls_back(monkeypatch):
    C.clear_cache()
    import graphviz

    def broken(*a, **k):
        raise graphviz.ExecutableNotFound(("dot",))
    monkeypatch.setattr(graphviz.Digraph, "pipe", broken)
    monkeypatch.setattr(C, "dot_available", lambda: True)
    svg = C.cell_svg(DARTS_V1, "normal")
    assert "<svg" in svg
    C.clear_cache()


def test_bare_weights_need_every_cell_type_and_a_space_that_fits():
    p = np.full((14, 8), 1 / 8)                                 # (14, 8)
    with pytest.raises(ValueError, match="every cell type"):
        C.soft_edges({"normal": p}, "normal")
    with pytest.raises(ValueError, match="no registered search spaces fit"):
        C.soft_edges({"normal": np.full((14, 5), 0.2)}, "normal")
    with pytest.raises(ValueError, match="cell type must be one of normal, reduce"):
        C.cell_svg(DARTS_V2, "recurrent")


def test_another_space_is_drawn_from_what_it_declares(toy, no_dot):
    """Node labels, output, ops, colours and edges come from the space: nothing is the CNN's."""
    rec = [r for r in toy_history() if r.kind == "step"][-1]
    soft = C.soft_edges(rec, "cell")
    assert [(s, d) for s, d, *_ in soft] == toy.edges("cell", 6)
    assert sorted((s, d) for s, d, *_, kept in soft if kept) == sorted((s, d) for s, d, _ in rec.genotype.edges("cell"))
    src = C.cell_dot(rec.genotype, "cell").source               # the space found from the genotype
    assert '"0: x|h"' in src and '"h[t]"' in src and "cell cell" in src
    assert src.count("->") == 3 + 3                             # kept edges + concat edges
    for _, _, op in rec.genotype.edges("cell"):
        assert op in src and toy.op_colours[op] in src
    assert "<svg" in C.cell_svg(rec.genotype, "cell") and "<svg" in C.soft_cell_svg(rec, "cell")
    assert "<svg" in C.soft_cell_svg(dict(rec.probs), "cell")   # bare weights: space found, derived once


def test_panels_follow_the_space_of_the_record(toy, no_dot):
    from dartsviz.viz.panels import PanelSet
    cnn, other = fake_history(3), toy_history(3)
    panels = PanelSet(cnn[-1] if cnn[-1].kind == "step" else cnn[-2])
    cells = panels.cells
    last = [r for r in other if r.kind == "step"][-1]
    panels.render(("cells", "weights", "trajectories", "curves", "collapse"), last, other)
    assert panels.cells is cells and sorted(cells) == ["derived_cell", "soft_cell"]
    assert [w for w in panels.cell_rows["derived"].children] == [cells["derived_cell"]]
    assert panels.edge.value == ("cell", (0, 1)) and len(panels.edge.options) == 6
    assert panels.genotype_text.value == last.genotype.to_text()


# ---- a pinned drawing: nodes never move between steps ----------------------------------------------

SVG_NODE = re.compile(r'<g id="node\d+" class="node">\s*<title>([^<]*)</title>(.*?)</g>', re.S)
NUMBERS = re.compile(r'\s(?:cx|cy|x|y|points|d)="([^"]+)"')
TEXT_AT = re.compile(r'<text[^>]*\sx="([-\d.]+)" y="([-\d.]+)"')


def node_places(svg):
    """{node name: every coordinate of its shape and label} and the drawing's frame."""
    nodes = {name: tuple(NUMBERS.findall(body)) for name, body in SVG_NODE.findall(svg)}
    frame = re.search(r"<svg[^>]*>\s*<g[^>]*transform=\"([^\"]+)\"", svg, re.S)
    head = re.search(r"<svg[^>]*>", svg, re.S).group(0)
    return nodes, (re.findall(r'(?:width|height|viewBox)="([^"]+)"', head), frame.group(1))


def _very_different_weights():
    uniform = np.full((14, 8), 1 / 8)                                      # (14, 8)
    sharp = np.full((14, 8), 0.002)
    sharp[np.arange(14), np.arange(14) % 7 + 1] = 1 - 7 * 0.002           # one op per edge, all different
    sharp[[1, 4, 8, 13]] = np.roll(sharp[[1, 4, 8, 13]], 3, axis=1)
    return record(uniform), record(sharp, np.roll(sharp, 5, axis=0))


@pytest.mark.skipif(not (shutil.which("dot") and shutil.which("neato")), reason="needs graphviz's dot and neato")
def test_node_places_in_the_svg_do_not_depend_on_the_weights():
    """Between two very different weight sets only edges change: every node, its label and
    the frame of the drawing stay put (soft and derived cells, both cell types)."""
    C.clear_cache()
    a, b = _very_different_weights()
    assert a.genotype != b.genotype
    for cell in ("normal", "reduce"):
        pairs = [(C.soft_cell_svg(a, cell), C.soft_cell_svg(b, cell)), (C.cell_svg(a.genotype, cell), C.cell_svg(b.genotype, cell)),
                 (C.cell_svg(DARTS_V1, cell), C.cell_svg(DARTS_V2, cell))]
        for sa, sb in pairs:
            assert sa != sb                                             # the edges did change
            na, fa = node_places(sa)
            nb, fb = node_places(sb)
            assert sorted(na) == ["0", "1", "2", "3", "4", "5", "out"]
            assert na == nb and fa == fb
        # inputs stacked in their order: c[k-2] above c[k-1] (SVG y grows downwards), then 2, 3, 4, 5 left to right
        at = {name: tuple(map(float, TEXT_AT.search(body).groups()))
              for name, body in SVG_NODE.findall(C.soft_cell_svg(a, cell))}
        y = lambda k: at[k][1]                                           # its label's place
        x = lambda k: at[k][0]
        assert y("0") < y("1") and x("0") == x("1") < x("2") < x("3") < x("4") < x("5") < x("out")


def test_dot_source_pins_every_node_edge_and_label():
    src = C.cell_dot(DARTS_V2, "normal").source
    for k in ("0", "1", "2", "3", "4", "5", "out"):
        assert re.search(rf'^\t{k} \[label=.*pos="[-\d.]+,[-\d.]+!"', src, re.M), k
    edges = re.findall(r"^\t\w+ -> \w+ \[.*\]$", src, re.M)
    assert len(edges) == 8 + 4 and all('pos="e,' in e for e in edges)
    assert all("lp=" in e for e in edges if "label=" in e)
    # the same places for the same nodes, whatever the edges
    places = lambda s: re.findall(r'^\t(\w+) \[label=.*pos="([^"]+)"', s, re.M)
    assert places(src) == places(C.cell_dot(DARTS_V1, "normal").source)
    rng = np.random.default_rng(4)
    soft = [C.cell_digraph(*C._soft(record(rng.dirichlet(np.ones(8), size=14)), "normal", None, 2, None)).source
            for _ in range(2)]
    assert places(soft[0]) == places(soft[1]) and soft[0] != soft[1]
    lps = lambda s: re.findall(r'lp="([^"]+)"', s)
    assert lps(soft[0]) == lps(soft[1]) and len(set(lps(soft[0]))) == 14   # 14 labels, each its own place


@pytest.mark.skipif(not (shutil.which("dot") and shutil.which("neato")), reason="needs graphviz's dot and neato")
def test_labels_are_plain_text_and_at_least_11_px_in_a_widget():
    svg = C.soft_cell_svg(record(np.full((14, 8), 1 / 8)), "normal")
    assert "c[k&#45;2]" in svg and "c[k&#45;1]" in svg and "_{" not in svg
    sizes = [float(v) for v in re.findall(r'font-size="([\d.]+)"', svg)]
    assert sizes and min(sizes) >= 11
    html = C.as_html(svg)
    head = re.search(r"<svg[^>]*>", html, re.S).group(0)
    assert re.search(r'width="[\d.]+"', head) and "pt" not in head and "max-width:100%" in head
    assert not html.lstrip().startswith("<?xml") and "<!DOCTYPE" not in html


def test_fallback_draws_the_same_places(no_dot):
    rec = record(np.full((14, 8), 1 / 8))
    edges, title, layout = C._soft(rec, "normal", None, 2, None)
    geo = C.cell_geometry(layout)
    assert C._positions(layout) == {k: (s.x, s.y) for k, s in geo.nodes.items()}
    assert C._positions(layout) == C._positions(C._derived(DARTS_V2, "normal", None, None)[2])
    svg = C.soft_cell_svg(rec, "normal")
    assert "<svg" in svg and "c[k-2]" in svg                      # text kept as text


# ---- drawings that fit their output, and a continuous recurrent cell that a room can read ---------

RNN = get_space("rnn")


def rnn_record(probs):
    return StepRecord(step=1, epoch=0, space="rnn", probs={"recurrent": probs},
                      genotype=RNN.derive({"recurrent": probs}))


def _root(svg):
    """The root <svg> tag's width in CSS px (a `pt` width is 4/3 px), its viewBox and style."""
    head = re.search(r"<svg\b[^>]*>", svg, re.S).group(0)
    width = re.search(r'\swidth="([\d.]+)(pt)?"', head)
    px = float(width.group(1)) * (4 / 3 if width.group(2) else 1.0)
    view = re.search(r'viewBox="([^"]+)"', head)
    return px, view.group(1) if view else None, head


def _every_drawing():
    p = np.random.default_rng(0).dirichlet(np.ones(5), size=36)            # (36, 5)
    q = np.random.default_rng(0).dirichlet(np.ones(8), size=14)            # (14, 8)
    return {"derived cnn": C.cell_svg(DARTS_V2, "normal"), "soft cnn": C.soft_cell_svg(record(q), "reduce"),
            "derived rnn": C.cell_svg(DARTS_RNN_V1, "recurrent"),
            "soft rnn": C.soft_cell_svg(rnn_record(p), "recurrent")}


def _check_drawings_fit(drawings):
    """Notebooks 08 and 09 show `SVG(cell_svg(...))`, which JupyterLab puts in an unconstrained
    <img>: every drawing at most 864 px wide (1 pt = 1 px), inside a notebook's 934-px output at
    1366 px beside the file browser; its viewBox scales it; inlined, it shrinks with its container."""
    for name, svg in drawings.items():
        px, view, head = _root(svg)
        assert view and abs(float(view.split()[2]) - px) < 1.5, (name, head)    # 1 pt of the drawing = 1 px
        assert px <= 864, (name, px)
        assert "max-width:100%" in head and "height:auto" in head, (name, head)
        html = C.as_html(svg, hint=False)
        assert _root(html)[0] == px and html.count("max-width:100%;height:auto") == 1          # not twice


@pytest.mark.skipif(not C.dot_available(), reason="needs graphviz's dot and neato")
def test_cell_drawings_fit_a_notebooks_output():
    C.clear_cache()
    _check_drawings_fit(_every_drawing())


def test_cell_drawings_fit_a_notebooks_output_without_dot(no_dot):
    _check_drawings_fit(_every_drawing())


def test_the_continuous_recurrent_cell_draws_each_nodes_two_strongest_inputs_thick():
    """36 edges cover the drawing: only each node's 2 strongest inputs (the kept one among them),
    15 edges, thick, none faint, and the title says what is left out; `strongest=0` draws all."""
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(5), size=36)                                  # (36, 5)
    rec = rnn_record(p)
    edges = C.soft_edges(rec, "recurrent")
    assert len(edges) == 1 + 2 * 7 <= 15                                     # node 1 has one input only
    kept = {(s, d) for s, d, _ in rec.genotype.edges("recurrent")}
    assert {(s, d) for s, d, *_, k in edges if k} == kept                   # every kept edge, solid
    weight = {e: p[i, 1:].max() for i, e in enumerate(RNN.edges("recurrent", 36))}   # the strongest op's
    for node in range(2, 9):
        drawn = [(s, d) for s, d, *_ in edges if d == node]
        others = [e for e in weight if e[1] == node and e not in drawn and e not in kept]
        assert len(drawn) == 2 and all(weight[e] <= min(weight[x] for x in drawn if x not in kept) for e in others)
    assert min(e[3] for e in edges) >= 0.5 + 10 * min(weight.values()) - 0.05  # the wide pen of a few edges
    assert min(e[4] for e in edges) >= 0.45                                  # none faint
    edges_, title, _ = C._soft(rec, "recurrent", None, 2, None)
    assert "2 strongest inputs: 15 of 36 edges" in title
    assert len(C.soft_edges(rec, "recurrent", strongest=0)) == 36           # every edge on request
    assert "of 14 edges" not in C._soft(record(np.full((14, 8), 1 / 8)), "normal", None, 2, None)[1]   # CNN: all
    if C.dot_available():
        C.clear_cache()
        svg = C.soft_cell_svg(rec, "recurrent")
        searched = re.findall(r"<title>(\d+)&#45;&gt;(\d+)</title>", svg)
        assert len(searched) == 15 and "15 of 36 edges" in svg
