"""Static export: every panel as PNG and SVG, the cell graphs, and an animation of the
alpha evolution (GIF and a self-contained HTML page). A training run directory (written
by `dartsviz train`) gets its training curves and the trained cells instead.

    export_run("runs/search-digits-o1-...")     # writes RUN_DIR/plots/, returns the paths
    export_run("runs/train-digits-...")         # training.png/svg, cell graphs, genotype.txt
"""
from __future__ import annotations

import base64
import html
import io
import json
from os import PathLike
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
from matplotlib.figure import Figure

from .cellgraph import cell_dot, cell_png, cell_svg, soft_cell_png, soft_cell_svg
from ..runs import RunDir
from .figures import draw_heatmap, new_figure, to_png, to_svg
from .panel_registry import PanelData, figure_panels
from .records import METRIC_LIMITS, metric_title, training_metric
from .rundata import load_run

ANIMATIONS = ("gif", "html")
FRAME_DPI = 130          # animation frames: the 7-inch heat map is 910 px wide, its 7-9 pt text 12-16 px
TRAINING_SIZE = (12.0, 3.6)   # inches of the training-curves figure


def frame_indices(n: int, max_frames: int) -> List[int]:
    """At most `max_frames` evenly spaced indices of n, always the first and the last."""
    if n <= max_frames:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, max_frames).round().astype(int).tolist()))


def _check_formats(formats: Sequence[str], animation: Sequence[str]) -> None:
    bad = [f for f in formats if f not in ("png", "svg")] + [a for a in animation if a not in ANIMATIONS]
    if bad:
        raise ValueError(f"unknown format(s) {', '.join(bad)}; formats: png, svg; animations: gif, html")


def _is_training(run) -> bool:
    """A training run directory (path or RunDir) or a live training (a loop with no supernet)."""
    if isinstance(run, (str, PathLike, RunDir)):
        path = run.path if isinstance(run, RunDir) else Path(run)
        return path.is_dir() and RunDir(path).loop == "train"
    return getattr(run, "CHECKPOINT_KIND", None) == "train"


def export_run(run, out=None, formats: Sequence[str] = ("png", "svg"),
               animation: Sequence[str] = ANIMATIONS, max_frames: int = 24, dpi: int = 100) -> List[Path]:
    """Write the panels of a run (directory, RunData or live Search) to `out`
    (default RUN_DIR/plots); returns the written paths. A training (its run directory or
    the live `Train`) gets `export_training` instead (no animation: its cell is fixed)."""
    _check_formats(formats, animation)
    if _is_training(run):
        return export_training(run, out=out, formats=formats, dpi=dpi)
    run = load_run(run, follow=False)                      # the records so far; none pushed later
    if out is None:
        if run.path is None:
            raise ValueError("export_run needs out= for a search without a run directory")
        out = run.path / "plots"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: List[Path] = []
    rec, records, space = run.latest(), run.records, run.space
    data = PanelData(rec, records, space)                  # every cell type; the edge that moved most
    for panel in figure_panels(space):                     # every registered panel of the space (viz.panel_registry)
        name = panel.export_name(data)
        if name is None:
            continue
        fig = panel.draw(data, new_figure(panel.size, dpi=dpi))
        if "png" in formats:
            written.append(_write(out / f"{name}.png", to_png(fig)))
        if "svg" in formats:
            written.append(_write(out / f"{name}.svg", to_svg(fig)))
    g = rec.genotype
    for c in space.cell_types:
        written.append(_write(out / f"cell_{c}.gv", cell_dot(g, c, space=space).source))
        if "svg" in formats:
            written.append(_write(out / f"cell_{c}.svg", cell_svg(g, c, space=space)))
            written.append(_write(out / f"soft_cell_{c}.svg", soft_cell_svg(rec, c)))
        if "png" in formats:
            written.append(_write(out / f"cell_{c}.png", cell_png(g, c, space=space)))
            written.append(_write(out / f"soft_cell_{c}.png", soft_cell_png(rec, c)))
    written.append(_write(out / "genotype.txt", g.to_text() + "\n"))
    if animation:
        frames = alpha_frames(run.steps, max_frames)
        if "gif" in animation and frames:
            written.append(write_gif(frames, out / "alphas.gif"))
        if "html" in animation and frames:
            written.append(write_html_animation(frames, out / "alphas.html", title=run.label))
    return written


# -- a training from scratch -------------------------------------------------------------

