"""The truth panel of a space with ground truth (nb201): the derived cell's true accuracy over
the search, with the best, the median and the all-skip cell, beside the distribution of all
15,625 cells with the current one marked. One registration (at the end) puts it in the
Dashboard, Replay and the export; `draw_truth_compare` draws several runs for Compare.

Every number is the benchmark's CIFAR-10 accuracy after 200 epochs (validation, cifar10-valid
split): for a search on another data set, what its cell would score on CIFAR-10.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from .figures import FONT, PANEL_WIDTH, TITLE_FONT, _fig, _margins, compact, new_figure, panel_width
from .panel_registry import Panel, PanelData, register_panel
from .records import step_records

SIZE = (PANEL_WIDTH, 3.4)
KEY = "true_valid_acc"           # what the space puts in each step record's monitors
WHAT = "CIFAR-10, 200 epochs, validation"
REFERENCES = (("best", "#2ca02c", "--"), ("median", "#7f7f7f", ":"), ("all-skip", "#d62728", "-."))


def _references():
    from .. import truth
    return {"best": truth.best(), "median": truth.median(), "all-skip": truth.all_skip()}


def _series(records: Sequence):
    steps = [r for r in step_records(records) if KEY in (r.monitors or {})]
    return [r.step for r in steps], [r.monitors[KEY] for r in steps], steps


def _reference_lines(ax, refs) -> None:
    for name, colour, style in REFERENCES:
        ax.axhline(refs[name].valid_acc, color=colour, ls=style, lw=1.2, label=f"{name} cell {refs[name].valid_acc:.2f}")


def draw_truth(records: Sequence, fig: Optional[Figure] = None, record=None, upto: Optional[int] = None) -> Figure:
    """Left: the true accuracy of each step's derived cell, with the best, median and all-skip
    cells; right: every cell's accuracy (log count) with `record`'s cell (default the last) marked."""
    from .. import truth
    fig = _fig(fig, "truth") if fig is not None else new_figure(SIZE)
    fig.set_size_inches(panel_width(fig, SIZE[0]), SIZE[1])       # narrower when the view is zoomed (projector)
    ax, ax_all = fig.subplots(1, 2, gridspec_kw=dict(width_ratios=(1.7, 1.0)))
    refs = _references()
    x, y, steps = _series(records)
    if steps:
        ax.step(x, y, where="post", color="#1f77b4", lw=2, label="derived cell")
    else:
        ax.text(0.5, 0.5, "nothing yet: no steps", ha="center", va="center", transform=ax.transAxes,
                fontsize=TITLE_FONT, color="#555555")
    _reference_lines(ax, refs)
    if upto is not None:
        ax.axvline(upto, color="black", lw=1)
    ax.set_ylim(0, 100)
    ax.set_xlabel("step", fontsize=FONT)
    ax.set_ylabel("true accuracy (%)", fontsize=FONT)
    ax.set_title(f"true accuracy ({WHAT})" if compact(fig) else f"true accuracy of the derived cell ({WHAT})",
                 fontsize=TITLE_FONT)
    ax.legend(fontsize=FONT - 1, loc="lower right", ncol=2)
    table = truth.table()
    ax_all.hist(table.valid_acc, bins=np.arange(0, 100.5, 2.0), color="#b0b0b0", log=True)
    current = record if record is not None else (steps[-1] if steps else None)
    if current is not None and KEY in (current.monitors or {}):
        acc, rank = current.monitors[KEY], int(current.monitors.get("true_rank", 0))
        ax_all.axvline(acc, color="#1f77b4", lw=2.5)
        ax_all.text(0.03, 0.95, f"this cell: {acc:.2f} %\nrank {rank:,} of {len(table):,}", transform=ax_all.transAxes,
                    va="top", fontsize=FONT, color="#1f77b4")
    ax_all.set_xlabel(f"accuracy (%), all {len(table):,} cells", fontsize=FONT)
    ax_all.set_ylabel("cells (log)", fontsize=FONT)
    ax_all.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))   # 1, 10, 100: plain text, not 10^k
    ax_all.set_title("where it stands", fontsize=TITLE_FONT)
    for a in (ax, ax_all):
        a.tick_params(labelsize=FONT)
    _margins(fig, left=0.8, right=0.2, top=0.45, bottom=0.6, wspace=0.4 if compact(fig) else 0.25)
    return fig


def draw_truth_compare(runs: Sequence, fig: Optional[Figure] = None) -> Figure:
    """The true accuracy of each run's derived cell over the steps, one line per run (`runs`:
    objects with `.records` and `.label`), with the best, median and all-skip cells."""
    fig = fig if fig is not None else new_figure(SIZE)
    fig.clear()
    fig.set_size_inches(*SIZE)
    ax = fig.subplots()
    for run in runs:
        x, y, steps = _series(run.records)
        if steps:
            ax.step(x, y, where="post", lw=2, label=f"{run.label}: {y[-1]:.2f}")
    _reference_lines(ax, _references())
    ax.set_ylim(0, 100)
    ax.set_xlabel("step", fontsize=FONT)
    ax.set_ylabel("true accuracy (%)", fontsize=FONT)
    ax.set_title(f"true accuracy of each run's derived cell ({WHAT})", fontsize=TITLE_FONT)
    ax.legend(fontsize=FONT - 1, loc="lower right", ncol=2)
    ax.tick_params(labelsize=FONT)
    _margins(fig, left=0.8, right=0.2, top=0.45, bottom=0.6)
    return fig


register_panel(Panel("truth", lambda d, fig: draw_truth(d.records, fig, record=d.record, upto=d.upto), SIZE,
                     tab="Truth", spaces=("nb201",)))
