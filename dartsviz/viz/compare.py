"""Compare two searches side by side: heat maps, derived cells, validation curves, cost,
and where the cells differ. Live (two Search objects) or loaded from run directories.

    cmp = Compare("runs/o1", "runs/o2")           # or Compare(search_a, search_b); cmp.step(10)
    compare_report("runs/o1", "runs/o2", "report/")   # PNG + SVG panels and report/index.html
"""
from __future__ import annotations

import html
import textwrap
import time
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
from matplotlib.figure import Figure

from ..bilevel import ORDERS
from .cellgraph import as_html, cell_svg
from .figures import (MEMORY_CAPTION, SECONDS_CAPTION, arch_steps, draw_heatmap, median_seconds, new_figure,
                      peak_memory, to_png, to_svg)
from .palette import edge_label, op_color
from .records import METRIC_LIMITS, cell_differences, loss_of, metric_of, metric_title
from .rundata import RunData, load_run
from .view import WidgetView

RUN_COLORS = ("#1f77b4", "#ff7f0e")


def _labels(runs: Sequence[RunData]) -> None:
    if runs[0].label == runs[1].label:
        runs[0].label, runs[1].label = f"A: {runs[0].label}", f"B: {runs[1].label}"


def _vmax(latest) -> float:
    """One colour scale for the heat maps of both runs."""
    return max(float(np.max(p)) for rec in latest for p in rec.probs.values())


def draw_compare_curves(runs: Sequence[RunData], fig: Optional[Figure] = None) -> Figure:
    """Validation loss and the space's metric of both runs over the steps."""
    fig = new_figure((10.0, 3.0)) if fig is None else fig
    fig.clear()
    ax_loss, ax_metric = fig.subplots(1, 2)
    metric = runs[0].space.metric
    for run, color in zip(runs, RUN_COLORS):
        steps = run.steps
        x = [r.step for r in steps]
        style = ".-" if len(steps) < 30 else "-"
        ax_loss.plot(x, [loss_of(r, "val") for r in steps], style, color=color, lw=1, label=run.label)
        ax_metric.plot(x, [metric_of(r, "val", metric) for r in steps], style, color=color, lw=1, label=run.label)
    for ax, name in ((ax_loss, "validation loss"), (ax_metric, f"validation {metric_title(metric)}")):
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step", fontsize=9)
        ax.tick_params(labelsize=8)
    if metric in METRIC_LIMITS:
        ax_metric.set_ylim(*METRIC_LIMITS[metric])
    ax_loss.legend(fontsize=8, frameon=False)
    fig.set_layout_engine("constrained")                  # nothing cut off, whatever the labels
    return fig


def cost_summary(run: RunData) -> dict:
    """Median seconds per step (overall and per order; warm-up steps left out, as everywhere:
    `figures.median_seconds`), total seconds, memory (`figures.peak_memory`), device."""
    steps = run.steps
    memory_mb, memory_what = peak_memory(steps)
    out = {"steps": len(steps), "warmup_steps": len(steps) - len(arch_steps(steps)),
           "seconds_total": float(sum(r.seconds for r in steps)),
           "peak_mem_mb": float(max(r.peak_mem_mb or 0 for r in steps)) if steps else 0.0,
           "memory_mb": memory_mb, "memory_what": memory_what,
           "device": steps[-1].device if steps else "?"}
    for o in ORDERS:
        out[f"median_s_order{o}"] = median_seconds(steps, o)
    out["median_s"] = median_seconds(steps)
    return out


def _wrap(text: str, width: int = 18) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


