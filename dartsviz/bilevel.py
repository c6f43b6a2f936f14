"""The architecture gradient: first order, and second order (unrolled) with a
finite-difference or exact Hessian-vector product.

Nothing here mutates the network: every evaluation at other weights (w', w+, w-)
substitutes those weights for the parameters for one forward pass (`substituted`,
what `torch.func.functional_call` does, cheaper), and every pass runs
inside `frozen_bn_stats()` (training-mode BatchNorm with batch statistics, running
statistics untouched), so the arch step never touches weights or running statistics.
"""
from __future__ import annotations

import weakref
from contextlib import contextmanager
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

Batch = Tuple[torch.Tensor, ...]            # whatever the space's `model.loss(batch)` takes
Params = Dict[str, torch.Tensor]
Reduce = Callable[[Sequence[torch.Tensor]], List[torch.Tensor]]   # data parallel: mean over ranks

ORDERS = (1, 2)                             # 1: first order; 2: second order (unrolled)
HVP_MODES = ("finite", "exact")             # second order: the Hessian-vector product
ORDER_NAMES = {1: "first order", 2: "second order"}


def weight_dict(model: nn.Module) -> Params:
    return dict(model.named_weight_parameters())


def forward_with(model: nn.Module, params: Optional[Params], x: torch.Tensor) -> torch.Tensor:
    """model(x) with `params` substituted; BatchNorm running statistics left untouched."""
    with model.frozen_bn_stats(), substituted(model, params):
        return model(x)


_SLOTS: "weakref.WeakKeyDictionary[nn.Module, Dict[str, tuple]]" = weakref.WeakKeyDictionary()


def _slots(model: nn.Module) -> Dict[str, tuple]:
    """Parameter name -> (owning module, attribute), cached per model."""
    slots = _SLOTS.get(model)
    if slots is None:
        slots = {f"{m}.{a}" if m else a: (mod, a)
                 for m, mod in model.named_modules() for a in mod._parameters}
        _SLOTS[model] = slots
    return slots


@contextmanager
def substituted(model: nn.Module, params: Optional[Params]):
    """Inside, the module attributes named in `params` are those tensors (gradients flow to
    them); the parameters are put back on exit. What `torch.func.functional_call` does for
    parameters, without its per-call bookkeeping (about 6 ms for a tiny supernet on CPU)."""
    slots = _slots(model) if params else {}
    saved = []
    try:
        for name, t in (params or {}).items():
            if name not in slots:
                raise KeyError(f"{type(model).__name__} has no parameter {name!r}")
            mod, attr = slots[name]
            saved.append((mod, attr, mod._parameters[attr]))
            mod._parameters[attr] = t
        yield
    finally:
        for mod, attr, p in reversed(saved):
            mod._parameters[attr] = p


def loss_with(model, params: Optional[Params], batch: Batch) -> Tuple[torch.Tensor, torch.Tensor]:
    """The space's loss of a batch, `model.loss(batch) -> (loss, output)`, with `params`
    substituted and BatchNorm running statistics left untouched."""
    with model.frozen_bn_stats(), substituted(model, params):
        return model.loss(batch)


def virtual_step(model, batch: Batch, xi: float, momentum: float, weight_decay: float,
                 momentum_buffers: Optional[Params] = None, max_norm: Optional[float] = None,
                 reduce: Optional[Reduce] = None) -> Params:
    """w' = w - xi * (momentum * buf + dL_train/dw + weight_decay * w), detached; with
    `max_norm`, dL_train/dw is first clipped to that total norm (the recurrent reference
    code does, so that its large learning rate does not throw w' far away). `reduce`
    (data parallel: the mean over ranks) is applied to dL_train/dw before anything else."""
    w = weight_dict(model)
    names, ws = list(w), [p.detach() for p in w.values()]
    loss, _ = loss_with(model, None, batch)
    grads = torch.autograd.grad(loss, list(w.values()))
    if reduce is not None:                              # data parallel: the whole batch's dL_train/dw
        grads = reduce(grads)
    if max_norm is not None:
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        grads = torch._foreach_mul(grads, (max_norm / (norm + 1e-6)).clamp(max=1.0))
    d = torch._foreach_add(grads, ws, alpha=weight_decay)
    if momentum_buffers:
        have = [i for i, n in enumerate(names) if n in momentum_buffers]
        torch._foreach_add_([d[i] for i in have], [momentum_buffers[names[i]] for i in have],
                            alpha=momentum)
    new = torch._foreach_add(ws, d, alpha=-xi)
    return {n: t.requires_grad_(True) for n, t in zip(names, new)}


def _grads(output, inputs) -> List[torch.Tensor]:
    """autograd.grad with zeros for inputs the output does not use (e.g. the alpha of a cell type
    that no cell of the network uses)."""
    inputs = list(inputs)
    grads = torch.autograd.grad(output, inputs, allow_unused=True)
    return [torch.zeros_like(i) if g is None else g for i, g in zip(inputs, grads)]


