"""Matplotlib figures of a search, drawn into reusable `Figure`s (no pyplot, no widgets).

Every `draw_*` function takes records, weights or genotypes and an optional `fig`;
it clears and redraws that figure (or makes a new one) and returns it, so a view can
keep one Figure per panel and redraw it as often as it likes without leaking figures.

    fig = draw_weights(record)                 # a step record, or {"normal": probs, "reduce": probs}
    png = to_png(fig)                          # bytes for widgets.Image or a file
"""
from __future__ import annotations

import io
from typing import Optional, Sequence, Tuple

import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from ..ops import PRIMITIVES
from .palette import CELL_TITLES, CELL_TYPES, OP_COLORS, OP_SHORT, ORDER_COLORS, edge_label
from .records import (cell_edges, collapse_counts, epoch_records, kept_mask, probs_of,
                      probs_series, step_records)

DPI = 80
SIZES = {  # inches (width, height) of each panel
    "weights": (11.0, 5.2),
    "heatmap": (7.0, 4.6),
    "trajectories": (6.0, 3.4),
    "curves": (11.0, 3.0),
    "collapse": (6.0, 3.0),
}


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


def _probs_pair(data) -> dict:
    """{"normal": (E, O), "reduce": (E, O)} from a step record or a probs dict."""
    data = _last_step(data)
    p = data["probs"] if isinstance(data, dict) and "probs" in data else data
    if not isinstance(p, dict) or not any(c in p for c in CELL_TYPES):
        raise ValueError("expected a step record, a list of records or {'normal': weights, 'reduce': weights}")
    return {c: probs_of(p, c) for c in CELL_TYPES if c in p}


def _last_step(data):
    """A list of records stands for its last step record."""
    if isinstance(data, (list, tuple)):
        steps = step_records(data)
        if not steps:
            raise ValueError("no step records to draw")
        return steps[-1]
    return data


def _step_title(data, what: str) -> str:
    data = _last_step(data)
    if isinstance(data, dict) and "step" in data:
        return f"{what} at step {data['step']} (epoch {data.get('epoch', 0)}, order {data.get('order', '?')})"
    return what


def _op_legend(fig: Figure, y: float = 0.995) -> None:
    handles = [Patch(facecolor=OP_COLORS[op], label=op) for op in PRIMITIVES]
    fig.legend(handles=handles, loc="upper center", ncol=len(PRIMITIVES), fontsize=8,
               frameon=False, bbox_to_anchor=(0.5, y), handlelength=1.2, columnspacing=1.0)


def _cell_panel(data, fig: Optional[Figure], name: str, build):
    """Both cells' weights and the panel's artists: those already in `fig` when it shows
    this panel for the same shapes (updated in place), else built by `build`."""
    pair = _probs_pair(data)
    key = (name, tuple((c, p.shape) for c, p in pair.items()))
    state = _state(fig, key)
    if state is None:
        state = build(_fig(fig, name), pair, key)
    return pair, state


# -- 1. per-edge softmax weights ------------------------------------------------

def draw_weights(data, fig: Optional[Figure] = None, title: Optional[str] = None) -> Figure:
    """Grouped bars: one group per edge, one bar per op; kept edges shaded, kept ops marked ▼.

    Redrawing into a figure that already shows this panel updates its artists in place."""
    pair, state = _cell_panel(data, fig, "weights", _build_weights)
    width = 0.8 / len(PRIMITIVES)
    for (cell, probs), st in zip(pair.items(), state["cells"]):
        kept = kept_mask(probs)                               # (E, O)
        kept_edge = kept.any(axis=1)                          # (E,)
        for k, bars in enumerate(st["bars"]):
            for e, rect in enumerate(bars.patches):
                rect.set_height(probs[e, k])
        for e, span in enumerate(st["spans"]):
            span.set_visible(bool(kept_edge[e]))
        ke, ko = np.nonzero(kept)
        st["marks"].set_offsets(np.column_stack([ke - 0.4 + (ko + 0.5) * width, probs[ke, ko] + 0.012]))
        for lab, k in zip(st["labels"], kept_edge):
            lab.set_fontweight("bold" if k else "normal")
        st["ax"].set_ylim(0, max(0.2, float(probs.max()) * 1.15))
    state["title"].set_text(title or _step_title(data, "softmax weights per edge"))
    return state["fig"]


