"""TrainPanel: train the derived cell from scratch with live curves (ipywidgets 7.7 and 8).

    panel = TrainPanel(lambda: genotype)          # or Dashboard(...).train_panel
    panel.train(epochs=1)                          # from code; the button does the same

The training object (`dartsviz.train.Train`) emits records; the panel subscribes, redraws
a throttled figure (SVG, text at least 11 px) and shows errors in its status line. Before
the first training it shows a short 'nothing trained yet' line, not an empty image.
"""
from __future__ import annotations

import time
from typing import Callable, Optional, Sequence

import ipywidgets as widgets
import numpy as np
from matplotlib.figure import Figure

from .figures import FONT, PANEL_WIDTH, TITLE_FONT, _margins, display_width, panel_svg, panel_width, set_view_zoom
from .records import METRIC_LIMITS, metric_title, training_metric
from .spaceof import space_of
from .view import WidgetView


TRAINING_SIZE = (PANEL_WIDTH, 3.0)     # inches, shown at 72 px per inch like the dashboard's panels
NOTHING_YET = ("<i>nothing trained yet</i>: press <b>Train derived cell</b> to train the current derived "
               "cell from scratch and see its curves here")


def draw_training(records: Sequence[dict], fig: Optional[Figure] = None) -> Figure:
    """Training loss and the metric per step, its test value per epoch, into one reusable Figure.
    `records`: a training's records (dicts of `kind` "step" / "epoch")."""
    if fig is None:
        fig = Figure(figsize=TRAINING_SIZE, dpi=72)
    fig.clear()
    fig.set_size_inches(panel_width(fig, TRAINING_SIZE[0]), TRAINING_SIZE[1])   # narrower in a zoomed view
    ax_loss, ax_metric = fig.subplots(1, 2)
    steps = [r for r in records if r.get("kind") == "step"]
    epochs = [r for r in records if r.get("kind") == "epoch"]
    metric = training_metric(steps)
    x = np.array([r["step"] for r in steps], dtype=float)                  # (T,)
    ax_loss.plot(x, [r["train_loss"] for r in steps], color="#1f77b4", lw=1, label="train")
    ax_loss.set_title("training loss (from scratch)", fontsize=TITLE_FONT)
    if metric is not None:
        ax_metric.plot(x, [r[f"train_{metric}"] for r in steps], color="#1f77b4", lw=1, label="train (batch)")
        ax_metric.plot([r["step"] for r in epochs], [r.get(f"test_{metric}", np.nan) for r in epochs], "o-",
                       color="#d62728", label="test")
        if metric in METRIC_LIMITS:
            ax_metric.set_ylim(*METRIC_LIMITS[metric])
        ax_metric.legend(fontsize=FONT, loc="lower right")
    ax_metric.set_title(metric_title(metric), fontsize=TITLE_FONT)
    for ax in (ax_loss, ax_metric):
        ax.set_xlabel("step", fontsize=FONT)
        ax.tick_params(labelsize=FONT)
    _margins(fig, left=0.6, right=0.2, top=0.35, bottom=0.55, wspace=0.2)
    return fig


def _trainer(genotype):
    """(training loop, its config class) for `genotype`'s space; the convolutional `Train`
    where none is told (a genotype's name or text, a space without `trainer`)."""
    from ..train import Train, TrainConfig
    try:
        space = space_of(genotype)
    except ValueError:
        return Train, TrainConfig
    try:
        return Train, space.trainer().config_class
    except NotImplementedError:                    # a space without training from scratch
        return Train, TrainConfig


class TrainPanel(WidgetView):
    """A button that trains `genotype_fn()` from scratch, with live curves."""

    def __init__(self, genotype_fn: Callable, preset: str = "tiny", dataset=None,
                 min_interval: float = 0.5, **overrides):
        self.genotype_fn = genotype_fn
        self.dataset = dataset                  # a name, a callable giving one, or None (the preset's)
        self.preset, self.overrides = preset, dict(overrides)
        self.trainer = None
        self.min_interval = min_interval
        self.last_error: Optional[str] = None
        self._fig = Figure(figsize=TRAINING_SIZE, dpi=72)
        self._last_draw = 0.0
        self.epochs = widgets.BoundedIntText(value=3, min=1, max=10000, description="epochs",
                                             layout=widgets.Layout(width="150px"))
        self.button = widgets.Button(description="Train derived cell", button_style="info",
                                     tooltip="train the current genotype from scratch (blocking)")
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="training")
        self.status = widgets.HTML(value="train the derived cell from scratch to see what it is worth")
        # no image until there is something to draw (an empty Image shows a broken-image icon)
        self.placeholder = widgets.HTML(value=NOTHING_YET)
        self.image = widgets.Image(format="svg+xml", layout=widgets.Layout(
            width=f"{display_width(self._fig)}px", max_width="100%", height="auto", display="none"))
        self.button.on_click(self._on_click)
        self.widget = widgets.VBox([widgets.HBox([self.epochs, self.button, self.progress]),
                                    self.status, self.placeholder, self.image])

    def _on_click(self, _):
        self._guard(lambda: self.train(epochs=self.epochs.value), "Train")()

    def train(self, epochs: Optional[int] = None, steps: Optional[int] = None):
        """Train the current genotype from scratch for `epochs` epochs (or `steps` steps),
        with the training of its space (`SearchSpace.trainer()`: a recurrent cell's language model)."""
        genotype = self.genotype_fn()
        Train, TrainConfig = _trainer(genotype)
        n_epochs = epochs if epochs is not None else self.epochs.value
        dataset = self.dataset() if callable(self.dataset) else self.dataset
        extra = {"dataset": dataset} if dataset is not None else {}
        config = TrainConfig.preset(self.preset, **{**self.overrides, **extra, "epochs": n_epochs})
        self.trainer = Train(genotype, config)
        t = self.trainer
        total = steps if steps is not None else t.total_steps
        self.progress.max, self.progress.value = max(1, total), 0
        self._set_status(f"training {genotype.to_text()[:60]}... ({t.params:,} parameters)")
        t.subscribe(self._on_record)
        try:
            t.run(steps=steps) if steps is not None else t.run()
        finally:
            t.unsubscribe(self._on_record)
            self.redraw()
        metric = training_metric([r for r in t.history if r.get("kind") == "step"])
        value = getattr(t, f"test_{metric}", None) if metric else None
        self._set_status(f"{'stopped' if t.interrupted else 'done'} at step {t.step_count}: {t.params:,} parameters"
                         + (f", test {metric_title(metric)} {value:.3f}" if value is not None else ""))
        return t

    def _on_record(self, record: dict) -> None:
        self.progress.value = min(self.progress.max, self.trainer.step_count)
        if time.perf_counter() - self._last_draw >= self.min_interval:
            self.redraw()

    def set_zoom(self, zoom: float) -> None:
        """Say that the panel is shown zoomed by `zoom` (a projector's 1.5): the figure is then
        drawn narrower so that at the zoom it fits the column and its text grows with it."""
        set_view_zoom(self._fig, max(1.0, float(zoom)))
        self.redraw()

    def redraw(self) -> None:
        history = self.trainer.history if self.trainer is not None else []
        if not history:
            return                      # the 'nothing trained yet' line stays
        self.image.value = panel_svg(draw_training(history, self._fig))
        self.image.layout.width = f"{display_width(self._fig)}px"
        self.image.layout.display = None
        self.placeholder.layout.display = "none"
        self._last_draw = time.perf_counter()
