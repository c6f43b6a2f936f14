"""The language models around a recurrent cell: the supernet (`RNNSearchModel`) and a
genotype's network (`RNNModel`).

    tokens x (T, B) -> embedding (tied to the decoder) -> cell over T steps -> log-softmax (T, B, V)

One layer; embedding width = hidden width (the reference asserts emsize == nhid == nhidlast);
the decoder is the embedding matrix transposed plus a bias; every weight starts uniform in
±0.04, the decoder bias at 0.

Dropouts (inverted: kept entries are scaled by 1/keep; training mode only):
  dropoute  whole rows of the embedding matrix (word types)          mask (V, 1)
  dropouti  locked dropout on the embeddings, shared over time        mask (1, B, D)
  dropoutx  on x_t inside the cell, one mask per segment              mask (B, D)
  dropouth  on h_{t-1} and every predecessor state before a linear    mask (B, H)
  dropout   locked dropout on the cell outputs before the decoder     mask (1, B, H)

The loss of a batch, `loss((x, y, key))` -> (loss, log_probs):

* Hidden state. `key = StreamKey(stream, batch, fresh)` names the batch's stream and its
  number in that stream. The first call for a new batch of a stream starts from the hidden
  state the previous batch of the stream ended in (detached; zero when `fresh`, i.e. at the
  start of a pass, or when batches were skipped) and draws that batch's dropout masks;
  every later call for the same batch (the second-order step evaluates one batch several
  times: virtual step, w', w+, w-, then the weight step) starts from the same state with
  the same masks, so a loss call never advances the state by itself and the finite
  differences compare the same function (the reference draws new masks at every call, and
  at eps = 0.01/||v|| two mask draws differ by far more than the perturbation does). The state the batch ends in is the one the
  *first* call computed (in `Search`: the weight half's virtual step or weight step, both
  at w; the architecture half's loss at w or, second order, at w' as in the reference).
  The carried states are part of `state_dict()` (extra state), so a resume is exact.
  A batch without a key, `(x, y)`, starts from zero and carries nothing.
* TAR. beta * mean((h_{t+1} - h_t)^2) over the raw cell outputs joins the *weight step's*
  gradient only: it is added when the model is in training mode, gradients are on, and the
  call is not inside `frozen_bn_stats()`. In `Search` every architecture-side evaluation
  (first-order loss, virtual step, w', w+-) runs inside `frozen_bn_stats()`
  (`bilevel.loss_with`) and the weight step does not, so the architecture gradient is of
  the plain NLL, as in the reference. The term is added as `tar - tar.detach()`: its
  gradient counts, its value is zero, so the reported loss is the NLL and exp(loss) the
  perplexity.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...text import StreamKey
from ..supernet import SupernetBase
from .cell import INIT_RANGE, Cell, SearchCell
from .genotype import PRIMITIVES, STEPS, RNNGenotype, derive, edges_of

# The reference's dropouts: search (train_search.py) and final training (train.py).
SEARCH_DROPOUTS = dict(dropout=0.75, dropouth=0.25, dropoutx=0.75, dropouti=0.2, dropoute=0.0)
FINAL_DROPOUTS = dict(dropout=0.75, dropouth=0.25, dropoutx=0.75, dropouti=0.2, dropoute=0.1)
TAR_BETA = 1e-3


def _mask(shape, p: float, like: torch.Tensor) -> Optional[torch.Tensor]:
    """Bernoulli(1 - p) / (1 - p) of `shape`, or None when p == 0."""
    if p <= 0:
        return None
    keep = 1.0 - p
    return torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(keep) / keep


class LanguageModel(SupernetBase):
    """Embedding, one recurrent cell, tied decoder; dropouts, carried hidden state, TAR."""

    def __init__(self, ntoken: int, nhid: int, cell: nn.Module, dropout: float = 0.75,
                 dropouth: float = 0.25, dropoutx: float = 0.75, dropouti: float = 0.2,
                 dropoute: float = 0.0, tar_beta: float = TAR_BETA):
        super().__init__()
        self.ntoken, self.nhid = ntoken, nhid
        self.dropout, self.dropouth, self.dropoutx = dropout, dropouth, dropoutx
        self.dropouti, self.dropoute, self.tar_beta = dropouti, dropoute, tar_beta
        self.encoder = nn.Embedding(ntoken, nhid)
        nn.init.uniform_(self.encoder.weight, -INIT_RANGE, INIT_RANGE)
        self.decoder_bias = nn.Parameter(torch.zeros(ntoken))    # the decoder's weight is encoder.weight
        self.cell = cell
        self._carry: Dict[str, dict] = {}

    # -- one segment ---------------------------------------------------------------------
    def init_hidden(self, batch_size: int) -> torch.Tensor:
        w = self.encoder.weight
        return torch.zeros(batch_size, self.nhid, dtype=w.dtype, device=w.device)    # (B, H)

    def sample_masks(self, batch_size: int) -> Dict[str, Optional[torch.Tensor]]:
        """The dropout masks of one segment (none in eval mode)."""
        if not self.training:
            return {}
        w, B, V, D = self.encoder.weight, batch_size, self.ntoken, self.nhid
        return {"e": _mask((V, 1), self.dropoute, w), "i": _mask((1, B, D), self.dropouti, w),
                "x": _mask((B, D), self.dropoutx, w), "h": _mask((B, D), self.dropouth, w),
                "o": _mask((1, B, D), self.dropout, w)}

    def _cell_weights(self) -> Optional[torch.Tensor]:
        return None

    def run(self, x: torch.Tensor, hidden: torch.Tensor, masks: Dict[str, Optional[torch.Tensor]]):
        """x: (T, B) token ids, hidden: (B, H). Returns log-probabilities (T, B, V), the last
        hidden state (B, H) and the raw cell outputs (T, B, H)."""
        emb_w = self.encoder.weight                                            # (V, D)
        if masks.get("e") is not None:
            emb_w = emb_w * masks["e"]                                         # rows of word types dropped
        emb = F.embedding(x, emb_w)                                            # (T, B, D)
        if masks.get("i") is not None:
            emb = emb * masks["i"]                                             # (T, B, D)
        raw, last = self.cell(emb, hidden, masks.get("x"), masks.get("h"), self._cell_weights())  # (T, B, H), (B, H)
        out = raw if masks.get("o") is None else raw * masks["o"]              # (T, B, H)
        logits = F.linear(out, self.encoder.weight, self.decoder_bias)         # (T, B, V)
        return F.log_softmax(logits, dim=-1), last, raw

    def forward(self, x: torch.Tensor, hidden: Optional[torch.Tensor] = None):
        """x: (T, B); hidden: (B, H) or None (zero). Returns (log_probs (T, B, V), hidden (B, H)),
        with fresh dropout masks in training mode."""
        if hidden is None:
            hidden = self.init_hidden(x.shape[1])
        log_probs, last, _ = self.run(x, hidden, self.sample_masks(x.shape[1]))
        return log_probs, last

    # -- the loss of a batch (the space's contract) ------------------------------------------
    def loss(self, batch):
        """(x, y) or (x, y, key): x, y (T, B) token ids, y the next tokens. Returns (NLL, log_probs),
        with TAR in the weight step's gradient (see the module docstring)."""
        x, y = batch[0], batch[1]
        B = x.shape[1]
        if len(batch) > 2 and batch[2] is not None:
            st = self._state_for(StreamKey(*batch[2]), B)
            if self.training and st["masks"] is None:
                st["masks"] = self.sample_masks(B)
            hidden, masks = st["start"], (st["masks"] if self.training else {})
        else:
            st, hidden, masks = None, self.init_hidden(B), self.sample_masks(B)
        log_probs, last, raw = self.run(x, hidden, masks)
        if st is not None and st["next"] is None:
            st["next"] = last.detach()
        loss = F.nll_loss(log_probs.reshape(-1, self.ntoken), y.reshape(-1))
        if self.tar_beta and raw.shape[0] > 1 and self._in_weight_step():
            tar = self.tar_beta * (raw[1:] - raw[:-1]).pow(2).mean()
            loss = loss + (tar - tar.detach())                 # gradient of NLL + TAR, value NLL
        return loss, log_probs

    def _in_weight_step(self) -> bool:
        return self.training and torch.is_grad_enabled() and not self._stats_frozen

    def _state_for(self, key: StreamKey, batch_size: int) -> dict:
        """The carried state of `key`'s batch: created on the batch's first call."""
        st = self._carry.get(key.stream)
        if st is not None and st["batch"] == key.batch and st["start"].shape[0] == batch_size:
            return st
        prev = None if st is None else st["next"]
        follows = (st is not None and not key.fresh and key.batch == st["batch"] + 1
                   and prev is not None and prev.shape[0] == batch_size)
        w = self.encoder.weight
        start = prev.to(w.device, w.dtype) if follows else self.init_hidden(batch_size)  # (B, H)
        st = {"batch": int(key.batch), "start": start, "next": None, "masks": None}
        self._carry[key.stream] = st
        return st

    def reset_hidden(self) -> None:
        """Forget every carried hidden state."""
        self._carry.clear()

    def get_extra_state(self):
        return {name: {"batch": st["batch"], "start": st["start"], "next": st["next"]}
                for name, st in self._carry.items()}

    def set_extra_state(self, state) -> None:
        w = self.encoder.weight
        mv = lambda t: None if t is None else t.to(w.device, w.dtype)
        self._carry = {name: {"batch": int(st["batch"]), "start": mv(st["start"]), "next": mv(st["next"]),
                              "masks": None} for name, st in (state or {}).items()}

    # -- BatchNorm running statistics ------------------------------------------------------


