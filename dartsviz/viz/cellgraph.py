"""Cell graphs with graphviz: the derived (discrete) cell and the continuous (soft) cell.

    svg = cell_svg(genotype, cell_type)          # derived cell, edges labelled and coloured by op
    svg = soft_cell_svg(record, cell_type)       # every supernet edge, width/opacity from its weights

What a cell looks like (its edges, node labels, op colours, title) comes from the search
space: the record's, or the one registered space a bare genotype or weights dict fits.

The drawing is pinned: node positions, edge routes and label places depend only on the
cell's nodes (`cell_geometry`), never on the weights, so a cell redrawn after a step keeps
every node where it was; only edge widths, colours and labels change. Graphviz renders
the pinned drawing (`neato -n2`); inputs are stacked top to bottom in their order, the
intermediate nodes run left to right, the output is on the right. Outside inputs that a
space declares (`input_feeds`: x_t and h_{t-1} into the recurrent cell's s0) stand left of
the input node they feed, and the output's rule (`output_combine`: "mean") is written
above it. A continuous cell of many edges (the recurrent cell's 36) labels only its kept
edges; every label has a white halo.

Rendering needs Graphviz (`dot` and its `neato`). Without it (or if it fails) a matplotlib
drawing of the same geometry is returned instead, and `DOT_HINT` says how to install it;
nothing raises. SVGs are cached by their DOT source, so an unchanged picture is never
re-rendered. One point of the drawing is one CSS pixel, in a widget (`as_html`) and in the SVG
itself (its width and height are unitless, so `SVG(cell_svg(...))` in a notebook is at most
about 800 px wide, inside a notebook's output at 1366 px beside the file browser): edge labels
are 11 px, node labels 12 px; the root <svg> asks to shrink with a narrower container.

The continuous cell of many edges (the recurrent cell's 36) draws only each node's
`SOFT_STRONGEST` strongest inputs, thick enough to be seen from the back of a room, and its
title says how many edges it leaves out.
"""
from __future__ import annotations

import functools
import io
import math
import re
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

# -- sizes, in points (one point is one CSS pixel in a widget) -----------------------------
FONT_NODE, FONT_EDGE, FONT_TITLE = 12.0, 11.0, 13.0
CHAR_EM = 0.62             # an upper bound of Helvetica's mean glyph width, in ems
COLUMN = 126.0             # between node columns (closer, down to MIN_COLUMN, for cells of many nodes)
MIN_COLUMN, ROW_WIDTH = 72.0, 640.0   # so that a drawing stays within about 800 px
TIGHT_COLUMN = 46.0        # the floor in a narrowed row (a projector's zoom): 8 nodes in a row fit 860 px at 1.5x
INPUT_Y = 76.0             # the inputs from +INPUT_Y (first) down to -INPUT_Y (last)
FEED_Y = 24.0              # outside inputs feeding an input node: from +FEED_Y down to -FEED_Y
FEED_GAP = 34.0            # between an outside input's box and the input node it feeds
NODE_Y = 40.0              # intermediate nodes alternate +NODE_Y, -NODE_Y
MANY_NODES, NODE_Y_MANY = 6, 52.0   # cells of more intermediate nodes: a wider zig-zag
MAX_SOFT_LABELS = 20       # a continuous cell of more edges labels only its kept edges ...
SOFT_STRONGEST = 2         # ... and draws only each node's 2 strongest inputs (the kept one among them)
NODE_FILL = {"output": "#d9ead3", "outside": "#cfe2f3", "input": "#cfe2f3", "node": "#fff2cc"}
CIRCLE = 28.0              # diameter of an intermediate node
BOX_H = 22.0               # height of an input or output box
ARROW, CONCAT_ARROW = 0.7, 0.45   # graphviz arrowsize: the head is 10 * arrowsize points long
MARGIN = 6.0
CLEARANCE = 7.0            # an edge passes other nodes at least this far away


def dot_available() -> bool:
    """Graphviz's programs are on PATH: `dot` and `neato` (which renders the pinned drawing;
    every Graphviz package ships both)."""
    return shutil.which("dot") is not None and shutil.which("neato") is not None


def clear_cache() -> None:
    _CACHE.clear()


