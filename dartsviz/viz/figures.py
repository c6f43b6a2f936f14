"""Matplotlib figures of a search, drawn into reusable `Figure`s (no pyplot, no widgets).

Every `draw_*` function takes records, weights or genotypes and an optional `fig`;
it clears and redraws that figure (or makes a new one) and returns it, so a view can
keep one Figure per panel and redraw it as often as it likes without leaking figures.

    fig = draw_weights(record)                 # a step record, or softmax weights by cell type
    png = to_png(fig)                          # bytes for a file
    svg = panel_svg(fig)                       # what a widget shows: crisp at any width

Sizes: a panel is laid out for `PX_PER_INCH` CSS pixels per inch (so a point of text is a
pixel), `display_width(fig)` pixels wide, with no text under `FONT` points; a builder
sets its figure's size from what it holds (cell types, edges). A view zoomed for a projector
says so (`set_view_zoom`): its panels are then drawn narrower (`panel_width`), so that at the
zoom they still fit a notebook's column uncapped and their text is FONT x zoom pixels, and
the weights panel is compact (its title and legend on one line, short op names).

Epochs are shown as people count them, from 1 (`epoch_number`); records count from 0.
"""
from __future__ import annotations

import dataclasses
import io
from typing import List, Optional, Sequence, Tuple

import matplotlib
import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle
from matplotlib.text import Text

from ..bilevel import ORDERS
from .palette import ORDER_COLORS, ZERO_OP_TEXT, edge_label, op_color, op_short
from ..summary import median_seconds, record_series
from .panel_registry import Panel, PanelData, register_panel
from .records import (METRIC_LIMITS, Architecture, architecture, collapse_counts, epoch_number, epoch_records,
                      loss_of, metric_of, metric_title, probs_series, step_records)
from .spaceof import space_of

DPI = 80
PX_PER_INCH = 72        # widgets show a panel at this many CSS pixels per inch: 1 pt of text = 1 px
FONT = 11               # points: the smallest text of a panel (ticks, legends, axis labels)
TITLE_FONT = 12
PANEL_WIDTH = 12.0      # inches: 864 px, what fits a notebook at 1366 px beside an open file browser (in a tab too)
SIZES = {  # inches (width, height) of each panel; builders adjust the height to what they hold
    "weights": (PANEL_WIDTH, 5.1),
    "heatmap": (8.5, 3.8),
    "trajectories": (PANEL_WIDTH, 3.2),
    "curves": (PANEL_WIDTH, 3.3),
    "collapse": (PANEL_WIDTH, 3.6),
}
CELL_LINESTYLES = ("-", "--", ":", "-.")
# CSS px on screen that an enlarged panel may take: a notebook's output at 1366 px beside the file
# browser is 934 px, a tab's page 2 x 16 px less at scale 1 (padding, border), 48 px less zoomed 1.5,
# and a scroll bar less where the page scrolls
SCREEN_COLUMN = 860


def set_view_zoom(fig: Figure, zoom: float) -> None:
    """Say that `fig` is shown in a view zoomed by `zoom` (CSS zoom; 1: not zoomed)."""
    fig._dartsviz_zoom = float(zoom)


def view_zoom(fig: Optional[Figure]) -> float:
    return float(getattr(fig, "_dartsviz_zoom", 1.0) or 1.0) if fig is not None else 1.0


def panel_width(fig: Optional[Figure], default: float = PANEL_WIDTH) -> float:
    """Inches a panel is drawn wide in `fig`: `default`, narrower in a zoomed view so that
    `default` inches at the zoom still fit SCREEN_COLUMN pixels (text FONT x zoom px, uncapped)."""
    zoom = view_zoom(fig)
    return default if zoom <= 1.0 else min(default, round(SCREEN_COLUMN / (PX_PER_INCH * zoom), 2))


def compact(fig: Optional[Figure]) -> bool:
    """Whether `fig` is shown enlarged (a projector): fewer lines of text around the data."""
    return view_zoom(fig) > 1.0


