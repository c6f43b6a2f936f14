import pytest
import torch

from dartsviz.spaces.cnn.ops import OPS, PRIMITIVES, make_op


@pytest.mark.parametrize("name", PRIMITIVES)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [8, 7, 32])
def test_op_keeps_shape_at_stride_1_and_halves_at_stride_2(name, stride, size):
    op = make_op(name, 6, stride, affine=False)
    x = torch.randn(3, 6, size, size)
    y = op(x)
    expected = size if stride == 1 else (size + 1) // 2
    assert y.shape == (3, 6, expected, expected)


def test_registry_has_the_eight_primitives_in_order():
    assert PRIMITIVES == ["none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
                          "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]
    assert set(OPS) == set(PRIMITIVES)


def test_none_is_zero_and_skip_is_identity():
    x = torch.randn(2, 4, 8, 8)
    assert torch.equal(make_op("none", 4, 1, False)(x), torch.zeros_like(x))
    assert torch.equal(make_op("skip_connect", 4, 1, False)(x), x)


def test_search_ops_have_no_affine_batchnorm_and_eval_ops_do():
    for name in PRIMITIVES:
        for affine in (False, True):
            bns = [m for m in make_op(name, 4, 2, affine).modules() if isinstance(m, torch.nn.BatchNorm2d)]
            assert all(bn.affine == affine for bn in bns)


def test_sep_conv_strides_only_its_first_depthwise_conv():
    op = make_op("sep_conv_3x3", 4, 2, affine=False)
    convs = [m for m in op.modules() if isinstance(m, torch.nn.Conv2d) and m.groups == 4]
    assert [c.stride for c in convs] == [(2, 2), (1, 1)]


def test_unknown_op_raises_a_clear_error():
    with pytest.raises(ValueError, match="unknown op 'conv_7x7'"):
        make_op("conv_7x7", 4, 1, False)


@pytest.mark.parametrize("name", ["max_pool_3x3", "avg_pool_3x3"])
def test_pooling_ends_in_a_batchnorm_in_the_search_network_only(name):
    # the authors' MixedOp appends BatchNorm2d(affine=False) to pooling; their evaluation ops are bare pools
    bns = lambda op: [m for m in op.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    search, evaluation = make_op(name, 4, 1, affine=False), make_op(name, 4, 1, affine=True)
    assert len(bns(search)) == 1 and not bns(search)[0].affine
    assert bns(evaluation) == [] and sum(p.numel() for p in evaluation.parameters()) == 0
    x = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(evaluation(x), search.pool(x))
