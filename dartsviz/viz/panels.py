"""The panels shared by Dashboard and Replay: one Figure and one widget per panel, and one
derived and one continuous cell graph per cell type of the space drawn."""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import ipywidgets as widgets

from .cellgraph import as_html, cell_svg, soft_cell_svg
from .figures import (draw_collapse, draw_curves, draw_heatmap, draw_trajectories, draw_weights,
                      new_figure, to_png)
from .palette import edge_label
from .spaceof import space_of

# Panels in the order a throttled run refreshes them.
PANELS = ("weights", "curves", "cells", "heatmap", "trajectories", "collapse")
FIGURE_PANELS = ("weights", "heatmap", "trajectories", "curves", "collapse")
CELL_KINDS = ("derived", "soft")


class PanelSet:
    """Images for the matplotlib panels, HTML for the cell graphs, the genotype text, and an
    edge chooser for the trajectories; `render` redraws the panels named. The cell graphs
    and the edges follow the space and shapes of the step record drawn (`fit`)."""

    def __init__(self, record, dpi: int = 72):
        self.figs = {p: new_figure(p, dpi=dpi) for p in FIGURE_PANELS}
        img = dict(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
        self.images: Dict[str, widgets.Image] = {p: widgets.Image(**img) for p in FIGURE_PANELS}
        self.cells: Dict[str, widgets.HTML] = {}           # "derived_<cell type>", "soft_<cell type>"
        self.cell_rows = {kind: widgets.HBox(layout=widgets.Layout(flex_flow="row wrap", align_items="center"))
                          for kind in CELL_KINDS}
        self.genotype_text = widgets.Textarea(value="", description="genotype",
                                              layout=widgets.Layout(width="98%", height="60px"))
        self.edge = widgets.Dropdown(description="edge", layout=widgets.Layout(width="220px"))
        self.space = None
        self.fit(record)

    def fit(self, record) -> None:
        """One cell graph per kind and cell type of `record`'s space, and its edges to choose
        from; nothing changes when they are those already shown."""
        space = space_of(record)
        if space is not self.space:
            width = f"{100 // len(space.cell_types)}%"
            self.cells.clear()                              # the same dict: views hold it
            self.cells.update({f"{kind}_{cell}": widgets.HTML(layout=widgets.Layout(width=width))
                               for kind in CELL_KINDS for cell in space.cell_types})
            for kind, row in self.cell_rows.items():
                row.children = [self.cells[f"{kind}_{cell}"] for cell in space.cell_types]
            self.space = space
        options = [(f"{cell} {edge_label(*e)}", (cell, e)) for cell in space.cell_types
                   for e in space.edges(cell, record.probs[cell].shape[0])]
        if list(self.edge.options) != options:
            self.edge.options = options
            self.edge.value = options[0][1]

    def layout(self, *, above=(), between=()) -> widgets.VBox:
        row = lambda *ws: widgets.HBox(list(ws), layout=widgets.Layout(flex_flow="row wrap", align_items="center"))
        return widgets.VBox([
            *above,
            self.images["weights"],
            row(self.images["heatmap"], widgets.VBox([self.edge, self.images["trajectories"]])),
            self.cell_rows["derived"],
            self.cell_rows["soft"],
            *between,
            self.images["curves"],
            row(self.images["collapse"]),
            self.genotype_text,
        ])

    def render(self, panels: Sequence[str], record, records: Sequence, upto: Optional[int] = None) -> None:
        """Redraw `panels` for the step record `record` and the records `records`; widgets
        change only when their picture does."""
        self.fit(record)
        space = self.space
        for p in panels:
            if p == "cells":
                for i, cell in enumerate(space.cell_types):
                    # the install hint (when `dot` is missing) once, under the first graph
                    _set(self.cells[f"derived_{cell}"], as_html(cell_svg(record.genotype, cell, space=space),
                                                                hint=i == 0))
                    _set(self.cells[f"soft_{cell}"], as_html(soft_cell_svg(record, cell), hint=False))
                _set(self.genotype_text, record.genotype.to_text())
                continue
            fig = self.figs[p]
            if p == "weights":
                draw_weights(record, fig)
            elif p == "heatmap":
                draw_heatmap(record, fig)
            elif p == "trajectories":
                cell, edge = self.edge.value
                draw_trajectories(records, cell, edge, fig, upto=upto, space=space)
            elif p == "curves":
                draw_curves(records, fig, upto=upto, space=space)
            elif p == "collapse":
                draw_collapse(records, fig, upto=upto, space=space)
            else:
                raise ValueError(f"unknown panel {p!r}; panels: {', '.join(PANELS)}")
            _set(self.images[p], to_png(fig))


def _set(w, value) -> None:
    if w.value != value:
        w.value = value
