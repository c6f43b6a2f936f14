"""One colour and one short label per op, shared by every view."""
from __future__ import annotations

from typing import Dict

from ..ops import PARAMETER_FREE, PRIMITIVES

# Parameter-free ops in greys and warm colours, convolutions in cool ones.
OP_COLORS: Dict[str, str] = {
    "none": "#b0b0b0",
    "max_pool_3x3": "#e6a100",
    "avg_pool_3x3": "#f2d24b",
    "skip_connect": "#d62728",
    "sep_conv_3x3": "#1f77b4",
    "sep_conv_5x5": "#17becf",
    "dil_conv_3x3": "#2ca02c",
    "dil_conv_5x5": "#9467bd",
}
OP_SHORT: Dict[str, str] = {
    "none": "none",
    "max_pool_3x3": "max3",
    "avg_pool_3x3": "avg3",
    "skip_connect": "skip",
    "sep_conv_3x3": "sep3",
    "sep_conv_5x5": "sep5",
    "dil_conv_3x3": "dil3",
    "dil_conv_5x5": "dil5",
}
ORDER_COLORS = {1: "#1f77b4", 2: "#ff7f0e"}      # first / second order
CELL_TITLES = {"normal": "normal cell", "reduce": "reduction cell"}
CELL_TYPES = ("normal", "reduce")

assert list(OP_COLORS) == PRIMITIVES, "palette must list the ops in PRIMITIVES order"


def op_color(op: str) -> str:
    """The colour of `op` in every view."""
    return OP_COLORS.get(op, "#444444")


def is_parameter_free(op: str) -> bool:
    return op in PARAMETER_FREE


def edge_label(src: int, dst: int) -> str:
    """`0→2`: the label of supernet edge (src, dst)."""
    return f"{src}\u2192{dst}"
