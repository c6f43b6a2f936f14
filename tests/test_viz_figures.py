"""Figures: drawn from records into reusable Figures, no leaks, kept ops marked, any space."""
import gc
from dataclasses import dataclass
from typing import Tuple

import matplotlib
import numpy as np
import pytest

from dartsviz import DARTS_V1, DARTS_V2, EpochRecord, SearchSpace, StepRecord, get_space
from dartsviz.spaces.cnn.genotype import derive_cell, edges_of
from dartsviz.viz import figures as F
from dartsviz.viz.records import architecture, cell_differences, collapse_counts

CNN = get_space("cnn")


def fake_history(steps=6, seed=0, order_from=4, space=CNN, n_edges=14):
    """Step and epoch records built by the constructors the search uses, without running one."""
    rng = np.random.default_rng(seed)
    m = space.metric
    out = []
    for s in range(1, steps + 1):
        probs = {c: rng.dirichlet(np.ones(len(space.ops)), size=n_edges) for c in space.cell_types}  # (E, O) each
        order = 2 if s >= order_from else 1
        g = space.derive(probs)
        out.append(StepRecord(step=s, epoch=(s - 1) // 3, space=space.name, probs=probs, genotype=g,
                              losses={"train": 2.0 / s, "val": 2.1 / s},
                              metrics={f"train_{m}": 0.1 * s, f"val_{m}": 0.09 * s},
                              order=order, hvp="finite" if order == 2 else None, lr=0.05, arch_lr=0.03,
                              seconds=0.1 * order, peak_mem_mb=100.0))
        if s % 3 == 0:
            out.append(EpochRecord(step=s, epoch=(s - 1) // 3, space=space.name, genotype=g,
                                   losses={"train": 1.0, "val": 1.0, "test": 1.1},
                                   metrics={f"train_{m}": 0.5, f"val_{m}": 0.5, f"test_{m}": 0.45}, seconds=0.3))
    return out


def steps_of(records):
    return [r for r in records if r.kind == "step"]


# ---- a second space, to show the views know no space by name ------------------------------------

@dataclass(frozen=True)
class ToyGenotype:
    """One cell: each intermediate node's (op, input)."""
    nodes: Tuple[Tuple[str, int], ...]

    def edges(self, cell_type):
        if cell_type != "cell":
            raise ValueError(f"no cell type {cell_type!r}")
        return [(src, i + 1, op) for i, (op, src) in enumerate(self.nodes)]

    def concat(self, cell_type):
        return tuple(range(1, len(self.nodes) + 1))

    def to_text(self):
        return "Toy(" + ", ".join(f"{op}@{src}" for op, src in self.nodes) + ")"


class ToySpace(SearchSpace):
    """One input node, one cell type, three ops; each node keeps its strongest input."""

    name = "toy"
    cell_types = ("cell",)
    ops = ("zero", "identity", "conv")
    zero_op = "zero"
    skip_op = "identity"
    parameter_free = ("zero", "identity")
    metric = "ppl"
    higher_is_better = False

    def edges(self, cell_type, n_edges):
        nodes = int(round((np.sqrt(8 * n_edges + 1) - 1) / 2))       # n_edges = nodes (nodes + 1) / 2
        return [(src, dst) for dst in range(1, nodes + 1) for src in range(dst)]

    def node_labels(self, cell_type, n_nodes):
        return ["x|h"] + [str(k) for k in range(1, n_nodes)]

    def output_label(self, cell_type):
        return "h[t]"

    def derive(self, probs):
        p = np.asarray(probs["cell"], dtype=np.float64)[:, 1:]       # (E, O - 1): without zero
        edges = self.edges("cell", len(p))
        nodes = []
        for dst in range(1, edges[-1][1] + 1):
            rows = [i for i, (_, d) in enumerate(edges) if d == dst]
            best = max(rows, key=lambda i: p[i].max())
            nodes.append((self.ops[1 + int(p[best].argmax())], edges[best][0]))
        return ToyGenotype(tuple(nodes))