def _build_weights(fig: Figure, pair: dict, key) -> dict:
    axes = fig.subplots(len(pair), 1, squeeze=False)[:, 0]
    n_ops = len(PRIMITIVES)
    width = 0.8 / n_ops
    cells = []
    for ax, (cell, probs) in zip(axes, pair.items()):
        edges = cell_edges(probs.shape[0])
        x = np.arange(len(edges))                             # (E,)
        spans = [ax.axvspan(e - 0.45, e + 0.45, color="#fff3c4", zorder=0) for e in x]
        bars = [ax.bar(x - 0.4 + (k + 0.5) * width, np.zeros(len(edges)), width, color=OP_COLORS[op], zorder=2)
                for k, op in enumerate(PRIMITIVES)]
        marks = ax.scatter([], [], marker="v", s=22, color="black", zorder=3)
        ax.set_xticks(x)
        ax.set_xticklabels([edge_label(s, d) for s, d in edges], fontsize=9)
        ax.set_xlim(-0.55, len(edges) - 0.45)
        ax.axhline(1.0 / n_ops, color="#888888", lw=0.8, ls=":", zorder=1)
        ax.set_ylabel("softmax weight", fontsize=9)
        ax.set_title(f"{CELL_TITLES[cell]}: shaded = kept edges, \u25bc = kept op, dotted = uniform 1/8",
                     fontsize=9, loc="left")
        ax.tick_params(axis="y", labelsize=8)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        labels = [t.label1 for t in ax.xaxis.get_major_ticks()]
        cells.append(dict(ax=ax, spans=spans, bars=bars, marks=marks, labels=labels))
    _op_legend(fig)
    title = fig.suptitle("", fontsize=10, y=0.935)
    fig.subplots_adjust(left=0.06, right=0.99, top=0.84, bottom=0.07, hspace=0.45)
    state = dict(key=key, fig=fig, cells=cells, title=title)
    fig._dartsviz_state = state
    return state


# -- 2. heat map and trajectories ---------------------------------------------------

def draw_heatmap(data, fig: Optional[Figure] = None, title: Optional[str] = None,
                 vmax: Optional[float] = None) -> Figure:
    """Edges x ops heat map of the weights of both cells, centred on the uniform 1/8:
    red = above uniform, blue = below; kept (edge, op) cells boxed. Updates in place."""
    pair, state = _cell_panel(data, fig, "heatmap", _build_heatmap)
    uniform = 1.0 / len(PRIMITIVES)
    top = vmax if vmax is not None else max(0.25, max(float(p.max()) for p in pair.values()))
    state["norm"].vmax = max(top, uniform * 1.01)
    for (cell, probs), st in zip(pair.items(), state["cells"]):
        st["image"].set_data(probs)                           # (E, O)
        for rect, (e, k) in zip(st["boxes"], zip(*np.nonzero(kept_mask(probs)))):
            rect.set_xy((k - 0.5, e - 0.5))
    state["colorbar"].update_normal(state["cells"][0]["image"])
    state["title"].set_text(title or _step_title(data, "weights vs uniform 1/8 (box = kept)"))
    return state["fig"]


