"""Colours and labels shared by every view: one colour per order, and an op's colour and
short label as its search space declares them."""
from __future__ import annotations

from ..bilevel import ORDERS
from ..spaces import get_space

ORDER_COLORS = dict(zip(ORDERS, ("#1f77b4", "#ff7f0e")))   # first / second order
UNKNOWN_OP_COLOR = "#444444"
ZERO_OP_TEXT = "#666666"                                   # the zero op's label (its colour is pale)


def op_color(op: str, space) -> str:
    """The colour of `op` in every view of `space` (a name or a SearchSpace)."""
    return get_space(space).op_colours.get(op, UNKNOWN_OP_COLOR)


def op_short(op: str, space) -> str:
    """The short label of `op` in crowded figures of `space`."""
    return get_space(space).op_short.get(op, op)


def edge_label(src: int, dst: int) -> str:
    """`0→2`: the label of supernet edge (src, dst)."""
    return f"{src}\u2192{dst}"
