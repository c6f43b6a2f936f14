"""Compare searches side by side (two or more): heat maps, derived cells, validation curves,
cost, collapse diagnostics, and where the cells differ. Live (Search objects) or loaded
from run directories.

    cmp = Compare("runs/o1", "runs/o2")           # or Compare(search_a, search_b, search_c); cmp.step(10)
    compare_report("runs/o1", "runs/o2", "report/")   # PNG + SVG panels and report/index.html
    compare_report("runs/a", "runs/b", "runs/c", out="report/")
"""
from __future__ import annotations

import html
import textwrap
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
from matplotlib.figure import Figure

from ..bilevel import ORDERS
from ..summary import (arch_steps, collapse_heading, collapse_summary, cost_summary, median_seconds, peak_memory,
                       record_series)
from .cellgraph import as_html, cell_svg
from .figures import (FONT, MEMORY_CAPTION, SECONDS_CAPTION, TITLE_FONT, draw_heatmap, early_stops, new_figure,
                      to_png, to_svg)
from .palette import edge_label, op_color
from . import truthpanel as truth_panel
from .records import METRIC_LIMITS, epoch_records, loss_of, metric_of, metric_title, step_records
from .rundata import RunData, load_run
from .view import WidgetView

RUN_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
              "#bcbd22", "#17becf")


def run_color(i: int) -> str:
    """The colour of the i-th run in every comparison view."""
    return RUN_COLORS[i % len(RUN_COLORS)]


def run_key(i: int) -> str:
    """The i-th run's key in widget and file names: a, b, c, ... (r26, r27, ... after z)."""
    return chr(ord("a") + i) if i < 26 else f"r{i}"


def _labels(runs: Sequence[RunData]) -> None:
    """Labels that tell the runs apart: `A: label`, `B: label`, ... when two are the same."""
    if len({r.label for r in runs}) < len(runs):
        for i, r in enumerate(runs):
            r.label = f"{run_key(i).upper()}: {r.label}"


def _trailing_labels(args: Sequence, labels):
    """(runs, labels) of positional arguments that may end with the labels, as the two-run
    signature `Compare(a, b, labels)` had them (a run is never a list)."""
    args = tuple(args)
    if labels is None and len(args) > 1 and isinstance(args[-1], (list, tuple)):
        return args[:-1], args[-1]
    return args, labels


def load_runs(runs: Sequence, labels: Optional[Sequence[str]] = None) -> List[RunData]:
    """Two or more runs (run directories, live searches or RunData; also one list of them) as
    RunData with labels that tell them apart; a bad count is one ValueError line."""
    runs, labels = _trailing_labels(runs, labels)
    if len(runs) == 1 and isinstance(runs[0], (list, tuple)):
        runs = tuple(runs[0])
    if len(runs) < 2:
        raise ValueError(f"compare needs two or more runs, got {len(runs)}")
    labels = list(labels) if labels else [None] * len(runs)
    if len(labels) != len(runs):
        raise ValueError(f"{len(labels)} labels for {len(runs)} runs: give one label per run")
    out = [load_run(r, label) for r, label in zip(runs, labels)]
    _labels(out)
    return out


def _vmax(latest) -> float:
    """One colour scale for the heat maps of every run."""
    return max(float(np.max(p)) for rec in latest for p in rec.probs.values())


def draw_compare_curves(runs: Sequence[RunData], fig: Optional[Figure] = None) -> Figure:
    """Validation loss and the space's metric of every run over the steps."""
    fig = new_figure((10.0, 3.0)) if fig is None else fig
    fig.clear()
    ax_loss, ax_metric = fig.subplots(1, 2)
    metric = runs[0].space.metric
    for i, run in enumerate(runs):
        steps, color = run.steps, run_color(i)
        x = [r.step for r in steps]
        style = ".-" if len(steps) < 30 else "-"
        ax_loss.plot(x, [loss_of(r, "val") for r in steps], style, color=color, lw=1, label=run.label)
        ax_metric.plot(x, [metric_of(r, "val", metric) for r in steps], style, color=color, lw=1, label=run.label)
    for ax, name in ((ax_loss, "validation loss"), (ax_metric, f"validation {metric_title(metric)}")):
        ax.set_title(name, fontsize=TITLE_FONT)
        ax.set_xlabel("step", fontsize=FONT)
        ax.tick_params(labelsize=FONT)
    if metric in METRIC_LIMITS:
        ax_metric.set_ylim(*METRIC_LIMITS[metric])
    ax_loss.legend(fontsize=FONT, frameon=False)
    fig.set_layout_engine("constrained")                  # nothing cut off, whatever the labels
    return fig


