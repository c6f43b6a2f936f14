"""The panels shared by Dashboard and Replay, laid out for one screen.

Always in view, under the owner's controls: the softmax weights of the selected cell type
(or the panels the owner names, `main`) and its live cell graph (continuous or derived,
pinned so that nodes never move). The other panels sit in tabs of one fixed height (a
taller panel scrolls inside its tab, the page never jumps): heat map, trajectories, curves
and cost, collapse, every cell graph with the genotype, and whatever the owner adds
(training, setup).

Figures are SVG (`figures.panel_svg`) in `widgets.Image`, shown at a fixed width (1 pt =
1 px, so no text is under 11 px) that shrinks only in a narrower notebook; cell graphs are
inline SVG in `widgets.HTML`. Only what is visible is redrawn: a panel in a hidden tab is
marked stale and drawn when its tab is shown; while a panel in view waits for its redraw
(a throttled run), the line beside the cell type says "drawing…" and which step is shown.
`set_scale` (a CSS zoom of the whole view) enlarges everything for a projector; enlarged,
the figures are redrawn narrower and the cell graph tighter and without its title, so that
at the zoom they fit a notebook's column at 1366 px and their text grows with it.
"""
from __future__ import annotations

import time
from typing import Callable, Dict, Optional, Sequence, Tuple

import ipywidgets as widgets

from .cellgraph import ROW_WIDTH, as_html, cell_svg, soft_cell_svg
from .figures import SCREEN_COLUMN, display_width, new_figure, panel_svg, set_view_zoom
from .palette import edge_label
from .panel_registry import PanelData, figure_panels
from .spaceof import space_of

CELLS_TAB = "Cells & genotype"
CELL_KINDS = ("derived", "soft")
GRAPH_KINDS = (("continuous graph", "soft"), ("derived graph", "derived"))
PROJECTOR_SCALE = 1.5
TAB_HEIGHT = 440            # px, the tab bar included: every tab this tall (at scale 1)
TAB_SCREEN = 630            # px on screen of the tabs of an enlarged view (within a 768-px screen's notebook)
GRAPH_MARGIN = 100.0        # points a cell graph is wider than the row its nodes spread over (inputs, output, labels)


def tab_height(scale: float) -> int:
    """The tabs' height in CSS px before the view's zoom: TAB_HEIGHT, or TAB_SCREEN on screen
    when enlarged."""
    return TAB_HEIGHT if scale <= 1.0 else int(round(TAB_SCREEN / scale))


def graph_row_width(scale: float) -> float:
    """Points the cell graph's nodes spread over: ROW_WIDTH, or less when enlarged, so that
    the graph at the zoom fits SCREEN_COLUMN pixels (uncapped: its text grows with the zoom)."""
    return ROW_WIDTH if scale <= 1.0 else min(ROW_WIDTH, SCREEN_COLUMN / scale - GRAPH_MARGIN)


def _row(*ws) -> widgets.HBox:
    return widgets.HBox(list(ws), layout=widgets.Layout(flex_flow="row wrap", align_items="center"))


