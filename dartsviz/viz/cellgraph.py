"""Cell graphs with graphviz: the derived (discrete) cell and the continuous (soft) cell.

    svg = cell_svg(genotype, cell_type)          # derived cell, edges labelled and coloured by op
    svg = soft_cell_svg(record, cell_type)       # every supernet edge, width/opacity from its weights

What a cell looks like (its edges, node labels, op colours, title) comes from the search
space: the record's, or the one registered space a bare genotype or weights dict fits.

Rendering needs Graphviz's `dot` program. Without it (or if it fails) a matplotlib
drawing of the same DAG is returned instead, and `DOT_HINT` says how to install `dot`;
nothing raises. SVGs are cached by their DOT source, so an unchanged picture is never
re-rendered.
"""
from __future__ import annotations

import io
import shutil
import subprocess
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .palette import op_color, op_short
from .records import architecture, strongest_ops
from .spaceof import space_of

DOT_HINT = ("Graphviz's `dot` was not found, so cell graphs are drawn with matplotlib; for nicer graphs "
            "install it: apt-get install graphviz | brew install graphviz | conda install -c conda-forge python-graphviz")
_CACHE: "OrderedDict[Tuple[str, str], str]" = OrderedDict()
_CACHE_SIZE = 256
# Each drawn edge: (src, dst, colour, penwidth 0.5..8, opacity 0..1, label, kept)
DrawEdge = Tuple[int, int, str, float, float, str, bool]


def dot_available() -> bool:
    return shutil.which("dot") is not None


def clear_cache() -> None:
    _CACHE.clear()


@dataclass(frozen=True)
class CellLayout:
    """The nodes of a drawn cell: labels by node number (input nodes first), how many are
    inputs, the output node's label and the nodes concatenated into it."""

    labels: Tuple[str, ...]
    n_inputs: int
    output: str
    concat: Tuple[int, ...]

    def label(self, k) -> str:
        if k == "out":
            return self.output
        text = self.labels[k]
        return f"{k}: {text}" if k < self.n_inputs and text != str(k) else text


def cell_layout(edges: Sequence[DrawEdge], space=None, cell: Optional[str] = None,
                concat: Optional[Sequence[int]] = None) -> CellLayout:
    """The layout of a cell from its drawn edges: nodes numbered inputs first, so the
    first destination is the first intermediate node; labels from `space` when given."""
    n_inputs = min(d for _, d, *_ in edges)
    n_nodes = max([d for _, d, *_ in edges] + list(concat or ())) + 1
    if space is None:
        labels, output = tuple(str(k) for k in range(n_nodes)), "out"
    else:
        labels, output = tuple(space.node_labels(cell, n_nodes)), space.output_label(cell)
    concat = tuple(concat) if concat is not None else tuple(range(n_inputs, n_nodes))
    return CellLayout(labels, n_inputs, output, concat)


# -- what to draw ------------------------------------------------------------------

def discrete_edges(genotype, cell: str, space=None) -> List[DrawEdge]:
    """The kept edges of one cell of `genotype`, coloured by op."""
    sp = space_of(genotype, space)
    return [(src, dst, op_color(op, sp), 2.2, 1.0, op, True) for src, dst, op in sp.kept_edges(genotype, cell)]


def soft_edges(data, cell: str, digits: int = 2, space=None) -> List[DrawEdge]:
    """Every supernet edge of a step record (or of softmax weights by cell type): width and
    opacity from its weight, rounded to `digits`; the edges the record's genotype keeps
    drawn solid and labelled with the kept op, the others with their strongest op."""
    arch = architecture(data, space)
    sp, p = arch.space, arch.probs[cell]                      # (E, O)
    kept = arch.kept(cell)                                    # (E, O)
    best = np.where(kept.any(axis=1), np.where(kept, p, -np.inf).argmax(axis=1),
                    strongest_ops(p, sp))                     # (E,)
    uniform = 1.0 / len(sp.ops)
    out = []
    for i, (src, dst) in enumerate(arch.edges(cell)):
        op = sp.ops[int(best[i])]
        w = round(float(p[i, best[i]]), digits)               # shown value only
        opacity = float(np.clip((w - uniform) * 3 + 0.25, 0.15, 1.0))
        out.append((src, dst, op_color(op, sp), round(0.5 + 10 * w, 1), round(opacity, 2),
                    f"{op_short(op, sp)} {w:.{digits}f}", bool(kept[i].any())))
    return out