def draw_compare_cost(runs: Sequence[RunData], fig: Optional[Figure] = None) -> Figure:
    """Seconds per step of both runs over the steps (warm-up hollow, left out of the medians
    in the legend) and their memory (CUDA peak allocated, or CPU peak-RSS growth)."""
    fig = new_figure((10.0, 3.4)) if fig is None else fig
    fig.clear()
    fig.set_layout_engine("constrained")                  # the legend under the axes, labels uncut
    ax_sec, ax_mem = fig.subplots(1, 2, gridspec_kw=dict(width_ratios=(3, 1.2)))
    orders = {r.order for run in runs for r in run.steps}
    for run, color in zip(runs, RUN_COLORS):
        steps = run.steps
        for o in ORDERS:
            sel = arch_steps(steps, o)
            if sel:
                which = f" (order {o})" if len(orders) > 1 else ""
                ax_sec.plot([r.step for r in sel], [r.seconds for r in sel], "o", ms=3.5, color=color,
                            label=f"{run.label}{which}: median {median_seconds(steps, o):.3f} s")
        warm = [r for r in steps if not r.arch_updated]
        if warm:
            ax_sec.plot([r.step for r in warm], [r.seconds for r in warm], "o", ms=4, mfc="none", mew=0.9,
                        color=color, label=f"{run.label}: warm-up (not in median)")
    ax_sec.set_ylim(bottom=0)
    ax_sec.set_title("seconds per step (medians leave out warm-up)", fontsize=10)
    ax_sec.set_xlabel("step", fontsize=9)
    handles = ax_sec.get_legend_handles_labels()[0]
    if handles:                                           # under the axes: never over the points
        fig.legend(handles=handles, fontsize=8, frameon=False, loc="outside lower center",
                   ncol=2 if len(handles) > 1 else 1)
    mems = [peak_memory(r.steps) for r in runs]
    whats = {w for _, w in mems}
    x = list(range(len(runs)))
    bars = ax_mem.bar(x, [m or 0.0 for m, _ in mems], color=RUN_COLORS[:len(runs)], width=0.6)
    for bar, (m, _) in zip(bars, mems):
        ax_mem.annotate("n/a" if m is None else f"{m:.{0 if m >= 10 else 1}f} MB", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=8)
    ax_mem.set_xticks(x)
    ax_mem.set_xticklabels([_wrap(r.label if len(whats) == 1 else f"{r.label} ({w})") for r, (_, w) in zip(runs, mems)],
                           fontsize=8)
    ax_mem.set_title(_wrap(f"memory, MB: {whats.pop()}" if len(whats) == 1 else "memory, MB", 20), fontsize=10)
    ax_mem.set_ylim(0, max([1.0] + [m or 0.0 for m, _ in mems]) * 1.2)
    for ax in (ax_sec, ax_mem):
        ax.tick_params(labelsize=8)
    return fig


def differences_html(a: RunData, b: RunData) -> str:
    """An HTML table of the kept edges whose op differs between the two derived cells."""
    space = a.space
    if b.space is not space:
        return f"<p><b>The runs search different spaces ({space.name}, {b.space.name}).</b></p>"
    rows = cell_differences(a.genotype, b.genotype, space)
    if not rows:
        return "<p><b>The derived cells are identical.</b></p>"

    def op(name):
        if name is None:
            return "<i>not kept</i>"
        return f'<span style="color:{op_color(name, space)};font-weight:bold">{html.escape(name)}</span>'
    body = "".join(f"<tr><td>{html.escape(space.cell_title(r['cell']))}</td><td>{edge_label(*r['edge'])}</td>"
                   f"<td>{op(r['a'])}</td><td>{op(r['b'])}</td></tr>" for r in rows)
    return (f"<p><b>{len(rows)} kept edge(s) differ</b></p><table style='border-collapse:collapse' border='1' "
            f"cellpadding='3'><tr><th>cell</th><th>edge</th><th>{html.escape(a.label)}</th>"
            f"<th>{html.escape(b.label)}</th></tr>{body}</table>")


