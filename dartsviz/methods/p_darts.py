"""P-DARTS (Chen et al., ICCV 2019): a deeper supernet in stages, fewer ops per edge each time.

The search runs in three stages of about epochs/3 each (the paper: 3 x 25). Every stage
builds a fresh supernet, fresh weights and fresh alphas (the authors' `train_search.py`):

- depth: `layers`, then `layers + add_layers_1`, then `layers + add_layers_2` cells
  (the paper: 5, 11, 17);
- op sets: stage 1 mixes all 8 ops on every edge; at a stage's end each edge keeps its
  `keep_1` (then `keep_2`) strongest ops by softmax(alpha) (8 -> 5 -> 3), and the next
  supernet builds only those (`op_masks`; alpha keeps all 8 columns, the dropped ones
  at weight 0, so records and plots keep their shape);
- dropout after the identity skip connections, at rate p0 of the stage (`dropout_0..2`,
  0.0 / 0.4 / 0.7), decaying within the stage: p0 (E - e - 1) / E during the stage's
  warm-up epochs (alpha frozen: `warmup_epochs` counts per stage here, the paper's 10 of
  25, never a whole stage), then p0 exp(-0.2 (e - warm-up));
- the weights' cosine schedule restarts every stage;
- the final genotype: DARTS' rule on the last stage's ops, then at most `skip_cap` (M = 2)
  skip connections in the normal cell: while there are more, the weakest kept skip loses
  its weight and the edge's next op (or the node's next edge) takes its place.

The last stage's 3 ops become 1 by that derivation (the authors' final drop). Stage,
depth, ops kept per edge and the skip dropout rate are in every step record's monitors.
P-DARTS runs on the reference supernet (`impl="reference"`), which builds only kept ops.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, Optional

import numpy as np
import torch

from .darts import Method

STAGES = 3

PAPER = dict(
    # the authors' train_search.py on CIFAR-10: 5 -> 11 -> 17 cells, 16 channels, batch 96,
    # SGD lr 0.025 (cosine to 0 per stage), wd 3e-4; alphas by Adam 6e-4 (0.5, 0.999), wd 1e-3;
    # 3 x 25 epochs, alpha frozen for the first 10 of each stage; first order
    layers=5, channels=16, batch_size=96, lr=0.025, lr_min=0.0, weight_decay=3e-4,
    arch_lr=6e-4, arch_betas=(0.5, 0.999), arch_weight_decay=1e-3,
    epochs=75, warmup_epochs=10, order=1, impl="reference",
)
TINY = dict(
    # digits on a CPU: 3 -> 4 -> 5 cells of 8 channels, 3 x 3 epochs, alpha frozen for the
    # first epoch of each stage (the tiny preset's arch and weight learning rates)
    layers=3, epochs=9, warmup_epochs=1, impl="reference",
    variant_options={"add_layers_1": 1, "add_layers_2": 2},
)


def keep_strongest(probs: torch.Tensor, keep: int) -> torch.Tensor:
    """Per edge, the `keep` ops of largest weight, as an (E, O) bool mask (ties: lower index)."""
    p = torch.as_tensor(probs, dtype=torch.float64)                            # (E, O)
    order = torch.from_numpy(np.argsort(-p.numpy(), axis=1, kind="stable"))   # (E, O)
    mask = torch.zeros(p.shape, dtype=torch.bool)
    mask.scatter_(1, order[:, :keep], True)
    return mask                                                                # (E, O)


def edge_row(dst: int, src: int) -> int:
    """The alpha row of edge src -> dst (edges in `edges_of` order)."""
    return sum(range(2, dst)) + src


class PDarts(Method):
    """P-DARTS: progressive depth, op pruning between stages, skip dropout, skip cap."""

    capture_refusal = "its stages replace the supernet and its schedules follow the search's progress"

    name = "p_darts"
    SPACES = ("cnn",)
    SPACES_WHY = "it deepens the convolutional supernet stage by stage and prunes its cells' 8 ops"
    DEFAULTS = {"add_layers_1": 6, "add_layers_2": 12, "keep_1": 5, "keep_2": 3,
                "dropout_0": 0.0, "dropout_1": 0.4, "dropout_2": 0.7, "dropout_decay": 0.2,
                "skip_cap": 2}
    presets = {"paper": PAPER, "tiny": TINY}
    stage = 0                         # the stage the supernet is built for
    masks: Optional[Dict[str, torch.Tensor]] = None   # cell type -> kept ops (E, O) bool (stage > 0)
    skip_dropout = 0.0                # the rate set for the current epoch

    # -- settings ---------------------------------------------------------------------
    def check_option_values(self, options) -> None:
        for key in ("add_layers_1", "add_layers_2", "keep_1", "keep_2", "skip_cap"):
            self.check_number(options, key, 0 if key in ("add_layers_1", "add_layers_2", "skip_cap") else 1)
            if options[key] != int(options[key]):
                raise ValueError(f"variant option {key} must be a whole number, got {options[key]!r}")
        for key in ("dropout_0", "dropout_1", "dropout_2"):
            self.check_number(options, key, 0.0, 0.99)
        self.check_number(options, "dropout_decay")
        if not options["add_layers_1"] <= options["add_layers_2"]:
            raise ValueError("variant options must grow the supernet: add_layers_1 <= add_layers_2")
        if not options["keep_2"] <= options["keep_1"]:
            raise ValueError("variant options must shrink the op sets: keep_2 <= keep_1")

    def check_config(self, config) -> None:
        if getattr(config, "space", "cnn") != "cnn":
            return                                     # check_options refuses other spaces
        if config.impl != "reference":
            raise ValueError("p_darts builds only each edge's kept ops, on the reference supernet: "
                             "use impl='reference' (--impl reference)")
        if config.epochs < STAGES:
            raise ValueError(f"p_darts searches in {STAGES} stages: epochs must be at least {STAGES}, "
                             f"got {config.epochs}")
        keep_1 = int({**self.DEFAULTS, **(config.variant_options or {})}.get("keep_1", 5))
        if keep_1 > 8:
            raise ValueError(f"variant option keep_1 must be at most the 8 ops, got {keep_1}")

    # -- the stages -------------------------------------------------------------------
    def stage_start(self, s: int) -> int:
        """The first epoch of stage s (stage STAGES: the end of the search)."""
        return -(-s * self.epochs // STAGES)

    def stage_of(self, epoch: int) -> int:
        return min(STAGES - 1, epoch * STAGES // self.epochs)

    def in_stage(self, epoch: int):
        """(e, E): epoch e of the E epochs of its stage."""
        s = self.stage_of(epoch)
        start = self.stage_start(s)
        return epoch - start, self.stage_start(s + 1) - start

    def layers_at(self, config, s: int) -> int:
        return config.layers + (0, int(self.options["add_layers_1"]), int(self.options["add_layers_2"]))[s]

    def ops_kept(self, s: int) -> int:
        return (len(self.space.ops) if self.space is not None else 8,
                int(self.options["keep_1"]), int(self.options["keep_2"]))[s]

    def warmup_of(self, epoch: int, config) -> int:
        """The warm-up epochs (alpha frozen) of `epoch`'s stage: `warmup_epochs`, but never the
        whole stage (alpha moves at least in its last epoch)."""
        return min(config.warmup_epochs, self.in_stage(epoch)[1] - 1)

    def dropout_at(self, epoch: int, config) -> float:
        """The skip dropout rate of `epoch` (the authors' schedule, per stage)."""
        p0 = float(self.options[f"dropout_{self.stage_of(epoch)}"])
        e, E = self.in_stage(epoch)
        warm = self.warmup_of(epoch, config)
        if e < warm:
            return p0 * (E - e - 1) / E
        return p0 * math.exp(-(e - warm) * float(self.options["dropout_decay"]))

    # -- hooks --------------------------------------------------------------------------
    def arch_frozen(self, epoch: int, config) -> bool:
        return self.in_stage(epoch)[0] < self.warmup_of(epoch, config)

    def lr_position(self, epoch: int):
        return self.in_stage(epoch)

    def _build(self, search):
        config = dataclasses.replace(search.config, layers=self.layers_at(search.config, self.stage))
        return search.space.build(config, search.data, op_masks=self.masks)

    def enter_stage(self, search, stage: int, masks) -> None:
        """Search stage `stage` (0-based) from here on: a fresh supernet of its depth with the op
        sets `masks` (cell type -> (edges, ops) bool, True where an op is kept)."""
        self.stage, self.masks = stage, masks
        search.replace_model(self._build(search))

    def on_epoch_start(self, search, epoch: int) -> None:
        """Entering a stage: keep each edge's strongest ops by the last stage's alphas and
        search a fresh, deeper supernet of them. Every epoch: set the skip dropout rate."""
        s = self.stage_of(epoch)
        if s > self.stage:
            probs = search.model.probs()
            keep = self.ops_kept(s)
            self.enter_stage(search, s, {k: keep_strongest(probs[k].cpu(), keep) for k in search.model.CELL_TYPES})
        self.skip_dropout = self.dropout_at(epoch, search.config)
        search.model.set_skip_dropout(self.skip_dropout)

    def derive(self, space, probs):
        """DARTS' rule, then at most `skip_cap` skip connections in the normal cell."""
        genotype = space.derive(probs)
        cap = int(self.options["skip_cap"])
        skip = space.ops.index(space.skip_op)
        normal = torch.as_tensor(probs["normal"]).detach().cpu().double().numpy().copy()   # (E, O)
        while True:
            skips = [(normal[edge_row(dst, src), skip], edge_row(dst, src))
                     for dst, node in enumerate(genotype.normal, start=2)
                     for op, src in node if op == space.skip_op]
            if len(skips) <= cap:
                return genotype
            weight, row = min(skips)
            if weight <= 0:                        # nothing left to take the skip's place
                return genotype
            normal[row, skip] = 0.0
            genotype = space.derive({**probs, "normal": normal})

    def monitors(self, search) -> Dict[str, torch.Tensor]:
        dev = search.device
        return {"stage": torch.tensor(float(self.stage + 1), device=dev),
                "layers": torch.tensor(float(self.layers_at(search.config, self.stage)), device=dev),
                "ops_kept": torch.tensor(float(self.ops_kept(self.stage)), device=dev),
                "skip_dropout": torch.tensor(self.skip_dropout, device=dev)}

    # -- checkpoints --------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"stage": self.stage, "skip_dropout": self.skip_dropout,
                "masks": None if self.masks is None else {k: m.clone() for k, m in self.masks.items()}}

    def load_state_dict(self, search, state: dict) -> None:
        stage = int(state.get("stage", 0))
        masks = state.get("masks")
        masks = None if masks is None else {k: torch.as_tensor(m, dtype=torch.bool) for k, m in masks.items()}
        if stage > 0:
            self.enter_stage(search, stage, masks)
        else:
            self.stage, self.masks = stage, masks
        self.skip_dropout = float(state.get("skip_dropout", 0.0))
        search.model.set_skip_dropout(self.skip_dropout)


P_DARTS = PDarts()
