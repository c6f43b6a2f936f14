"""The panels shared by Dashboard and Replay: one Figure and one widget per panel."""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import ipywidgets as widgets

from .cellgraph import as_html, cell_svg, soft_cell_svg
from .figures import (draw_collapse, draw_curves, draw_heatmap, draw_trajectories, draw_weights,
                      new_figure, to_png)
from .palette import CELL_TYPES, edge_label
from .records import cell_edges, genotype_of

# Panels in the order a throttled run refreshes them.
PANELS = ("weights", "curves", "cells", "heatmap", "trajectories", "collapse")
FIGURE_PANELS = ("weights", "heatmap", "trajectories", "curves", "collapse")


class PanelSet:
    """Images for the matplotlib panels, HTML for the four cell graphs, the genotype text,
    and an edge chooser for the trajectories; `render` redraws the panels named."""

    def __init__(self, dpi: int = 72, n_edges: int = 14):
        self.figs = {p: new_figure(p, dpi=dpi) for p in FIGURE_PANELS}
        img = dict(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
        self.images: Dict[str, widgets.Image] = {p: widgets.Image(**img) for p in FIGURE_PANELS}
        self.cells: Dict[str, widgets.HTML] = {
            f"{kind}_{cell}": widgets.HTML(layout=widgets.Layout(width="50%"))
            for kind in ("derived", "soft") for cell in CELL_TYPES}
        self.genotype_text = widgets.Textarea(value="", description="genotype",
                                              layout=widgets.Layout(width="98%", height="60px"))
        self.edge = widgets.Dropdown(description="edge", layout=widgets.Layout(width="220px"))
        self.set_edges(n_edges)

    def set_edges(self, n_edges: int) -> None:
        edges = cell_edges(n_edges)
        self.edge.options = [(f"{cell} {edge_label(*e)}", (cell, e)) for cell in CELL_TYPES for e in edges]
        self.edge.value = ("normal", edges[0])

    def layout(self, *, above=(), between=()) -> widgets.VBox:
        row = lambda *ws: widgets.HBox(list(ws), layout=widgets.Layout(flex_flow="row wrap", align_items="center"))
        return widgets.VBox([
            *above,
            self.images["weights"],
            row(self.images["heatmap"], widgets.VBox([self.edge, self.images["trajectories"]])),
            row(self.cells["derived_normal"], self.cells["derived_reduce"]),
            row(self.cells["soft_normal"], self.cells["soft_reduce"]),
            *between,
            self.images["curves"],
            row(self.images["collapse"]),
            self.genotype_text,
        ])

    def render(self, panels: Sequence[str], record: dict, history: Sequence[dict],
               upto: Optional[int] = None) -> None:
        """Redraw `panels` for the step `record` and the records `history`; widgets change only
        when their picture does."""
        for p in panels:
            if p == "cells":
                g = genotype_of(record)
                for cell in CELL_TYPES:
                    # the install hint (when `dot` is missing) once, under the first graph
                    _set(self.cells[f"derived_{cell}"], as_html(cell_svg(g, cell), hint=cell == "normal"))
                    _set(self.cells[f"soft_{cell}"], as_html(soft_cell_svg(record, cell), hint=False))
                _set(self.genotype_text, g.to_text())
                continue
            fig = self.figs[p]
            if p == "weights":
                draw_weights(record, fig)
            elif p == "heatmap":
                draw_heatmap(record, fig)
            elif p == "trajectories":
                cell, edge = self.edge.value
                draw_trajectories(history, cell, edge, fig, upto=upto)
            elif p == "curves":
                draw_curves(history, fig, upto=upto)
            elif p == "collapse":
                draw_collapse(history, fig, upto=upto)
            else:
                raise ValueError(f"unknown panel {p!r}; panels: {', '.join(PANELS)}")
            _set(self.images[p], to_png(fig))


def _set(w, value) -> None:
    if w.value != value:
        w.value = value