class PanelSet:
    """Images for the matplotlib panels, HTML for the cell graphs, the genotype text, an
    edge chooser for the trajectories, and the cell type and graph kind shown in the main
    view. `render` draws panels now; `invalidate` + `refresh` draw only what is visible.
    The cell graphs and the edges follow the space and shapes of the step record drawn (`fit`).
    `guard` wraps the handlers of its own controls (an owner's error reporting). `main`: the
    figure panels in view above the tabs (default: the registered panels without a tab, i.e.
    the weights); a panel named there leaves its tab, one not named goes to a tab of its own."""

    def __init__(self, record, dpi: int = 72, guard: Optional[Callable] = None,
                 main: Optional[Sequence[str]] = None):
        guard = guard or (lambda fn, name=None: fn)
        space = space_of(record)                            # the panels that draw for its space
        self.figure_panels = {p.name: p for p in figure_panels(space)}      # those registered now
        if main is None:
            main = tuple(n for n, p in self.figure_panels.items() if p.tab is None)
        main = (main,) if isinstance(main, str) else tuple(main)
        unknown = [n for n in main if n not in self.figure_panels]
        if unknown:
            raise ValueError(f"no panel {unknown[0]!r} to show in view; panels: {', '.join(self.figure_panels)}")
        tabs: Dict[str, list] = {}
        for n, p in self.figure_panels.items():
            if n not in main:
                tabs.setdefault(p.tab or n.replace("_", " ").capitalize(), []).append(n)
        self.tab_panels = (*((t, tuple(names)) for t, names in tabs.items()), (CELLS_TAB, ("cells",)))
        # always in view: the figure panels of `main`, and the live cell graph
        self.main_panels = (*main, "graph")
        self.names = (*self.main_panels, *(n for _, names in self.tab_panels for n in names))
        self.figs = {n: new_figure(p.size, dpi=dpi) for n, p in self.figure_panels.items()}
        self.images: Dict[str, widgets.Image] = {
            p: widgets.Image(format="svg+xml", layout=widgets.Layout(width=f"{display_width(self.figs[p])}px",
                                                                    max_width="100%", height="auto"))
            for p in self.figure_panels}
        self.cells: Dict[str, widgets.HTML] = {}           # "derived_<cell type>", "soft_<cell type>"
        self.cell_rows = {kind: _row() for kind in CELL_KINDS}
        self.graph = widgets.HTML(value="", layout=widgets.Layout(max_width="100%"))
        # "drawing…" while a panel in view waits for its redraw, and which step it shows
        # (one line's height, no margin, whatever it says: the view never moves when it changes)
        self.note = widgets.HTML(value="", layout=widgets.Layout(flex="1 1 auto", min_width="0", height="28px",
                                                                  margin="0px", overflow="hidden"))
        self.note.add_class("dartsviz-lag")
        self.drawn: Dict[str, int] = {}                    # panel -> the step it shows
        self.genotype_text = widgets.Textarea(value="", description="genotype",
                                              layout=widgets.Layout(width="98%", height="64px"))
        self.edge = widgets.Dropdown(description="edge", layout=widgets.Layout(width="240px"))
        # no descriptions: ipywidgets 8 puts a toggle's description on a line of its own
        toggles = dict(style={"button_width": "auto"}, layout=widgets.Layout(width="auto"))
        self.cell_type = widgets.ToggleButtons(tooltip="the cell type shown above the tabs", **toggles)
        self.graph_kind = widgets.ToggleButtons(options=GRAPH_KINDS, value="soft", **toggles,
                                                tooltip="continuous: every edge, weighted; derived: the kept edges")
        for p, image in self.images.items():
            image.add_class(f"dartsviz-{p}")               # for the browser test and user CSS
        self.graph.add_class("dartsviz-graph")
        self.tabs: Optional[widgets.Tab] = None
        self.widget: Optional[widgets.Box] = None
        self.scale = 1.0
        self.space = None
        self.record, self.records, self.upto = None, (), None
        self._signature = None
        self.stale = set(self.names)
        self._next = 0
        self._fitting = False
        self._below: Tuple = ()
        self._above: Tuple = ()
        self.fit(record)
        redraw_main = guard(lambda ch: self._main_changed(), "cell graph")
        self.cell_type.observe(redraw_main, names="value")
        self.graph_kind.observe(redraw_main, names="value")
        self._on_tab = guard(lambda ch: self.refresh(), "tab")

    # -- what is shown -------------------------------------------------------------
    def fit(self, record) -> None:
        """One cell graph per kind and cell type of `record`'s space, and its edges and cell
        types to choose from; nothing changes when they are those already shown."""
        space = space_of(record)
        if space is not self.space:
            # each graph at its own size (text 11 px and up): side by side where they fit, else wrapped
            self.cells.clear()                              # the same dict: views hold it
            self.cells.update({f"{kind}_{cell}": widgets.HTML(layout=widgets.Layout(max_width="100%"))
                               for kind in CELL_KINDS for cell in space.cell_types})
            for kind, row in self.cell_rows.items():
                row.children = [self.cells[f"{kind}_{cell}"] for cell in space.cell_types]
            self.space = space
        types = [(space.cell_title(c), c) for c in space.cell_types]
        if list(self.cell_type.options) != types:
            keep = self.cell_type.value if self.cell_type.value in space.cell_types else space.cell_types[0]
            self._fitting = True                            # the caller draws with the new record
            try:
                self.cell_type.options = types
                self.cell_type.value = keep
            finally:
                self._fitting = False
        options = [(f"{cell} {edge_label(*e)}", (cell, e)) for cell in space.cell_types
                   for e in space.edges(cell, record.probs[cell].shape[0])]
        if list(self.edge.options) != options:
            self.edge.options = options
            self.edge.value = options[0][1]

    def layout(self, *, above: Sequence = (), tabs: Sequence[Tuple[str, object]] = (),
               extras: Optional[Dict[str, object]] = None) -> widgets.VBox:
        """The view: `above` (the owner's controls), the cell type and graph kind, the main
        panels (the weights) and the live graph of that cell type; then the tabs, ending with
        the owner's `tabs` ((title, widget) pairs). `extras`: panel name -> a widget shown
        above it (an owner's controls, e.g. the Dashboard's lambda_max setting over "collapse")."""
        contents = {n: (widgets.VBox([self.edge, self.images[n]]) if p.edge_chooser else self.images[n])
                    for n, p in self.figure_panels.items()}
        for name, extra in (extras or {}).items():
            if name not in contents:
                raise ValueError(f"no panel {name!r} to put a widget over; panels: {', '.join(contents)}")
            contents[name] = widgets.VBox([extra, contents[name]])
        contents["cells"] = widgets.VBox([self.cell_rows["derived"], self.cell_rows["soft"], self.genotype_text])
        in_view = [contents[n] for n in self.main_panels if n in contents]
        self.main = widgets.VBox([_row(self.cell_type, self.graph_kind, self.note), *in_view, self.graph])
        pages = [widgets.VBox([contents[n] for n in names]) if len(names) > 1 else contents[names[0]]
                 for _, names in self.tab_panels] + [w for _, w in tabs]
        # one height (set_scale): the box never grows; a taller page scrolls inside it (ipywidgets'
        # .widget-tab-contents scrolls, 7.7 and 8 alike)
        self.tabs = widgets.Tab(children=pages, layout=widgets.Layout(overflow="hidden"))
        self.tabs.add_class("dartsviz-tabs")
        for i, title in enumerate([t for t, _ in self.tab_panels] + [t for t, _ in tabs]):
            self.tabs.set_title(i, title)
        self.tabs.selected_index = 0
        self.tabs.observe(self._on_tab, names="selected_index")
        self._style = widgets.HTML(value="", layout=widgets.Layout(display="none"))
        self.widget = widgets.VBox([self._style])
        self.widget.add_class("dartsviz-view")
        self.arrange(above)
        self.set_scale(self.scale)
        return self.widget

    def arrange(self, above: Sequence = (), below: Sequence = ()) -> None:
        """Put the owner's `above` over the main view and its `below` between it and the tabs."""
        self._above, self._below = tuple(above), tuple(below)
        children = [self._style, *self._above, self.main, *self._below, self.tabs]
        if list(self.widget.children) != children:
            self.widget.children = children

    def select_tab(self, title: str) -> None:
        """Show the tab called `title` (what a click on it does); an unknown title is a ValueError."""
        titles = [self.tabs.get_title(i) for i in range(len(self.tabs.children))]
        if title not in titles:
            raise ValueError(f"no tab {title!r}; tabs: {', '.join(titles)}")
        self.tabs.selected_index = titles.index(title)

    def set_scale(self, scale: float) -> None:
        """Enlarge (or shrink) everything in the view by `scale` (a CSS zoom; 1.0 = as laid out).
        Enlarged, the figures and the cell graphs are redrawn to fit a notebook's column at the
        zoom (`figures.panel_width`, `graph_row_width`) and the tabs keep one height on screen."""
        scale = float(scale)
        if not 0.25 <= scale <= 4.0:
            raise ValueError(f"scale must be between 0.25 and 4, got {scale}")
        if self.widget is not None:
            old, new = self._zoom_class(self.scale), self._zoom_class(scale)
            self.widget.remove_class(old)
            self.widget.add_class(new)
            self._style.value = f"<style>.{new} {{ zoom: {scale:g}; }}</style>"
            height = f"{tab_height(scale)}px"
            if self.tabs.layout.height != height:
                self.tabs.layout.height = height
        redraw = self._drawn_scale() != self._drawn_scale(scale)
        self.scale = scale
        for fig in self.figs.values():
            set_view_zoom(fig, max(1.0, scale))
        if redraw and self.record is not None:
            self.stale = set(self.names)                   # every picture at its new size
            self.refresh()

    def _drawn_scale(self, scale: Optional[float] = None) -> float:
        """The zoom the pictures are drawn for (1: not enlarged)."""
        return max(1.0, self.scale if scale is None else scale)

    @staticmethod
    def _zoom_class(scale: float) -> str:
        return f"dartsviz-zoom-{int(round(scale * 100))}"

    def visible(self) -> Tuple[str, ...]:
        """The panels in view now: the main ones and those of the selected tab."""
        tab = self.tabs.selected_index if self.tabs is not None else None
        shown = self.tab_panels[tab][1] if tab is not None and tab < len(self.tab_panels) else ()
        return tuple(p for p in self.names if p in self.main_panels or p in shown)

    # -- drawing ------------------------------------------------------------------------
    def invalidate(self, record, records: Sequence, upto: Optional[int] = None) -> None:
        """New data to draw: every panel is stale until drawn again."""
        self.fit(record)
        self.record, self.records, self.upto = record, records, upto
        self._signature = (id(record), id(records), len(records), upto)
        self.stale = set(self.names)
        self._update_note()

    def refresh(self, panels: Optional[Sequence[str]] = None, time_slice: Optional[float] = None) -> list:
        """Draw the stale panels among `panels` (default: those visible), in turn, until
        `time_slice` seconds are used (at least one); returns those drawn."""
        want = set(self.visible() if panels is None else panels) & self.stale
        drawn, t0 = [], time.perf_counter()
        for _ in range(len(self.names)):
            p = self.names[self._next % len(self.names)]
            self._next += 1
            if p in want:
                self.draw((p,))
                drawn.append(p)
                if time_slice is not None and time.perf_counter() - t0 >= time_slice:
                    break
        self._update_note()
        return drawn

    def render(self, panels: Sequence[str], record, records: Sequence, upto: Optional[int] = None) -> None:
        """Redraw `panels` now for the step record `record` and the records `records` (the
        others are drawn when shown); widgets change only when their picture does."""
        if self._signature != (id(record), id(records), len(records), upto):
            self.invalidate(record, records, upto)
        self.draw(panels)

    def draw(self, panels: Sequence[str]) -> None:
        """Draw `panels` from the data last given (`invalidate` / `render`)."""
        record, records, upto, space = self.record, self.records, self.upto, self.space
        enlarged = self._drawn_scale() > 1.0
        row_width = graph_row_width(self._drawn_scale())
        for p in panels:
            if p not in self.names:
                raise ValueError(f"unknown panel {p!r}; panels: {', '.join(self.names)}")
            self.stale.discard(p)
            self.drawn[p] = record.step
            if p == "graph":
                cell = self.cell_type.value
                title = "" if enlarged else None         # enlarged: the toggles above say what it shows
                svg = (soft_cell_svg(record, cell, title=title, row_width=row_width)
                       if self.graph_kind.value == "soft"
                       else cell_svg(record.genotype, cell, title=title, space=space, row_width=row_width))
                _set(self.graph, as_html(svg, hint=True))    # the install hint (no `dot`) once, here
                _set(self.genotype_text, record.genotype.to_text())
                continue
            if p == "cells":
                for cell in space.cell_types:
                    _set(self.cells[f"derived_{cell}"], as_html(
                        cell_svg(record.genotype, cell, space=space, row_width=row_width), hint=False))
                    _set(self.cells[f"soft_{cell}"], as_html(soft_cell_svg(record, cell, row_width=row_width),
                                                             hint=False))
                _set(self.genotype_text, record.genotype.to_text())
                continue
            fig = self.figs[p]
            data = PanelData(record, records, space, upto=upto, cells=[self.cell_type.value], edge=self.edge.value)
            self.figure_panels[p].draw(data, fig)
            image = self.images[p]
            width = f"{display_width(fig)}px"
            if image.layout.width != width:
                image.layout.width = width
            _set(image, panel_svg(fig))
        self._update_note()

    def lagging(self) -> Tuple[str, ...]:
        """The panels in view that wait for a redraw (they show an older step than the data's)."""
        return tuple(p for p in self.visible() if p in self.stale)

    def _update_note(self) -> None:
        late = self.lagging() if self.record is not None else ()
        shown = [self.drawn[p] for p in late if p in self.drawn]
        text = ("" if not late else "drawing\u2026" + (f" (in view: step {min(shown)} of {self.record.step})"
                                                        if shown and min(shown) != self.record.step else ""))
        value = f'<span style="color:#666666;font-style:italic;white-space:nowrap">{text}</span>' if text else ""
        _set(self.note, value)

    def _main_changed(self) -> None:
        self.stale.update(self.main_panels)
        if self.record is not None and not self._fitting:
            self.draw(self.main_panels)


def _set(w, value) -> None:
    if w.value != value:
        w.value = value