class BareSpace(ToySpace):
    """The toy space without a skip op or parameter-free ops: no collapse indicator."""
    name = "bare"
    skip_op = None
    parameter_free = ()


def _registered(monkeypatch, space):
    """`space` known by name for one test."""
    import dartsviz.spaces as spaces
    monkeypatch.setitem(spaces._REGISTRY, space.name, space)
    return space


@pytest.fixture
def toy(monkeypatch):
    return _registered(monkeypatch, ToySpace())


@pytest.fixture
def bare(monkeypatch):
    return _registered(monkeypatch, BareSpace())


def toy_history(steps=6):
    return fake_history(steps, space=ToySpace(), n_edges=6)


# ---- the panels ---------------------------------------------------------------------------------

DRAWERS = {
    "weights": lambda h, fig: F.draw_weights(h, fig),
    "heatmap": lambda h, fig: F.draw_heatmap(h, fig),
    "trajectories": lambda h, fig: F.draw_trajectories(h, "reduce", (1, 3), fig),
    "curves": lambda h, fig: F.draw_curves(h, fig),
    "collapse": lambda h, fig: F.draw_collapse(h, fig),
}


@pytest.mark.parametrize("name", list(DRAWERS))
def test_every_panel_draws_png_and_svg(name):
    fig = DRAWERS[name](fake_history(), None)
    png = F.to_png(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert F.to_svg(fig).lstrip().startswith("<?xml")


@pytest.mark.parametrize("name", list(DRAWERS))
def test_panels_draw_with_no_steps(name):
    if name in ("weights", "heatmap"):
        with pytest.raises(ValueError, match="no step records"):
            DRAWERS[name]([], None)
    else:
        assert len(F.to_png(DRAWERS[name]([], None))) > 1000


def test_redrawing_200_times_does_not_leak_figures():
    import matplotlib.pyplot as plt     # only to count pyplot's figures; the library never uses it
    h = fake_history()
    fig = F.new_figure("heatmap")
    n_before = len(plt.get_fignums())
    gc.collect()
    figs_before = sum(type(o) is matplotlib.figure.Figure for o in gc.get_objects())
    for i in range(200):
        F.draw_trajectories(h, "normal", (0, 2), fig)
    gc.collect()
    figs_after = sum(type(o) is matplotlib.figure.Figure for o in gc.get_objects())
    assert len(plt.get_fignums()) == n_before
    assert figs_after == figs_before
    assert len(fig.axes) == 1                                   # cleared, not stacked


def test_kept_mask_matches_derivation():
    probs = np.random.default_rng(3).dirichlet(np.ones(8), size=14)      # (14, 8)
    record = StepRecord(step=1, epoch=0, space="cnn", probs={"normal": probs, "reduce": probs},
                        genotype=CNN.derive({"normal": probs, "reduce": probs}))
    mask = architecture(record).kept("normal")                  # (14, 8)
    assert mask.sum() == 8 and mask[:, CNN.ops.index("none")].sum() == 0
    edges = edges_of(4)
    for i, node in enumerate(derive_cell(probs)):
        for op, src in node:
            assert mask[edges.index((src, i + 2)), CNN.ops.index(op)]


def test_weights_figure_marks_kept_ops_and_labels_edges():
    h = fake_history(3)
    fig = F.draw_weights(h[-2])
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[:3] == ["0\u21922", "1\u21922", "0\u21923"] and len(labels) == 14
    markers = ax.collections[-1].get_offsets()                 # the ▼ markers
    assert len(markers) == 8                                    # 2 kept edges x 4 nodes
    bar_colors = {tuple(np.round(p.get_facecolor()[:3], 3)) for p in ax.patches}
    for op in CNN.ops:
        rgb = tuple(np.round(matplotlib.colors.to_rgb(CNN.op_colours[op]), 3))
        assert rgb in bar_colors
    bold = [t.get_text() for t in ax.get_xticklabels() if t.get_fontweight() == "bold"]
    assert len(bold) == 8


def test_figures_mark_the_records_genotype_without_deriving_again():
    """Uniform weights say nothing; the kept ops marked are those of the record's genotype."""
    uniform = np.full((14, 8), 1 / 8)                           # (14, 8)
    record = StepRecord(step=7, epoch=2, space="cnn", probs={"normal": uniform, "reduce": uniform},
                        genotype=DARTS_V2)
    fig = F.draw_weights(record)
    edges = edges_of(4)
    for ax, cell in zip(fig.axes, CNN.cell_types):
        x = ax.collections[-1].get_offsets()[:, 0]              # the ▼ markers
        want = sorted(edges.index((s, d)) - 0.4 + (CNN.ops.index(op) + 0.5) * 0.1
                      for s, d, op in DARTS_V2.edges(cell))
        assert np.allclose(sorted(x), want)
    assert "step 7 (epoch 3, order 1)" in fig.get_suptitle()             # epochs counted from 1 on screen


def test_collapse_counts_and_differences():
    c = collapse_counts(DARTS_V2, CNN)
    assert c["normal"]["skip"] == 2 and c["reduce"]["skip"] == 3
    assert c["reduce"]["param_free"] == 8 and c["normal"]["param_free"] == 2
    assert c["normal"]["edges"] == c["reduce"]["edges"] == 8
    diff = cell_differences(DARTS_V1, DARTS_V2, CNN)
    # worked out by hand from the two cells: an op changed on a kept edge, or an edge kept by
    # only one of them (None on the other side); cell by cell, node by node, source by source
    assert diff == [
        {"cell": "normal", "edge": (0, 3), "a": "skip_connect", "b": "sep_conv_3x3"},
        {"cell": "normal", "edge": (0, 5), "a": "sep_conv_3x3", "b": "skip_connect"},
        {"cell": "normal", "edge": (2, 5), "a": "skip_connect", "b": "dil_conv_3x3"},
        {"cell": "reduce", "edge": (0, 3), "a": "max_pool_3x3", "b": None},
        {"cell": "reduce", "edge": (1, 3), "a": None, "b": "max_pool_3x3"},
        {"cell": "reduce", "edge": (0, 5), "a": "avg_pool_3x3", "b": None},
        {"cell": "reduce", "edge": (1, 5), "a": None, "b": "max_pool_3x3"},
    ]
    assert cell_differences(DARTS_V2, DARTS_V1, CNN) == [dict(r, a=r["b"], b=r["a"]) for r in diff]
    assert cell_differences(DARTS_V2, DARTS_V2, CNN) == []


def test_in_place_redraw_matches_a_fresh_drawing():
    h = steps_of(fake_history(4))
    fig = F.new_figure("weights")
    F.draw_weights(h[0], fig)
    first = F.to_png(fig)
    F.draw_weights(h[1], fig)                                   # updated in place
    assert F.to_png(fig) != first
    assert F.to_png(fig) == F.to_png(F.draw_weights(h[1], F.new_figure("weights")))
    F.draw_heatmap(h[2], fig)                                   # another panel in the same figure
    assert len(fig.axes) == 3                                   # two heat maps and a colour bar
    F.draw_heatmap(h[3], fig)
    assert F.to_png(fig) == F.to_png(F.draw_heatmap(h[3], F.new_figure("weights")))
    F.draw_weights(h[1], fig)
    assert len(fig.axes) == 2


def test_curves_follow_the_spaces_metric(toy):
    fig = F.draw_curves(fake_history())
    assert [ax.get_title() for ax in fig.axes[:2]] == ["loss", "accuracy"]
    assert fig.axes[1].get_ylim() == (0, 1.02)
    val = fig.axes[1].lines[1].get_ydata()
    assert np.allclose(val, [0.09 * s for s in range(1, 7)])    # val_acc of each step
    h = toy_history()
    fig = F.draw_curves(h, fig)                                 # another metric: the figure is rebuilt
    assert [ax.get_title() for ax in fig.axes[:2]] == ["loss", "perplexity"]
    assert np.allclose(fig.axes[1].lines[1].get_ydata(), [r.metrics["val_ppl"] for r in steps_of(h)])
    assert np.allclose(fig.axes[1].lines[2].get_ydata(), [0.45, 0.45])   # test_ppl per epoch


@pytest.mark.parametrize("name", list(DRAWERS))
def test_every_panel_draws_another_space(toy, name):
    h = toy_history()
    drawers = dict(DRAWERS, trajectories=lambda h, fig: F.draw_trajectories(h, fig=fig))
    fig = drawers[name](h, None)
    assert len(F.to_png(fig)) > 5000
    if name == "weights":
        assert len(fig.axes) == 1 and len(fig.axes[0].get_xticklabels()) == 6
        assert fig.legends[0].get_texts()[2].get_text() == "conv"
        assert "uniform 1/3" in fig.axes[0].get_title(loc="left")
    if name == "trajectories":
        assert fig.axes[0].get_title().startswith("cell cell, edge 0\u21921")
        assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == list(ToySpace.ops)
    if name == "collapse":
        labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert labels == ["identity (cell)", "parameter-free (cell)"]


def test_collapse_is_skipped_cleanly_where_a_space_has_no_skip_op(bare):
    fig = F.draw_collapse(fake_history(space=bare, n_edges=6))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any("no collapse indicator" in t for t in texts) and fig.axes[0].get_legend() is None


@pytest.mark.parametrize("values, said", [((0.4, -0.02), True), ((0.4, 0.3), False)])
def test_a_negative_lambda_max_is_explained_where_it_is_drawn(values, said):
    history = fake_history()
    for r, v in zip([r for r in history if r.kind == "step"][2::2], values):
        r.lambda_max = v
    fig = F.draw_collapse(history)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert (F.NEGATIVE_LAMBDA in texts) == said


# ---- sizes: readable in a widget at 1 pt = 1 px ---------------------------------------------------

@pytest.mark.parametrize("name", list(DRAWERS))
def test_panel_svg_keeps_text_as_text_and_none_under_11_px(name):
    import re
    fig = DRAWERS[name](fake_history(), None)
    svg = F.panel_svg(fig)
    sizes = [float(x) for x in re.findall(rb"font-size: ?([\d.]+)px", svg)]
    assert len(sizes) >= 5 and min(sizes) >= F.FONT == 11
    assert b"<dc:date>" not in svg and F.panel_svg(fig) == svg              # the same picture, the same bytes
    width = float(re.search(rb'<svg[^>]*width="([\d.]+)pt"', svg).group(1))
    assert F.display_width(fig) == round(width) <= 900                      # shown 1 px per point


def test_small_text_is_raised_to_the_minimum_in_widgets_only():
    fig = F.draw_curves(fake_history())
    title = fig.axes[0].title
    title.set_fontsize(6)
    F.to_png(fig)
    assert title.get_fontsize() == 6                                        # files keep what was drawn
    F.panel_svg(fig)
    assert title.get_fontsize() == F.FONT


def test_weights_of_one_cell_type_fit_under_the_controls():
    h = fake_history(3)
    both, one = F.draw_weights(h), F.draw_weights(h, cells=["reduce"])
    assert len(both.axes) == 2 and len(one.axes) == 1
    assert one.axes[0].get_title(loc="left").startswith("reduction cell")
    assert one.get_size_inches()[1] * F.PX_PER_INCH <= 210 < both.get_size_inches()[1] * F.PX_PER_INCH
    with pytest.raises(ValueError, match="no cell type 'recurrent'"):
        F.draw_weights(h, cells=["recurrent"])
    fig = F.draw_weights(h, cells=["normal"])
    F.draw_weights(h, fig, cells=["reduce"])                                # another cell type: rebuilt
    assert fig.axes[0].get_title(loc="left").startswith("reduction cell") and len(fig.axes) == 1


def test_heat_map_is_vector_cells_row_zero_on_top():
    from matplotlib.collections import QuadMesh
    fig = F.draw_heatmap(fake_history(2))
    ax = fig.axes[0]
    assert isinstance(ax.collections[0], QuadMesh) and not ax.images           # no raster to blur
    assert ax.get_ylim() == (13.5, -0.5)
    assert F.panel_svg(fig).count(b"<image") == 1                           # only the colour bar's gradient