def _build_heatmap(fig: Figure, pair: dict, key) -> dict:
    axes = fig.subplots(1, len(pair), squeeze=False)[0]
    uniform = 1.0 / len(PRIMITIVES)
    norm = TwoSlopeNorm(vmin=0.0, vcenter=uniform, vmax=0.25)
    cells = []
    for ax, (cell, probs) in zip(axes, pair.items()):
        edges = cell_edges(probs.shape[0])
        image = ax.imshow(probs, cmap="RdBu_r", norm=norm, aspect="auto")  # (E, O)
        boxes = [ax.add_patch(Rectangle((0, 0), 1, 1, fill=False, ec="black", lw=1.8))
                 for _ in range(int(kept_mask(probs).sum()))]
        ax.set_yticks(range(len(edges)))
        ax.set_yticklabels([edge_label(s, d) for s, d in edges], fontsize=8)
        ax.set_xticks(range(len(PRIMITIVES)))
        ax.set_xticklabels([OP_SHORT[op] for op in PRIMITIVES], fontsize=8, rotation=60)
        for lab, op in zip(ax.get_xticklabels(), PRIMITIVES):
            lab.set_color(OP_COLORS[op] if op != "none" else "#666666")
            lab.set_fontweight("bold")
        ax.set_title(CELL_TITLES[cell], fontsize=9)
        cells.append(dict(image=image, boxes=boxes))
    colorbar = fig.colorbar(cells[0]["image"], ax=list(axes), shrink=0.85, pad=0.02)
    colorbar.ax.tick_params(labelsize=7)
    state = dict(key=key, fig=fig, cells=cells, norm=norm, colorbar=colorbar, title=fig.suptitle("", fontsize=9))
    fig._dartsviz_state = state
    return state