def draw_training_curves(records: Sequence[dict], fig: Optional[Figure] = None, title: str = "",
                         dpi: int = 100) -> Figure:
    """A training's curves: the training loss and metric per step (and their epoch means),
    the test loss and metric per epoch, and the learning rate (drop-path probability on a
    second axis) per step. `records`: a training's records (dicts, `kind` step / epoch)."""
    fig = Figure(figsize=TRAINING_SIZE, dpi=dpi) if fig is None else fig
    fig.clear()
    fig.set_layout_engine("constrained")
    steps = [r for r in records if r.get("kind") == "step"]
    epochs = [r for r in records if r.get("kind") == "epoch"]
    metric = training_metric(steps)
    ax_loss, ax_metric, ax_lr = fig.subplots(1, 3)
    x = [r["step"] for r in steps]
    xe = [r["step"] for r in epochs]
    styles = {"step": dict(color="#1f77b4", lw=0.8, alpha=0.55, label="train (each step)"),
              "mean": dict(color="#0b3c6b", marker="s", ms=4, lw=1.2, label="train (epoch mean)"),
              "test": dict(color="#d62728", marker="o", ms=5, lw=1.5, label="test (each epoch)")}
    for ax, key in ((ax_loss, "loss"), (ax_metric, metric)):
        if key is None:
            continue
        ax.plot(x, [r.get(f"train_{key}", np.nan) for r in steps], **styles["step"])
        ax.plot(xe, [r.get(f"train_{key}", np.nan) for r in epochs], **styles["mean"])
        ax.plot(xe, [r.get(f"test_{key}", np.nan) for r in epochs], **styles["test"])
    ax_loss.set_title("loss", fontsize=10)
    ax_metric.set_title(f"{metric_title(metric)}" if metric else "no metric recorded", fontsize=10)
    if metric in METRIC_LIMITS:
        ax_metric.set_ylim(*METRIC_LIMITS[metric])
    ax_lr.plot(x, [r.get("lr", np.nan) for r in steps], color="#2ca02c", lw=1.5, label="learning rate")
    ax_lr.set_title("learning rate", fontsize=10)
    ax_lr.set_ylim(bottom=0)
    handles = ax_metric.get_legend_handles_labels()[0] or ax_loss.get_legend_handles_labels()[0]
    handles = handles + ax_lr.get_legend_handles_labels()[0]
    if any("drop_path_prob" in r for r in steps):
        ax_dp = ax_lr.twinx()
        ax_dp.plot(x, [r.get("drop_path_prob", np.nan) for r in steps], color="#7f7f7f", ls="--", lw=1.2,
                   label="drop-path probability (right axis)")
        ax_dp.set_ylim(bottom=0, top=max([0.01] + [r.get("drop_path_prob", 0) * 1.15 for r in steps]))
        ax_dp.tick_params(labelsize=8)
        handles += ax_dp.get_legend_handles_labels()[0]
    for ax in (ax_loss, ax_metric, ax_lr):
        ax.set_xlabel("step", fontsize=9)
        ax.tick_params(labelsize=8)
    if not steps:
        for ax in (ax_loss, ax_metric, ax_lr):
            ax.text(0.5, 0.5, "no steps yet", ha="center", va="center", transform=ax.transAxes, fontsize=9)
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=9, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def _training_title(records: Sequence[dict], label: str) -> str:
    epochs = [r for r in records if r.get("kind") == "epoch"]
    metric = training_metric([r for r in records if r.get("kind") == "step"])
    title = f"training from scratch: {label}" if label else "training from scratch"
    if epochs and metric and f"test_{metric}" in epochs[-1]:
        n = epochs[-1]["epoch"] + 1
        title += f" (test {metric_title(metric)} {epochs[-1][f'test_{metric}']:.4f} after {n} epoch{'s' * (n != 1)})"
    return title


