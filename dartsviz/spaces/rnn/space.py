"""The recurrent space of the DARTS paper (Penn Treebank search): one recurrent cell of 8
nodes over 36 edges of 5 ops (none, tanh, relu, sigmoid, identity) inside a one-layer
language model, and the recurrent derivation (one predecessor and one op per node).

Data: word-level text (`dartsviz.text`): the embedded `pydoc` corpus, or `ptb` /
`wikitext2` from `data_dir`. The weight half is the training split, the architecture
half the validation split, the epoch's held-out number the test split's perplexity.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Dict, List

import torch
import torch.nn as nn
import torch.nn.functional as F

from ...config import check_bool, check_positive, check_range
from ...text import TextData, TextStream, check_text_dataset, load_text, segments
from ..base import SearchSpace
from ..supernet import running_stats_untouched
from .genotype import (CELL_TYPE, GENOTYPES, PRIMITIVES, STEPS, RNNGenotype, derive, edges_of,
                       random_genotype, steps_for_edges)
from .model import RNNSearchModel

OP_COLOURS: Dict[str, str] = {
    "none": "#b0b0b0",
    "identity": "#d62728",      # the skip-like op: warm, as skip_connect is in the CNN space
    "tanh": "#1f77b4",
    "relu": "#2ca02c",
    "sigmoid": "#9467bd",
}
OP_SHORT: Dict[str, str] = {"none": "none", "tanh": "tanh", "relu": "relu", "sigmoid": "sigm", "identity": "id"}
EVAL_BPTT = 35                  # segment length of an evaluation (the hidden state is carried across)
DROPOUT_FIELDS = ("dropout", "dropouth", "dropoutx", "dropouti", "dropoute")  # search_fields
# The space's search settings (SearchConfig.space_options; `SearchConfig(space="rnn", nhid=32)`
# routes them there), defaults the reference search's (train_search.py), checked by check_search_values.
SEARCH_FIELDS = dict(
    nhid=300,               # embedding = hidden width (tied, as the reference asserts)
    bptt=35,                # BPTT segment length (tokens per step)
    dropout=0.75,           # locked dropout on the cell outputs
    dropouth=0.25,          # on h_{t-1} and the cell's states before each linear
    dropoutx=0.75,          # on x_t inside the cell
    dropouti=0.2,           # locked dropout on the embeddings
    dropoute=0.0,           # whole word types dropped from the embedding
    tar_beta=1e-3,          # temporal activation regularisation (weight step only)
    vocab_size=10000,       # pydoc: most frequent words kept, <eos> and <unk> included (0: all)
    eval_batch_size=10,     # columns of a perplexity evaluation
    bptt_jitter=False,      # a weight segment is bptt long w.p. 0.95, else bptt // 2; lr scaled
)


class RNNSpace(SearchSpace):
    """Language modelling with a recurrent cell (DARTS section 3.2, PTB search)."""

    name = "rnn"
    genotype_class = RNNGenotype
    cell_types = (CELL_TYPE,)
    ops = PRIMITIVES
    zero_op = "none"
    default_dataset = "pydoc"
    skip_op = "identity"
    parameter_free = ()         # every op of a node shares that node's W_i: none is free of weights
    metric = "ppl"
    higher_is_better = False
    clip_unrolled = True        # the reference clips the virtual step's gradient (lr 20 otherwise throws w' away)
    capture_refusal = "its batches carry hidden state and vary in length"
    search_fields = SEARCH_FIELDS
    unused_search_flags = {"layers": "one recurrent cell", "channels": "its width is nhid",
                           "nodes": f"the recurrent cell has {STEPS} nodes", "impl": "one implementation"}
    unused_train_flags = {"layers": "one recurrent cell", "channels": "its width is nhid",
                          "drop_path_prob": "no drop-path", "no_auxiliary": "no auxiliary head",
                          "no_cutout": "no cutout", "workers": "text needs no loader workers"}
    paper_genotypes = {f"{k}_RNN" if k == "ENAS" else f"DARTS_RNN_{k[6:]}": v for k, v in GENOTYPES.items()
                       if k != "DARTS"}      # DARTS_RNN_V1, DARTS_RNN_V2, ENAS_RNN

    # -- config and data -------------------------------------------------------------
    def check_config(self, config) -> None:
        """The data set must be a text corpus (nhid ... bptt_jitter: `check_search_values`);
        `nodes` is the convolutional cell's: the recurrent cell has its 8."""
        check_text_dataset(config.dataset)
        if config.nodes != 4:
            raise ValueError(f"nodes sets the convolutional cell's node count; the recurrent cell has {STEPS} "
                             f"nodes (got nodes={config.nodes} with space='rnn')")

    def check_search_values(self, options) -> None:
        for name in ("nhid", "bptt", "eval_batch_size"):
            check_positive(name, options[name])
        for name in DROPOUT_FIELDS:
            check_range(name, options[name], 0.0, 1.0)
        check_range("tar_beta", options["tar_beta"], 0.0)
        v = options["vocab_size"]
        if isinstance(v, bool) or not isinstance(v, int) or not (v == 0 or v >= 3):
            raise ValueError(f"vocab_size must be 0 (every word) or at least 3, got {v!r}")
        check_bool("bptt_jitter", options["bptt_jitter"])

    def load_data(self, config, device) -> TextData:
        o = self.options(config)
        data = load_text(config.dataset, config.data_dir, o["vocab_size"], device, download=config.download)
        return dataclasses.replace(data, eval_batch_size=o["eval_batch_size"])

    def streams(self, data: TextData, config, dtype):
        """BPTT segments of the training split (weights) and of the validation split
        (architecture), both `batch_size` wide, each with its own carried hidden state.
        With `bptt_jitter` the training segments are bptt long w.p. 0.95, else bptt // 2
        (the reference search); the architecture's always keep the full length."""
        o = self.options(config)
        jitter_seed = config.seed + 11 if o["bptt_jitter"] else None
        return (TextStream(data, "train", config.batch_size, o["bptt"], "train", jitter_seed=jitter_seed),
                TextStream(data, "val", config.batch_size, o["bptt"], "val"))

    # -- the supernet ------------------------------------------------------------------
    def build(self, config, data: TextData) -> RNNSearchModel:
        o = self.options(config)
        return RNNSearchModel(data.ntokens, o["nhid"], alpha_init_std=config.alpha_init_std,
                              tar_beta=o["tar_beta"], **{k: o[k] for k in DROPOUT_FIELDS})

    def metrics(self, output, batch) -> Dict[str, torch.Tensor]:
        """Perplexity of the batch: exp(NLL) from the log-probabilities (T, B, V)."""
        nll = F.nll_loss(output.reshape(-1, output.shape[-1]).float(), batch[1].reshape(-1))
        return {"ppl": nll.exp()}

    @torch.no_grad()
    def evaluate(self, model, data: TextData, split: str, dtype,
                 autocast=contextlib.nullcontext) -> Dict[str, float]:
        """Per-token NLL and perplexity of a whole split in eval mode (no dropout, running
        batch-norm statistics), `data.eval_batch_size` columns, the hidden state carried
        from segment to segment, one host sync.

        A supernet whose BatchNorm has seen no training batch yet (running statistics still
        the initial 0 and 1, under which the search cell's sums over predecessors grow node
        after node and step after step until they overflow) is normalised with each time
        step's own batch statistics instead (eval batches of more than one column), leaving its
        running statistics untouched."""
        tokens = getattr(data, split)
        was_training = model.training
        model.eval()
        def untrained(m) -> bool:      # not SyncBatchNorm: in training mode it would wait for the other ranks
            return (isinstance(m, nn.modules.batchnorm._BatchNorm) and not isinstance(m, nn.SyncBatchNorm)
                    and m.track_running_stats and int(m.num_batches_tracked) == 0)
        fresh = [m for m in model.modules() if untrained(m)] if data.eval_batch_size > 1 else []
        for m in fresh:                                   # batch statistics, running ones left alone
            m.train()
        total, count, hidden = None, 0, None
        try:
            with running_stats_untouched(fresh):
                for x, y in segments(tokens, data.eval_batch_size, EVAL_BPTT):
                    with autocast():
                        log_probs, hidden = model(x, hidden)                      # (T, B, V), (B, H)
                    nll = F.nll_loss(log_probs.reshape(-1, log_probs.shape[-1]).to(torch.float64),
                                     y.reshape(-1), reduction="sum")
                    total = nll if total is None else total + nll
                    count += y.numel()
        finally:
            model.train(was_training)
        if total is None:
            return {}
        loss = float(total) / count
        return {"loss": loss, "ppl": math.exp(min(loss, 700.0))}

    # -- the architecture ------------------------------------------------------------
    def derive(self, probs) -> RNNGenotype:
        return derive(probs[CELL_TYPE])

    def random_genotype(self, seed=None) -> RNNGenotype:
        return random_genotype(seed)

    def trainer(self):
        from .train import RNNTrainer
        return RNNTrainer

    def lr_scale(self, batch, config) -> float:
        """A jittered BPTT segment of length T steps with lr * T / bptt (the reference)."""
        o = self.options(config)
        return batch[0].shape[0] / o["bptt"] if o["bptt_jitter"] else 1.0

    # -- drawing ---------------------------------------------------------------------
    def edges(self, cell_type: str, n_edges: int) -> List[tuple]:
        return edges_of(steps_for_edges(n_edges))

    def node_labels(self, cell_type: str, n_nodes: int) -> List[str]:
        """s0, the highway node that folds in x_t and h_{t-1} (`input_feeds`); then nodes 1..8."""
        return ["s0"] + [str(i) for i in range(1, n_nodes)]

    def output_label(self, cell_type: str) -> str:
        return "h[t]"

    def input_feeds(self, cell_type: str) -> List[tuple]:
        """x_t and h_{t-1} both feed s0."""
        return [("x[t]", 0), ("h[t-1]", 0)]

    def output_combine(self, cell_type: str) -> str:
        """h_t is the mean of the concat nodes (1..8)."""
        return "mean"

    def concat(self, genotype: RNNGenotype, cell_type: str):
        return genotype.concat_of(cell_type)

    @property
    def op_colours(self) -> Dict[str, str]:
        return OP_COLOURS

    @property
    def op_short(self) -> Dict[str, str]:
        return OP_SHORT

    def cell_title(self, cell_type: str) -> str:
        return "recurrent cell"


RNN = RNNSpace()          # registered by dartsviz.spaces
