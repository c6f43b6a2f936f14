"""Dashboard: a live ipywidgets view of a running `Search` (ipywidgets 7.7 and 8).

    dash = Dashboard(dataset="digits")      # or Dashboard(search); Dashboard(scale=1.5) for a projector
    dash                                    # shows it in a notebook
    dash.step(3); dash.run(epochs=1)        # drive it from code (notebooks, tests)

Laid out for one screen (1366x768 with JupyterLab's file browser open): the controls, the
softmax weights of the selected cell type and its live cell graph on top; heat map,
trajectories, curves and cost, collapse, all cell graphs, training and setup in tabs
(`panels.PanelSet`). Only what is in view is redrawn; a tab is drawn when shown.

The search emits records; the dashboard subscribes, keeps the records it is pushed and
redraws from them (before the first step, from `search.snapshot()`). The order and HVP
toggles show `search.config` and change it through `search.set`. Buttons run a bounded
chunk inside their click handler, so the kernel is idle between clicks. `Run` blocks,
redraws as it goes (throttled) and stops cleanly at a step boundary on Kernel > Interrupt;
press it again to continue. Handlers never print: errors appear in the status line.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Optional

import ipywidgets as widgets

from ..bilevel import HVP_MODES, ORDER_NAMES, ORDERS
from ..loop import Records
from ..records import StepRecord
from .panels import PANELS, PROJECTOR_SCALE, PanelSet
from .throttle import Throttle
from .view import WidgetView


def _layout(**kw):
    return widgets.Layout(**kw)


class Dashboard(WidgetView):
    """Controls and panels around one `Search`; also usable from code."""

    def __init__(self, search=None, *, preset: str = "tiny", dataset: Optional[str] = None,
                 seed: Optional[int] = None, redraw_every: int = 5, min_interval: float = 0.3,
                 budget: float = 0.015, dpi: int = 72, scale: float = 1.0, **overrides):
        from ..search import Search, SearchConfig
        self._Search, self._SearchConfig = Search, SearchConfig
        # Reset keeps the settings unless the dashboard was made from a plain preset
        preset_name = preset if (search is None and not overrides) else "current"
        if search is None:
            if dataset is not None:
                overrides["dataset"] = dataset
            if seed is not None:
                overrides["seed"] = seed
            search = Search(SearchConfig.preset(preset, **overrides))
        self.search = None
        self.records: list = []                 # the records the search pushed (see attach)
        self._snapshot: Optional[StepRecord] = None
        self._syncing = False                   # True while the toggles are set from search.config
        self.dpi = dpi
        self.throttle = Throttle(redraw_every, min_interval, budget)
        self.draw_seconds = 0.0                 # time spent redrawing (for the overhead figure)
        self.last_error: Optional[str] = None   # traceback of the last handler error
        self.panels = PanelSet(search.snapshot(), dpi=dpi, guard=self._guard)
        self.images, self.cells, self.graph = self.panels.images, self.panels.cells, self.panels.graph
        self.genotype_text, self.edge = self.panels.genotype_text, self.panels.edge
        self._running = False
        self._base_scale = float(scale)
        self._build(search, preset_name)
        self.set_scale(scale)
        self.attach(search)
        self.redraw(everything=True)            # every tab drawn once: no empty image anywhere

    # -- widgets -------------------------------------------------------------------
    def _build(self, search, preset_name: str) -> None:
        from ..data import DATASETS
        from ..search import PRESETS
        c = search.config
        btn = dict(layout=_layout(width="auto"))
        # no descriptions: ipywidgets 8 puts a toggle's description on a line of its own
        toggles = dict(style={"button_width": "auto"}, layout=_layout(width="auto"))
        self.order = widgets.ToggleButtons(options=[(ORDER_NAMES[o], o) for o in ORDERS], value=c.order,
                                           tooltip="the order of the architecture gradient", **toggles)
        self.hvp = widgets.ToggleButtons(options=list(HVP_MODES), value=c.hvp,
                                         tooltip="second order: the Hessian-vector product", **toggles)
        self.step_button = widgets.Button(description="Step", tooltip="one bilevel step", **btn)
        self.step10_button = widgets.Button(description="Step \u00d710", tooltip="ten steps", **btn)
        self.epochs = widgets.BoundedIntText(value=1, min=1, max=10000, description="epochs",
                                             style={"description_width": "initial"}, layout=_layout(width="120px"))
        self.run_button = widgets.Button(description="\u25b6 Run N epochs", button_style="success",
                                         tooltip="blocking; Kernel > Interrupt stops at the next step", **btn)
        self.pause_button = widgets.Button(description="Pause", icon="pause", **btn)   # ⏸ lacks a glyph in many fonts
        presets = [("current settings", "current")] + [(p, p) for p in PRESETS]
        self.preset = widgets.Dropdown(options=presets, value=preset_name if preset_name in PRESETS else "current",
                                       description="preset", layout=_layout(width="230px"))
        names = list(DATASETS) + ([c.dataset] if c.dataset not in DATASETS else [])
        self.dataset = widgets.Dropdown(options=names, value=c.dataset, description="data",
                                        layout=_layout(width="210px"))
        self.seed = widgets.IntText(value=c.seed, description="seed", layout=_layout(width="150px"))
        self.reset_button = widgets.Button(description="\u21ba Reset", button_style="warning", **btn)
        self.progress = widgets.IntProgress(value=0, min=0, max=1, layout=_layout(width="160px"))
        self.counter = widgets.HTML(value="")
        self._syncing_projector = False
        self.projector = widgets.ToggleButton(value=False, description="projector",
                                              tooltip="enlarge everything for a classroom", **btn)
        self.status = widgets.HTML(value="ready")

        self.step_button.on_click(self._guard(lambda _: self.step(1), "Step"))
        self.step10_button.on_click(self._guard(lambda _: self.step(10), "Step \u00d710"))
        self.run_button.on_click(self._guard(lambda _: self.run(epochs=self.epochs.value), "Run"))
        self.pause_button.on_click(self._guard(lambda _: self.pause(), "Pause"))
        self.reset_button.on_click(self._guard(lambda _: self.reset(), "Reset"))
        self.order.observe(self._guard(lambda ch: self._syncing or self.set_order(ch["new"]), "order"),
                           names="value")
        self.hvp.observe(self._guard(lambda ch: self._syncing or self.set_hvp(ch["new"]), "HVP"), names="value")
        self.edge.observe(self._guard(lambda ch: self._redraw_now(("trajectories",)), "edge"), names="value")
        self.projector.observe(self._guard(lambda ch: self._on_projector(ch["new"]), "projector"), names="value")

        from .trainpanel import TrainPanel
        self.train_panel = TrainPanel(lambda: self.current().genotype, dataset=lambda: self.search.config.dataset)

        row = lambda *ws: widgets.HBox(list(ws), layout=_layout(flex_flow="row wrap", align_items="center"))
        setup = widgets.VBox([row(self.preset, self.dataset, self.seed, self.reset_button),
                              widgets.HTML("Reset starts a new search with these settings (the order and HVP "
                                           "toggles above carry over).")])
        self.widget = self.panels.layout(above=(
            row(self.step_button, self.step10_button, self.epochs, self.run_button, self.pause_button,
                self.order, widgets.Label("HVP"), self.hvp),
            row(self.progress, self.counter, self.projector),
            self.status,
        ), tabs=(("Training", self.train_panel.widget), ("Setup", setup)))
        self.widget.add_class("dartsviz-dashboard")
        self.step_button.add_class("dartsviz-step")

    def set_scale(self, scale: float) -> None:
        """Enlarge everything by `scale` (e.g. 1.5 for a classroom projector; 1.0 = laid out for
        one 1366x768 screen). The projector toggle switches between this and 1.5."""
        self.panels.set_scale(scale)
        self._base_scale = float(scale)
        self._syncing_projector = True
        try:
            self.projector.value = False
        finally:
            self._syncing_projector = False

    def _on_projector(self, on: bool) -> None:
        if not self._syncing_projector:
            self.panels.set_scale(max(PROJECTOR_SCALE, self._base_scale) if on else self._base_scale)

    @property
    def scale(self) -> float:
        return self.panels.scale

    def _on_interrupt(self) -> None:
        self._set_status(f"interrupted at step {self.search.step_count}; press Run to continue")

    # -- the search -------------------------------------------------------------------
    def attach(self, search) -> None:
        """Show `search` (subscribing to its records) instead of the current one. The records
        it emitted before (a resumed search's history) are taken once, here."""
        if self.search is not None:
            self.search.unsubscribe(self._on_record)
        self.search = search
        self._snapshot = search.snapshot()      # flushes pending steps into its history first
        self.records = list(search.history)
        search.subscribe(self._on_record)
        self._sync_controls()
        self.panels.invalidate(self.current(), self.records)
        self._update_counter()
        self.redraw()

    @property
    def history(self) -> list:
        """The records this dashboard was pushed."""
        return self.records

    def current(self) -> StepRecord:
        """The latest step record pushed, or the search's snapshot before its first step."""
        for r in reversed(self.records):
            if isinstance(r, StepRecord):
                return r
        return self._snapshot

    def _sync_controls(self) -> None:
        """Show the order and HVP of `search.config`, the one place they are held."""
        c = self.search.config
        self._syncing = True
        try:
            self.order.value = c.order
            self.hvp.value = c.hvp
            self.hvp.disabled = c.order == ORDERS[0]        # first order uses no HVP
        finally:
            self._syncing = False

    def set_order(self, order: int) -> None:
        """First (1) or second (2) order from the next step on."""
        try:
            self.search.set(order=int(order))
        finally:
            self._sync_controls()
        cost = (" (second order costs about 2-3x the time per step: watch 'seconds per step')"
                if int(order) != ORDERS[0] else "")
        self._set_status(f"next steps use order {order}{cost}")
        self._update_counter()

    def set_hvp(self, hvp: str) -> None:
        """The second order's Hessian-vector product ("finite" or "exact") from the next step on."""
        try:
            self.search.set(hvp=hvp)
        finally:
            self._sync_controls()
        self._set_status(f"second-order steps use the {hvp} Hessian-vector product")
        self._update_counter()

    def step(self, n: int = 1) -> "Records":
        """Run n steps, redraw, return their records."""
        return self._run(steps=int(n))

    def run(self, epochs: Optional[int] = None, steps: Optional[int] = None) -> "Records":
        """Blocking run with throttled redraws; Kernel > Interrupt stops at a step boundary."""
        return self._run(epochs=epochs, steps=steps)

    def train(self, epochs: Optional[int] = None, steps: Optional[int] = None):
        """Train the current derived cell from scratch, with live curves (returns the Train)."""
        return self.train_panel.train(epochs=epochs, steps=steps)

    def pause(self) -> None:
        """Ask a running `run` to stop after the current step."""
        self.search.pause()
        self._set_status("pausing after this step" if self._running else "nothing is running")

    def reset(self, seed: Optional[int] = None, preset: Optional[str] = None,
              dataset: Optional[str] = None) -> None:
        """A fresh search with a new seed, preset or data set (the controls' values by default)."""
        seed = self.seed.value if seed is None else seed
        preset = self.preset.value if preset is None else preset
        dataset = self.dataset.value if dataset is None else dataset
        old = self.search.config
        if preset == "current":
            config = dataclasses.replace(old, seed=int(seed), dataset=dataset)
        else:
            config = self._SearchConfig.preset(preset, seed=int(seed), dataset=dataset, order=old.order, hvp=old.hvp)
        same_data = all(getattr(config, k) == getattr(old, k) for k in ("dataset", "data_dir", "train_portion",
                                                                           "device", "dtype"))
        self._set_status(f"building a new search: {config.dataset}, seed {config.seed} ...")
        search = self._Search(config, data=self.search.data if same_data else None)
        self.seed.value, self.dataset.value = config.seed, config.dataset
        self.attach(search)
        self._set_status(f"new search: {config.dataset}, seed {config.seed}, {search.total_steps} steps planned")

    def _run(self, epochs=None, steps=None) -> list:
        if self._running:
            raise RuntimeError("already running")
        self._running = True
        self.throttle.start()
        start = len(self.records)
        self._set_status("running ... (Kernel > Interrupt or Pause stops after the current step)")
        try:
            self.search.run(epochs=epochs, steps=steps)
        except KeyboardInterrupt:
            self.search.interrupted = True
        finally:
            self._running = False
            self.redraw()
        s = self.search
        if s.interrupted:
            self._set_status(f"stopped at step {s.step_count}; press Run or Step to continue")
        else:
            self._set_status(f"done: step {s.step_count}, {ORDER_NAMES[s.config.order]}")
        return Records(self.records[start:])   # a one-line repr in a notebook

    # -- records and redraws --------------------------------------------------------
    def _on_record(self, record) -> None:
        t0 = time.perf_counter()
        self.records.append(record)
        self.panels.invalidate(self.current(), self.records)
        self._update_counter(record)
        self.draw_seconds += time.perf_counter() - t0          # redraws count themselves
        if self._running and self.throttle.due(cost=0.12):
            self._redraw_some(time_slice=0.15)

    def _update_counter(self, record=None) -> None:
        """Progress, the counter line, and the toggles as `search.config` has them now."""
        self._sync_controls()
        s, c = self.search, self.search.config
        total = max(s.total_steps, s.step_count, 1)
        with self.progress.hold_sync():
            self.progress.max = total
            self.progress.value = s.step_count
        metric = s.space.metric
        sec = f" \u00b7 {record.seconds:.3f} s/step" if isinstance(record, StepRecord) else ""
        value = record.metrics.get(f"val_{metric}") if record is not None else None
        shown = f" \u00b7 val {metric} {value:.2f}" if value is not None else ""
        hvp = f" ({c.hvp} HVP)" if c.order != ORDERS[0] else ""
        self.counter.value = (f"step <b>{s.step_count}</b> / {s.total_steps} \u00b7 epoch {s.epoch} "
                              f"\u00b7 order {c.order}{hvp}{sec}{shown}")

    def redraw(self, everything: bool = False) -> list:
        """Redraw the panels in view whose data changed (always called at the end of a run);
        with `everything`, those in hidden tabs too (else each is drawn when its tab is
        shown). Returns the panels drawn."""
        t0 = time.perf_counter()
        drawn = self.panels.refresh(PANELS if everything else None)
        self.draw_seconds += time.perf_counter() - t0
        return drawn

    def _redraw_some(self, time_slice: float) -> None:
        """Redraw stale panels in view, in turn, until `time_slice` seconds are used (at least one)."""
        t0 = time.perf_counter()
        self.panels.refresh(time_slice=time_slice)
        spent = time.perf_counter() - t0
        self.throttle.charge(spent)
        self.draw_seconds += spent

    def _redraw_now(self, panels) -> None:
        t0 = time.perf_counter()
        self.panels.render(panels, self.current(), self.records)
        self.draw_seconds += time.perf_counter() - t0
