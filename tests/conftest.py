import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(min(2, torch.get_num_threads()))

# The modules that hold the longest tests (notebooks run twice, browsers, torchrun, the presets'
# budgets), collected first: with `-n 2` the workers start on them and the short tests fill in
# around them, so that both workers finish together (longest first) instead of one waiting on a
# notebook at the end. The order within a module is kept.
LONG_FIRST = ("test_notebooks.py", "test_browser.py", "test_distributed.py", "test_bench.py", "test_search.py",
              "test_rnn_search.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FIRST)))


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


def _eval_cell_params(genotype, C_pp, C_p, C, reduction, reduction_prev):
    """The parameters of one evaluation cell, from the layer shapes of the authors' code."""
    bn = lambda c: 2 * c                                   # affine BatchNorm: weight and bias
    n = C_pp * C + bn(C)       # preprocess0: a 1x1 conv, or FactorizedReduce's two C_pp x C/2 convs: the same count
    n += C_p * C + bn(C)                                   # preprocess1: 1x1 conv
    nodes = genotype.reduce if reduction else genotype.normal
    for op, src in (edge for node in nodes for edge in node):
        stride = 2 if reduction and src < 2 else 1
        k = int(op[-1]) if "conv" in op else 0
        if op.startswith("sep_conv"):
            n += 2 * (C * k * k + C * C + bn(C))           # two (depthwise, pointwise, BN) blocks
        elif op.startswith("dil_conv"):
            n += C * k * k + C * C + bn(C)
        elif op == "skip_connect" and stride == 2:
            n += C * C + bn(C)                             # FactorizedReduce(C, C)
        # none, pooling and the identity have no parameters
    return n


def _cells_params(genotype, C_stem, C, layers, reduction_prev):
    C_pp = C_p = C_stem
    total = 0
    for i in range(layers):
        reduction = i in (layers // 3, 2 * layers // 3)
        C = 2 * C if reduction else C
        total += _eval_cell_params(genotype, C_pp, C_p, C, reduction, reduction_prev)
        reduction_prev = reduction
        C_pp, C_p = C_p, len(genotype.concat("reduce" if reduction else "normal")) * C
    return total, C_p


@pytest.fixture
def shape_count():
    """Parameters of NetworkEval (`imagenet=False`) or NetworkImageNet, counted from layer shapes
    (no auxiliary head): an oracle independent of the modules."""
    def count(genotype, C, layers, num_classes, imagenet=False, in_channels=3):
        if imagenet:   # stem0: conv 3->C/2, BN, conv C/2->C, BN; stem1: conv C->C, BN
            stem = in_channels * (C // 2) * 9 + C + (C // 2) * C * 9 + 2 * C + C * C * 9 + 2 * C
            cells, C_final = _cells_params(genotype, C, C, layers, reduction_prev=True)
        else:          # stem: conv 3->3C, BN
            stem = in_channels * 3 * C * 9 + 2 * 3 * C
            cells, C_final = _cells_params(genotype, 3 * C, C, layers, reduction_prev=False)
        return stem + cells + C_final * num_classes + num_classes
    return count


# ---- shared setups: views (test_dashboard, test_dashboard_variants) and run directories
# (test_cli_plot, test_viz_replay_compare) ----------------------------------------------------
VIEW_SEARCH = dict(layers=3, channels=4, batch_size=16, steps_per_epoch=3, epochs=2, warmup_epochs=0)
RUN_SEARCH = dict(layers=3, channels=4, batch_size=16, steps_per_epoch=2, epochs=2, warmup_epochs=0)


@pytest.fixture(scope="module")
def data():
    """The digits of a small search, loaded once per module."""
    from dartsviz.search import Search, SearchConfig
    return Search(SearchConfig.preset("tiny", **VIEW_SEARCH)).data


@pytest.fixture
def dash(data):
    """A Dashboard over a fresh small search (3 cells, 4 channels, 3 steps an epoch)."""
    from dartsviz.search import Search, SearchConfig
    from dartsviz.viz.dashboard import Dashboard
    return Dashboard(Search(SearchConfig.preset("tiny", **VIEW_SEARCH), data=data))


def widget_tree(w):
    """Every widget under `w`, `w` first."""
    yield w
    for c in getattr(w, "children", ()):
        yield from widget_tree(c)


@pytest.fixture
def tree():
    return widget_tree


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """Two finished searches written to run directories, first and second order, same seed and data."""
    from dartsviz.search import Search, SearchConfig
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("viz_runs")
    a = Search(SearchConfig.preset("tiny", order=1, **RUN_SEARCH), out=root / "o1")
    a.run()
    b = Search(SearchConfig.preset("tiny", order=2, **RUN_SEARCH), out=root / "o2", data=a.data)
    b.run()
    return root / "o1", root / "o2"


def differing_edges(genotypes, space) -> int:
    """How many (cell type, kept edge) pairs the genotypes do not all keep with the same op."""
    n = 0
    for cell in space.cell_types:
        kept = [{(s, d): op for s, d, op in space.kept_edges(g, cell)} for g in genotypes]
        n += sum(len({k.get(e) for k in kept}) > 1 for e in set().union(*kept))
    return n


@pytest.fixture
def expected_differences():
    """The exact text Compare's differences panel starts with, from the genotypes alone."""
    def text(genotypes, space):
        n = differing_edges(genotypes, space)
        return f"<p><b>{n} kept edge(s) differ</b></p>" if n else "<p><b>The derived cells are identical.</b></p>"
    return text