def _wrap(text: str, width: int = 18) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


def draw_compare_cost(runs: Sequence[RunData], fig: Optional[Figure] = None) -> Figure:
    """Seconds per step of every run over the steps (warm-up hollow, left out of the medians
    in the legend) and their memory (CUDA peak allocated, or CPU peak-RSS growth)."""
    fig = new_figure((10.0, 3.4)) if fig is None else fig
    fig.clear()
    fig.set_layout_engine("constrained")                  # the legend under the axes, labels uncut
    ax_sec, ax_mem = fig.subplots(1, 2, gridspec_kw=dict(width_ratios=(3, 1.2)))
    orders = {r.order for run in runs for r in run.steps}
    for i, run in enumerate(runs):
        steps, color = run.steps, run_color(i)
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
    ax_sec.set_title("seconds per step (medians leave out warm-up)", fontsize=TITLE_FONT)
    ax_sec.set_xlabel("step", fontsize=FONT)
    handles = ax_sec.get_legend_handles_labels()[0]
    if handles:                                           # under the axes: never over the points
        fig.legend(handles=handles, fontsize=FONT, frameon=False, loc="outside lower center",
                   ncol=2 if len(handles) > 1 else 1)
    mems = [peak_memory(r.steps) for r in runs]
    whats = {w for _, w in mems}
    x = list(range(len(runs)))
    bars = ax_mem.bar(x, [m or 0.0 for m, _ in mems], color=[run_color(i) for i in x], width=0.6)
    for bar, (m, _) in zip(bars, mems):
        ax_mem.annotate("n/a" if m is None else f"{m:.{0 if m >= 10 else 1}f} MB", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        xytext=(0, 2), textcoords="offset points", ha="center", va="bottom", fontsize=FONT)
    ax_mem.set_xticks(x)
    width = max(8, 36 // len(runs))                      # characters per line under each bar
    ax_mem.set_xticklabels([_wrap(r.label if len(whats) == 1 else f"{r.label} ({w})", width)
                            for r, (_, w) in zip(runs, mems)], fontsize=FONT)
    ax_mem.set_title(_wrap(f"memory, MB: {whats.pop()}" if len(whats) == 1 else "memory, MB", 20), fontsize=TITLE_FONT)
    ax_mem.set_ylim(0, max([1.0] + [m or 0.0 for m, _ in mems]) * 1.2)
    for ax in (ax_sec, ax_mem):
        ax.tick_params(labelsize=FONT)
    return fig


def kept_ops_table(runs: Sequence[RunData]) -> List[dict]:
    """Where the derived cells of the runs differ: one row per cell type and edge kept by
    any run and not with the same op by all, {"cell", "edge", "ops": [op or None per run]}."""
    space = runs[0].space
    rows = []
    for cell in space.cell_types:
        kept = [{(s, d): op for s, d, op in space.kept_edges(r.genotype, cell)} for r in runs]
        for edge in sorted(set().union(*kept), key=lambda e: (e[1], e[0])):
            ops = [k.get(edge) for k in kept]
            if len(set(ops)) > 1:
                rows.append({"cell": cell, "edge": edge, "ops": ops})
    return rows


def differences_html(*runs: RunData) -> str:
    """An HTML table of the kept edges whose op differs between the derived cells of the runs."""
    space = runs[0].space
    others = sorted({r.space.name for r in runs if r.space is not space})
    if others:
        return f"<p><b>The runs search different spaces ({space.name}, {', '.join(others)}).</b></p>"
    rows = kept_ops_table(runs)
    if not rows:
        return "<p><b>The derived cells are identical.</b></p>"

    def op(name):
        if name is None:
            return "<i>not kept</i>"
        return f'<span style="color:{op_color(name, space)};font-weight:bold">{html.escape(name)}</span>'
    body = "".join(f"<tr><td>{html.escape(space.cell_title(r['cell']))}</td><td>{edge_label(*r['edge'])}</td>"
                   + "".join(f"<td>{op(o)}</td>" for o in r["ops"]) + "</tr>" for r in rows)
    heads = "".join(f"<th>{html.escape(r.label)}</th>" for r in runs)
    return (f"<p><b>{len(rows)} kept edge(s) differ</b></p><table style='border-collapse:collapse' border='1' "
            f"cellpadding='3'><tr><th>cell</th><th>edge</th>{heads}</tr>{body}</table>")


def draw_compare_collapse(runs: Sequence[RunData], fig: Optional[Figure] = None) -> Figure:
    """Parameter-free ops kept in the derived normal cell (the records' `param_free_ops`) and
    lambda_max on monitored steps, of every run over the steps; DARTS-ES stops dashed."""
    fig = new_figure((10.0, 3.2)) if fig is None else fig
    fig.clear()
    fig.set_layout_engine("constrained")
    ax_free, ax_lam = fig.subplots(1, 2)
    measured = False
    for i, run in enumerate(runs):
        color = run_color(i)
        x, y = record_series(run.steps, "param_free_ops")
        if x:
            ax_free.step(x, y, "-", where="post", color=color, lw=1.4, label=run.label)
        x, y = record_series(run.steps, "lambda_max")
        if x:
            measured = True
            ax_lam.plot(x, y, "o-", ms=3.5, lw=1.2, color=color, label=run.label)
        for stop, _, _ in early_stops(epoch_records(run.records)):
            for ax in (ax_free, ax_lam):
                ax.axvline(stop, color=color, ls="--", lw=1.2)
    if not measured:
        ax_lam.text(0.5, 0.5, "\u03bb_max not measured\n(search with monitor_every = N)", ha="center",
                    va="center", transform=ax_lam.transAxes, fontsize=FONT, color="#555555")
    ax_free.set_title(_wrap(f"{collapse_heading(runs[0].space)}, derived", 44), fontsize=TITLE_FONT)
    ax_free.set_ylim(bottom=-0.2)
    ax_lam.set_title("\u03bb_max (dashed: DARTS-ES stop)" if any(
        early_stops(epoch_records(r.records)) for r in runs) else "\u03bb_max of the Hessian in \u03b1", fontsize=TITLE_FONT)
    for ax in (ax_free, ax_lam):
        ax.set_xlabel("step", fontsize=FONT)
        ax.tick_params(labelsize=FONT)
    handles, labels = ax_free.get_legend_handles_labels()
    if not handles:
        handles, labels = ax_lam.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, fontsize=FONT, frameon=False, loc="outside lower center", ncol=min(len(handles), 5))
    return fig


