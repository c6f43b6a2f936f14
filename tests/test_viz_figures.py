"""Figures: drawn from records into reusable Figures, no leaks, kept ops marked."""
import gc

import matplotlib
import numpy as np
import pytest

from dartsviz.genotype import DARTS_V2, derive_cell, edges_of
from dartsviz.ops import PRIMITIVES
from dartsviz.viz import figures as F
from dartsviz.viz.palette import OP_COLORS
from dartsviz.viz.records import cell_differences, collapse_counts, kept_mask


def fake_history(steps=6, seed=0, order_from=4):
    """Step and epoch records shaped like the search's, without running one."""
    rng = np.random.default_rng(seed)
    out = []
    for s in range(1, steps + 1):
        probs = {c: rng.dirichlet(np.ones(8), size=14).round(4).tolist() for c in ("normal", "reduce")}
        from dartsviz.genotype import derive
        g = derive(np.array(probs["normal"]), np.array(probs["reduce"]))
        out.append({"kind": "step", "step": s, "epoch": (s - 1) // 3, "order": 2 if s >= order_from else 1,
                    "hvp": None, "train_loss": 2.0 / s, "train_acc": 0.1 * s, "val_loss": 2.1 / s,
                    "val_acc": 0.09 * s, "lr": 0.05, "arch_lr": 0.03, "probs": probs,
                    "genotype": g.to_text(), "seconds": 0.1 * (2 if s >= order_from else 1),
                    "peak_mem_mb": 100.0, "device": "cpu"})
        if s % 3 == 0:
            out.append({"kind": "epoch", "step": s, "epoch": (s - 1) // 3, "train_loss": 1.0, "train_acc": 0.5,
                        "val_loss": 1.0, "val_acc": 0.5, "test_loss": 1.1, "test_acc": 0.45, "seconds": 0.3,
                        "genotype": g.to_text()})
    return out


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
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(8), size=14)                  # (14, 8)
    mask = kept_mask(probs)
    assert mask.sum() == 8 and mask[:, PRIMITIVES.index("none")].sum() == 0
    cell = derive_cell(probs)
    edges = edges_of(4)
    for i, node in enumerate(cell):
        for op, src in node:
            assert mask[edges.index((src, i + 2)), PRIMITIVES.index(op)]


def test_weights_figure_marks_kept_ops_and_labels_edges():
    h = fake_history(3)
    fig = F.draw_weights(h[-2])
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[:3] == ["0\u21922", "1\u21922", "0\u21923"] and len(labels) == 14
    markers = ax.collections[-1].get_offsets()                 # the ▼ markers
    assert len(markers) == 8                                    # 2 kept edges x 4 nodes
    bar_colors = {tuple(np.round(p.get_facecolor()[:3], 3)) for p in ax.patches}
    for op in PRIMITIVES:
        rgb = tuple(np.round(matplotlib.colors.to_rgb(OP_COLORS[op]), 3))
        assert rgb in bar_colors
    bold = [t.get_text() for t in ax.get_xticklabels() if t.get_fontweight() == "bold"]
    assert len(bold) == 8


def test_collapse_counts_and_differences():
    c = collapse_counts(DARTS_V2.to_text())
    assert c["normal_skip"] == 2 and c["reduce_skip"] == 3
    assert c["reduce_param_free"] == 8 and c["normal_param_free"] == 2
    from dartsviz.genotype import DARTS_V1
    diff = cell_differences(DARTS_V1, DARTS_V2)
    assert diff and all(r["a"] != r["b"] for r in diff)
    assert {"cell": "normal", "edge": (1, 2), "a": "sep_conv_3x3", "b": "sep_conv_3x3"} not in diff
    assert cell_differences(DARTS_V2, DARTS_V2) == []


def test_in_place_redraw_matches_a_fresh_drawing():
    h = [r for r in fake_history(4) if r["kind"] == "step"]
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
