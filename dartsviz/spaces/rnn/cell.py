"""The recurrent cells: the search cell (every edge, softmax-mixed) and a genotype's cell.

One time step, with σ = sigmoid, ⊙ = element-wise product, m_x / m_h the per-segment
dropout masks (training only; 1 in eval mode), BN one shared BatchNorm1d(affine=False):

    (1)  [c0; h0] = [x_t ⊙ m_x ; h_{t-1} ⊙ m_h] · W0                W0: (ninp + nhid, 2 nhid)
    (2)  s0 = h_{t-1} + σ(c0) ⊙ (tanh(h0) − h_{t-1})                 unmasked h_{t-1} in the highway
    (3)  search only: s0 ← BN(s0)

  a genotype's cell, node i with (op f, predecessor p):
    (4)  [c; h] = (s_p ⊙ m_h) · W_i                                   W_i: (nhid, 2 nhid)
    (5)  s_i = s_p + σ(c) ⊙ (f(h) − s_p)

  the search cell, node i, the same W_i for every predecessor j < i and the gate shared by the ops:
    (4') [c_j; h_j] = (s_j ⊙ m_h) · W_i                               j = 0 .. i-1
    (5') s_i = BN( Σ_j Σ_{k ≠ none} w_jk · (s_j + σ(c_j) ⊙ (f_k(h_j) − s_j)) )
         w = the mixing weights of alpha (softmax unless a method says else); `none` takes
         mass and adds nothing

    (6)  h_t = mean of s_i over the concat nodes (1..8); h_t is the next step's h_{t-1}

(5') is computed in its expanded form Σ_j (π_j s_j + σ(c_j) ⊙ (Σ_k w_jk f_k(h_j) − π_j s_j)),
π_j = Σ_{k≠none} w_jk: the same sum with one gate product per predecessor, not per (j, k).
`a + g ⊙ (b − a)` is `highway(a, b, g)`, a `torch.lerp` (one op instead of three:
the loop over time runs ~200 small ops per step, so op count is the speed).
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from .genotype import PRIMITIVES, STEPS, RNNGenotype

INIT_RANGE = 0.04          # every weight starts uniform in ±INIT_RANGE (the reference's INITRANGE)

ACTIVATION_FNS: Dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": lambda t: t,
}


def highway(a: torch.Tensor, b: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """a + gate ⊙ (b − a): one lerp when the dtypes agree (not always so under autocast)."""
    if a.dtype == b.dtype == gate.dtype:
        return torch.lerp(a, b, gate)
    return a + gate * (b - a)


class _CellBase(nn.Module):
    """W0 and one W_i per node (no biases), the highway s0 and the loop over time."""

    def __init__(self, ninp: int, nhid: int, steps: int):
        super().__init__()
        self.ninp, self.nhid, self.steps = ninp, nhid, steps
        self.W0 = nn.Parameter(torch.empty(ninp + nhid, 2 * nhid).uniform_(-INIT_RANGE, INIT_RANGE))
        self.Ws = nn.ParameterList(nn.Parameter(torch.empty(nhid, 2 * nhid).uniform_(-INIT_RANGE, INIT_RANGE))
                                   for _ in range(steps))

    def init_state(self, x: torch.Tensor, h_prev: torch.Tensor, x_mask: Optional[torch.Tensor],
                   h_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """Equations (1)-(2). x: (B, ninp), h_prev: (B, nhid); returns s0 (B, nhid)."""
        xm = x if x_mask is None else x * x_mask                            # (B, ninp)
        hm = h_prev if h_mask is None else h_prev * h_mask                  # (B, nhid)
        c0, h0 = torch.cat([xm, hm], dim=-1).mm(self.W0).split(self.nhid, dim=-1)  # (B, nhid) each
        return highway(h_prev, h0.tanh(), c0.sigmoid())                  # h_prev + σ(c0)(tanh h0 - h_prev): (B, nhid)

    def step(self, x, h_prev, x_mask, h_mask, weights) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor, x_mask: Optional[torch.Tensor] = None,
                h_mask: Optional[torch.Tensor] = None, weights: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        """inputs: (T, B, ninp), hidden: (B, nhid), masks (B, ninp) / (B, nhid) or None for
        no dropout, weights: (edges, ops) for the search cell. Returns the outputs h_1..h_T
        (T, B, nhid) and the last one (B, nhid)."""
        outputs: List[torch.Tensor] = []
        for t in range(inputs.shape[0]):
            hidden = self.step(inputs[t], hidden, x_mask, h_mask, weights)  # (B, nhid)
            outputs.append(hidden)
        return torch.stack(outputs), hidden                                  # (T, B, nhid), (B, nhid)


class Cell(_CellBase):
    """A genotype's cell (the final network): one (op, predecessor) per node, no batch norm."""

    def __init__(self, ninp: int, nhid: int, genotype: RNNGenotype):
        super().__init__(ninp, nhid, genotype.steps)
        self.genotype = genotype
        self._fns = [ACTIVATION_FNS[op] for op, _ in genotype.recurrent]

    def step(self, x, h_prev, x_mask, h_mask, weights=None) -> torch.Tensor:
        states = [self.init_state(x, h_prev, x_mask, h_mask)]                   # s0: (B, nhid)
        for i, (fn, (_, pred)) in enumerate(zip(self._fns, self.genotype.recurrent)):
            s_p = states[pred]                                                    # (B, nhid)
            sm = s_p if h_mask is None else s_p * h_mask                          # (B, nhid)
            c, h = sm.mm(self.Ws[i]).split(self.nhid, dim=-1)                     # (4): (B, nhid) each
            states.append(highway(s_p, fn(h), c.sigmoid()))                    # (5): s_p + σ(c)(f(h) - s_p), (B, nhid)
        return torch.stack([states[i] for i in self.genotype.concat]).mean(0)     # (6): (B, nhid)