def summary_html(runs: Sequence[RunData], caption: bool = True) -> str:
    """The cost table of the runs; with `caption`, what its seconds and memory mean under it."""
    rows = []
    metric = runs[0].space.metric
    fmt = lambda v: "-" if v is None else f"{v:.3f}"
    for r in runs:
        c = cost_summary(r.steps)
        last = r.steps[-1].metrics.get(f"val_{metric}") if r.steps else None
        mem = "-" if c["memory_mb"] is None else f"{c['memory_mb']:.0f}"
        k = collapse_summary(r.records)
        free = "-" if k["param_free_ops"] is None else str(k["param_free_ops"])
        lam = "-" if k["lambda_max"] is None else f"{k['lambda_max']:.4g} <small>(step {k['lambda_step']})</small>"
        rows.append(f"<tr><td>{html.escape(r.label)}</td><td>{c['steps']} ({c['warmup_steps']} warm-up)</td>"
                    + "".join(f"<td>{fmt(c[f'median_s_order{o}'])}</td>" for o in ORDERS)
                    + f"<td>{c['seconds_total']:.1f}</td><td>{mem} <small>({html.escape(c['memory_what'])})</small>"
                    + f"</td><td>{fmt(last)}</td><td>{free}</td><td>{lam}</td></tr>")
    ratio = ""
    m1 = [cost_summary(r.steps)[f"median_s_order{ORDERS[0]}"] for r in runs]
    m2 = [cost_summary(r.steps)[f"median_s_order{ORDERS[-1]}"] for r in runs]
    one, two = next((v for v in m1 if v), None), next((v for v in m2 if v), None)
    if one and two:
        ratio = f"<p>second order costs <b>{two / one:.2f}x</b> the time per step of first order here.</p>"
    return ("<table style='border-collapse:collapse' border='1' cellpadding='3'><tr><th>run</th><th>steps</th>"
            + "".join(f"<th>median s/step, order {o}</th>" for o in ORDERS)
            + f"<th>total s</th><th>memory, MB</th><th>last val {html.escape(metric)}</th>"
            + f"<th>{html.escape(collapse_heading(runs[0].space))}</th><th>last \u03bb_max</th></tr>"
            + "".join(rows) + "</table>" + (cost_caption() if caption else _SEE_CAPTION) + ratio)


