import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def tiny_overrides():
    """A search small enough for a unit test: 3 cells (normal, reduce, reduce), 4 channels, 3 steps per epoch."""
    return dict(layers=3, channels=4, batch_size=16, steps_per_epoch=3, epochs=2, warmup_epochs=0)


class HostReads:
    """Records every op that reads a tensor value to the host (.item(), float(), bool(),
    nonzero, ...): on CUDA each waits for the GPU. Tensors in `exempt` (by identity) are
    not counted."""

    OPS = {"_local_scalar_dense", "nonzero", "masked_select", "_unique2", "unique_dim",
           "unique_consecutive", "repeat_interleave", "equal", "is_nonzero"}

    def __init__(self, exempt=()):
        from torch.utils._python_dispatch import TorchDispatchMode
        ids, hits = {id(t) for t in exempt}, []

        class Spy(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                if func._schema.name.split("::")[-1] in HostReads.OPS and not (args and id(args[0]) in ids):
                    hits.append(str(func))
                return func(*args, **(kwargs or {}))
        self.mode, self.hits = Spy(), hits

    def __enter__(self):
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        return self.mode.__exit__(*exc)


@pytest.fixture
def host_reads():
    return HostReads


def _hvp_entry_by_differences(model, batch, v, alpha, idx, h=1e-6):
    """One entry of (d^2 L / dalpha dw) . v, slowly: d/dalpha[idx] of <dL/dw, v> by central
    differences in that one alpha entry (alpha is restored)."""
    from dartsviz.bilevel import loss_with

    def inner():                                                       # <dL/dw, v>
        loss, _ = loss_with(model, None, batch)
        g = torch.autograd.grad(loss, model.weight_parameters())
        return sum((gi * vi).sum() for gi, vi in zip(g, v))
    with torch.no_grad():
        alpha[idx] += h
    up = inner()
    with torch.no_grad():
        alpha[idx] -= 2 * h
    down = inner()
    with torch.no_grad():
        alpha[idx] += h
    return float((up - down) / (2 * h))


@pytest.fixture
def hvp_entry_oracle():
    return _hvp_entry_by_differences