def _alpha_grads_at(model, params: Params, batch: Batch) -> List[torch.Tensor]:
    loss, _ = loss_with(model, params, batch)
    return _grads(loss, model.arch_parameters())


def finite_difference_terms(model, batch: Batch, v: Sequence[torch.Tensor], eps_scale: float = 0.01):
    """dL_train/dalpha at w + eps v and w - eps v, with eps = eps_scale / ||v||.

    Returns (grads_plus, grads_minus, eps); eps is a 0-dim tensor (no host sync)."""
    w = weight_dict(model)
    ws = [p.detach() for p in w.values()]
    v = [t.detach() for t in v]
    norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(v)))
    eps = eps_scale / norm.clamp_min(1e-12)
    ev = torch._foreach_mul(v, eps)
    plus = dict(zip(w, torch._foreach_add(ws, ev)))
    minus = dict(zip(w, torch._foreach_sub(ws, ev)))
    # always in the weights' precision: an eps-sized step vanishes when autocast rounds to bf16
    with torch.autocast(ws[0].device.type, enabled=False):
        return _alpha_grads_at(model, plus, batch), _alpha_grads_at(model, minus, batch), eps


def hvp_finite_difference(model, batch: Batch, v: Sequence[torch.Tensor],
                          eps_scale: float = 0.01, reduce: Optional[Reduce] = None) -> List[torch.Tensor]:
    """(d^2 L_train / dalpha dw) . v by central differences (DARTS eq. 8); `reduce` (data
    parallel) averages the product over ranks (it is linear in the batch's loss)."""
    gp, gn, eps = finite_difference_terms(model, batch, v, eps_scale)
    h = [(p - n) / (2 * eps) for p, n in zip(gp, gn)]
    return h if reduce is None else reduce(h)


def hvp_exact(model, batch: Batch, v: Sequence[torch.Tensor], reduce: Optional[Reduce] = None) -> List[torch.Tensor]:
    """(d^2 L_train / dalpha dw) . v by double backward; `reduce` as in hvp_finite_difference."""
    w = weight_dict(model)
    loss, _ = loss_with(model, None, batch)
    g = torch.autograd.grad(loss, list(w.values()), create_graph=True)
    dot = sum((gi * vi.detach()).sum() for gi, vi in zip(g, v))
    h = _grads(dot, model.arch_parameters())
    return h if reduce is None else reduce(h)


def arch_gradient(model, train_batch: Batch, val_batch: Batch, order: int = 1, hvp: str = "finite",
                  xi: float = 0.025, momentum: float = 0.9, weight_decay: float = 3e-4,
                  momentum_buffers: Optional[Params] = None, eps_scale: float = 0.01,
                  unrolled_clip: Optional[float] = None, loss_scale: Optional[float] = None,
                  reduce: Optional[Reduce] = None):
    """Gradient of the validation loss with respect to the alphas.

    order 1: dL_val(w, alpha)/dalpha.
    order 2: dL_val(w', alpha)/dalpha - xi * H, w' the virtual SGD step, H the
    Hessian-vector product with v = dL_val(w')/dw' (finite differences or exact).
    Returns (grads for model.arch_parameters(), val_loss, val_output), all detached.
    With `loss_scale` s (fp16's gradient scaler) the validation loss is multiplied by s
    before its backward pass and the returned gradients are s times the true ones (the
    scaler unscales them and skips the step if they overflowed).
    `reduce` (data parallel, `distributed.all_reduce_mean`; None: the identity) averages
    every gradient taken here over the ranks, each on its shard of the batches: the virtual
    step's dL_train/dw, (dL_val/dalpha, v) together, and the Hessian-vector product; so
    every rank gets the single-process result on the whole batch.
    """
    alphas = model.arch_parameters()
    s = 1.0 if loss_scale is None else loss_scale
    if order == 1:
        loss, logits = loss_with(model, None, val_batch)
        grads = _grads(loss * s if loss_scale is not None else loss, alphas)
        return (grads if reduce is None else reduce(grads)), loss.detach(), logits.detach()
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    if hvp not in HVP_MODES:
        raise ValueError(f"hvp must be one of {HVP_MODES}, got {hvp!r}")
    w_virtual = virtual_step(model, train_batch, xi, momentum, weight_decay, momentum_buffers, unrolled_clip,
                             reduce=reduce)
    loss, logits = loss_with(model, w_virtual, val_batch)
    grads = _grads(loss * s if loss_scale is not None else loss, alphas + list(w_virtual.values()))
    if reduce is not None:                             # data parallel: one collective for both
        grads = reduce(grads)
    d_alpha, v = grads[:len(alphas)], grads[len(alphas):]
    if loss_scale is not None:
        v = [g / s for g in v]                         # the HVP's direction: the true dL_val/dw'
        xi = xi * s                                    # so that xi * H is scaled like d_alpha
    if hvp == "finite":
        h = hvp_finite_difference(model, train_batch, v, eps_scale, reduce=reduce)
    else:
        h = hvp_exact(model, train_batch, v, reduce=reduce)
    return [da - xi * hi for da, hi in zip(d_alpha, h)], loss.detach(), logits.detach()