def draw_trajectories(records: Sequence[dict], cell: str = "normal", edge: Tuple[int, int] = (0, 2),
                      fig: Optional[Figure] = None, upto: Optional[int] = None) -> Figure:
    """The weight of every op on one edge over the steps; second-order steps shaded."""
    fig = _fig(fig, "trajectories")
    ax = fig.add_subplot(1, 1, 1)
    steps, w = probs_series(records, cell)                   # (T,), (T, E, O)
    if len(steps):
        edges = cell_edges(w.shape[1])
        if tuple(edge) not in edges:
            raise ValueError(f"edge {edge} is not in the cell; edges: {', '.join(map(str, edges))}")
        e = edges.index(tuple(edge))
        for k, op in enumerate(PRIMITIVES):
            ax.plot(steps, w[:, e, k], color=OP_COLORS[op], lw=1.6, label=OP_SHORT[op])
        _shade_order(ax, step_records(records))
        ax.legend(fontsize=7, ncol=4, loc="upper left", frameon=False)
    else:
        ax.text(0.5, 0.5, "no steps yet", ha="center", va="center", transform=ax.transAxes)
    if upto is not None:
        ax.axvline(upto, color="black", lw=1)
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel("softmax weight", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(f"{CELL_TITLES.get(cell, cell)}, edge {edge_label(*edge)}: weights over time", fontsize=9)
    fig.subplots_adjust(left=0.11, right=0.98, top=0.9, bottom=0.15)
    return fig


def _shade_order(ax, steps: Sequence[dict]) -> None:
    """Shade runs of second-order steps."""
    start = None
    for r in list(steps) + [{"order": 1, "step": None}]:
        if r.get("order") == 2 and start is None:
            start = r["step"] - 0.5
        elif r.get("order") != 2 and start is not None:
            end = (r["step"] - 0.5) if r["step"] is not None else steps[-1]["step"] + 0.5
            ax.axvspan(start, end, color=ORDER_COLORS[2], alpha=0.12, lw=0)
            start = None


# -- 3. curves ------------------------------------------------------------------------

def draw_curves(records: Sequence[dict], fig: Optional[Figure] = None, upto: Optional[int] = None) -> Figure:
    """Loss, accuracy (train / validation per step, test per epoch) and seconds per step
    (coloured by order). Redrawing into the same figure updates its artists in place."""
    state = _state(fig, ("curves",))
    if state is None:
        fig = _fig(fig, "curves")
        state = _build_curves(fig)
    steps = step_records(records)
    epochs = epoch_records(records)
    x = np.array([r["step"] for r in steps], dtype=float)   # (T,)
    marker = "." if len(steps) < 30 else ""
    for key, ax in (("loss", state["loss"]), ("acc", state["acc"])):
        lines = state[f"{key}_lines"]
        lines["train"].set_data(x, [r[f"train_{key}"] for r in steps])
        lines["val"].set_data(x, [r[f"val_{key}"] for r in steps])
        lines["test"].set_data([r["step"] for r in epochs], [r[f"test_{key}"] for r in epochs])
        for line in (lines["train"], lines["val"]):
            line.set_marker(marker)
        ax.relim()
        ax.autoscale_view()
    state["acc"].set_ylim(0, 1.02)
    secs = np.array([r["seconds"] for r in steps], dtype=float)        # (T,)
    order = np.array([r.get("order", 1) for r in steps])               # (T,)
    medians = []
    for o in (1, 2):
        sel = order == o
        state["sec_points"][o].set_offsets(np.column_stack([x[sel], secs[sel]]) if sel.any() else np.zeros((0, 2)))
        if sel.any():
            medians.append(f"o{o} {np.median(secs[sel]):.3f}")
    ax = state["sec"]
    if len(steps):
        ax.set_xlim(x.min() - 0.5, x.max() + 0.5)
        ax.set_ylim(0, float(secs.max()) * 1.15 + 1e-9)
    ax.set_title("seconds per step" + (f" (median {', '.join(medians)})" if medians else ""), fontsize=8)
    state["empty"].set_visible(not steps)
    for line in state["upto"]:
        line.set_visible(upto is not None)
        if upto is not None:
            line.set_xdata([upto, upto])
    return state["fig"]


def _build_curves(fig: Figure) -> dict:
    ax_loss, ax_acc, ax_sec = fig.subplots(1, 3)
    state = dict(key=("curves",), fig=fig, loss=ax_loss, acc=ax_acc, sec=ax_sec)
    for key, ax, name in (("loss", ax_loss, "loss"), ("acc", ax_acc, "accuracy")):
        state[f"{key}_lines"] = dict(
            train=ax.plot([], [], "-", color="#1f77b4", lw=1, alpha=0.8, label="train")[0],
            val=ax.plot([], [], "-", color="#ff7f0e", lw=1, alpha=0.8, label="validation")[0],
            test=ax.plot([], [], "o-", color="#2ca02c", ms=4, lw=1, label="test (epoch)")[0])
        ax.set_title(name, fontsize=9)
    ax_loss.legend(fontsize=7, frameon=False)
    state["sec_points"] = {o: ax_sec.scatter([], [], s=8, color=ORDER_COLORS[o], label=f"order {o}")
                           for o in (1, 2)}
    ax_sec.legend(fontsize=7, frameon=False, loc="lower left")
    state["empty"] = fig.text(0.5, 0.5, "no steps yet", ha="center", va="center")
    state["upto"] = [ax.axvline(0, color="black", lw=1) for ax in (ax_loss, ax_acc, ax_sec)]
    for ax in (ax_loss, ax_acc, ax_sec):
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.subplots_adjust(left=0.05, right=0.99, top=0.9, bottom=0.15, wspace=0.2)
    fig._dartsviz_state = state
    return state


# -- 4. collapse indicator -------------------------------------------------------------

def draw_collapse(records: Sequence[dict], fig: Optional[Figure] = None, upto: Optional[int] = None) -> Figure:
    """Skip connections and parameter-free ops among the kept edges of the derived cells."""
    fig = _fig(fig, "collapse")
    ax = fig.add_subplot(1, 1, 1)
    steps = step_records(records)
    if steps:
        x = [r["step"] for r in steps]
        counts = [collapse_counts(r["genotype"]) for r in steps]
        for cell, ls in (("normal", "-"), ("reduce", "--")):
            ax.step(x, [c[f"{cell}_skip"] for c in counts], ls, where="post", color=OP_COLORS["skip_connect"],
                    label=f"skip_connect ({cell})")
            ax.step(x, [c[f"{cell}_param_free"] for c in counts], ls, where="post", color="#555555",
                    label=f"parameter-free ({cell})")
        n = counts[-1]["normal_edges"]
        ax.set_ylim(-0.2, n + 0.3)
        ax.legend(fontsize=7, frameon=False, ncol=2, loc="upper left")
    else:
        ax.text(0.5, 0.5, "no steps yet", ha="center", va="center", transform=ax.transAxes)
    if upto is not None:
        ax.axvline(upto, color="black", lw=1)
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel("kept edges", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title("collapse indicator: parameter-free ops in the derived cells", fontsize=9)
    fig.subplots_adjust(left=0.1, right=0.98, top=0.9, bottom=0.15)
    return fig