# -- graphviz ------------------------------------------------------------------------

def cell_digraph(edges: Sequence[DrawEdge], title: str, layout: Optional[CellLayout] = None):
    """A graphviz.Digraph of a cell (shows itself inline in a notebook when `dot` exists)."""
    import graphviz
    layout = layout or cell_layout(edges)
    g = graphviz.Digraph(format="svg", graph_attr=dict(rankdir="LR", label=title, labelloc="t",
                                                       fontsize="14", fontname="Helvetica", bgcolor="white"),
                         node_attr=dict(style="filled,rounded", shape="box", fontname="Helvetica",
                                        fontsize="12", height="0.35", penwidth="1.5"),
                         edge_attr=dict(fontname="Helvetica", fontsize="10", arrowsize="0.6"))
    for k in range(len(layout.labels)):
        if k < layout.n_inputs:
            g.node(str(k), layout.label(k), fillcolor="#cfe2f3")
        else:
            g.node(str(k), layout.label(k), fillcolor="#fff2cc", shape="circle", width="0.4", fixedsize="true")
    g.node("out", layout.output, fillcolor="#d9ead3")
    for src, dst, color, width, opacity, label, kept in edges:
        rgba = color + f"{int(round(opacity * 255)):02x}"
        g.edge(str(src), str(dst), label=label, color=rgba, fontcolor=color if opacity > 0.5 else "#777777",
               penwidth=str(width), style="solid" if kept else "dashed")
    for k in layout.concat:
        g.edge(str(k), "out", color="#999999", arrowsize="0.4")
    return g


def render_svg(digraph) -> Optional[str]:
    """SVG text from `dot`, or None when `dot` is missing or fails."""
    if not dot_available():
        return None
    try:
        return digraph.pipe(format="svg", encoding="utf-8")
    except (ImportError, OSError, subprocess.SubprocessError, RuntimeError, ValueError):
        return None          # graphviz.ExecutableNotFound is a RuntimeError; CalledProcessError a SubprocessError


# -- fallback: matplotlib ------------------------------------------------------------------

def _positions(layout: CellLayout) -> Dict[object, Tuple[float, float]]:
    """Inputs stacked on the left, intermediate nodes zig-zag to the right, then the output."""
    n_in, n_nodes = layout.n_inputs, len(layout.labels)
    ys = np.linspace(1.0, -1.0, n_in) if n_in > 1 else np.zeros(1)     # (n_in,)
    pos = {k: (0.0, float(ys[k])) for k in range(n_in)}
    for k in range(n_in, n_nodes):
        pos[k] = (k - n_in + 1.0, 0.6 if (k - n_in) % 2 == 0 else -0.6)
    pos["out"] = (n_nodes - n_in + 1.0, 0.0)
    return pos


def fallback_svg(edges: Sequence[DrawEdge], title: str, layout: Optional[CellLayout] = None, fmt: str = "svg"):
    """The same cell drawn with matplotlib (no binary needed): SVG text, or PNG bytes."""
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch
    layout = layout or cell_layout(edges)
    fig = Figure(figsize=(6.4, 3.0), dpi=72)
    ax = fig.add_axes((0, 0, 1, 0.9))
    pos = _positions(layout)
    for src, dst, color, width, opacity, label, kept in edges:
        (x0, y0), (x1, y1) = pos[src], pos[dst]
        rad = 0.25 if (dst - src) > 1 else 0.0
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), connectionstyle=f"arc3,rad={rad}",
                                     arrowstyle="-|>", mutation_scale=10, color=color, alpha=opacity,
                                     lw=min(width, 6) * 0.6, ls="-" if kept else "--", shrinkA=12, shrinkB=12))
        # the middle of matplotlib's arc3 curve: midpoint + rad/2 * (dy, -dx)
        mx, my = (x0 + x1) / 2 + rad / 2 * (y1 - y0), (y0 + y1) / 2 - rad / 2 * (x1 - x0)
        ax.text(mx, my, label, fontsize=7, color=color, ha="center", va="center", alpha=max(opacity, 0.5),
                bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.7))
    for k in layout.concat:
        (x0, y0), (x1, y1) = pos[k], pos["out"]
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=8,
                                     color="#999999", lw=0.8, shrinkA=12, shrinkB=12))
    for k, (x, y) in pos.items():
        fc = "#d9ead3" if k == "out" else ("#cfe2f3" if k < layout.n_inputs else "#fff2cc")
        ax.text(x, y, layout.label(k), ha="center", va="center", fontsize=8,
                bbox=dict(boxstyle="round", fc=fc, ec="#444444"))
    ax.set_xlim(-0.8, pos["out"][0] + 0.8)
    ax.set_ylim(-1.6, 1.6)
    ax.axis("off")
    fig.suptitle(title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt)
    return buf.getvalue().decode("utf-8") if fmt == "svg" else buf.getvalue()


