import pytest
import torch

from dartsviz.spaces.cnn.genotype import edges_of
from dartsviz.spaces.cnn.ops import PRIMITIVES
from dartsviz.spaces.cnn.supernet import MixedOp, SearchNetwork


@pytest.mark.parametrize("k", range(len(PRIMITIVES)))
@pytest.mark.parametrize("stride", [1, 2])
def test_mixed_op_with_one_hot_weights_equals_the_op_alone(k, stride):
    torch.manual_seed(0)
    mixed = MixedOp(4, stride).double()
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    w = torch.zeros(len(PRIMITIVES), dtype=torch.float64)
    w[k] = 1.0
    torch.testing.assert_close(mixed(x, w), mixed.ops[k](x), rtol=0, atol=0)


def test_mixed_op_is_the_weighted_sum_of_its_ops():
    torch.manual_seed(1)
    mixed = MixedOp(4, 1).double()
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    w = torch.softmax(torch.randn(len(PRIMITIVES), dtype=torch.float64), 0)
    expected = torch.zeros_like(x)
    for wk, op in zip(w, mixed.ops):
        expected = expected + wk * op(x)
    torch.testing.assert_close(mixed(x, w), expected)


def test_alphas_are_registered_saved_moved_and_kept_apart():
    net = SearchNetwork(C=4, num_classes=10, layers=3, in_channels=1)
    n_edges = len(edges_of(4))
    assert net.alpha_normal.shape == (n_edges, len(PRIMITIVES)) == (14, 8)
    sd = net.state_dict()
    assert "alpha_normal" in sd and "alpha_reduce" in sd
    arch = {id(p) for p in net.arch_parameters()}
    weights = {id(p) for p in net.weight_parameters()}
    assert not arch & weights
    assert arch | weights == {id(p) for p in net.parameters()}
    net = net.double()
    assert net.alpha_normal.dtype == torch.float64
    assert isinstance(net.alpha_reduce, torch.nn.Parameter)


@pytest.mark.parametrize("layers,expected", [(8, [2, 5]), (5, [1, 3]), (3, [1, 2]), (2, [0, 1])])
def test_reductions_at_a_third_and_two_thirds(layers, expected):
    net = SearchNetwork(C=4, num_classes=10, layers=layers, in_channels=3)
    assert [i for i, c in enumerate(net.cells) if c.reduction] == expected


@pytest.mark.parametrize("shape,classes", [((1, 8, 8), 10), ((3, 32, 32), 10), ((1, 28, 28), 100)])
def test_network_follows_the_data_set(shape, classes):
    net = SearchNetwork(C=4, num_classes=classes, layers=3, in_channels=shape[0])
    out = net(torch.randn(2, *shape))
    assert out.shape == (2, classes)


def test_reduction_cell_uses_alpha_reduce_and_normal_cell_alpha_normal():
    torch.manual_seed(0)
    net = SearchNetwork(C=4, num_classes=10, layers=3, in_channels=1).double()
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    net(x).sum().backward()
    assert net.alpha_normal.grad.abs().sum() > 0 and net.alpha_reduce.grad.abs().sum() > 0
    net.zero_grad()
    net2 = SearchNetwork(C=4, num_classes=10, layers=2, in_channels=1)   # two reduction cells only
    net2(torch.randn(4, 1, 8, 8)).sum().backward()
    assert net2.alpha_normal.grad is None or net2.alpha_normal.grad.abs().sum() == 0


@pytest.mark.parametrize("nodes", [1, 2, 3, 5])
def test_any_number_of_nodes_concatenates_them_all_like_the_derived_cell(nodes):
    from dartsviz.spaces.cnn.network import NetworkEval
    torch.manual_seed(0)
    C, layers = 4, 3
    net = SearchNetwork(C=C, num_classes=10, layers=layers, in_channels=1, nodes=nodes)
    assert net.alpha_normal.shape == (len(edges_of(nodes)), len(PRIMITIVES))
    assert all(c.multiplier == nodes for c in net.cells)
    assert net.classifier.in_features == nodes * C * 4               # two reductions double C twice
    out = net(torch.randn(2, 1, 8, 8))
    assert out.shape == (2, 10)
    g = net.genotype()
    assert tuple(g.normal_concat) == tuple(g.reduce_concat) == tuple(range(2, 2 + nodes))
    evaluated = NetworkEval(g, C=C, num_classes=10, layers=layers, auxiliary=False, in_channels=1, image_size=8)
    assert evaluated.classifier.in_features == net.classifier.in_features   # the same cell outputs
    assert evaluated.eval()(torch.randn(2, 1, 8, 8)).shape == (2, 10)