class SearchCell(_CellBase):
    """The supernet cell: STEPS nodes, each from every earlier node through every op."""

    def __init__(self, ninp: int, nhid: int, steps: int = STEPS, primitives: Sequence[str] = PRIMITIVES):
        super().__init__(ninp, nhid, steps)
        self.primitives = tuple(primitives)
        self._cols = [k for k, p in enumerate(self.primitives) if p != "none"]     # the ops that add
        self._fns = [ACTIVATION_FNS[self.primitives[k]] for k in self._cols]
        self.bn = nn.BatchNorm1d(nhid, affine=False)      # one module: s0, every node, every step

    def forward(self, inputs, hidden, x_mask=None, h_mask=None, weights=None):
        # weights: (E, O) mixing weights, rows in edges_of() order. Sliced per node once per
        # segment, not per time step: for node i, (w_j1..w_jK as (n, 1, 1) each, π_j (n, 1, 1)).
        w = weights[:, self._cols]                                               # (E, K) without none
        per_node, offset = [], 0
        for i in range(self.steps):
            wi = w[offset:offset + i + 1].unsqueeze(-1).unsqueeze(-1)            # (n, K, 1, 1)
            per_node.append((wi.unbind(1), wi.sum(1)))                           # K x (n, 1, 1), (n, 1, 1)
            offset += i + 1
        return super().forward(inputs, hidden, x_mask, h_mask, per_node)

    def step(self, x, h_prev, x_mask, h_mask, per_node) -> torch.Tensor:
        s0 = self.bn(self.init_state(x, h_prev, x_mask, h_mask))                 # (1)-(3): (B, nhid)
        states = s0.unsqueeze(0)                                                 # (1, B, nhid)
        for i, (wk, pi) in enumerate(per_node):
            n = i + 1                                                            # predecessors 0..i
            sm = states if h_mask is None else states * h_mask                   # (n, B, nhid)
            ch = sm.reshape(-1, self.nhid).mm(self.Ws[i])                        # (n*B, 2 nhid)
            c, h = ch.view(n, -1, 2 * self.nhid).split(self.nhid, dim=-1)        # (4'): (n, B, nhid) each
            f_mix = None                                                         # Σ_k w_jk f_k(h_j): (n, B, nhid)
            for fn, wjk in zip(self._fns, wk):
                f_mix = wjk * fn(h) if f_mix is None else torch.addcmul(f_mix, wjk, fn(h))
            ws = pi * states                                                     # (n, B, nhid): π_j s_j
            s = highway(ws, f_mix, c.sigmoid()).sum(0)                        # (5') before BN: (B, nhid)
            states = torch.cat([states, self.bn(s).unsqueeze(0)])                # (n+1, B, nhid)
        return states[1:].mean(0)                                                # (6): (B, nhid)