# -- cached entry points ------------------------------------------------------------------

def _cached_svg(edges: List[DrawEdge], title: str, layout: CellLayout) -> str:
    g = cell_digraph(edges, title, layout)
    engine = "dot" if dot_available() else "matplotlib"
    key = (engine, g.source)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    svg = render_svg(g) if engine == "dot" else None
    if svg is None:
        key = ("matplotlib", g.source)
        svg = fallback_svg(edges, title, layout)
    _CACHE[key] = svg
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return svg


def _derived(genotype, cell: str, title: Optional[str], space) -> tuple:
    """Edges, title and layout of a derived cell."""
    sp = space_of(genotype, space)
    if cell not in sp.cell_types:
        raise ValueError(f"cell type must be one of {', '.join(sp.cell_types)}, got {cell!r}")
    edges = discrete_edges(genotype, cell, sp)
    layout = cell_layout(edges, sp, cell, sp.concat(genotype, cell))
    return edges, title or f"derived {sp.cell_title(cell)}", layout


def _soft(data, cell: str, title: Optional[str], digits: int, space) -> tuple:
    """Edges, title and layout of a continuous cell."""
    arch = architecture(data, space)
    edges = soft_edges(arch, cell, digits)
    sp = arch.space
    return edges, title or f"continuous {sp.cell_title(cell)} (solid = kept)", cell_layout(edges, sp, cell)


def cell_svg(genotype, cell: str, title: Optional[str] = None, space=None) -> str:
    """SVG of the derived cell `cell` (one of the space's cell types) of `genotype`."""
    return _cached_svg(*_derived(genotype, cell, title, space))


def soft_cell_svg(data, cell: str, title: Optional[str] = None, digits: int = 2, space=None) -> str:
    """SVG of the continuous cell of a step record (or of softmax weights by cell type):
    every supernet edge weighted by its softmax weights."""
    return _cached_svg(*_soft(data, cell, title, digits, space))


def cell_dot(genotype, cell: str, space=None):
    """The graphviz.Digraph of a derived cell (its `.source` is the DOT text)."""
    return cell_digraph(*_derived(genotype, cell, None, space))


def as_html(svg: str, hint: bool = True) -> str:
    """SVG for a widgets.HTML; with `hint`, the one-line install hint under it when `dot` is missing."""
    note = "" if (not hint or dot_available()) else f'<div style="font-size:11px;color:#777">{DOT_HINT}</div>'
    return f'<div style="max-width:100%;overflow:auto">{svg}</div>{note}'


def cell_png(genotype, cell: str, title: Optional[str] = None, space=None) -> bytes:
    """PNG bytes of a derived cell (dot when present, else the matplotlib drawing)."""
    return _png(*_derived(genotype, cell, title, space))


def soft_cell_png(data, cell: str, title: Optional[str] = None, space=None) -> bytes:
    return _png(*_soft(data, cell, title, 2, space))


def _png(edges, title, layout) -> bytes:
    if dot_available():
        try:
            return cell_digraph(edges, title, layout).pipe(format="png")
        except (ImportError, OSError, subprocess.SubprocessError, RuntimeError, ValueError):
            pass
    return fallback_svg(edges, title, layout, fmt="png")
