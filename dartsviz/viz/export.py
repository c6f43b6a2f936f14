"""Static export: every panel as PNG and SVG, the cell graphs, and an animation of the
alpha evolution (GIF and a self-contained HTML page).

    export_run("runs/search-digits-o1-...")     # writes RUN_DIR/plots/, returns the paths
"""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import List, Sequence

import numpy as np

from .cellgraph import cell_dot, cell_png, cell_svg, soft_cell_png, soft_cell_svg
from .figures import (draw_collapse, draw_curves, draw_heatmap, draw_trajectories, draw_weights,
                      new_figure, to_png, to_svg)
from .records import probs_series, step_records
from .rundata import load_run
from .spaceof import space_of

ANIMATIONS = ("gif", "html")


def most_moved_edge(records: Sequence, cell: str, space=None):
    """The edge of `cell` whose weights moved most from the first to the last step."""
    _, w = probs_series(records, cell)                     # (T, E, O)
    if len(w) == 0:
        raise ValueError("no step records")
    moved = np.abs(w[-1] - w[0]).sum(axis=1)               # (E,)
    return space_of(step_records(records), space).edges(cell, w.shape[1])[int(moved.argmax())]


def frame_indices(n: int, max_frames: int) -> List[int]:
    """At most `max_frames` evenly spaced indices of n, always the first and the last."""
    if n <= max_frames:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, max_frames).round().astype(int).tolist()))


def export_run(run, out=None, formats: Sequence[str] = ("png", "svg"),
               animation: Sequence[str] = ANIMATIONS, max_frames: int = 24, dpi: int = 100) -> List[Path]:
    """Write the panels of a run (directory, RunData or live Search) to `out`
    (default RUN_DIR/plots); returns the written paths."""
    run = load_run(run, follow=False)                      # the records so far; none pushed later
    if out is None:
        if run.path is None:
            raise ValueError("export_run needs out= for a search without a run directory")
        out = run.path / "plots"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bad = [f for f in formats if f not in ("png", "svg")] + [a for a in animation if a not in ANIMATIONS]
    if bad:
        raise ValueError(f"unknown format(s) {', '.join(bad)}; formats: png, svg; animations: gif, html")
    written: List[Path] = []
    rec, records, space = run.latest(), run.records, run.space
    panels = {
        "weights": lambda f: draw_weights(rec, f),
        "heatmap": lambda f: draw_heatmap(rec, f),
        "curves": lambda f: draw_curves(records, f, space=space),
        "collapse": lambda f: draw_collapse(records, f, space=space),
    }
    if run.steps:
        cell = space.cell_types[0]
        edge = most_moved_edge(records, cell, space)
        panels[f"trajectories_{cell}_{edge[0]}-{edge[1]}"] = lambda f: draw_trajectories(records, cell, edge, f)
    for name, draw in panels.items():
        fig = draw(new_figure(name.split("_")[0], dpi=dpi))
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


def alpha_frames(steps: Sequence, max_frames: int = 24, dpi: int = 60) -> List[tuple]:
    """(step, PNG bytes) of the heat map at up to `max_frames` step records, on one colour scale."""
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


def write_html_animation(frames: Sequence[tuple], path, title: str = "") -> Path:
    """One HTML file with the frames inlined, a slider and a play button (no network needed)."""
    srcs = json.dumps(["data:image/png;base64," + base64.b64encode(png).decode("ascii") for _, png in frames])
    steps = json.dumps([s for s, _ in frames])
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>alphas: {html.escape(title)}</title></head>
<body style="font-family:sans-serif">
<h3>How the architecture weights move: {html.escape(title)}</h3>
<button id="play">&#9654; play</button> <input id="s" type="range" min="0" max="{len(frames) - 1}" value="0"
 style="width:60%"> <span id="lab"></span><br><img id="im">
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