_SEE_CAPTION = ("<p class='caption' style='font-size:90%;color:#444'>Medians leave out warm-up steps; "
                "the caption under Cost says what the seconds and the memory measure.</p>")


def cost_caption() -> str:
    """What the seconds and the memory of the table and the cost figure mean (one definition)."""
    return (f"<p class='caption' style='font-size:90%;color:#444'>{html.escape(SECONDS_CAPTION)} "
            f"{html.escape(MEMORY_CAPTION)}</p>")


class Compare(WidgetView):
    """Two or more searches side by side, as a widget; `step(n)` advances live searches.

    `Compare(a, b, c, ...)` or `Compare([a, b, c])`: run directories, live searches or RunData."""

    def __init__(self, *runs, labels: Optional[Sequence[str]] = None, dpi: int = 72):
        import ipywidgets as widgets
        self.runs: List[RunData] = load_runs(runs, labels)
        self.keys = [run_key(i) for i in range(len(self.runs))]
        self.dpi = dpi
        self._figs = {**{f"heat_{k}": new_figure("heatmap", dpi) for k in self.keys},
                      "curves": new_figure((10.0, 3.0), dpi), "cost": new_figure((10.0, 3.0), dpi),
                      "collapse": new_figure((10.0, 3.2), dpi)}
        img = dict(format="png", layout=widgets.Layout(max_width="100%", height="auto"))
        self.images = {k: widgets.Image(**img) for k in self._figs}
        # each cell graph at its own size (text 11 px and up): side by side where they fit, else wrapped
        self.cells = {f"{k}_{cell}": widgets.HTML(layout=widgets.Layout(max_width="100%"))
                      for k, r in zip(self.keys, self.runs) for cell in r.space.cell_types}
        self.titles = [widgets.HTML() for _ in self.runs]
        self.differences = widgets.HTML()
        self.summary = widgets.HTML()
        self.status = widgets.HTML()
        self.last_error: Optional[str] = None
        live = all(r.search is not None for r in self.runs)
        every = "both" if len(self.runs) == 2 else "all"
        self.step_button = widgets.Button(description=f"Step {every}", disabled=not live)
        self.step10_button = widgets.Button(description=f"Step {every} \u00d710", disabled=not live)
        self.step_button.on_click(self._guard(lambda _: self.step(1)))
        self.step10_button.on_click(self._guard(lambda _: self.step(10)))
        row = lambda *ws: widgets.HBox(list(ws), layout=widgets.Layout(flex_flow="row wrap"))
        col = lambda i: widgets.VBox([self.titles[i], self.images[f"heat_{self.keys[i]}"]],
                                     layout=widgets.Layout(width="50%"))      # two heat maps a row
        self.widget = widgets.VBox([row(self.step_button, self.step10_button, self.status), self.summary,
                                    row(*(col(i) for i in range(len(self.runs)))), row(*self.cells.values()),
                                    self.images["curves"], self.images["cost"], self.images["collapse"],
                                    self.differences])
        self.redraw()

    def step(self, n: int = 1) -> None:
        """n more steps of each live search (one after the other), then redraw."""
        for r in self.runs:
            if r.search is None:
                raise ValueError(f"{r.label} is a saved run, not a live search")
        t0 = time.perf_counter()
        for r in self.runs:
            r.search.run(steps=int(n))            # its records reach r as it pushes them
        every = "both" if len(self.runs) == 2 else f"all {len(self.runs)}"
        self.status.value = f"stepped {every} by {n} in {time.perf_counter() - t0:.1f}s"
        self.redraw()

    def redraw(self) -> None:
        latest = [r.latest() for r in self.runs]
        vmax = _vmax(latest)
        for i, r in enumerate(self.runs):
            k, space = self.keys[i], r.space
            self.titles[i].value = f'<b style="color:{run_color(i)}">{html.escape(r.label)}</b>'
            draw_heatmap(latest[i], self._figs[f"heat_{k}"], vmax=vmax, title=f"{r.label}: step {latest[i].step}")
            _set(self.images[f"heat_{k}"], to_png(self._figs[f"heat_{k}"]))
            for j, cell in enumerate(space.cell_types):
                svg = cell_svg(latest[i].genotype, cell, f"{r.label}: {space.cell_title(cell)}", space=space)
                _set(self.cells[f"{k}_{cell}"], as_html(svg, hint=(i, j) == (0, 0)))
        _set(self.images["curves"], to_png(draw_compare_curves(self.runs, self._figs["curves"])))
        _set(self.images["cost"], to_png(draw_compare_cost(self.runs, self._figs["cost"])))
        _set(self.images["collapse"], to_png(draw_compare_collapse(self.runs, self._figs["collapse"])))
        _set(self.differences, differences_html(*self.runs))
        _set(self.summary, summary_html(self.runs))


