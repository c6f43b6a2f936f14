"""Cell graphs: graphviz SVG naming every op, the soft cell, and the no-`dot` fallback."""
import numpy as np
import pytest

from dartsviz.genotype import DARTS_V1, DARTS_V2
from dartsviz.viz import cellgraph as C


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
        assert svg.lstrip().startswith("<?xml") or "<svg" in svg
        assert title in svg
        for _, _, op in genotype.edges(cell):
            assert op in svg
        assert "c_{k&#45;2}" in svg and "c_{k}" in svg


def test_dot_source_is_available_without_rendering():
    src = C.cell_dot(DARTS_V2, "reduce").source
    assert "max_pool_3x3" in src and "reduction cell" in src
    assert src.count("->") == 8 + 4                             # kept edges + concat edges


def test_soft_cell_draws_every_edge_sharper_with_stronger_weights():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(8), size=14)                 # (14, 8)
    edges = C.soft_edges({"normal": probs}, "normal")
    assert len(edges) == 14 and sum(e[6] for e in edges) == 8  # all edges drawn, 8 kept
    sharp = probs.copy()
    sharp[0] = 0.01
    sharp[0, 4] = 0.93
    e_sharp = C.soft_edges({"normal": sharp}, "normal")[0]
    e_soft = C.soft_edges({"normal": np.full((14, 8), 1 / 8)}, "normal")[0]
    assert e_sharp[5].startswith("sep3") and e_sharp[3] > e_soft[3] and e_sharp[4] > e_soft[4]
    if C.dot_available():
        svg = C.soft_cell_svg({"normal": probs}, "normal")
        assert svg.count("<g id=\"edge") == 14 + 4


def test_svg_is_cached_by_picture(monkeypatch):
    C.clear_cache()
    calls = []
    real = C.render_svg
    monkeypatch.setattr(C, "render_svg", lambda g: calls.append(1) or real(g))
    C.cell_svg(DARTS_V2, "normal")
    C.cell_svg(DARTS_V2, "normal")
    p = np.random.default_rng(1).dirichlet(np.ones(8), size=14).round(2)   # (14, 8)
    C.soft_cell_svg({"reduce": p}, "reduce")
    C.soft_cell_svg({"reduce": p + 1e-3}, "reduce")          # same picture after rounding
    C.soft_cell_svg({"reduce": p[::-1]}, "reduce")           # a new picture
    if C.dot_available():
        assert len(calls) == 3


def test_without_dot_fallback_is_drawn_and_nothing_raises(no_dot):
    assert not C.dot_available()
    for cell in ("normal", "reduce"):
        svg = C.cell_svg(DARTS_V2, cell)
        assert "<svg" in svg and len(svg) > 5000
        html = C.as_html(svg)
        assert "apt-get install graphviz" in html
    svg = C.soft_cell_svg({"normal": np.full((14, 8), 1 / 8)}, "normal")
    assert "<svg" in svg


def test_panels_without_dot_show_fallback_and_hint_once(no_dot):
    from dartsviz.viz.panels import PanelSet
    from test_viz_figures import fake_history
    h = fake_history(3)
    panels = PanelSet()
    panels.render(("cells",), [r for r in h if r["kind"] == "step"][-1], h)
    html = [w.value for w in panels.cells.values()]
    assert all("<svg" in v for v in html)
    assert sum("apt-get install graphviz" in v for v in html) == 1
    assert panels.genotype_text.value.startswith("Genotype(normal=")


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
