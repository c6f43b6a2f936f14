"""Views of a search: figures, cell graphs, and the Dashboard, Compare and Replay widgets.

Figures and cell graphs need only matplotlib (and graphviz's `dot` when present);
the widgets are imported on first use, so `import dartsviz.viz` does not load ipywidgets.
"""
from __future__ import annotations

import importlib

from .cellgraph import DOT_HINT, cell_dot, cell_svg, dot_available, soft_cell_svg
from .figures import (draw_collapse, draw_curves, draw_heatmap, draw_trajectories, draw_weights,
                      new_figure, to_png, to_svg)
from .palette import ORDER_COLORS, op_color, op_short
from .records import cell_differences, collapse_counts
from .spaceof import space_of
from .truthpanel import draw_truth, draw_truth_compare    # registers the truth panel (after the built-in ones)

_LAZY = {
    "Dashboard": "dashboard",
    "Compare": "compare",
    "compare_report": "compare",
    "Replay": "replay",
    "export_run": "export",
    "load_run": "rundata",
}

__all__ = ["DOT_HINT", "cell_dot", "cell_svg", "dot_available", "soft_cell_svg", "draw_collapse",
           "draw_curves", "draw_heatmap", "draw_trajectories", "draw_weights", "new_figure", "to_png",
           "to_svg", "ORDER_COLORS", "op_color", "op_short", "space_of", "cell_differences", "collapse_counts",
           "draw_truth", "draw_truth_compare", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
