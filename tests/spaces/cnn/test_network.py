"""The evaluation network: builds for any genotype, drop-path and auxiliary head only in training,
parameter and multiply-add counts against straightforward computations."""

import pytest
import torch
import torch.nn as nn

from dartsviz import DARTS_V1, DARTS_V2, Genotype, derive, random_genotype
from dartsviz.spaces.cnn.network import AuxiliaryHead, NetworkEval, count_macs, cutout, drop_path

torch.set_num_threads(1)


def _derived():
    g = torch.Generator().manual_seed(0)
    return derive(torch.rand(14, 8, generator=g).softmax(-1), torch.rand(14, 8, generator=g).softmax(-1))


GENOTYPES = {"DARTS_V1": DARTS_V1, "DARTS_V2": DARTS_V2, "derived": _derived(), "random": random_genotype(3)}
SHAPES = {"digits": (1, 8), "cifar": (3, 32)}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", GENOTYPES)
def test_network_builds_and_runs(name, shape):
    in_ch, size = SHAPES[shape]
    torch.manual_seed(0)
    net = NetworkEval(GENOTYPES[name], C=8, num_classes=10, layers=3, auxiliary=True,
                      in_channels=in_ch, image_size=size, aux_widths=(16, 32))
    x = torch.randn(4, in_ch, size, size)
    net.eval()
    logits = net(x)
    assert isinstance(logits, torch.Tensor) and logits.shape == (4, 10)
    net.train()
    logits, logits_aux = net(x)
    assert logits.shape == (4, 10) and logits_aux.shape == (4, 10)
    assert torch.isfinite(logits).all() and torch.isfinite(logits_aux).all()


def test_reduction_cells_at_one_and_two_thirds_double_channels():
    net = NetworkEval(DARTS_V2, C=8, layers=8, auxiliary=False, in_channels=1, image_size=8)
    assert [i for i, c in enumerate(net.cells) if c.reduction] == [8 // 3, 2 * 8 // 3]
    sizes = []
    hooks = [c.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[1:]))) for c in net.cells]
    net.eval()(torch.randn(2, 1, 8, 8))
    for h in hooks:
        h.remove()
    # 4 nodes concatenated: 4*C, then 4*2C at 4x4 after cell 2, 4*4C at 2x2 after cell 5
    assert sizes == [(32, 8, 8)] * 2 + [(64, 4, 4)] * 3 + [(128, 2, 2)] * 3


def test_auxiliary_logits_only_in_training_and_only_when_asked():
    x = torch.randn(3, 3, 32, 32)
    net = NetworkEval(DARTS_V1, C=8, layers=3, auxiliary=True, aux_widths=(16, 32))
    assert isinstance(net.eval()(x), torch.Tensor)
    assert isinstance(net.train()(x), tuple)
    plain = NetworkEval(DARTS_V1, C=8, layers=3, auxiliary=False)
    assert plain.auxiliary_head is None
    assert isinstance(plain.train()(x), torch.Tensor)


