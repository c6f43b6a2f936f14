"""The figure panels, by registration: one `register_panel(Panel(...))` puts a figure in the
Dashboard and Replay (in view, or in a tab of its own) and in the static export
(`export_run`, `dartsviz plot`).

    def draw_loss(data, fig):                      # data: PanelData; draw into `fig`, return it
        ax = fig.subplots()
        ax.plot([r.step for r in data.steps], [r.losses["val"] for r in data.steps])
        return fig

    register_panel(Panel("val_loss", draw_loss, size=(12.0, 3.0), tab="Validation loss"))

The built-in panels (weights, heat map, trajectories, curves, collapse) are registered at the
end of `viz/figures.py`; the cell graphs are not figures and are laid out by `viz/panels.py`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from matplotlib.figure import Figure


@dataclass
class PanelData:
    """What a panel draws from: the step record in view and the run's records."""

    record: Any                                # the step record drawn (the dashboard's current one)
    records: Sequence                          # the run's records (steps and epochs) so far
    space: Any                                 # the run's SearchSpace
    upto: Optional[int] = None                 # replay: the step in view (a line across the curves)
    cells: Optional[Sequence[str]] = None      # the cell types to draw (None: every one)
    edge: Optional[Tuple[str, Tuple[int, int]]] = None   # (cell type, edge) chosen, for panels that ask

    @property
    def steps(self) -> list:
        return [r for r in self.records if r.kind == "step"]


@dataclass(frozen=True)
class Panel:
    """A figure panel. `draw(data, fig)` draws a `PanelData` into a reused Figure of `size`
    inches; `tab` is its tab's title (None: always in view, above the tabs); `edge_chooser`
    puts the edge menu above it; `file_name(data)` names its export file (None: not written);
    `spaces` names the search spaces it draws for (None: every space)."""

    name: str
    draw: Callable[[PanelData, Figure], Figure]
    size: Tuple[float, float]
    tab: Optional[str] = None
    edge_chooser: bool = False
    file_name: Optional[Callable[[PanelData], Optional[str]]] = None
    spaces: Optional[Tuple[str, ...]] = None

    def applies(self, space) -> bool:
        """Whether it draws for `space` (a SearchSpace or its name; None: any)."""
        name = getattr(space, "name", space)
        return self.spaces is None or name is None or name in self.spaces

    def export_name(self, data: PanelData) -> Optional[str]:
        return self.name if self.file_name is None else self.file_name(data)


_PANELS: Dict[str, Panel] = {}


def register_panel(panel: Panel) -> Panel:
    """Add `panel` (a later registration under the same name replaces it, in its place)."""
    if not panel.name.isidentifier():
        raise ValueError(f"a panel's name is an identifier (a CSS class and a file name), got {panel.name!r}")
    _PANELS[panel.name] = panel
    return panel


def unregister_panel(name: str) -> None:
    _PANELS.pop(name, None)


def figure_panels(space=None) -> List[Panel]:
    """The registered panels, in registration order (those that draw for `space`, when given)."""
    return [p for p in _PANELS.values() if p.applies(space)]


def get_panel(name: str) -> Panel:
    if name not in _PANELS:
        raise ValueError(f"unknown panel {name!r}; panels: {', '.join(_PANELS)}")
    return _PANELS[name]