class RNNSearchModel(LanguageModel):
    """The supernet: the search cell (8 nodes, 36 edges x 5 ops, batch norm) and its alphas.

    `alpha_recurrent` (36, 5), initialised alpha_init_std * N(0, 1), is a registered
    parameter returned by `arch_parameters()`, never by `weight_parameters()`.
    """

    def __init__(self, ntoken: int, nhid: int, steps: int = STEPS, alpha_init_std: float = 1e-3,
                 tar_beta: float = TAR_BETA, **dropouts):
        super().__init__(ntoken, nhid, SearchCell(nhid, nhid, steps), tar_beta=tar_beta,
                         **{**SEARCH_DROPOUTS, **dropouts})
        self.alpha_recurrent = nn.Parameter(alpha_init_std * torch.randn(len(edges_of(steps)), len(PRIMITIVES)))

    ARCH_NAMES = ("alpha_recurrent",)
    CELL_TYPES = ("recurrent",)

    def genotype(self) -> RNNGenotype:
        return derive(self.probs()["recurrent"])

    def _cell_weights(self) -> torch.Tensor:
        return self.edge_weights(self.alpha_recurrent)        # (E, O)


class RNNModel(LanguageModel):
    """A genotype's language model (no batch norm), with the final training's dropouts by default."""

    def __init__(self, ntoken: int, nhid: int, genotype: RNNGenotype, tar_beta: float = TAR_BETA, **dropouts):
        super().__init__(ntoken, nhid, Cell(nhid, nhid, genotype), tar_beta=tar_beta,
                         **{**FINAL_DROPOUTS, **dropouts})
        self.genotype = genotype


def count_parameters(ntoken: int, nhid: int, steps: int = STEPS) -> int:
    """Weights of either model: embedding (tied decoder) + decoder bias + W0 + one W_i per node."""
    return ntoken * nhid + ntoken + (2 * nhid) * (2 * nhid) + steps * nhid * 2 * nhid