def test_auxiliary_head_sits_at_two_thirds_depth():
    net = NetworkEval(DARTS_V2, C=8, layers=6, auxiliary=True, aux_widths=(16, 32))
    seen = {}
    net.cells[2 * 6 // 3].register_forward_hook(lambda m, i, o: seen.setdefault("cell", o))
    net.auxiliary_head.register_forward_pre_hook(lambda m, i: seen.setdefault("aux_in", i[0]))
    net.train()(torch.randn(2, 3, 32, 32))
    assert seen["aux_in"] is seen["cell"]
    # the CIFAR head: 8x8 input, pool 5 stride 3 -> 2x2, then a 2x2 conv
    head = AuxiliaryHead(64, 10, size=8)
    assert head(torch.randn(2, 64, 8, 8)).shape == (2, 10)


def test_drop_path_identity_in_eval_and_active_in_training():
    torch.manual_seed(0)
    net = NetworkEval(DARTS_V2, C=8, layers=3, auxiliary=False, in_channels=1, image_size=8)
    x = torch.randn(8, 1, 8, 8)
    net.eval()
    net.drop_path_prob = 0.0
    ref = net(x)
    net.drop_path_prob = 0.5
    torch.testing.assert_close(net(x), ref, rtol=0, atol=0)
    net.train()
    net.drop_path_prob = 0.0
    a, b = net(x), net(x)
    torch.testing.assert_close(a, b)               # no randomness without drop-path
    net.drop_path_prob = 0.5
    assert not torch.allclose(net(x), a)


def test_drop_path_zeros_whole_samples_and_rescales():
    torch.manual_seed(1)
    x = torch.randn(400, 2, 3, 3) + 5.0
    y = drop_path(x, 0.25)
    ratio = (y / x).flatten(1)                      # (B, 18)
    kept = ratio[:, 0] != 0
    # each sample is either all zero or all scaled by 1 / (1 - p)
    assert torch.all(ratio[~kept] == 0)
    torch.testing.assert_close(ratio[kept], torch.full_like(ratio[kept], 1 / 0.75))
    assert 0.65 < kept.float().mean() < 0.85
    assert drop_path(x, 0.0) is x


def test_parameter_count_matches_direct_sum_and_paper(shape_count):
    # the authors' evaluation network: 3,349,342 parameters (the paper prints 3.3M)
    net = NetworkEval(DARTS_V2, C=36, num_classes=10, layers=20, auxiliary=True)
    direct = sum(p.numel() for n, p in net.named_parameters() if "auxiliary" not in n)
    assert net.num_parameters() == direct
    assert net.num_parameters(auxiliary=True) == sum(p.numel() for p in net.parameters())
    assert net.num_parameters() == shape_count(DARTS_V2, C=36, layers=20, num_classes=10) == 3_349_342
    macs = count_macs(net, (3, 32, 32))
    assert 4.5e8 < macs < 6.0e8                              # about 0.53 G multiply-adds


def test_count_macs_against_hand_count():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1, groups=4),
                          nn.Conv2d(4, 6, 1, stride=2), nn.Flatten(), nn.Linear(6 * 3 * 3, 7))
    expected = 25 * 4 * 3 * 9 + 25 * 4 * 1 * 9 + 9 * 6 * 4 + 54 * 7
    assert count_macs(model, (3, 5, 5)) == expected


def _cutout_loop(x, length, centres):
    out = x.clone()
    H, W = x.shape[-2:]
    for i, (cy, cx) in enumerate(centres):
        y1, y2 = max(cy - length // 2, 0), min(cy + length // 2, H)
        x1, x2 = max(cx - length // 2, 0), min(cx + length // 2, W)
        out[i, :, y1:y2, x1:x2] = 0
    return out


def test_cutout_matches_loop_and_resumes_from_generator_state():
    x = torch.randn(16, 3, 12, 12) + 3
    g = torch.Generator().manual_seed(5)
    state = g.get_state()
    y = cutout(x, 6, g)
    g2 = torch.Generator().manual_seed(5)
    cy = torch.randint(0, 12, (16,), generator=g2)
    cx = torch.randint(0, 12, (16,), generator=g2)
    torch.testing.assert_close(y, _cutout_loop(x, 6, list(zip(cy.tolist(), cx.tolist()))), rtol=0, atol=0)
    g.set_state(state)
    torch.testing.assert_close(cutout(x, 6, g), y, rtol=0, atol=0)
    assert cutout(x, 0, g) is x


def test_custom_concat_and_three_input_nodes():
    g = Genotype(((("sep_conv_3x3", 0), ("skip_connect", 1), ("max_pool_3x3", 1)), (("dil_conv_3x3", 2),)),
                 (2, 3), ((("avg_pool_3x3", 0),), (("skip_connect", 2), ("sep_conv_5x5", 1))), (3,))
    net = NetworkEval(g, C=4, layers=3, auxiliary=True, in_channels=1, image_size=8, aux_widths=(8, 8))
    assert net.eval()(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_not_a_genotype_or_odd_channels_is_a_clear_error():
    with pytest.raises(ValueError, match="needs a Genotype"):
        NetworkEval("DARTS_V2")
    with pytest.raises(ValueError, match="even"):
        NetworkEval(DARTS_V2, C=5)
