"""The anytime curves of query searches: the chosen cell's true accuracy against simulated seconds."""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
from matplotlib.figure import Figure

Y_LABEL = "chosen cell's true accuracy, %\n(CIFAR-10, 200 epochs, validation, cifar10-valid split)"
X_LABEL = "simulated training seconds (12-epoch runs of the cells queried)"


def draw_anytime(summaries: Sequence, references: Optional[Dict[str, float]] = None,
                 fig: Optional[Figure] = None) -> Figure:
    """One line per summary (a `query.QuerySummary`: `name`, `grid`, `valid_curve`, `runs`): the mean
    over runs with a band of one std; dashed horizontal lines at `references` ({label: accuracy})."""
    fig = fig or Figure(figsize=(7.5, 4.5), layout="constrained")
    fig.clear()
    ax = fig.add_subplot()
    low = []
    for s in summaries:
        mean, std = s.valid_curve                                          # (T,) each
        line, = ax.plot(s.grid, mean, lw=1.8, label=f"{s.name} ({len(s.runs)} runs)")
        ax.fill_between(s.grid, mean - std, mean + std, color=line.get_color(), alpha=0.2, lw=0)
        half = mean[len(mean) // 4:]                                       # past the first random cells
        low.extend(half[np.isfinite(half)] - std[len(mean) // 4:][np.isfinite(half)])
    for (label, acc), style in zip((references or {}).items(), ("--", ":", "-.")):
        ax.axhline(acc, color="0.3", ls=style, lw=1)
        ax.annotate(f"{label} {acc:.2f} %", (0, acc), xycoords=("axes fraction", "data"), xytext=(4, 3),
                    textcoords="offset points", fontsize=11, color="0.3")
        low.append(acc - 1)
    if low:
        top = max([*(references or {}).values(), *(np.nanmax(s.valid_curve[0]) for s in summaries)])
        ax.set_ylim(min(low), top + 0.6)
    ax.set_xlim(left=0)
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel(Y_LABEL)
    ax.set_title("Query searches on NAS-Bench-201: mean ± std over runs", fontsize=12)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=11)
    return fig