@dataclass(frozen=True)
class CellLayout:
    """The nodes of a drawn cell: labels by node number (input nodes first), how many are
    inputs, the output node's label, the nodes concatenated into it, how many characters
    an edge label may have (to reserve room for it), the outside inputs that feed input
    nodes ((label, input node) pairs, e.g. x_t and h_{t-1} into s0) and how the output
    combines its nodes when the space says so (e.g. "mean"); `row_width`: the points the
    intermediate nodes may spread over (narrower for a projector's zoom)."""

    labels: Tuple[str, ...]
    n_inputs: int
    output: str
    concat: Tuple[int, ...]
    label_chars: int = 10
    feeds: Tuple[Tuple[str, int], ...] = ()
    combine: Optional[str] = None
    row_width: float = ROW_WIDTH

    def fed(self, k) -> bool:
        """Input node `k` is computed from outside inputs (drawn as a node, not a box)."""
        return any(node == k for _, node in self.feeds)

    def label(self, k) -> str:
        if k == "out":
            return self.output
        if isinstance(k, str):                                   # an outside input: "in0", "in1", ...
            return self.feeds[int(k[2:])][0]
        text = self.labels[k]
        return f"{k}: {text}" if k < self.n_inputs and text != str(k) and not self.fed(k) else text

    def kind(self, k) -> str:
        """"output", "outside" (an outside input), "input" or "node" (intermediate)."""
        if k == "out":
            return "output"
        if isinstance(k, str):
            return "outside"
        return "input" if k < self.n_inputs else "node"


def cell_layout(edges: Sequence[DrawEdge], space=None, cell: Optional[str] = None,
                concat: Optional[Sequence[int]] = None, label_chars: Optional[int] = None,
                row_width: Optional[float] = None) -> CellLayout:
    """The layout of a cell from its drawn edges: nodes numbered inputs first, so the
    first destination is the first intermediate node; labels, outside inputs and the
    output's rule from `space` when given; `row_width` (points, default ROW_WIDTH) is the
    room the intermediate nodes spread over."""
    n_inputs = min(d for _, d, *_ in edges)
    n_nodes = max([d for _, d, *_ in edges] + list(concat or ())) + 1
    feeds, combine = (), None
    if space is None:
        labels, output = tuple(str(k) for k in range(n_nodes)), "out"
    else:
        labels, output = tuple(space.node_labels(cell, n_nodes)), space.output_label(cell)
        feeds = tuple((str(label), int(node)) for label, node in space.input_feeds(cell))
        combine = space.output_combine(cell)
    concat = tuple(concat) if concat is not None else tuple(range(n_inputs, n_nodes))
    if label_chars is None:
        label_chars = max([len(e[5]) for e in edges] + [4])
    return CellLayout(labels, n_inputs, output, concat, int(label_chars), feeds, combine,
                      float(row_width if row_width is not None else ROW_WIDTH))


# -- where everything goes ---------------------------------------------------------------

@dataclass(frozen=True)
class Shape:
    """A node: centre, kind ("box" or "circle"), width and height, in points."""

    x: float
    y: float
    kind: str
    w: float
    h: float

    def contains(self, x: float, y: float, pad: float = 0.0) -> bool:
        if self.kind == "circle":
            return math.hypot(x - self.x, y - self.y) <= self.w / 2 + pad
        return abs(x - self.x) <= self.w / 2 + pad and abs(y - self.y) <= self.h / 2 + pad


@dataclass(frozen=True)
class Route:
    """An edge's cubic Bezier from the rim of its source to its arrow tip (`tip`), and the
    place of its label's centre (None for the unlabelled concat edges)."""

    curve: Tuple[Tuple[float, float], ...]     # 4 control points
    tip: Tuple[float, float]
    label_at: Optional[Tuple[float, float]]


@dataclass(frozen=True)
class Geometry:
    nodes: Dict[object, Shape]                 # node number or "out" -> shape
    routes: Dict[Tuple[object, object], Route]  # (src, dst) -> route, for every possible edge
    bbox: Tuple[float, float, float, float]    # x0, y0, x1, y1 (y up, as graphviz has it)
    note_at: Optional[Tuple[float, float]] = None   # where the output's rule ("mean") is written


def text_width(text_or_chars, size: float) -> float:
    n = text_or_chars if isinstance(text_or_chars, int) else len(text_or_chars)
    return n * size * CHAR_EM


def _bez(p, t: float):
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = p
    u = 1 - t
    return (u ** 3 * x0 + 3 * u * u * t * x1 + 3 * u * t * t * x2 + t ** 3 * x3,
            u ** 3 * y0 + 3 * u * u * t * y1 + 3 * u * t * t * y2 + t ** 3 * y3)


