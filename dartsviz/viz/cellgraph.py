"""Cell graphs with graphviz: the derived (discrete) cell and the continuous (soft) cell.

    svg = cell_svg(genotype, "normal")          # derived cell, edges labelled and coloured by op
    svg = soft_cell_svg(probs, "reduce")         # every supernet edge, width/opacity from its weights

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
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..genotype import Genotype
from ..ops import PRIMITIVES
from .palette import CELL_TITLES, OP_COLORS, OP_SHORT
from .records import cell_edges, kept_mask, probs_of, strongest_ops

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


def _node_name(k: int, nodes: int) -> str:
    return {0: "c_{k-2}", 1: "c_{k-1}"}.get(k, str(k))


# -- what to draw ------------------------------------------------------------------

def discrete_edges(genotype: Genotype, cell: str) -> List[DrawEdge]:
    """The kept edges of one cell of `genotype`, coloured by op."""
    return [(src, dst, OP_COLORS[op], 2.2, 1.0, op, True) for src, dst, op in genotype.edges(cell)]


def soft_edges(probs, cell: str = "normal", digits: int = 2) -> List[DrawEdge]:
    """Every supernet edge: width and opacity from its strongest non-`none` weight
    (rounded to `digits`), labelled with that op; the edges derivation keeps drawn solid."""
    p = np.round(probs_of(probs, cell), digits)              # (E, O)
    edges = cell_edges(p.shape[0])
    best = strongest_ops(p)                                  # (E,)
    kept = kept_mask(p).any(axis=1)                          # (E,)
    out = []
    for i, (src, dst) in enumerate(edges):
        op = PRIMITIVES[int(best[i])]
        w = float(p[i, best[i]])
        opacity = float(np.clip((w - 1.0 / len(PRIMITIVES)) * 3 + 0.25, 0.15, 1.0))
        out.append((src, dst, OP_COLORS[op], round(0.5 + 10 * w, 1), round(opacity, 2),
                    f"{OP_SHORT[op]} {w:.2f}", bool(kept[i])))
    return out


# -- graphviz ------------------------------------------------------------------------

def cell_digraph(edges: Sequence[DrawEdge], title: str, nodes: int = 4, concat: Optional[Sequence[int]] = None):
    """A graphviz.Digraph of a cell (shows itself inline in a notebook when `dot` exists)."""
    import graphviz
    g = graphviz.Digraph(format="svg", graph_attr=dict(rankdir="LR", label=title, labelloc="t",
                                                       fontsize="14", fontname="Helvetica", bgcolor="white"),
                         node_attr=dict(style="filled,rounded", shape="box", fontname="Helvetica",
                                        fontsize="12", height="0.35", penwidth="1.5"),
                         edge_attr=dict(fontname="Helvetica", fontsize="10", arrowsize="0.6"))
    for k in (0, 1):
        g.node(str(k), f"{k}: {_node_name(k, nodes)}", fillcolor="#cfe2f3")
    for k in range(2, 2 + nodes):
        g.node(str(k), str(k), fillcolor="#fff2cc", shape="circle", width="0.4", fixedsize="true")
    g.node("out", "c_{k}", fillcolor="#d9ead3")
    for src, dst, color, width, opacity, label, kept in edges:
        rgba = color + f"{int(round(opacity * 255)):02x}"
        g.edge(str(src), str(dst), label=label, color=rgba, fontcolor=color if opacity > 0.5 else "#777777",
               penwidth=str(width), style="solid" if kept else "dashed")
    for k in (concat if concat is not None else range(2, 2 + nodes)):
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

def _positions(nodes: int) -> Dict[object, Tuple[float, float]]:
    pos = {0: (0.0, 1.0), 1: (0.0, -1.0), "out": (nodes + 1.0, 0.0)}
    for k in range(2, 2 + nodes):
        pos[k] = (k - 1.0, 0.6 if k % 2 else -0.6)
    return pos


def fallback_svg(edges: Sequence[DrawEdge], title: str, nodes: int = 4,
                 concat: Optional[Sequence[int]] = None, fmt: str = "svg"):
    """The same cell drawn with matplotlib (no binary needed): SVG text, or PNG bytes."""
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch
    fig = Figure(figsize=(6.4, 3.0), dpi=72)
    ax = fig.add_axes((0, 0, 1, 0.9))
    pos = _positions(nodes)
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
    for k in (concat if concat is not None else range(2, 2 + nodes)):
        (x0, y0), (x1, y1) = pos[k], pos["out"]
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=8,
                                     color="#999999", lw=0.8, shrinkA=12, shrinkB=12))
    for k, (x, y) in pos.items():
        text = "c_{k}" if k == "out" else (f"{k}: {_node_name(k, nodes)}" if k in (0, 1) else str(k))
        fc = "#d9ead3" if k == "out" else ("#cfe2f3" if k in (0, 1) else "#fff2cc")
        ax.text(x, y, text, ha="center", va="center", fontsize=8,
                bbox=dict(boxstyle="round", fc=fc, ec="#444444"))
    ax.set_xlim(-0.8, nodes + 1.8)
    ax.set_ylim(-1.6, 1.6)
    ax.axis("off")
    fig.suptitle(title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt)
    return buf.getvalue().decode("utf-8") if fmt == "svg" else buf.getvalue()


# -- cached entry points ------------------------------------------------------------------

def _cached_svg(edges: List[DrawEdge], title: str, nodes: int, concat=None) -> str:
    g = cell_digraph(edges, title, nodes, concat)
    engine = "dot" if dot_available() else "matplotlib"
    key = (engine, g.source)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    svg = render_svg(g) if engine == "dot" else None
    if svg is None:
        key = ("matplotlib", g.source)
        svg = fallback_svg(edges, title, nodes, concat)
    _CACHE[key] = svg
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return svg


def cell_svg(genotype: Genotype, cell: str = "normal", title: Optional[str] = None) -> str:
    """SVG of the derived cell `cell` ("normal" or "reduce") of `genotype`."""
    genotype.cell(cell)
    return _cached_svg(discrete_edges(genotype, cell), title or f"derived {CELL_TITLES[cell]}",
                       genotype.nodes, genotype.concat(cell))


def soft_cell_svg(probs, cell: str = "normal", title: Optional[str] = None, digits: int = 2) -> str:
    """SVG of the continuous cell: every supernet edge weighted by its softmax weights."""
    edges = soft_edges(probs, cell, digits)
    nodes = max(d for _, d, *_ in edges) - 1
    return _cached_svg(edges, title or f"continuous {CELL_TITLES[cell]} (solid = kept)", nodes)


def cell_dot(genotype: Genotype, cell: str = "normal"):
    """The graphviz.Digraph of a derived cell (its `.source` is the DOT text)."""
    return cell_digraph(discrete_edges(genotype, cell), f"derived {CELL_TITLES[cell]}",
                        genotype.nodes, genotype.concat(cell))


def as_html(svg: str, hint: bool = True) -> str:
    """SVG for a widgets.HTML; with `hint`, the one-line install hint under it when `dot` is missing."""
    note = "" if (not hint or dot_available()) else f'<div style="font-size:11px;color:#777">{DOT_HINT}</div>'
    return f'<div style="max-width:100%;overflow:auto">{svg}</div>{note}'


def cell_png(genotype: Genotype, cell: str = "normal", title: Optional[str] = None) -> bytes:
    """PNG bytes of a derived cell (dot when present, else the matplotlib drawing)."""
    edges = discrete_edges(genotype, cell)
    title = title or f"derived {CELL_TITLES[cell]}"
    return _png(edges, title, genotype.nodes, genotype.concat(cell))


def soft_cell_png(probs, cell: str = "normal", title: Optional[str] = None) -> bytes:
    edges = soft_edges(probs, cell)
    nodes = max(d for _, d, *_ in edges) - 1
    return _png(edges, title or f"continuous {CELL_TITLES[cell]} (solid = kept)", nodes)


def _png(edges, title, nodes, concat=None) -> bytes:
    if dot_available():
        try:
            return cell_digraph(edges, title, nodes, concat).pipe(format="png")
        except (ImportError, OSError, subprocess.SubprocessError, RuntimeError, ValueError):
            pass
    return fallback_svg(edges, title, nodes, concat, fmt="png")