def summary_html(runs: Sequence[RunData], caption: bool = True) -> str:
    """The cost table of the runs; with `caption`, what its seconds and memory mean under it."""
    rows = []
    metric = runs[0].space.metric
    fmt = lambda v: "-" if v is None else f"{v:.3f}"
    for r in runs:
        c = cost_summary(r)
        last = r.steps[-1].metrics.get(f"val_{metric}") if r.steps else None
        mem = "-" if c["memory_mb"] is None else f"{c['memory_mb']:.0f}"
        rows.append(f"<tr><td>{html.escape(r.label)}</td><td>{c['steps']} ({c['warmup_steps']} warm-up)</td>"
                    + "".join(f"<td>{fmt(c[f'median_s_order{o}'])}</td>" for o in ORDERS)
                    + f"<td>{c['seconds_total']:.1f}</td><td>{mem} <small>({html.escape(c['memory_what'])})</small>"
                    + f"</td><td>{fmt(last)}</td></tr>")
    ratio = ""
    m1 = [cost_summary(r)[f"median_s_order{ORDERS[0]}"] for r in runs]
    m2 = [cost_summary(r)[f"median_s_order{ORDERS[-1]}"] for r in runs]
    one, two = next((v for v in m1 if v), None), next((v for v in m2 if v), None)
    if one and two:
        ratio = f"<p>second order costs <b>{two / one:.2f}x</b> the time per step of first order here.</p>"
    return ("<table style='border-collapse:collapse' border='1' cellpadding='3'><tr><th>run</th><th>steps</th>"
            + "".join(f"<th>median s/step, order {o}</th>" for o in ORDERS)
            + f"<th>total s</th><th>memory, MB</th><th>last val {html.escape(metric)}</th></tr>"
            + "".join(rows) + "</table>" + (cost_caption() if caption else _SEE_CAPTION) + ratio)


_SEE_CAPTION = ("<p class='caption' style='font-size:90%;color:#444'>Medians leave out warm-up steps; "
                "the caption under Cost says what the seconds and the memory measure.</p>")


def cost_caption() -> str:
    """What the seconds and the memory of the table and the cost figure mean (one definition)."""
    return (f"<p class='caption' style='font-size:90%;color:#444'>{html.escape(SECONDS_CAPTION)} "
            f"{html.escape(MEMORY_CAPTION)}</p>")