def _lerp(a, b, t):
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)


def _split(p, t: float):
    """De Casteljau: the two halves of curve `p` at `t`."""
    a, b, c, d = p
    ab, bc, cd = _lerp(a, b, t), _lerp(b, c, t), _lerp(c, d, t)
    abc, bcd = _lerp(ab, bc, t), _lerp(bc, cd, t)
    m = _lerp(abc, bcd, t)
    return (a, ab, abc, m), (m, bcd, cd, d)


def _sub(p, t0: float, t1: float):
    left, _ = _split(p, t1)
    return _split(left, t0 / t1)[1] if t1 > 0 else left


def node_shapes(layout: CellLayout) -> Dict[object, Shape]:
    """Inputs stacked on the left (the first on top), intermediate nodes zig-zag to the
    right in their order, the output last: the same places whatever the weights. Outside
    inputs (`layout.feeds`) stand in a column of their own left of the input nodes they
    feed, which are then drawn as nodes (circles)."""
    n_in, n_nodes = layout.n_inputs, len(layout.labels)
    box_w = lambda text: max(40.0, text_width(text, FONT_NODE) + 14.0)
    shapes = {}
    x_in = 0.0
    if layout.feeds:
        n_feeds = len(layout.feeds)
        w = max(box_w(label) for label, _ in layout.feeds)
        for i in range(n_feeds):
            y = FEED_Y * (1 - 2 * i / (n_feeds - 1)) if n_feeds > 1 else 0.0
            shapes[f"in{i}"] = Shape(0.0, y, "box", w, BOX_H)
        x_in = w / 2 + FEED_GAP + CIRCLE / 2
    for k in range(n_in):
        y = INPUT_Y * (1 - 2 * k / (n_in - 1)) if n_in > 1 else 0.0
        shapes[k] = (Shape(x_in, y, "circle", CIRCLE, CIRCLE) if layout.fed(k)
                     else Shape(x_in, y, "box", box_w(layout.label(k)), BOX_H))
    floor = MIN_COLUMN if layout.row_width >= ROW_WIDTH else TIGHT_COLUMN
    column = max(floor, min(COLUMN, (layout.row_width - x_in) / (n_nodes - n_in + 1)))
    node_y = NODE_Y_MANY if n_nodes - n_in > MANY_NODES else NODE_Y
    for i, k in enumerate(range(n_in, n_nodes)):
        shapes[k] = Shape(x_in + (i + 1) * column, node_y if i % 2 == 0 else -node_y, "circle", CIRCLE, CIRCLE)
    shapes["out"] = Shape(x_in + (n_nodes - n_in + 1) * column, 0.0, "box", box_w(layout.output), BOX_H)
    return shapes


def _route(shapes: Dict[object, Shape], src, dst, arrow: float):
    """The curve (centre to centre) of one edge, bent just enough to clear other nodes, then
    clipped to the rims of its ends: (curve, tip, samples of the visible part)."""
    a, b = shapes[src], shapes[dst]
    (x0, y0), (x1, y1) = (a.x, a.y), (b.x, b.y)
    length = math.hypot(x1 - x0, y1 - y0)
    nx, ny = -(y1 - y0) / length, (x1 - x0) / length            # unit normal (left of the edge)
    others = [s for k, s in shapes.items() if k not in (src, dst)]
    ts = np.linspace(0.0, 1.0, 161)
    best = None
    for bend in (0.0, 24.0, -24.0, 42.0, -42.0, 60.0, -60.0):
        d = bend / 0.75                                            # control offset for that bulge
        c1 = (x0 + (x1 - x0) / 3 + nx * d, y0 + (y1 - y0) / 3 + ny * d)
        c2 = (x0 + 2 * (x1 - x0) / 3 + nx * d, y0 + 2 * (y1 - y0) / 3 + ny * d)
        curve = ((x0, y0), c1, c2, (x1, y1))
        pts = [_bez(curve, t) for t in ts]
        hits = sum(any(s.contains(x, y, CLEARANCE) for s in others) for x, y in pts)
        if best is None or hits < best[0]:
            best = (hits, curve, pts)
        if hits == 0:
            break
    _, curve, pts = best
    start = next(i for i, (x, y) in enumerate(pts) if not a.contains(x, y, 1.0))
    end = max(i for i, (x, y) in enumerate(pts) if not b.contains(x, y, 1.0))
    tip = pts[end]
    head = 10.0 * arrow
    stop = max((i for i in range(start, end) if math.hypot(pts[i][0] - tip[0], pts[i][1] - tip[1]) >= head),
               default=start)
    t0, t1 = ts[start], max(ts[stop], ts[start] + 1e-3)
    return _sub(curve, t0, t1), tip, pts[start:end + 1]


