"""Collapse diagnostics: what the derived normal cell keeps, and the sharpness of the
validation loss in alpha (Zela et al., ICLR 2020, "Understanding and Robustifying DARTS").

- `collapse_stats(space, genotype, probs)`: the parameter-free ops kept in the derived
  normal cell (the space's first cell type), and the largest `none` and skip weight over
  that cell's edges. The recurrent space has no parameter-free op (every op of a node
  shares the node's W_i), so there the count is of its skip-like op, `identity`: the op
  whose spread marks collapse in either space (`SearchSpace.skip_op`).
- `hessian_max_eigenvalue(model, batch, ...)`: lambda_max, the largest eigenvalue of the
  Hessian of the validation loss with respect to the alphas, by power iteration on exact
  Hessian-vector products (double backward; the Hessian itself is never built).

Evaluation mode (RobustDARTS, `src/search/train_search.py` and `analyze.py`): the authors
build the Hessian right after an epoch's training loop, with the network still in
training mode (BatchNorm normalises with batch statistics), from the plain validation
cross-entropy at the current weights (first order: no unrolled step), plus the alphas'
weight decay (their `_hessian` adds `arch_weight_decay * alpha` to the gradient, so H
gains `arch_weight_decay * I`). This module does the same: training mode with BatchNorm's
running statistics left alone (`bilevel.loss_with`), the space's plain loss (the recurrent
space's TAR is not in it), `weight_decay` added as `weight_decay * I`, in the weights'
own precision (no autocast). Where the loss is random (the recurrent space's dropout),
the masks are drawn from a generator fixed by `seed` inside a forked RNG, so every
measurement sees the same function and the caller's random streams are left untouched.
Unlike the authors (the epoch's last, changing, minibatch) a search measures on one
fixed validation batch (`monitor_batch`), so successive values differ by the training
only, not by the batch.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from typing import Dict, List, NamedTuple, Optional, Sequence

import numpy as np
import torch

from .bilevel import loss_with

MONITOR_SEED = 7919           # offset of the monitor's seeds from the search's seed


# -- collapse statistics ------------------------------------------------------------------
def collapse_ops(space) -> tuple:
    """The ops counted by `collapse_stats`: the space's parameter-free ops, or its skip-like
    op where it has none (the recurrent space)."""
    free = tuple(op for op in space.parameter_free if op != space.zero_op)
    return free or ((space.skip_op,) if space.skip_op else ())


def collapse_stats(space, genotype, probs, ops: Optional[Sequence[str]] = None) -> Dict[str, Optional[float]]:
    """{"param_free_ops": how many kept edges of the derived normal cell carry a
    parameter-free op (`collapse_ops`), "max_none": the largest `none` weight over the
    normal cell's edges, "max_skip": the largest skip weight}. The normal cell is the
    space's first cell type; `probs` maps cell types to softmax weights (edges, ops) whose
    columns are `ops` (default `space.ops`). A weight with no column is None."""
    cell = space.cell_types[0]
    ops = list(space.ops if ops is None else ops)
    p = np.asarray(probs[cell], dtype=np.float64)                           # (E, O)
    if p.ndim != 2 or p.shape[1] != len(ops):
        raise ValueError(f"probs[{cell!r}] must be (edges, {len(ops)}), got shape {p.shape}")
    counted = collapse_ops(space)
    kept = space.kept_edges(genotype, cell)                                 # [(src, dst, op)]
    col = lambda op: float(p[:, ops.index(op)].max()) if op in ops and len(p) else None
    return {"param_free_ops": sum(op in counted for _, _, op in kept),
            "max_none": col(space.zero_op) if space.zero_op else None,
            "max_skip": col(space.skip_op) if space.skip_op else None}


# -- the Hessian's dominant eigenvalue ---------------------------------------------------------
class Eigen(NamedTuple):
    """A power iteration's answer."""
    value: float          # lambda_max
    iters: int            # Hessian-vector products spent
    seconds: float
    converged: bool       # False: stopped at the iteration cap


@contextlib.contextmanager
def fixed_rng(seed: int, device: torch.device):
    """Inside, the global CPU (and `device`'s CUDA) generator starts from `seed`; on exit
    both are as they were, so draws made inside take nothing from the caller's streams."""
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        for i in cuda:
            torch.cuda.default_generators[i].manual_seed(seed)
        yield


def _dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum((x * y).sum() for x, y in zip(a, b))


def _power(hvp, v: List[torch.Tensor], shift: float, tol: float, max_iters: int):
    """Power iteration on A = H - shift I from the unit vector v: (Rayleigh quotient,
    iterations, converged, ||A v|| of the last v, about A's spectral radius). Stops when the
    residual ||A v - lam v|| is at most tol * |lam| (for a symmetric A some eigenvalue then
    lies within tol * |lam| of lam, and the quotient's own error is of order
    tol^2 * |lam|^2 / gap)."""
    lam, norm = 0.0, 0.0
    for it in range(1, max_iters + 1):
        hv = [h - shift * x for h, x in zip(hvp(v), v)]
        lam = float(_dot(v, hv))                                # v is a unit vector
        sq = float(_dot(hv, hv))
        if sq == 0.0 or not math.isfinite(sq):
            return (0.0 if sq == 0.0 else float("nan")), it, sq == 0.0, 0.0
        norm = math.sqrt(sq)
        if math.sqrt(max(sq - lam * lam, 0.0)) <= tol * abs(lam):        # ||A v - lam v||
            return lam, it, True, norm
        v = [h / norm for h in hv]
    return lam, max_iters, False, norm


def hessian_max_eigenvalue(model, batch, tol: float = 1e-3, max_iters: int = 50, weight_decay: float = 0.0,
                           seed: int = 0, params: Optional[Sequence[torch.Tensor]] = None) -> Eigen:
    """lambda_max of the Hessian of `model.loss(batch)` with respect to the alphas (or
    `params`), plus `weight_decay * I`, by power iteration on exact Hessian-vector
    products: the loss and its gradient are built once (create_graph), each iteration is
    one more backward through that gradient. The start vector comes from a generator
    seeded with `seed`, the loss's random draws from `fixed_rng(seed)`.

    Power iteration finds the eigenvalue of largest magnitude. When that is negative, or the
    run does not settle (say a negative and a positive eigenvalue of about the same
    magnitude), a second run from the same start on H + rho I, rho that magnitude (so the
    spectrum is about >= 0), finds the largest one, lambda_max + rho; the larger of the two
    runs' Rayleigh quotients is returned (each is a lower bound of lambda_max). A run stops
    when the residual ||Hv - lambda v|| is at most `tol * |lambda|` or after `max_iters`
    products. The model runs in training mode with BatchNorm's running statistics untouched
    (see the module docstring); its mode and parameters are left as they were."""
    if not (isinstance(tol, (int, float)) and tol > 0 and math.isfinite(tol)):
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    if isinstance(max_iters, bool) or not isinstance(max_iters, int) or max_iters < 1:
        raise ValueError(f"max_iters must be a positive integer, got {max_iters!r}")
    params = list(model.alpha_of().values()) if params is None else list(params)
    device = params[0].device
    t0 = time.perf_counter()
    was_training = model.training
    model.train()
    try:
        with fixed_rng(seed, device), torch.autocast(device.type, enabled=False), torch.enable_grad():
            loss, _ = loss_with(model, None, batch)
            grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
            live = [g is not None and g.requires_grad for g in grads]

            def hvp(v: List[torch.Tensor]) -> List[torch.Tensor]:
                """(H + weight_decay I) v, one double backward."""
                dot = sum((g * x).sum() for g, x, ok in zip(grads, v, live) if ok)
                hv = torch.autograd.grad(dot, params, retain_graph=True, allow_unused=True) \
                    if torch.is_tensor(dot) else [None] * len(params)
                return [(torch.zeros_like(x) if h is None else h.detach()) + weight_decay * x
                        for h, x in zip(hv, v)]

            gen = torch.Generator().manual_seed(seed)
            v = [torch.randn(p.shape, generator=gen, dtype=torch.float64).to(device, p.dtype)
                 for p in params]                                              # like each alpha (E, O)
            norm = torch.sqrt(_dot(v, v))
            v = [x / norm for x in v]
            lam, iters, converged, radius = _power(hvp, v, 0.0, tol, max_iters)
            if math.isfinite(lam) and (lam < 0 or not converged):   # a negative eigenvalue dominated, or tied
                shift = lam if converged else -radius
                mu, more, converged, _ = _power(hvp, v, shift, tol, max_iters)
                lam, iters = max(lam, mu + shift), iters + more
    finally:
        model.train(was_training)
    return Eigen(lam, iters, time.perf_counter() - t0, converged)


def monitor_batch(space, data, config, dtype):
    """The fixed validation batch lambda_max is measured on: a batch of the architecture
    half from a stream of its own, seeded with `config.seed + MONITOR_SEED` and advanced by
    a seeded number of batches, so the same config always draws the same batch and the
    search's own streams and the global RNG are not touched. A carried-state key (the
    recurrent space's) is dropped: the batch starts from a zero hidden state."""
    seed = config.seed + MONITOR_SEED
    _, stream = space.streams(data, dataclasses.replace(config, seed=seed), dtype)
    skip = int(torch.randint(0, max(1, len(stream)), (), generator=torch.Generator().manual_seed(seed)))
    for _ in range(skip):
        next(stream)
    return tuple(next(stream)[:2])


# -- DARTS-ES: early stopping on lambda_max ---------------------------------------------------
def local_average(epoch_lambdas: Dict[int, float], end: int, smooth: int = 1) -> Optional[float]:
    """The mean lambda_max of the `smooth` epochs ending at `end`; None where one is missing
    or not finite."""
    vals = [epoch_lambdas.get(e) for e in range(end - smooth + 1, end + 1)]
    if any(v is None or not math.isfinite(v) for v in vals):
        return None
    return sum(vals) / len(vals)


def darts_es(epoch_lambdas: Dict[int, float], epoch: int, window: int, ratio: float,
             smooth: int = 1, start: int = 0) -> Optional[int]:
    """The DARTS-ES rule (Zela et al., ICLR 2020, section 4.3) at the end of `epoch`: the
    epoch whose architecture the search returns, `epoch - window`, when lambda_max grew by
    more than `ratio` over those `window` epochs; else None.

    With `smooth` = n > 1 each side is the local average of the n epochs' lambda_max ending
    there (the authors' `src/utils.py:EVLocalAvg` averages 5 measurements), and the earlier
    side must end at epoch `start` or later (their `es_start_epoch`, 10). `epoch_lambdas`
    maps epochs to their lambda_max; a missing, non-positive or non-finite value never
    triggers.

    The paper's wording is lambda(i - k) / lambda(i) < 0.75 with k = 5 (unverified here); the
    authors' code compares averages of 5 measurements taken every 2 epochs, 8 epochs apart,
    with factor 1.3. Here each epoch has one measurement on a fixed batch (far less noisy than
    the authors' changing one); `smooth=1, start=0` compares single epochs."""
    before_epoch = epoch - window
    if before_epoch < start:
        return None

    before, now = local_average(epoch_lambdas, before_epoch, smooth), local_average(epoch_lambdas, epoch, smooth)
    if before is None or now is None or before <= 0:
        return None
    return before_epoch if now / before > ratio else None


@dataclasses.dataclass(frozen=True)
class EarlyStop:
    """Where DARTS-ES stopped a search and what it returns."""
    epoch: int                 # the epoch whose lambda_max triggered the rule
    selected_epoch: int        # the epoch whose genotype the search returns (epoch - window)
    lambda_now: float          # lambda_max at `epoch`
    lambda_before: float       # lambda_max at `selected_epoch`
    ratio: float               # the config's threshold
    genotype: object           # the genotype at the end of `selected_epoch`
    smooth: int = 1            # lambda_now and lambda_before are means over this many epochs

    def message(self) -> str:
        """One line for the console and the run directory."""
        what = "lambda_max" if self.smooth == 1 else f"mean lambda_max of {self.smooth} epochs"
        return (f"early stop (DARTS-ES) at epoch {self.epoch}: {what} {self.lambda_now:.4g} / "
                f"{self.lambda_before:.4g} at epoch {self.selected_epoch} = "
                f"{self.lambda_now / self.lambda_before:.3g} > {self.ratio:g}; "
                f"the result is the genotype of epoch {self.selected_epoch}")