def _set(w, value) -> None:
    if w.value != value:
        w.value = value


def compare_report(*runs, out=None, labels: Optional[Sequence[str]] = None, dpi: int = 100,
                   title: Optional[str] = None, sections: Sequence[Tuple[str, str]] = ()) -> Path:
    """Write the comparison of two or more runs as PNG and SVG panels plus `out/index.html`;
    returns that page. Without `out=`, the last positional argument is the folder:
    `compare_report(a, b, "report/")`, `compare_report(a, b, c, out="report/")`.
    `sections`: (heading, HTML) pairs placed after the summary table (a caller's own tables)."""
    if out is None:
        runs, labels = _trailing_labels(runs, labels)      # compare_report(a, b, out, labels)
        if len(runs) < 3:
            raise ValueError("compare_report needs two or more runs and the report folder (out=)")
        *runs, out = runs
    runs = load_runs(runs, labels)
    keys = [run_key(i) for i in range(len(runs))]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    def save(fig: Figure, name: str) -> str:
        (out / f"{name}.png").write_bytes(to_png(fig, dpi=dpi))
        (out / f"{name}.svg").write_text(to_svg(fig))
        return f"{name}.png"

    latest = [r.latest() for r in runs]
    vmax = _vmax(latest)
    heat = [save(draw_heatmap(rec, vmax=vmax, title=f"{r.label}: step {rec.step}"), f"heatmap_{k}")
            for r, rec, k in zip(runs, latest, keys)]
    curves = save(draw_compare_curves(runs), "validation")
    cost = save(draw_compare_cost(runs), "cost")
    collapse = save(draw_compare_collapse(runs), "collapse")
    truth = ""                                         # the runs' true accuracy, where their space has it
    if all(any(truth_panel.KEY in (r.monitors or {}) for r in step_records(run.records)) for run in runs):
        truth = (f"<h2>True accuracy</h2><img src='{save(truth_panel.draw_truth_compare(runs), 'truth')}' "
                 f"width='100%'>")
    cells = {k: [] for k in keys}
    for r, rec, k in zip(runs, latest, keys):
        for cell in r.space.cell_types:
            svg = cell_svg(rec.genotype, cell, f"{r.label}: {r.space.cell_title(cell)}", space=r.space)
            (out / f"cell_{k}_{cell}.svg").write_text(svg)
            cells[k].append(f"cell_{k}_{cell}.svg")
    # two runs a row: each heat map at half the page, readable
    cols = "".join(
        f"<div style='flex:1 1 45%;min-width:360px'><h3 style='color:{run_color(i)}'>{html.escape(r.label)}</h3>"
        f"<img src='{heat[i]}' width='100%'>" + "".join(f"<br><img src='{c}' width='100%'>" for c in cells[keys[i]])
        + "</div>" for i, r in enumerate(runs))
    genotypes = "".join(f"<p><b>{html.escape(r.label)}</b>: <code>{html.escape(rec.genotype.to_text())}</code></p>"
                        for r, rec in zip(runs, latest))
    extra = "".join(f"<h2>{html.escape(head)}</h2>{body}" for head, body in sections)
    heading = html.escape(title) if title else " vs ".join(html.escape(r.label) for r in runs)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>dartsviz compare</title></head>"
            f"<body style='font-family:sans-serif;max-width:1200px;margin:auto'>"
            f"<h1>{heading}</h1>{summary_html(runs, caption=False)}{extra}"
            f"<div style='display:flex;flex-wrap:wrap;gap:12px'>{cols}</div>"
            f"<h2>Validation</h2><img src='{curves}' width='100%'>"
            f"<h2>Cost</h2><img src='{cost}' width='100%'>{cost_caption()}"
            f"{truth}<h2>Collapse diagnostics</h2><img src='{collapse}' width='100%'>"
            f"<h2>Where the cells differ</h2>{differences_html(*runs)}<h2>Genotypes</h2>{genotypes}</body></html>")
    (out / "index.html").write_text(page)
    return out / "index.html"
