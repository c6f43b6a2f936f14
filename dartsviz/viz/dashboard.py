"""Dashboard: a live ipywidgets view of a running `Search` (ipywidgets 7.7 and 8).

    dash = Dashboard(dataset="digits")      # or Dashboard(search); Dashboard(scale=1.5) for a projector
    dash                                    # shows it in a notebook
    dash.step(3); dash.run(epochs=1)        # drive it from code (notebooks, tests)
    Dashboard(search, main="collapse")      # the collapse panel in view instead of the weights

Laid out for one screen (1366x768 with JupyterLab's file browser open): the controls, the
softmax weights of the selected cell type (or the panels named by `main`) and its live cell
graph on top; heat map, trajectories, curves and cost, collapse, all cell graphs, training
and setup in tabs of one height (`panels.PanelSet`). Only what is in view is redrawn; a tab
is drawn when shown; a panel in view that waits for its redraw says so ("drawing…").
The projector toggle (or `scale` > 1) enlarges the view 1.5x and keeps it on one screen:
the step buttons, the step counter, the weights and the cell graph on top, their text
16 px and more (figures and graph redrawn to fit the zoomed column); the settings (variant,
order, HVP, progress) and the status line move under the graph.
The status line and the panels number epochs alike, from 1 (`records.epoch_number`).

The search emits records; the dashboard subscribes, keeps the records it is pushed and
redraws from them (before the first step, from `search.snapshot()`). The order and HVP
toggles show `search.config` and change it through `search.set`; so does the lambda_max
setting over the collapse panel (`monitor_every`). The variant dropdown beside them starts a
new search with the chosen method (same seed and data; `variant_config` says which
settings come with it), and the line beside the status shows the variant's own numbers
(`record.monitors`), the parameter-free ops kept and the last lambda_max. Buttons run a
bounded chunk inside their click handler, so the kernel is idle between clicks. `Run` blocks,
redraws as it goes (throttled) and stops cleanly at a step boundary on Kernel > Interrupt;
press it again to continue. Handlers never print: errors appear in the status line.
"""
from __future__ import annotations

import dataclasses
import html
import re
import time
from typing import Optional, Sequence

import ipywidgets as widgets

from ..bilevel import HVP_MODES, ORDER_NAMES, ORDERS
from ..loop import Records
from ..methods import method_names
from ..records import StepRecord
from .panels import PROJECTOR_SCALE, PanelSet
from .records import epoch_number, last_lambda, monitor_items
from .throttle import Throttle
from .view import WidgetView


def _layout(**kw):
    return widgets.Layout(**kw)


# settings the dashboard's own controls hold: a change of variant keeps them as they are
_CONTROLLED = ("seed", "dataset", "order", "hvp", "monitor_every")


def variant_config(old, variant: str, preset: str = "tiny", overrides: Optional[dict] = None):
    """`old` (a SearchConfig) with another variant: the settings the old variant's layer of
    `preset` set go back to the preset's (or the defaults), the new variant's layer comes
    on top (`Method.presets`), then the caller's `overrides` (what the dashboard was made
    with), as `SearchConfig.preset(preset, variant=variant, **overrides)` orders them.
    Seed, data set, order, HVP and monitor_every stay as they are in `old`."""
    cls = type(old)
    presets = cls.PRESETS or {}
    name = preset if preset in presets else "tiny"
    name = f"{name}_{old.space}" if f"{name}_{old.space}" in presets else name
    base = presets.get(name, {})
    defaults = {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())
                for f in dataclasses.fields(cls)}
    old_layer = cls._preset_layer(name, {"variant": old.variant})
    new_layer = cls._preset_layer(name, {"variant": variant})
    changes = {k: base.get(k, defaults[k]) for k in old_layer}
    changes.update(new_layer)
    changes["variant_options"] = dict(new_layer.get("variant_options", {}))
    overrides = dict(overrides or {})
    if overrides.get("variant", cls.variant) != variant:
        overrides.pop("variant_options", None)             # another variant's options
    for k, v in overrides.items():
        if k not in _CONTROLLED + ("variant",):
            changes[k] = {**changes[k], **v} if isinstance(v, dict) and isinstance(changes.get(k), dict) else v
    changes["variant"] = variant
    return dataclasses.replace(old, **{k: v for k, v in changes.items() if k not in _CONTROLLED})


