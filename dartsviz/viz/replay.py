"""Replay: scrub the history of a saved run with a slider; nothing is trained.

    rp = Replay("runs/search-digits-o1-...")   # a run directory (any history schema) or a RunData
    rp                                         # slider, ◀ ▶ buttons, the dashboard's panels
    rp.show(step=40)                           # from code
    Replay("runs/...", follow=True)            # a search still running (here or on another machine,
                                               # through a shared folder): new steps appear as they are written
"""
from __future__ import annotations

import html
import threading
from typing import Optional

import ipywidgets as widgets

from ..records import EpochRecord, StepRecord, record_from_dict
from ..runs import RunDir, RunDirError
from .panels import PanelSet
from .records import epoch_number
from .rundata import load_run
from .view import WidgetView


class Replay(WidgetView):
    """Alphas, cells and curves of a recorded search at any of its steps."""

    def __init__(self, run, label: Optional[str] = None, dpi: int = 72, follow: bool = False,
                 interval: float = 2.0):
        self._offset, self._stop = 0, threading.Event()
        if follow:
            run, self._offset = self._read_from_start(run, label)
        self.run = load_run(run, label)
        self.steps = self.run.steps
        if not self.steps:
            raise RunDirError(f"run {self.run.label} has no step records to replay")
        self.panels = PanelSet(self.steps[-1], dpi=dpi)
        self.images, self.cells, self.genotype_text = self.panels.images, self.panels.cells, self.panels.genotype_text
        self.slider = widgets.IntSlider(value=len(self.steps), min=1, max=len(self.steps), description="step",
                                        continuous_update=False, layout=widgets.Layout(width="60%"))
        self.prev_button = widgets.Button(description="\u25c0", layout=widgets.Layout(width="40px"))
        self.next_button = widgets.Button(description="\u25b6", layout=widgets.Layout(width="40px"))
        self.title = widgets.HTML(value="")
        self.status = widgets.HTML(value="")
        self.last_error: Optional[str] = None
        self.slider.observe(self._guard(lambda ch: self._draw()), names="value")
        self.panels.edge.observe(self._guard(lambda ch: self._draw(("trajectories",))), names="value")
        self.prev_button.on_click(self._guard(lambda _: self._nudge(-1)))
        self.next_button.on_click(self._guard(lambda _: self._nudge(+1)))
        controls = widgets.HBox([self.prev_button, self.slider, self.next_button, self.title])
        self.widget = self.panels.layout(above=(controls, self.status))
        self._draw()
        self.thread: Optional[threading.Thread] = None
        if follow:
            self.thread = threading.Thread(target=self._follow, args=(interval,), daemon=True)
            self.thread.start()

    # -- following a run that is still being written ---------------------------------
    @staticmethod
    def _read_from_start(run, label):
        """The run's records read with the tail reader (so that the next poll starts where
        this read ended), as a RunData, and the byte offset after them."""
        from .rundata import RunData
        run_dir = RunDir(getattr(run, "path", run)).require()
        raw, offset, _ = run_dir.tail_history(0)
        records = [r for r in map(record_from_dict, raw) if isinstance(r, (StepRecord, EpochRecord))]
        try:
            config = run_dir.read_config()
        except RunDirError:
            config = {}
        return RunData(label or run_dir.path.name, config, records, run_dir.path), offset

    def poll(self) -> int:
        """Read the records written since the last read; returns how many. The slider grows;
        when it stood at the last step it moves to the new last one."""
        if self.run.path is None:
            raise RunDirError("only a run directory can be followed")
        raw, self._offset, reset = RunDir(self.run.path).tail_history(self._offset)
        new = [r for r in map(record_from_dict, raw) if isinstance(r, (StepRecord, EpochRecord))]
        if not new and not reset:
            return 0
        at_end = self.slider.value == len(self.steps)
        if reset:
            self.run.records[:] = new
        else:
            self.run.records.extend(new)
        self.steps = self.run.steps
        if not self.steps:
            return len(new)
        self.slider.max = len(self.steps)
        if at_end and self.slider.value != len(self.steps):
            self.slider.value = len(self.steps)          # observing the slider redraws
        else:
            self._draw(("curves", "collapse"))             # the whole curves grow; the view stays
        return len(new)

    def _follow(self, interval: float) -> None:
        poll = self._guard(self.poll, "follow")
        while not self._stop.wait(interval):
            poll()

    def stop(self) -> None:
        """Stop following."""
        self._stop.set()

    def _nudge(self, delta: int) -> None:
        self.slider.value = min(self.slider.max, max(self.slider.min, self.slider.value + delta))

    @property
    def record(self) -> StepRecord:
        """The step record the slider points at."""
        return self.steps[self.slider.value - 1]

    def show(self, step: Optional[int] = None, index: Optional[int] = None) -> StepRecord:
        """Move to the record of step number `step` (or to position `index`, 1-based)."""
        if step is not None:
            matches = [i for i, r in enumerate(self.steps) if r.step == step]
            if not matches:
                raise ValueError(f"no step {step} in {self.run.label}: steps "
                                 f"{self.steps[0].step}..{self.steps[-1].step}")
            index = matches[-1] + 1
        if index is not None:
            self.slider.value = index        # observing the slider redraws
        return self.record

    def _draw(self, panels=None) -> None:
        rec = self.record
        upto = rec.step
        self.panels.render(self.panels.names if panels is None else panels, rec, self.run.records, upto=upto)   # whole curves, a line at `upto`
        metric = self.run.space.metric
        value = rec.metrics.get(f"val_{metric}")
        shown = f", val {metric} {value:.2f}" if value is not None else ""
        self.title.value = (f"<b>{html.escape(self.run.label)}</b>: step {upto} of {self.steps[-1].step}, "
                            f"epoch {epoch_number(rec.epoch)}, order {rec.order}{shown}")
        self.status.value = ""