class Compare(WidgetView):
    """Two searches side by side, as a widget; `step(n)` advances live searches."""

    def __init__(self, a, b, labels: Optional[Sequence[str]] = None, dpi: int = 72):
        import ipywidgets as widgets
        labels = list(labels) if labels else [None, None]
        self.runs: List[RunData] = [load_run(a, labels[0]), load_run(b, labels[1])]
        _labels(self.runs)
        self.dpi = dpi
        self._figs = {"heat_a": new_figure("heatmap", dpi), "heat_b": new_figure("heatmap", dpi),
                      "curves": new_figure((10.0, 3.0), dpi), "cost": new_figure((10.0, 3.0), dpi)}
        img = dict(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
        self.images = {k: widgets.Image(**img) for k in self._figs}
        # each cell graph at its own size (text 11 px and up): side by side where they fit, else wrapped
        self.cells = {f"{k}_{cell}": widgets.HTML(layout=widgets.Layout(max_width="100%"))
                      for k, r in zip("ab", self.runs) for cell in r.space.cell_types}
        self.titles = [widgets.HTML(), widgets.HTML()]
        self.differences = widgets.HTML()
        self.summary = widgets.HTML()
        self.status = widgets.HTML()
        self.last_error: Optional[str] = None
        live = all(r.search is not None for r in self.runs)
        self.step_button = widgets.Button(description="Step both", disabled=not live)
        self.step10_button = widgets.Button(description="Step both \u00d710", disabled=not live)
        self.step_button.on_click(self._guard(lambda _: self.step(1)))
        self.step10_button.on_click(self._guard(lambda _: self.step(10)))
        row = lambda *ws: widgets.HBox(list(ws), layout=widgets.Layout(flex_flow="row wrap"))
        col = lambda i: widgets.VBox([self.titles[i], self.images[f"heat_{'ab'[i]}"]],
                                     layout=widgets.Layout(width="50%"))
        self.widget = widgets.VBox([row(self.step_button, self.step10_button, self.status), self.summary,
                                    row(col(0), col(1)), row(*self.cells.values()), self.images["curves"],
                                    self.images["cost"], self.differences])
        self.redraw()

    def step(self, n: int = 1) -> None:
        """n more steps of each live search (one after the other), then redraw."""
        for r in self.runs:
            if r.search is None:
                raise ValueError(f"{r.label} is a saved run, not a live search")
        t0 = time.perf_counter()
        for r in self.runs:
            r.search.run(steps=int(n))            # its records reach r as it pushes them
        self.status.value = f"stepped both by {n} in {time.perf_counter() - t0:.1f}s"
        self.redraw()

    def redraw(self) -> None:
        latest = [r.latest() for r in self.runs]
        vmax = _vmax(latest)
        for i, r in enumerate(self.runs):
            k, space = "ab"[i], r.space
            self.titles[i].value = f'<b style="color:{RUN_COLORS[i]}">{html.escape(r.label)}</b>'
            draw_heatmap(latest[i], self._figs[f"heat_{k}"], vmax=vmax, title=f"{r.label}: step {latest[i].step}")
            _set(self.images[f"heat_{k}"], to_png(self._figs[f"heat_{k}"]))
            for j, cell in enumerate(space.cell_types):
                svg = cell_svg(latest[i].genotype, cell, f"{r.label}: {space.cell_title(cell)}", space=space)
                _set(self.cells[f"{k}_{cell}"], as_html(svg, hint=(i, j) == (0, 0)))
        _set(self.images["curves"], to_png(draw_compare_curves(self.runs, self._figs["curves"])))
        _set(self.images["cost"], to_png(draw_compare_cost(self.runs, self._figs["cost"])))
        _set(self.differences, differences_html(*self.runs))
        _set(self.summary, summary_html(self.runs))


def _set(w, value) -> None:
    if w.value != value:
        w.value = value


def compare_report(a, b, out, labels: Optional[Sequence[str]] = None, dpi: int = 100) -> Path:
    """Write the comparison as PNG and SVG panels plus `out/index.html`; returns that page."""
    labels = list(labels) if labels else [None, None]
    runs = [load_run(a, labels[0]), load_run(b, labels[1])]
    _labels(runs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    def save(fig: Figure, name: str) -> str:
        (out / f"{name}.png").write_bytes(to_png(fig, dpi=dpi))
        (out / f"{name}.svg").write_text(to_svg(fig))
        return f"{name}.png"

    latest = [r.latest() for r in runs]
    vmax = _vmax(latest)
    heat = [save(draw_heatmap(rec, vmax=vmax, title=f"{r.label}: step {rec.step}"), f"heatmap_{k}")
            for r, rec, k in zip(runs, latest, "ab")]
    curves = save(draw_compare_curves(runs), "validation")
    cost = save(draw_compare_cost(runs), "cost")
    cells = {k: [] for k in "ab"}
    for r, rec, k in zip(runs, latest, "ab"):
        for cell in r.space.cell_types:
            svg = cell_svg(rec.genotype, cell, f"{r.label}: {r.space.cell_title(cell)}", space=r.space)
            (out / f"cell_{k}_{cell}.svg").write_text(svg)
            cells[k].append(f"cell_{k}_{cell}.svg")
    cols = "".join(
        f"<td style='vertical-align:top'><h3 style='color:{RUN_COLORS[i]}'>{html.escape(r.label)}</h3>"
        f"<img src='{heat[i]}' width='100%'>" + "".join(f"<br><img src='{c}' width='100%'>" for c in cells["ab"[i]])
        + "</td>" for i, r in enumerate(runs))
    genotypes = "".join(f"<p><b>{html.escape(r.label)}</b>: <code>{html.escape(rec.genotype.to_text())}</code></p>"
                        for r, rec in zip(runs, latest))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>dartsviz compare</title></head>"
            f"<body style='font-family:sans-serif;max-width:1200px;margin:auto'>"
            f"<h1>{html.escape(runs[0].label)} vs {html.escape(runs[1].label)}</h1>{summary_html(runs, caption=False)}"
            f"<table width='100%'><tr>{cols}</tr></table><h2>Validation</h2><img src='{curves}' width='100%'>"
            f"<h2>Cost</h2><img src='{cost}' width='100%'>{cost_caption()}<h2>Where the cells differ</h2>"
            f"{differences_html(*runs)}<h2>Genotypes</h2>{genotypes}</body></html>")
    (out / "index.html").write_text(page)
    return out / "index.html"