class Dashboard(WidgetView):
    """Controls and panels around one `Search`; also usable from code."""

    def __init__(self, search=None, *, preset: str = "tiny", dataset: Optional[str] = None,
                 seed: Optional[int] = None, redraw_every: int = 5, min_interval: float = 0.3,
                 budget: float = 0.015, dpi: int = 72, scale: float = 1.0,
                 main: Optional[Sequence[str]] = None, **overrides):
        from ..search import Search, SearchConfig
        self._Search, self._SearchConfig = Search, SearchConfig
        # Reset keeps the settings unless the dashboard was made from a plain preset
        preset_name = preset if (search is None and not overrides) else "current"
        self._layer_preset = preset                # whose variant layers a change of variant applies
        self._overrides = dict(overrides) if search is None else _overrides_of(search.config, preset)
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
        self.panels = PanelSet(search.snapshot(), dpi=dpi, guard=self._guard, main=main)
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
        variants = method_names() + ([c.variant] if c.variant not in method_names() else [])
        self.variant = widgets.Dropdown(options=variants, value=c.variant, layout=_layout(width="108px"),
                                        tooltip="the method (variant); a change starts a new search")
        self.quantities = widgets.HTML(value="", layout=_layout(flex="0 1 auto", max_width="420px", overflow="hidden"))
        self.monitor_every = widgets.BoundedIntText(value=c.monitor_every, min=0, max=10 ** 6,
                                                    description="\u03bb_max every", layout=_layout(width="170px"),
                                                    style={"description_width": "initial"})
        self.step_button = widgets.Button(description="Step", tooltip="one bilevel step", **btn)
        self.step10_button = widgets.Button(description="Step \u00d710", tooltip="ten steps", **btn)
        self.epochs = widgets.BoundedIntText(value=1, min=1, max=10000, description="epochs",
                                             style={"description_width": "initial"}, layout=_layout(width="110px"))
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
        # one line whatever its length (ellipsis; all of it on hover): the view never moves as it changes
        self.counter = widgets.HTML(value="", layout=_layout(flex="0 1 auto", min_width="0", overflow="hidden"))
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
        self.variant.observe(self._guard(lambda ch: self._syncing or self.set_variant(ch["new"]), "variant"),
                             names="value")
        self.monitor_every.observe(self._guard(lambda ch: self._syncing or self.set_monitor_every(ch["new"]),
                                               "\u03bb_max"), names="value")
        self.edge.observe(self._guard(lambda ch: self._redraw_now(("trajectories",)), "edge"), names="value")
        self.projector.observe(self._guard(lambda ch: self._on_projector(ch["new"]), "projector"), names="value")

        from .trainpanel import TrainPanel
        self.train_panel = TrainPanel(lambda: self.current().genotype, dataset=lambda: self.search.config.dataset)

        row = lambda *ws: widgets.HBox(list(ws), layout=_layout(flex_flow="row wrap", align_items="center"))
        setup = widgets.VBox([row(self.preset, self.dataset, self.seed, self.reset_button),
                              widgets.HTML("Reset starts a new search with these settings (the order and HVP "
                                           "toggles above carry over).")])
        monitor = widgets.HBox([self.monitor_every, widgets.HTML(
            "steps (0: off): the Hessian's dominant eigenvalue in \u03b1 by power iteration; its seconds are not "
            "in the seconds per step")], layout=_layout(flex_flow="row wrap", align_items="center"))
        self._status_row = widgets.HBox([self.status, self.quantities], layout=_layout(
            flex_flow="row", align_items="center", justify_content="space-between"))
        self._hvp_label = widgets.Label("HVP")
        self._controls, self._counter_row, self._settings_row = row(), row(), row()
        self.widget = self.panels.layout(tabs=(("Training", self.train_panel.widget), ("Setup", setup)),
                                         extras={"collapse": monitor})
        self._arrange()
        self.widget.add_class("dartsviz-dashboard")
        self.step_button.add_class("dartsviz-step")

    def _arrange(self) -> None:
        """The controls as laid out for the scale: at 1, the buttons and settings on one row,
        progress, counter and projector toggle on the next, the status line under them;
        enlarged (a projector), only the buttons and the counter above the weights and the
        graph, the settings and the status line under the graph (all on one screen)."""
        buttons = [self.step_button, self.step10_button, self.epochs, self.run_button, self.pause_button]
        settings = [self.variant, self.order, self._hvp_label, self.hvp]
        if self.panels.scale > 1.0:
            rows = ((self._controls, buttons + [self.projector]), (self._counter_row, [self.counter]),
                    (self._settings_row, [self.progress] + settings))
            above, below = (self._controls, self._counter_row), (self._settings_row, self._status_row)
        else:
            rows = ((self._controls, buttons + settings), (self._counter_row, [self.progress, self.counter,
                                                                              self.projector]),
                    (self._settings_row, []))
            above, below = (self._controls, self._counter_row, self._status_row), ()
        for box, children in rows:
            if list(box.children) != children:
                box.children = children
        self.panels.arrange(above, below)

    def set_scale(self, scale: float) -> None:
        """Enlarge everything by `scale` (e.g. 1.5 for a classroom projector; 1.0 = laid out for
        one 1366x768 screen). The projector toggle switches between this and 1.5."""
        self._zoom(scale)
        self._base_scale = float(scale)
        self._syncing_projector = True
        try:
            self.projector.value = False
        finally:
            self._syncing_projector = False
        self._arrange()

    def _on_projector(self, on: bool) -> None:
        if not self._syncing_projector:
            self._zoom(max(PROJECTOR_SCALE, self._base_scale) if on else self._base_scale)
            self._arrange()

    def _zoom(self, scale: float) -> None:
        """The panels, the cell graphs and the training tab drawn and shown for `scale`."""
        self.panels.set_scale(scale)
        self.train_panel.set_zoom(self.panels.scale)

    @property
    def scale(self) -> float:
        return self.panels.scale

    @property
    def status_line(self) -> str:
        """The step counter as plain text (what `print` should show a student, not its HTML)."""
        return html.unescape(re.sub(r"<[^>]+>", "", self.counter.value))

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
            self.variant.value = c.variant
            self.monitor_every.value = c.monitor_every
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

    def set_variant(self, variant: str) -> None:
        """A new search with `variant` (same seed and data; see `reset`)."""
        try:
            self.reset(variant=variant)
        finally:
            self._sync_controls()                      # a refused variant leaves the dropdown as it was

    def set_monitor_every(self, n: int) -> None:
        """lambda_max every `n` steps from the next step on (0: off)."""
        try:
            self.search.set(monitor_every=int(n))
        finally:
            self._sync_controls()
        self._set_status(f"\u03bb_max every {n} steps from the next step on" if n else "\u03bb_max monitor off")

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
              dataset: Optional[str] = None, variant: Optional[str] = None) -> None:
        """A fresh search with a new seed, preset, data set or variant (the controls' values by
        default). A new variant brings its preset layer (`variant_config`)."""
        seed = self.seed.value if seed is None else seed
        preset = self.preset.value if preset is None else preset
        dataset = self.dataset.value if dataset is None else dataset
        variant = self.variant.value if variant is None else variant
        old = self.search.config
        if preset == "current":
            config = old if variant == old.variant else variant_config(
                old, variant, self._layer_preset, self._overrides)
            config = dataclasses.replace(config, seed=int(seed), dataset=dataset)
        else:
            config = self._SearchConfig.preset(preset, seed=int(seed), dataset=dataset, order=old.order, hvp=old.hvp,
                                               variant=variant, monitor_every=old.monitor_every)
        same_data = all(getattr(config, k) == getattr(old, k) for k in ("dataset", "data_dir", "train_portion",
                                                                           "device", "dtype"))
        self._set_status(f"building a new search: {config.dataset}, seed {config.seed} ...")
        search = self._Search(config, data=self.search.data if same_data else None)
        self.seed.value, self.dataset.value = config.seed, config.dataset
        self.attach(search)
        changed = [f"{k} {getattr(old, k)!r} \u2192 {getattr(config, k)!r}" for k in _changed(old, config)
                   if k not in ("variant", "seed", "dataset")]
        what = (f"variant {config.variant}" + (f" (with {len(changed)} of its settings)" if changed else "") + ", "
                if config.variant != old.variant else "")
        self._set_status(f"new search: {what}{config.dataset}, seed {config.seed}, {search.total_steps} steps planned")
        if changed:                                    # which settings: on hover, the line stays short
            self.status.value = f'<span title="{html.escape("; ".join(changed))}">{self.status.value}</span>'

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
        elif s.early_stopped is not None:
            self._set_status(s.early_stopped.message())
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
        # the epoch of the step shown (the panels' titles say the same), of the epochs planned; a
        # search stepped past its plan says so rather than "step 10 / 9"
        planned = s.total_steps
        epochs = -(-planned // max(1, s.steps_per_epoch))
        past = s.step_count > planned
        of_steps, of_epochs = ((f" (planned {planned})", f" (planned {epochs})") if past
                               else (f" / {planned}", f" / {epochs}"))
        text = (f"step <b>{s.step_count}</b>{of_steps} \u00b7 epoch {epoch_number(self.current().epoch)}"
                f"{of_epochs} \u00b7 order {c.order}{hvp}{sec}{shown}")
        plain = html.escape(re.sub(r"<[^>]+>", "", text))
        self.counter.value = (f'<span title="{plain}" style="white-space:nowrap;overflow:hidden;'
                              f'text-overflow:ellipsis;display:block">{text}</span>')
        self._update_quantities()

    def _update_quantities(self) -> None:
        """The line beside the status: the variant, its own numbers (`record.monitors`), the
        parameter-free ops kept in the derived normal cell and the last lambda_max, all from
        the records (the full text on hover)."""
        rec = self.current()
        parts = monitor_items(rec, self.search.space.cell_types)
        if rec.param_free_ops is not None:
            parts.append(f"param-free {rec.param_free_ops}")
        lam = last_lambda(self.records)
        if lam is not None:
            parts.append(f"\u03bb_max {lam[1]:.3g} @{lam[0]}")
        text = " \u00b7 ".join([f"<b>{html.escape(rec.variant)}</b>"] + [html.escape(p) for p in parts])
        full = html.escape(" \u00b7 ".join([rec.variant] + parts))
        value = (f'<span title="{full}" style="white-space:nowrap;overflow:hidden;text-overflow:ellipsis;'
                 f'display:block">{text}</span>')
        if self.quantities.value != value:
            self.quantities.value = value

    def redraw(self, everything: bool = False) -> list:
        """Redraw the panels in view whose data changed (always called at the end of a run);
        with `everything`, those in hidden tabs too (else each is drawn when its tab is
        shown). Returns the panels drawn."""
        t0 = time.perf_counter()
        drawn = self.panels.refresh(self.panels.names if everything else None)
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


def _overrides_of(config, preset: str) -> dict:
    """The settings of `config` that differ from `preset` with its variant's layer: what a
    change of variant keeps (none when the preset does not apply)."""
    try:
        made = type(config).preset(preset, variant=config.variant, space=config.space)
    except ValueError:
        return {}
    return {k: getattr(config, k) for k in _changed(made, config)}


def _changed(a, b) -> list:
    """The fields in which two configs differ."""
    return [f.name for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)]