def _overlap(a, b) -> float:
    """Overlap area of two boxes (x0, y0, x1, y1)."""
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


@functools.lru_cache(maxsize=64)
def cell_geometry(layout: CellLayout) -> Geometry:
    """Node shapes, the route of every edge a cell of these nodes can have (each earlier node
    to each intermediate node, each concatenated node to the output, each outside input to
    the node it feeds) and a place for each edge label, chosen once so that labels avoid
    nodes, other labels and other edges."""
    shapes = node_shapes(layout)
    n_in, n_nodes = layout.n_inputs, len(layout.labels)
    slots = [(s, d) for d in range(n_in, n_nodes) for s in range(d)]
    concat = [(k, "out") for k in layout.concat]
    feeds = [(f"in{i}", node) for i, (_, node) in enumerate(layout.feeds)]
    raw = {e: _route(shapes, *e, arrow=ARROW) for e in slots}
    raw.update({e: _route(shapes, *e, arrow=CONCAT_ARROW) for e in concat + feeds})
    lw, lh = text_width(layout.label_chars, FONT_EDGE) + 4.0, FONT_EDGE + 4.0
    placed: List[Tuple[float, float, float, float]] = []
    label_at = {}
    nodes_boxes = [(s.x - s.w / 2 - 2, s.y - s.h / 2 - 2, s.x + s.w / 2 + 2, s.y + s.h / 2 + 2) for s in shapes.values()]
    note_at = None
    if layout.combine:                          # e.g. "mean", just above the output box
        out = shapes["out"]
        note_at = (out.x, out.y + out.h / 2 + FONT_EDGE / 2 + 4.0)
        nw = text_width(layout.combine, FONT_EDGE) + 4.0
        nodes_boxes.append((note_at[0] - nw / 2, note_at[1] - lh / 2, note_at[0] + nw / 2, note_at[1] + lh / 2))
    # a crowded cell shows only its kept edges' labels, seldom two into one node: those may overlap
    clash = {False: 10, True: 1 if len(slots) > MAX_SOFT_LABELS else 10}      # {same node: weight}
    placed_dst: List[int] = []
    keys = list(raw)
    points = np.array([p for e in keys for p in raw[e][2]])                  # (P, 2): every route's samples
    owner = np.repeat(np.arange(len(keys)), [len(raw[e][2]) for e in keys])  # (P,)
    length = lambda e: sum(math.dist(p, q) for p, q in zip(raw[e][2], raw[e][2][1:]))
    for e in sorted(slots, key=lambda e: (length(e), slots.index(e))):
        pts = raw[e][2]
        others = points[owner != keys.index(e)]                              # (P', 2)
        best = None
        for t in (0.5, 0.42, 0.58, 0.34, 0.66, 0.26, 0.74, 0.2, 0.8):
            i = min(len(pts) - 2, int(t * (len(pts) - 1)))
            (xa, ya), (xb, yb) = pts[i], pts[i + 1]
            seg = math.hypot(xb - xa, yb - ya) or 1.0
            nx, ny = -(yb - ya) / seg, (xb - xa) / seg
            for side in (1.0, -1.0):
                # beside the edge: the box's nearest corner just clears the line
                off = (abs(nx) * lw + abs(ny) * lh) / 2 + 2.0
                cx, cy = xa + nx * off * side, ya + ny * off * side
                box = (cx - lw / 2, cy - lh / 2, cx + lw / 2, cy + lh / 2)
                crossed = int(((others[:, 0] >= box[0]) & (others[:, 0] <= box[2])
                               & (others[:, 1] >= box[1]) & (others[:, 1] <= box[3])).sum())
                score = (10 * sum(_overlap(box, p) for p in nodes_boxes)
                         + sum(clash[d == e[1]] * _overlap(box, p) for p, d in zip(placed, placed_dst))
                         + 40 * crossed + 30 * abs(t - 0.5) + (0 if side > 0 else 1))
                if best is None or score < best[0]:
                    best = (score, (cx, cy), box)
        label_at[e] = best[1]
        placed.append(best[2])
        placed_dst.append(e[1])
    routes = {e: Route(tuple(c), tip, label_at.get(e)) for e, (c, tip, _) in raw.items()}
    pad = 4.0                                   # the widest pen's half width: no edge is cut at the frame
    boxes = nodes_boxes + placed + [(points[:, 0].min() - pad, points[:, 1].min() - pad,
                                     points[:, 0].max() + pad, points[:, 1].max() + pad)]
    title = FONT_TITLE + 8.0
    bbox = (min(b[0] for b in boxes) - MARGIN, min(b[1] for b in boxes) - MARGIN,
            max(b[2] for b in boxes) + MARGIN, max(b[3] for b in boxes) + MARGIN + title)
    return Geometry(shapes, routes, tuple(float(round(v, 1)) for v in bbox), note_at)