def export_training(run, out=None, formats: Sequence[str] = ("png", "svg"), dpi: int = 100) -> List[Path]:
    """Write a training's plots to `out` (default RUN_DIR/plots): its curves
    (`training.png`/`.svg`), the trained cells (`cell_<type>.gv/.svg/.png`) and
    `genotype.txt`. `run`: a training's run directory or a live `Train`; returns the paths."""
    _check_formats(formats, ())
    from ..spaces import get_space
    if isinstance(run, (str, PathLike, RunDir)):
        run_dir = (run if isinstance(run, RunDir) else RunDir(run)).require()
        records, genotype = run_dir.read_records(), run_dir.read_genotype()
        space = get_space(run_dir.space_name)
    else:                                                  # a live Train
        run.flush()
        run_dir = getattr(run, "run_dir", None)
        records, genotype = list(run.history), run.genotype
        space = get_space(run_dir.space_name if run_dir is not None else "cnn")
    if out is None:
        if run_dir is None:
            raise ValueError("export_training needs out= for a training without a run directory")
        out = run_dir.path / "plots"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    label = run_dir.path.name if run_dir is not None else ""
    fig = draw_training_curves(records, title=_training_title(records, label), dpi=dpi)
    written: List[Path] = []
    if "png" in formats:
        written.append(_write(out / "training.png", to_png(fig)))
    if "svg" in formats:
        written.append(_write(out / "training.svg", to_svg(fig)))
    for c in space.cell_types:
        written.append(_write(out / f"cell_{c}.gv", cell_dot(genotype, c, space=space).source))
        if "svg" in formats:
            written.append(_write(out / f"cell_{c}.svg", cell_svg(genotype, c, space=space)))
        if "png" in formats:
            written.append(_write(out / f"cell_{c}.png", cell_png(genotype, c, space=space)))
    written.append(_write(out / "genotype.txt", genotype.to_text() + "\n"))
    return written


# -- the animation ---------------------------------------------------------------------------

def alpha_frames(steps: Sequence, max_frames: int = 24, dpi: int = FRAME_DPI) -> List[tuple]:
    """(step, PNG bytes) of the heat map at up to `max_frames` step records, on one colour
    scale; at the default `dpi` a frame is 910 px wide and its smallest text about 12 px."""
    if not steps:
        return []
    idx = frame_indices(len(steps), max_frames)
    vmax = max(float(np.max(p)) for i in idx for p in steps[i].probs.values())
    fig = new_figure("heatmap", dpi=dpi)
    return [(steps[i].step, to_png(draw_heatmap(steps[i], fig, vmax=vmax))) for i in idx]


def write_gif(frames: Sequence[tuple], path, ms_per_frame: int = 300) -> Path:
    from PIL import Image
    images = [Image.open(io.BytesIO(png)).convert("RGB").convert("P", palette=Image.ADAPTIVE) for _, png in frames]
    durations = [ms_per_frame] * (len(images) - 1) + [ms_per_frame * 4]   # linger on the last frame
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0)
    return Path(path)


def _png_size(png: bytes) -> tuple:
    """(width, height) in pixels of PNG bytes, from the header."""
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def write_html_animation(frames: Sequence[tuple], path, title: str = "") -> Path:
    """One HTML file with the frames inlined, a slider and a play button (no network needed).
    The page is as wide as a frame (narrower windows scale the frame down)."""
    srcs = json.dumps(["data:image/png;base64," + base64.b64encode(png).decode("ascii") for _, png in frames])
    steps = json.dumps([s for s, _ in frames])
    w, h = _png_size(frames[0][1])
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>alphas: {html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family:sans-serif;font-size:16px;margin:12px">
<div style="width:{w}px;max-width:100%;margin:auto">
<h3 style="margin:0 0 8px 0">How the architecture weights move: {html.escape(title)}</h3>
<div style="display:flex;align-items:center;gap:10px;margin-bottom:6px">
<button id="play" style="font-size:16px">&#9654; play</button>
<input id="s" type="range" min="0" max="{len(frames) - 1}" value="0" style="flex:1">
<span id="lab" style="min-width:6em"></span></div>
<img id="im" width="{w}" height="{h}" style="width:100%;height:auto;display:block" alt="softmax weights heat map">
</div>
<script>
const srcs = {srcs}, steps = {steps};
const s = document.getElementById("s"), im = document.getElementById("im"), lab = document.getElementById("lab");
function show(i) {{ s.value = i; im.src = srcs[i]; lab.textContent = "step " + steps[i]; }}
s.oninput = () => show(+s.value);
let timer = null;
document.getElementById("play").onclick = () => {{
  if (timer) {{ clearInterval(timer); timer = null; return; }}
  timer = setInterval(() => {{ const i = (+s.value + 1) % srcs.length; show(i); }}, 300);
}};
show(0);
</script></body></html>
"""
    return _write(Path(path), page)


def _write(path: Path, data) -> Path:
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return path