def _margins(fig: Figure, left: float, right: float, top: float, bottom: float, **kw) -> None:
    """subplots_adjust with margins in inches (room for text of a fixed size)."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left / w, right=1 - right / w, top=1 - top / h, bottom=bottom / h, **kw)


def new_figure(panel_or_size="weights", dpi: int = DPI) -> Figure:
    """A Figure with an Agg canvas, sized for a named panel or (width, height) inches."""
    size = SIZES[panel_or_size] if isinstance(panel_or_size, str) else panel_or_size
    return Figure(figsize=size, dpi=dpi)


def _fig(fig: Optional[Figure], panel: str) -> Figure:
    """`fig` cleared (forgetting any in-place state), or a new Figure for `panel`."""
    if fig is None:
        return new_figure(panel)
    fig.clear()
    fig._dartsviz_state = None
    return fig


def _state(fig: Optional[Figure], key):
    """The in-place state of a panel already drawn in `fig` with the same layout `key`."""
    state = getattr(fig, "_dartsviz_state", None) if fig is not None else None
    return state if state is not None and state["key"] == key else None


def to_png(fig: Figure, dpi: Optional[int] = None) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi or fig.dpi)
    return buf.getvalue()


def to_svg(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg")
    return buf.getvalue().decode("utf-8")


def panel_svg(fig: Figure, min_font: float = FONT) -> bytes:
    """SVG bytes of a panel for a widget: text kept as text (its size readable in the page),
    none smaller than `min_font` points (smaller text is raised to it), the same bytes for the
    same picture (no date, fixed ids), so an unchanged panel is never sent again."""
    for t in fig.findobj(Text):
        if t.get_fontsize() < min_font:
            t.set_fontsize(min_font)
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "dartsviz"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def display_width(fig: Figure) -> int:
    """CSS pixels a widget shows `fig` at (1 pt = 1 px)."""
    return int(round(fig.get_size_inches()[0] * PX_PER_INCH))


def _step_title(arch: Architecture, what: str) -> str:
    r = arch.record
    if r is None:
        return what
    return f"{what} at step {r.step} (epoch {epoch_number(r.epoch)}, order {r.order})"


def _op_legend(fig: Figure, space, y: float = 0.995) -> None:
    handles = [Patch(facecolor=op_color(op, space), label=op) for op in space.ops]
    fig.legend(handles=handles, loc="upper center", ncol=len(space.ops), fontsize=FONT,
               frameon=False, bbox_to_anchor=(0.5, y), handlelength=1.2, columnspacing=1.0)


def _cell_panel(data, fig: Optional[Figure], name: str, build, space=None, cells: Optional[Sequence[str]] = None):
    """The architecture drawn (only `cells`, when given) and the panel's artists: those
    already in `fig` when it shows this panel for the same space and shapes (updated in
    place), else built by `build`."""
    arch = architecture(data, space)
    if cells is not None:
        unknown = [c for c in cells if c not in arch.probs]
        if unknown:
            raise ValueError(f"no cell type {unknown[0]!r}; cell types: {', '.join(arch.probs)}")
        arch = dataclasses.replace(arch, probs={c: arch.probs[c] for c in cells})
    key = (name, arch.space.name, tuple((c, p.shape) for c, p in arch.probs.items()), view_zoom(fig))
    state = _state(fig, key)
    if state is None:
        state = build(_fig(fig, name), arch, key)
    return arch, state


# -- 1. per-edge softmax weights ------------------------------------------------

def draw_weights(data, fig: Optional[Figure] = None, title: Optional[str] = None, space=None,
                 cells: Optional[Sequence[str]] = None) -> Figure:
    """Grouped bars: one group per edge, one bar per op; kept edges shaded, kept ops marked ▼.
    `data`: a step record, a list of records (its last step) or softmax weights by cell type;
    `cells`: the cell types to draw (default every one).

    Redrawing into a figure that already shows this panel updates its artists in place."""
    arch, state = _cell_panel(data, fig, "weights", _build_weights, space, cells)
    width = 0.8 / len(arch.space.ops)
    for (cell, probs), st in zip(arch.probs.items(), state["cells"]):
        kept = arch.kept(cell)                                # (E, O)
        kept_edge = kept.any(axis=1)                          # (E,)
        for k, bars in enumerate(st["bars"]):
            for e, rect in enumerate(bars.patches):
                rect.set_height(probs[e, k])
        for e, span in enumerate(st["spans"]):
            span.set_visible(bool(kept_edge[e]))
        ke, ko = np.nonzero(kept)
        st["marks"].set_offsets(np.column_stack([ke - 0.4 + (ko + 0.5) * width, probs[ke, ko] + 0.012]))
        beta = (getattr(arch.record, "edge_probs", None) or {}).get(cell)      # (E,) or None
        top = float(probs.max())
        if beta is None:
            st["betas"].set_offsets(np.empty((0, 2)))
            st["ax"].set_title(st["title"], fontsize=TITLE_FONT, loc="left")
        else:
            st["betas"].set_offsets(np.column_stack([np.arange(len(beta)), beta]))
            if st["title"]:
                st["ax"].set_title(st["title"] + "; \u2014 = softmax(\u03b2)", fontsize=TITLE_FONT, loc="left")
            top = max(top, float(np.max(beta)))
        for lab, k in zip(st["labels"], kept_edge):
            lab.set_fontweight("bold" if k else "regular")
        st["ax"].set_ylim(0, max(0.2, top * 1.15))
    if title is None and state["compact"]:                   # one short line beside the legend
        r = arch.record
        title = f"step {r.step} \u00b7 epoch {epoch_number(r.epoch)}" if r is not None else "softmax weights"
        if any((getattr(r, "edge_probs", None) or {}).get(c) is not None for c in arch.probs):
            title += " \u00b7 \u2014 = softmax(\u03b2)"
    state["title"].set_text(title or _step_title(arch, "softmax weights per edge"))
    return state["fig"]


WEIGHTS_TOP, WEIGHTS_CELL, WEIGHTS_AXES = 0.62, 2.25, 1.6   # inches: title + legend; per cell; its axes
COMPACT_TOP, COMPACT_CELL, COMPACT_AXES = 0.34, 1.42, 1.02  # the same, compact: one line; no axes title
WEIGHTS_GROUPS = 0.2        # inches more per cell for a second row of tick labels (edges grouped by node)
WEIGHTS_MARGINS = 0.85      # inches left and right of the axes
WEIGHTS_AXES_WIDTH = PANEL_WIDTH - WEIGHTS_MARGINS   # inches between the margins


def _crowded(edges, axes_width: float = WEIGHTS_AXES_WIDTH) -> bool:
    """Too many edges for a `0→2` label under each (e.g. the recurrent cell's 36)."""
    return len(edges) * _text_inches(edge_label(*edges[-1])) > 0.9 * axes_width


def _text_inches(text: str, size: float = FONT) -> float:
    return len(text) * size * 0.62 / 72                       # 0.62 em: an upper bound of a glyph's width


def _grouped_edge_ticks(ax, edges) -> None:
    """Tick labels for many edges: the source under each edge, and under them `→ node` once
    per group of edges into the same node, the groups parted by thin lines."""
    ax.set_xticklabels([str(s) for s, _ in edges], fontsize=FONT)
    groups = {}
    for i, (_, d) in enumerate(edges):
        groups.setdefault(d, []).append(i)
    for d, idx in groups.items():
        ax.annotate(f"\u2192{d}", (float(np.mean(idx)), 0.0), xycoords=ax.get_xaxis_transform(),
                    xytext=(0, -FONT * 1.6 - 4), textcoords="offset points", ha="center", va="top",
                    fontsize=FONT, fontweight="bold", color="#444444", annotation_clip=False)
        if idx[0] > 0:
            ax.axvline(idx[0] - 0.5, color="#cccccc", lw=0.8, zorder=0)


def _build_weights(fig: Figure, arch: Architecture, key) -> dict:
    sp = arch.space
    n = len(arch.probs)
    fig_w, small = panel_width(fig), compact(fig)
    top_h, cell_h, axes_h = (COMPACT_TOP, COMPACT_CELL, COMPACT_AXES) if small else (WEIGHTS_TOP, WEIGHTS_CELL,
                                                                                  WEIGHTS_AXES)
    crowded = lambda edges: _crowded(edges, fig_w - WEIGHTS_MARGINS)
    extra = WEIGHTS_GROUPS if any(crowded(arch.edges(c)) for c in arch.probs) else 0.0
    fig.set_size_inches(fig_w, top_h + n * (cell_h + extra))
    axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    n_ops = len(sp.ops)
    width = 0.8 / n_ops
    cells = []
    for ax, cell in zip(axes, arch.probs):
        edges = arch.edges(cell)
        x = np.arange(len(edges))                             # (E,)
        spans = [ax.axvspan(e - 0.45, e + 0.45, color="#fff3c4", zorder=0) for e in x]
        bars = [ax.bar(x - 0.4 + (k + 0.5) * width, np.zeros(len(edges)), width, color=op_color(op, sp), zorder=2)
                for k, op in enumerate(sp.ops)]
        betas = ax.scatter([], [], marker="_", s=160, linewidths=1.6, color="black", zorder=4)   # softmax(beta)
        marks = ax.scatter([], [], marker="v", s=22, color="black", zorder=3)
        ax.set_xticks(x)
        if crowded(edges):
            _grouped_edge_ticks(ax, edges)
        else:
            ax.set_xticklabels([edge_label(s, d) for s, d in edges], fontsize=FONT)
        ax.set_xlim(-0.55, len(edges) - 0.45)
        ax.axhline(1.0 / n_ops, color="#888888", lw=0.8, ls=":", zorder=1)
        ax.set_ylabel("weight" if small else "softmax weight", fontsize=FONT)
        ticks = "; ticks: source, then \u2192node under each group" if crowded(edges) else ""
        title = ("" if small else
                 f"{sp.cell_title(cell)}: shaded = kept edges, \u25bc = kept op, dotted = uniform 1/{n_ops}{ticks}")
        ax.set_title(title, fontsize=TITLE_FONT, loc="left")
        ax.tick_params(axis="y", labelsize=FONT)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        labels = [t.label1 for t in ax.xaxis.get_major_ticks()]
        cells.append(dict(ax=ax, spans=spans, bars=bars, marks=marks, labels=labels, betas=betas, title=title))
    h = fig.get_size_inches()[1]
    title = fig.suptitle("", fontsize=TITLE_FONT, x=0.01, ha="left", y=1 - 0.04 / h, va="top")
    gap = cell_h + extra - axes_h
    if small:       # the legend on the title's line, at the right, with the short op names
        handles = [Patch(facecolor=op_color(op, sp), label=op_short(op, sp)) for op in sp.ops]
        fig.legend(handles=handles, loc="upper right", ncol=len(sp.ops), fontsize=FONT, frameon=False,
                   bbox_to_anchor=(1.0, 1 - 0.01 / h), handlelength=0.8, handletextpad=0.3, columnspacing=0.7,
                   borderaxespad=0.1)
        _margins(fig, left=0.75, right=0.1, top=top_h, bottom=gap, hspace=gap / axes_h)
    else:
        _op_legend(fig, sp, y=1 - 0.26 / h)
        _margins(fig, left=0.75, right=0.1, top=top_h + 0.3, bottom=gap - 0.3, hspace=gap / axes_h)
    state = dict(key=key, fig=fig, cells=cells, title=title, compact=small)
    fig._dartsviz_state = state
    return state


# -- 2. heat map and trajectories ---------------------------------------------------

def draw_heatmap(data, fig: Optional[Figure] = None, title: Optional[str] = None,
                 vmax: Optional[float] = None, space=None) -> Figure:
    """Edges x ops heat map of the weights of every cell type, centred on the uniform
    1/ops: red = above uniform, blue = below; kept (edge, op) cells boxed. The colour scale
    tops at `vmax` (default the largest weight), at least twice uniform. Updates in place."""
    arch, state = _cell_panel(data, fig, "heatmap", _build_heatmap, space)
    uniform = 1.0 / len(arch.space.ops)
    top = vmax if vmax is not None else max(float(p.max()) for p in arch.probs.values())
    state["norm"].vmax = max(top, 2 * uniform)                # at least twice uniform: white stays uniform
    for (cell, probs), st in zip(arch.probs.items(), state["cells"]):
        st["image"].set_array(probs)                          # (E, O)
        kept = list(zip(*np.nonzero(arch.kept(cell))))        # [(edge, op)]
        while len(st["boxes"]) < len(kept):
            st["boxes"].append(st["ax"].add_patch(Rectangle((0, 0), 1, 1, fill=False, ec="black", lw=1.8)))
        for i, rect in enumerate(st["boxes"]):
            rect.set_visible(i < len(kept))
            if i < len(kept):
                e, k = kept[i]
                rect.set_xy((k - 0.5, e - 0.5))
    state["colorbar"].update_normal(state["cells"][0]["image"])
    state["title"].set_text(title or _step_title(arch, f"weights vs uniform 1/{len(arch.space.ops)} (box = kept)"))
    return state["fig"]


HEATMAP_ROW = 0.19          # inches per edge


def _build_heatmap(fig: Figure, arch: Architecture, key) -> dict:
    sp = arch.space
    n_edges = max(p.shape[0] for p in arch.probs.values())
    fig.set_size_inches(panel_width(fig, SIZES["heatmap"][0]), 1.15 + HEATMAP_ROW * n_edges)
    axes = fig.subplots(1, len(arch.probs), squeeze=False)[0]
    _margins(fig, left=0.55, right=0.1, top=0.55, bottom=0.6, wspace=0.25)
    uniform = 1.0 / len(sp.ops)
    norm = TwoSlopeNorm(vmin=0.0, vcenter=uniform, vmax=2 * uniform)
    cells = []
    for ax, (cell, probs) in zip(axes, arch.probs.items()):
        edges = arch.edges(cell)
        # vector cells (pcolormesh, not imshow): crisp at any size in SVG; row 0 on top
        image = ax.pcolormesh(np.arange(probs.shape[1] + 1) - 0.5, np.arange(probs.shape[0] + 1) - 0.5, probs,
                              cmap="RdBu_r", norm=norm, edgecolors="face", linewidth=0.3)  # (E, O)
        ax.set_ylim(probs.shape[0] - 0.5, -0.5)
        ax.set_yticks(range(len(edges)))
        ax.set_yticklabels([edge_label(s, d) for s, d in edges], fontsize=FONT)
        ax.set_xticks(range(len(sp.ops)))
        ax.set_xticklabels([op_short(op, sp) for op in sp.ops], fontsize=FONT, rotation=60)
        for lab, op in zip(ax.get_xticklabels(), sp.ops):
            lab.set_color(ZERO_OP_TEXT if op == sp.zero_op else op_color(op, sp))
            lab.set_fontweight("bold")
        ax.set_title(sp.cell_title(cell), fontsize=TITLE_FONT)
        cells.append(dict(ax=ax, image=image, boxes=[]))
    colorbar = fig.colorbar(cells[0]["image"], ax=list(axes), shrink=0.85, pad=0.02)
    colorbar.ax.tick_params(labelsize=FONT)
    title = fig.suptitle("", fontsize=TITLE_FONT, y=1 - 0.05 / fig.get_size_inches()[1], va="top")
    state = dict(key=key, fig=fig, cells=cells, norm=norm, colorbar=colorbar, title=title)
    fig._dartsviz_state = state
    return state


def draw_trajectories(records: Sequence, cell: Optional[str] = None, edge: Optional[Tuple[int, int]] = None,
                      fig: Optional[Figure] = None, upto: Optional[int] = None, space=None) -> Figure:
    """The weight of every op on one edge over the steps; second-order steps shaded.
    By default the first cell type of the records' space and its first edge."""
    fig = _fig(fig, "trajectories")
    fig.set_size_inches(panel_width(fig, SIZES["trajectories"][0]), SIZES["trajectories"][1])
    ax = fig.add_subplot(1, 1, 1)
    steps = step_records(records)
    where = "weights over time"
    if steps:
        sp = space_of(steps, space)
        cell = cell or sp.cell_types[0]
        x, w = probs_series(steps, cell)                      # (T,), (T, E, O)
        edges = sp.edges(cell, w.shape[1])
        edge = tuple(edge) if edge is not None else edges[0]
        if edge not in edges:
            raise ValueError(f"edge {edge} is not in the cell; edges: {', '.join(map(str, edges))}")
        e = edges.index(edge)
        for k, op in enumerate(sp.ops):
            ax.plot(x, w[:, e, k], color=op_color(op, sp), lw=1.6, label=op_short(op, sp))
        _shade_order(ax, steps)
        ax.legend(fontsize=FONT, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                  borderaxespad=0.0, handlelength=1.5)
        where = f"{sp.cell_title(cell)}, edge {edge_label(*edge)}: {where}"
    else:
        ax.text(0.5, 0.5, "nothing yet: no steps", ha="center", va="center", transform=ax.transAxes,
                fontsize=TITLE_FONT, color="#555555")
    if upto is not None:
        ax.axvline(upto, color="black", lw=1)
    ax.set_xlabel("step", fontsize=FONT)
    ax.set_ylabel("softmax weight", fontsize=FONT)
    ax.tick_params(labelsize=FONT)
    ax.set_title(where, fontsize=TITLE_FONT)
    _margins(fig, left=0.8, right=1.3, top=0.35, bottom=0.55)
    return fig


def _shade_order(ax, steps: Sequence) -> None:
    """Shade each run of steps not of the first order in its order's colour."""
    start = 0
    for i in range(1, len(steps) + 1):
        if i == len(steps) or steps[i].order != steps[start].order:
            if steps[start].order != ORDERS[0]:
                ax.axvspan(steps[start].step - 0.5, steps[i - 1].step + 0.5,
                           color=ORDER_COLORS.get(steps[start].order, "#999999"), alpha=0.12, lw=0)
            start = i


# -- 3. curves ------------------------------------------------------------------------

def draw_curves(records: Sequence, fig: Optional[Figure] = None, upto: Optional[int] = None,
                space=None) -> Figure:
    """Loss and the space's metric (train / validation per step, test per epoch) and
    seconds per step (coloured by order; warm-up hollow and out of the medians). Redrawing into
    the same figure updates it in place."""
    steps = step_records(records)
    epochs = epoch_records(records)
    metric = space_of(records, space).metric if (steps or epochs or space is not None) else None
    state = _state(fig, ("curves", metric, view_zoom(fig)))
    if state is None:
        fig = _fig(fig, "curves")
        state = _build_curves(fig, metric)
    x = np.array([r.step for r in steps], dtype=float)      # (T,)
    marker = "." if len(steps) < 30 else ""
    for line in state["upto"]:                                # before relim: a hidden marker is not data
        line.set_visible(upto is not None)
        if upto is not None:
            line.set_xdata([upto, upto])
    series = {"loss": lambda r, split: loss_of(r, split), "metric": lambda r, split: metric_of(r, split, metric)}
    for key, value in series.items():
        lines, ax = state[f"{key}_lines"], state[key]
        lines["train"].set_data(x, [value(r, "train") for r in steps])
        lines["val"].set_data(x, [value(r, "val") for r in steps])
        lines["test"].set_data([r.step for r in epochs], [value(r, "test") for r in epochs])
        for line in (lines["train"], lines["val"]):
            line.set_marker(marker)
        ax.relim(visible_only=True)
        ax.autoscale_view()
    if metric in METRIC_LIMITS:
        state["metric"].set_ylim(*METRIC_LIMITS[metric])
    _draw_seconds(state, steps, x)
    state["empty"].set_visible(not steps)
    return state["fig"]


def _build_curves(fig: Figure, metric: Optional[str]) -> dict:
    fig.set_size_inches(panel_width(fig, SIZES["curves"][0]), SIZES["curves"][1])
    ax_loss, ax_metric, ax_sec = fig.subplots(1, 3)
    state = dict(key=("curves", metric, view_zoom(fig)), fig=fig, loss=ax_loss, metric=ax_metric, sec=ax_sec)
    for key, ax, name in (("loss", ax_loss, "loss"), ("metric", ax_metric, metric_title(metric))):
        state[f"{key}_lines"] = dict(
            train=ax.plot([], [], "-", color="#1f77b4", lw=1, alpha=0.8, label="train")[0],
            val=ax.plot([], [], "-", color="#ff7f0e", lw=1, alpha=0.8, label="validation")[0],
            test=ax.plot([], [], "o-", color="#2ca02c", ms=4, lw=1, label="test (epoch)")[0])
        ax.set_title(name, fontsize=TITLE_FONT)
    ax_loss.legend(fontsize=FONT, frameon=False)
    _build_seconds(state, ax_sec)
    state["empty"] = fig.text(0.5, 0.5, "nothing yet: no steps", ha="center", va="center", fontsize=TITLE_FONT,
                              color="#555555")
    state["upto"] = [ax.axvline(0, color="black", lw=1) for ax in (ax_loss, ax_metric, ax_sec)]
    for ax in (ax_loss, ax_metric, ax_sec):
        ax.set_xlabel("step", fontsize=FONT)
        ax.tick_params(labelsize=FONT)
    _margins(fig, left=0.6, right=0.4, top=0.55 if compact(fig) else 0.35, bottom=0.8, wspace=0.3)
    fig._dartsviz_state = state
    return state


# -- 3b. seconds per step and memory: one definition for the dashboard and the reports ------

WARMUP_COLOR = "#8c8c8c"
SECONDS_CAPTION = ("Seconds per step: the median over the steps that update the architecture; warm-up steps "
                   "(weights only, arch_updated false) are drawn hollow and left out of every median.")
MEMORY_CAPTION = ("Memory: on a GPU, the peak CUDA memory allocated during the search; on a CPU, how much the "
                  "process's peak RSS grew over its resident memory before the search was built (the data, the "
                  "supernet and every step; runs saved without that baseline: the growth after the first step).")


def _build_seconds(state: dict, ax) -> None:
    """The seconds-per-step artists of the curves panel: one scatter per order, one for warm-up."""
    state["sec_points"] = {o: ax.scatter([], [], s=8, color=ORDER_COLORS[o], label=f"order {o}")
                           for o in ORDERS}
    state["sec_warmup"] = ax.scatter([], [], s=10, facecolors="none", edgecolors=WARMUP_COLOR, linewidths=0.8,
                                     label="warm-up")


def _draw_seconds(state: dict, steps: Sequence, x: np.ndarray) -> None:
    """Seconds per step coloured by order, warm-up hollow; medians (warm-up excluded) in the
    title; a legend of the series that have points, under the axes (never over the data)."""
    ax = state["sec"]
    secs = np.array([r.seconds for r in steps], dtype=float)           # (T,)
    order = np.array([r.order for r in steps], dtype=int)              # (T,)
    arch = np.array([bool(r.arch_updated) for r in steps], dtype=bool)  # (T,)

    def points(sel):
        return np.column_stack([x[sel], secs[sel]]) if sel.any() else np.zeros((0, 2))
    medians, handles = [], []
    for o in ORDERS:
        sel = (order == o) & arch
        state["sec_points"][o].set_offsets(points(sel))
        if sel.any():
            medians.append(f"o{o} {median_seconds(steps, o):.3f}")
            handles.append(state["sec_points"][o])
    state["sec_warmup"].set_offsets(points(~arch))
    if (~arch).any():
        state["sec_warmup"].set_label("warm-up" if len(handles) > 1 else "warm-up (not in median)")
        handles.append(state["sec_warmup"])
    if len(steps):
        ax.set_xlim(x.min() - 0.5, x.max() + 0.5)
        ax.set_ylim(0, float(secs.max()) * 1.15 + 1e-9)
    wrap = "\n" if compact(ax.figure) else " "                 # a narrow panel: the medians on a line of their own
    ax.set_title("seconds per step" + (f"{wrap}(median {', '.join(medians)})" if medians else ""), fontsize=8)
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    ax.set_xlabel("step", fontsize=8, loc="left")              # the legend sits under the axes, right
    if handles:
        ax.legend(handles=handles, loc="upper right", bbox_to_anchor=(1.0, -0.08), ncol=len(handles), fontsize=7,
                  frameon=False, borderaxespad=0.0, handletextpad=0.2, columnspacing=0.8)


# -- 4. collapse indicators -------------------------------------------------------------

COLLAPSE_AXES = ("kept", "weights", "lambda")     # the panel's axes, left to right (fig.axes order)
COLLAPSE_MARGINS = dict(left=0.6, right=0.15, top=0.35, bottom=1.5)   # inches; legends under the axes
LEGEND_DROP = 0.45                                # inches from an axes' bottom to its legend (under "step")
ES_COLOR = "#c00000"                              # DARTS-ES: where the search stopped


def draw_collapse(records: Sequence, fig: Optional[Figure] = None, upto: Optional[int] = None,
                  space=None) -> Figure:
    """The collapse diagnostics over the steps, from the records: the skip and parameter-free
    ops among the kept edges of each derived cell (the normal cell's count is the records'
    `param_free_ops`); the largest `none` and skip weight of the normal cell (`max_none`,
    `max_skip`); `lambda_max` on monitored steps. A DARTS-ES stop (an epoch record's
    `early_stop_epoch`) is marked on every axes. A note instead where the space declares
    no skip op and no parameter-free ops."""
    fig = _fig(fig, "collapse")
    fig.set_size_inches(panel_width(fig, SIZES["collapse"][0]), SIZES["collapse"][1])
    ax_kept, ax_w, ax_lam = fig.subplots(1, 3, gridspec_kw=dict(width_ratios=(1.15, 1.0, 1.0)))
    steps = step_records(records)
    sp = space_of(steps, space) if (steps or space is not None) else None
    if sp is not None and sp.skip_op is None and not sp.parameter_free:
        ax_kept.text(0.5, 0.5, f"the {sp.name} space declares\nno skip op and no parameter-free\nops: "
                     "no collapse indicator", ha="center", va="center", transform=ax_kept.transAxes, fontsize=FONT)
    elif steps:
        _draw_kept(ax_kept, steps, sp)
    else:
        for ax in (ax_kept, ax_w, ax_lam):
            ax.text(0.5, 0.5, "nothing yet: no steps", ha="center", va="center", transform=ax.transAxes,
                    fontsize=TITLE_FONT, color="#555555")
    if steps and sp is not None:
        _draw_max_weights(ax_w, steps, sp)
        _draw_lambda(ax_lam, steps)
        _mark_early_stop((ax_kept, ax_w, ax_lam), epoch_records(records))
    for ax in (ax_kept, ax_w, ax_lam):
        if upto is not None:
            ax.axvline(upto, color="black", lw=1)
        ax.set_xlabel("step", fontsize=FONT)
        ax.tick_params(labelsize=FONT)
    # a space whose ops all have weights (the recurrent one) collapses to its skip op alone
    what = f"{sp.skip_op} edges" if sp is not None and sp.skip_op and not sp.parameter_free else "parameter-free ops"
    ax_kept.set_title(f"kept {what}", fontsize=TITLE_FONT)
    ax_kept.set_ylabel("kept edges", fontsize=FONT)
    first = sp.cell_title(sp.cell_types[0]) if sp is not None else "normal cell"
    ax_w.set_title(f"largest weight, {first}", fontsize=TITLE_FONT)
    ax_lam.set_title("\u03bb_max of the Hessian in \u03b1", fontsize=TITLE_FONT)
    _margins(fig, wspace=0.35, **COLLAPSE_MARGINS)
    return fig


def _legend_under(ax) -> None:
    """The axes' legend under it (never over the data), one entry a line."""
    if ax.get_legend_handles_labels()[0]:
        height = SIZES["collapse"][1] - COLLAPSE_MARGINS["top"] - COLLAPSE_MARGINS["bottom"]
        ax.legend(fontsize=FONT, frameon=False, loc="upper left", bbox_to_anchor=(-0.02, -LEGEND_DROP / height), ncol=1,
                  borderaxespad=0.0, handlelength=1.6, labelspacing=0.25)


def counted_key(space) -> str:
    """What the records' `param_free_ops` counts in `space`: "param_free", or "skip" where the
    space has no parameter-free op besides its zero op (dartsviz.diagnostics.collapse_ops)."""
    return "param_free" if any(op != space.zero_op for op in space.parameter_free) else "skip"


def kept_series(steps: Sequence, space) -> dict:
    """Per cell type, {"skip": [...], "param_free": [...]}: kept edges with the skip op and with
    a parameter-free op at every step. The first cell type's counted key (`counted_key`)
    is the records' own `param_free_ops` where they carry it."""
    counts = [collapse_counts(r.genotype, space) for r in steps]
    first, key = space.cell_types[0], counted_key(space)
    out = {cell: {k: [c[cell][k] for c in counts] for k in ("skip", "param_free", "edges")}
           for cell in space.cell_types}
    out[first][key] = [r.param_free_ops if r.param_free_ops is not None else c[first][key]
                       for r, c in zip(steps, counts)]
    return out


def _draw_kept(ax, steps: Sequence, sp) -> None:
    x = [r.step for r in steps]
    series = kept_series(steps, sp)
    for cell, ls in zip(sp.cell_types, CELL_LINESTYLES * len(sp.cell_types)):
        if sp.skip_op is not None:
            ax.step(x, series[cell]["skip"], ls, where="post", color=op_color(sp.skip_op, sp),
                    label=f"{sp.skip_op} ({cell})")
        if sp.parameter_free:
            ax.step(x, series[cell]["param_free"], ls, where="post", color="#555555",
                    label=f"parameter-free ({cell})")
    n = max(s["edges"][-1] for s in series.values())
    ax.set_ylim(-0.2, n + 0.3)
    _legend_under(ax)


def _draw_max_weights(ax, steps: Sequence, sp) -> None:
    """max_none and max_skip of the records, with the uniform weight 1/ops dotted."""
    drawn = []
    for field, op in (("max_none", sp.zero_op), ("max_skip", sp.skip_op)):
        x, y = record_series(steps, field)
        if op is not None and x:
            drawn += y
            color = ZERO_OP_TEXT if op == sp.zero_op else op_color(op, sp)      # the zero op's colour is pale
            label = field if field.endswith(f"_{op}") else f"{field} ({op})"
            ax.plot(x, y, "-", marker="." if len(x) < 30 else "", color=color, lw=1.4, label=label)
    if not drawn:
        ax.text(0.5, 0.5, "no none / skip weights\nin these records", ha="center", va="center",
                transform=ax.transAxes, fontsize=FONT, color="#555555")
        return
    ax.axhline(1.0 / len(sp.ops), color="#888888", lw=0.8, ls=":", label=f"uniform 1/{len(sp.ops)}")
    ax.set_ylim(0, max(max(drawn), 1.0 / len(sp.ops)) * 1.15)
    ax.set_ylabel("softmax weight", fontsize=FONT)
    _legend_under(ax)


# A negative lambda_max: no direction of alpha curves the loss upwards measurably at that step (the
# Hessian there is about negative semidefinite, or its largest eigenvalue is within the estimate's noise)
NEGATIVE_LAMBDA = "below 0: no upward curvature\nfound in \u03b1 at that step"


def _draw_lambda(ax, steps: Sequence) -> None:
    x, y = record_series(steps, "lambda_max")
    if not x:
        ax.text(0.5, 0.5, "\u03bb_max not measured:\nset monitor_every = N\n(the setting above,\n"
                "or --monitor-every)",
                ha="center", va="center", transform=ax.transAxes, fontsize=FONT, color="#555555")
        ax.set_xticks([])
        ax.set_yticks([])
        return
    ax.plot(x, y, "o-", ms=4, lw=1.4, color="#9467bd", label="\u03bb_max")
    ax.set_ylabel("\u03bb_max", fontsize=FONT)
    if min(y) < 0:                        # what a negative estimate means, where one is shown
        ax.axhline(0.0, color="#999999", lw=0.8)
        ax.text(0.02, 0.03, NEGATIVE_LAMBDA, transform=ax.transAxes, fontsize=FONT, color="#555555", va="bottom")
    _legend_under(ax)


def early_stops(epochs: Sequence) -> List[Tuple[int, int, Optional[int]]]:
    """(step the search stopped at, epoch it stopped after, the epoch whose genotype it kept's
    last step or None) for each epoch record with `early_stop_epoch` (DARTS-ES)."""
    ends = {r.epoch: r.step for r in epochs}
    return [(r.step, r.epoch, ends.get(r.early_stop_epoch)) for r in epochs
            if getattr(r, "early_stop_epoch", None) is not None]


def _mark_early_stop(axes, epochs: Sequence) -> None:
    """A red dashed line where DARTS-ES stopped, a dotted one at the end of the epoch it kept."""
    for stop, epoch, kept in early_stops(epochs):
        for i, ax in enumerate(axes):
            ax.axvline(stop, color=ES_COLOR, ls="--", lw=1.4,
                       label=f"DARTS-ES stop (epoch {epoch_number(epoch)})" if i == len(axes) - 1 else None)
            if kept is not None:
                ax.axvline(kept, color=ES_COLOR, ls=":", lw=1.2,
                           label="kept epoch's end" if i == len(axes) - 1 else None)
    if early_stops(epochs):
        _legend_under(axes[-1])


def most_moved_edge(records: Sequence, cell: str, space=None):
    """The edge of `cell` whose weights moved most from the first to the last step."""
    _, w = probs_series(records, cell)                     # (T, E, O)
    if len(w) == 0:
        raise ValueError("no step records")
    moved = np.abs(w[-1] - w[0]).sum(axis=1)               # (E,)
    return space_of(step_records(records), space).edges(cell, w.shape[1])[int(moved.argmax())]


# -- the built-in panels (dashboard, replay, export): one registration each ------------------------
def _trajectory_edge(data: PanelData):
    """The (cell type, edge) of the trajectories: the one chosen, else the edge that moved most."""
    if data.edge is not None:
        return data.edge
    cell = data.space.cell_types[0]
    return cell, most_moved_edge(data.records, cell, data.space)


def _trajectory_file(data: PanelData) -> Optional[str]:
    if not data.steps:
        return None
    cell, (src, dst) = _trajectory_edge(data)
    return f"trajectories_{cell}_{src}-{dst}"


register_panel(Panel("weights", lambda d, fig: draw_weights(d.record, fig, cells=d.cells), SIZES["weights"]))
register_panel(Panel("heatmap", lambda d, fig: draw_heatmap(d.record, fig), SIZES["heatmap"], tab="Heat map"))
register_panel(Panel("trajectories", lambda d, fig: draw_trajectories(d.records, *_trajectory_edge(d), fig,
                                                                      upto=d.upto, space=d.space),
                     SIZES["trajectories"], tab="Trajectories", edge_chooser=True, file_name=_trajectory_file))
register_panel(Panel("curves", lambda d, fig: draw_curves(d.records, fig, upto=d.upto, space=d.space),
                     SIZES["curves"], tab="Curves & cost"))
register_panel(Panel("collapse", lambda d, fig: draw_collapse(d.records, fig, upto=d.upto, space=d.space),
                     SIZES["collapse"], tab="Collapse"))