def _route_of(geometry: Geometry, layout: CellLayout, src, dst) -> Route:
    """The pinned route of an edge; one outside the usual cell shape is routed on its own."""
    route = geometry.routes.get((src, dst))
    if route is None:
        curve, tip, pts = _route(geometry.nodes, src, dst, ARROW)
        route = Route(tuple(curve), tip, pts[len(pts) // 2])
    return route


# -- what to draw ------------------------------------------------------------------

def discrete_edges(genotype, cell: str, space=None) -> List[DrawEdge]:
    """The kept edges of one cell of `genotype`, coloured by op."""
    sp = space_of(genotype, space)
    return [(src, dst, op_color(op, sp), 2.2, 1.0, op, True) for src, dst, op in sp.kept_edges(genotype, cell)]


def soft_edges(data, cell: str, digits: int = 2, space=None, label_all: Optional[bool] = None,
               strongest: Optional[int] = None) -> List[DrawEdge]:
    """The supernet edges of a step record (or of softmax weights by cell type): width and
    opacity from its weight, rounded to `digits`; the edges the record's genotype keeps
    drawn solid and labelled with the kept op, the others with their strongest op.
    A cell of more than MAX_SOFT_LABELS edges (e.g. the recurrent cell's 36, whose edges
    and labels would cover the drawing) labels only its kept edges (`label_all` False) and
    draws only each node's `strongest` inputs (default SOFT_STRONGEST; 0: every edge),
    ranked by their strongest op's weight, the kept one always among them."""
    arch = architecture(data, space)
    sp, p = arch.space, arch.probs[cell]                      # (E, O)
    kept = arch.kept(cell)                                    # (E, O)
    best = np.where(kept.any(axis=1), np.where(kept, p, -np.inf).argmax(axis=1),
                    strongest_ops(p, sp))                     # (E,)
    uniform = 1.0 / len(sp.ops)
    crowded = p.shape[0] > MAX_SOFT_LABELS
    if label_all is None:
        label_all = not crowded
    if strongest is None:
        strongest = SOFT_STRONGEST if crowded else 0
    edges = arch.edges(cell)
    shown = _strongest_inputs(edges, p[np.arange(len(edges)), best], kept.any(axis=1), strongest)
    thin = crowded and not strongest                          # every edge of a crowded cell: thinner, fainter
    out = []
    for i, (src, dst) in enumerate(edges):
        if i not in shown:
            continue
        op = sp.ops[int(best[i])]
        w = round(float(p[i, best[i]]), digits)               # shown value only
        opacity = float(np.clip((w - uniform) * 3 + 0.25, 0.15, 1.0))
        is_kept = bool(kept[i].any())
        if thin and not is_kept:
            opacity = max(0.15, opacity * 0.6)
        elif crowded:
            opacity = max(0.45, opacity)                      # few edges left: none too faint to see
        label = f"{op_short(op, sp)} {w:.{digits}f}" if (label_all or is_kept) else ""
        width = 0.5 + (5 if thin else 10) * w
        out.append((src, dst, op_color(op, sp), round(width, 1), round(opacity, 2), label, is_kept))
    return out


def _strongest_inputs(edges, weight: np.ndarray, kept: np.ndarray, k: int) -> set:
    """The indices of the edges to draw: every one (k = 0), else each node's k strongest
    inputs by `weight` (E,), its kept inputs first."""
    if not k:
        return set(range(len(edges)))
    into: Dict[object, List[int]] = {}
    for i, (_, dst) in enumerate(edges):
        into.setdefault(dst, []).append(i)
    shown = set()
    for idx in into.values():
        ranked = sorted(idx, key=lambda i: (not kept[i], -weight[i], i))
        shown.update(ranked[:max(k, int(kept[idx].sum()))])
    return shown


def _darker(color: str, f: float = 0.75) -> str:
    """A darker shade of a #rrggbb colour, for text on white (yellow labels stay legible)."""
    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{int(v * f):02x}" for v in (r, g, b))


# -- graphviz ------------------------------------------------------------------------

def _pt(p) -> str:
    return f"{p[0]:.1f},{p[1]:.1f}"


def cell_digraph(edges: Sequence[DrawEdge], title: str, layout: Optional[CellLayout] = None):
    """A graphviz.Digraph of a cell with every node, edge and label pinned (`pos`, `lp`):
    render it with `neato -n2` (or `dot -Kneato -n2`; `render_svg` does). The same nodes are
    always in the same places; `dot` alone, ignoring the pins, lays it out its own way."""
    import graphviz
    layout = layout or cell_layout(edges)
    geo = cell_geometry(layout)
    x0, y0, x1, y1 = geo.bbox
    g = graphviz.Digraph(
        engine="neato",
        graph_attr=dict(label=title, labelloc="t", fontsize=f"{FONT_TITLE:g}", fontname="Helvetica",
                        bgcolor="white", notranslate="true", splines="true", overlap="true", pad="0"),
        node_attr=dict(style="filled,rounded", shape="box", fontname="Helvetica", fontsize=f"{FONT_NODE:g}",
                       penwidth="1.5", fixedsize="true"),
        edge_attr=dict(fontname="Helvetica", fontsize=f"{FONT_EDGE:g}", arrowsize=f"{ARROW:g}"))
    # two invisible corners fix the drawing's extent, so nothing moves when labels change
    for name, (x, y) in (("_corner0", (x0, y0)), ("_corner1", (x1, y1 - FONT_TITLE - 8.0))):
        g.node(name, "", style="invis", shape="point", width="0.01", height="0.01", pos=f"{x:.1f},{y:.1f}!")
    for k, s in geo.nodes.items():
        size = dict(width=f"{s.w / 72:.3f}", height=f"{s.h / 72:.3f}", pos=f"{s.x:.1f},{s.y:.1f}!")
        shape = {"shape": "circle"} if s.kind == "circle" else {}
        g.node(str(k), layout.label(k), fillcolor=NODE_FILL[layout.kind(k)], **shape, **size)
    if geo.note_at is not None:
        g.node("_combine", layout.combine, shape="plaintext", style="", fontsize=f"{FONT_EDGE:g}",
               fontcolor="#555555", width="0.01", height="0.01", fixedsize="false", pos=_pt(geo.note_at) + "!")
    for src, dst, color, width, opacity, label, kept in edges:
        r = _route_of(geo, layout, src, dst)
        rgba = color + f"{int(round(opacity * 255)):02x}"
        text = dict(label=label, lp=_pt(r.label_at)) if label else {}
        g.edge(str(src), str(dst), color=rgba, fontcolor=_darker(color) if opacity > 0.5 else "#777777",
               penwidth=str(width), style="solid" if kept else "dashed",
               arrowsize=f"{ARROW * min(1.0, max(0.35, 2.5 / width)):.2f}",      # thick edges: no huge heads
               pos=f"e,{_pt(r.tip)} " + " ".join(map(_pt, r.curve)), **text)
    for src, dst in _plain_edges(layout):
        r = _route_of(geo, layout, src, dst)
        g.edge(str(src), str(dst), color="#999999", arrowsize=f"{CONCAT_ARROW:g}",
               pos=f"e,{_pt(r.tip)} " + " ".join(map(_pt, r.curve)))
    return g


def _plain_edges(layout: CellLayout) -> List[Tuple[object, object]]:
    """The grey edges that are not searched: outside inputs into the nodes they feed, the
    concatenated (or averaged) nodes into the output."""
    return [(f"in{i}", node) for i, (_, node) in enumerate(layout.feeds)] + [(k, "out") for k in layout.concat]


def _pipe(digraph, fmt: str, encoding: Optional[str] = None):
    return digraph.pipe(format=fmt, engine="neato", neato_no_op=2, quiet=True, encoding=encoding)


def render_svg(digraph) -> Optional[str]:
    """SVG text from Graphviz (the pinned layout), or None when it is missing or fails."""
    if not dot_available():
        return None
    try:
        return _px_size(_halo(_pipe(digraph, "svg", "utf-8")))
    except (ImportError, OSError, subprocess.SubprocessError, RuntimeError, ValueError):
        return None          # graphviz.ExecutableNotFound is a RuntimeError; CalledProcessError a SubprocessError


_EDGE_GROUP = re.compile(r'(<g id="edge\d+" class="edge">.*?</g>)', re.S)
HALO = ' stroke="white" stroke-width="3" stroke-linejoin="round" paint-order="stroke"'


def _halo(svg: str) -> str:
    """Edge labels outlined in white, so that a label over other edges stays legible."""
    return _EDGE_GROUP.sub(lambda m: m.group(1).replace("<text ", "<text" + HALO + " "), svg)


# -- fallback: matplotlib ------------------------------------------------------------------

def _positions(layout: CellLayout) -> Dict[object, Tuple[float, float]]:
    """Node centres in points (the same as in the graphviz drawing)."""
    return {k: (s.x, s.y) for k, s in node_shapes(layout).items()}


def fallback_svg(edges: Sequence[DrawEdge], title: str, layout: Optional[CellLayout] = None, fmt: str = "svg"):
    """The same pinned drawing with matplotlib (no binary needed): SVG text, or PNG bytes."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Circle
    from matplotlib.path import Path
    layout = layout or cell_layout(edges)
    geo = cell_geometry(layout)
    x0, y0, x1, y1 = geo.bbox
    if not title:                               # no title: no room for it
        y1 -= FONT_TITLE + 8.0
    fig = Figure(figsize=((x1 - x0) / 72, (y1 - y0) / 72), dpi=72)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.axis("off")

    def curve(r: Route, color, alpha, lw, ls, head):
        path = Path([*r.curve, r.tip], [Path.MOVETO, Path.CURVE4, Path.CURVE4, Path.CURVE4, Path.LINETO])
        ax.add_patch(FancyArrowPatch(path=path, arrowstyle="-|>", mutation_scale=head, color=color, alpha=alpha,
                                     lw=lw, ls=ls))
    for src, dst, color, width, opacity, label, kept in edges:
        r = _route_of(geo, layout, src, dst)
        curve(r, color, opacity, min(width, 8) * 0.7, "-" if kept else "--", 10)
        if label:
            ax.text(*r.label_at, label, fontsize=FONT_EDGE, color=_darker(color) if opacity > 0.5 else "#777777",
                    ha="center", va="center", bbox=dict(boxstyle="square,pad=0.05", fc="white", ec="none", alpha=0.8))
    for src, dst in _plain_edges(layout):
        curve(_route_of(geo, layout, src, dst), "#999999", 1.0, 0.8, "-", 7)
    if geo.note_at is not None:
        ax.text(*geo.note_at, layout.combine, fontsize=FONT_EDGE, color="#555555", ha="center", va="center")
    for k, s in geo.nodes.items():
        fc = NODE_FILL[layout.kind(k)]
        if s.kind == "circle":
            ax.add_patch(Circle((s.x, s.y), s.w / 2, fc=fc, ec="#333333", lw=1.2, zorder=3))
        else:
            ax.add_patch(FancyBboxPatch((s.x - s.w / 2 + 3, s.y - s.h / 2 + 3), s.w - 6, s.h - 6,
                                        boxstyle="round,pad=3", fc=fc, ec="#333333", lw=1.2, zorder=3))
        ax.text(s.x, s.y, layout.label(k), ha="center", va="center", fontsize=FONT_NODE, zorder=4)
    if title:
        ax.text((x0 + x1) / 2, y1 - 4, title, ha="center", va="top", fontsize=FONT_TITLE)
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buf, format=fmt)
    return _px_size(buf.getvalue().decode("utf-8")) if fmt == "svg" else buf.getvalue()


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


def _derived(genotype, cell: str, title: Optional[str], space, row_width: Optional[float] = None) -> tuple:
    """Edges, title (None: the default one; "": none) and layout of a derived cell."""
    sp = space_of(genotype, space)
    if cell not in sp.cell_types:
        raise ValueError(f"cell type must be one of {', '.join(sp.cell_types)}, got {cell!r}")
    edges = discrete_edges(genotype, cell, sp)
    chars = max(len(op) for op in sp.ops)
    layout = cell_layout(edges, sp, cell, sp.concat(genotype, cell), label_chars=chars, row_width=row_width)
    return edges, f"derived {sp.cell_title(cell)}" if title is None else title, layout


def _soft(data, cell: str, title: Optional[str], digits: int, space, row_width: Optional[float] = None) -> tuple:
    """Edges, title and layout of a continuous cell (title "": none). A title of a cell drawn
    in part says what it leaves out."""
    arch = architecture(data, space)
    edges = soft_edges(arch, cell, digits)
    sp = arch.space
    total = arch.probs[cell].shape[0]
    chars = max(len(op_short(op, sp)) for op in sp.ops) + digits + 3
    which = "solid = kept" if all(e[5] for e in edges) else "solid = kept, labelled"
    if len(edges) < total:
        which = f"each node's {SOFT_STRONGEST} strongest inputs: {len(edges)} of {total} edges; {which}"
    if title is None:
        title = f"continuous {sp.cell_title(cell)} ({which})"
    return edges, title, cell_layout(edges, sp, cell, label_chars=chars, row_width=row_width)


def cell_svg(genotype, cell: str, title: Optional[str] = None, space=None, row_width: Optional[float] = None) -> str:
    """SVG of the derived cell `cell` (one of the space's cell types) of `genotype` (`title`
    "": none; `row_width`: points its nodes spread over, default ROW_WIDTH)."""
    return _cached_svg(*_derived(genotype, cell, title, space, row_width))


def soft_cell_svg(data, cell: str, title: Optional[str] = None, digits: int = 2, space=None,
                  row_width: Optional[float] = None) -> str:
    """SVG of the continuous cell of a step record (or of softmax weights by cell type):
    its supernet edges weighted by their softmax weights (a crowded cell: each node's
    strongest inputs, `soft_edges`)."""
    return _cached_svg(*_soft(data, cell, title, digits, space, row_width))


def cell_dot(genotype, cell: str, space=None):
    """The graphviz.Digraph of a derived cell (its `.source` is the DOT text)."""
    return cell_digraph(*_derived(genotype, cell, None, space))


_SVG_TAG = re.compile(r"<svg\b[^>]*>", re.S)
FIT = "max-width:100%;height:auto"


def _px_size(svg: str) -> str:
    """The SVG document shown at one point of the drawing per CSS pixel: its root's width and
    height without the `pt` unit (a 799 pt wide cell is 799 px, not 1,065), scaled by its
    viewBox, and asking to shrink with a narrower container (where it is inlined in HTML)."""
    m = _SVG_TAG.search(svg)
    if not m:
        return svg
    tag = re.sub(r'\s(width|height)="([\d.]+)pt"', r' \1="\2"', m.group(0))
    if "style=" not in tag:
        tag = tag.replace("<svg", f'<svg style="{FIT}"', 1)
    return svg[:m.start()] + tag + svg[m.end():]


def svg_for_html(svg: str) -> str:
    """An SVG document as inline HTML: no XML prolog, one point of the drawing shown as one
    CSS pixel (so 11 pt labels are 11 px), shrinking with a narrower container."""
    start = svg.find("<svg")
    return _px_size(svg[start:] if start >= 0 else svg)


def as_html(svg: str, hint: bool = True) -> str:
    """SVG for a widgets.HTML; with `hint`, the one-line install hint under it when `dot` is missing."""
    note = "" if (not hint or dot_available()) else f'<div style="font-size:12px;color:#666">{DOT_HINT}</div>'
    return f'<div class="dartsviz-cell" style="max-width:100%;overflow:auto">{svg_for_html(svg)}</div>{note}'


def cell_png(genotype, cell: str, title: Optional[str] = None, space=None) -> bytes:
    """PNG bytes of a derived cell (Graphviz when present, else the matplotlib drawing)."""
    return _png(*_derived(genotype, cell, title, space))


def soft_cell_png(data, cell: str, title: Optional[str] = None, space=None) -> bytes:
    return _png(*_soft(data, cell, title, 2, space))


def _png(edges, title, layout) -> bytes:
    if dot_available():
        try:
            return _pipe(cell_digraph(edges, title, layout), "png")
        except (ImportError, OSError, subprocess.SubprocessError, RuntimeError, ValueError):
            pass
    return fallback_svg(edges, title, layout, fmt="png")
