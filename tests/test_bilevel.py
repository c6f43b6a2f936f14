import copy

import pytest
import torch

from dartsviz.bilevel import (arch_gradient, finite_difference_terms, hvp_exact, hvp_finite_difference,
                              loss_with, weight_dict)
from dartsviz.spaces.cnn.supernet import SearchNetwork


def _rel(a, b):
    a, b = torch.cat([t.flatten() for t in a]), torch.cat([t.flatten() for t in b])
    return float((a - b).norm() / b.norm())


@pytest.fixture
def setup():
    torch.manual_seed(0)
    net = SearchNetwork(C=4, num_classes=10, layers=3, in_channels=1, alpha_init_std=0.5).double()
    g = torch.Generator().manual_seed(1)
    batch = lambda: (torch.randn(8, 1, 8, 8, generator=g, dtype=torch.float64), torch.randint(0, 10, (8,), generator=g))
    train, val = batch(), batch()
    # a random direction like dL_val/dw'
    v = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in net.weight_parameters()]
    return net, train, val, v


# In float64 a small eps keeps w +- eps v on the same side of every ReLU and max-pool
# switch; at DARTS's eps = 0.01 / ||v|| a tiny network crosses some of them and the
# estimate is off by O(1) (see notebook 3), which is why this test sets eps_scale.
EPS_SCALE = 1e-6


def test_finite_difference_hvp_matches_exact_and_catches_the_misplaced_eps(setup):
    net, train, _, v = setup
    exact = hvp_exact(net, train, v)
    fd = hvp_finite_difference(net, train, v, eps_scale=EPS_SCALE)
    assert _rel(fd, exact) < 1e-2
    # the widely copied bug `(p - n) / 2.*eps` multiplies by eps instead of dividing: this test catches it
    gp, gn, eps = finite_difference_terms(net, train, v, eps_scale=EPS_SCALE)
    buggy = [(p - n) / 2 * eps for p, n in zip(gp, gn)]
    assert _rel(buggy, exact) > 1e-2


def test_exact_hvp_matches_a_slow_column_by_column_oracle(setup, hvp_entry_oracle):
    net, train, _, v = setup
    # H . v = d/dalpha <dL/dw, v>; check against finite differences in alpha of <dL/dw, v>
    exact = hvp_exact(net, train, v)
    for idx in [(0, 4), (3, 1), (13, 7)]:
        slow = hvp_entry_oracle(net, train, v, net.alpha_normal, idx)
        assert slow == pytest.approx(float(exact[0][idx]), rel=1e-4, abs=1e-8)


def test_first_order_gradient_equals_autograd_on_the_validation_loss(setup):
    net, train, val, _ = setup
    grads, loss, _ = arch_gradient(net, train, val, order=1)
    logits = net(val[0])
    expected = torch.autograd.grad(torch.nn.functional.cross_entropy(logits, val[1]), net.arch_parameters())
    torch.testing.assert_close(grads, list(expected))


@pytest.mark.parametrize("with_momentum", [False, True])
def test_second_order_exact_equals_differentiating_through_the_unrolled_step(setup, with_momentum):
    net, train, val, _ = setup
    xi, mom, wd = 0.05, 0.9, 3e-4
    w = weight_dict(net)
    bufs = {n: torch.randn_like(p) for n, p in w.items()} if with_momentum else None
    grads, _, _ = arch_gradient(net, train, val, order=2, hvp="exact", xi=xi, momentum=mom,
                                weight_decay=wd, momentum_buffers=bufs)
    # oracle: w'(alpha) kept in the graph, then d L_val(w'(alpha), alpha) / d alpha
    loss_t, _ = loss_with(net, None, train)
    g = torch.autograd.grad(loss_t, list(w.values()), create_graph=True)
    unrolled = {}
    for (n, p), gi in zip(w.items(), g):
        d = gi + wd * p.detach() + (mom * bufs[n] if bufs else 0)
        unrolled[n] = p.detach() - xi * d
    loss_v, _ = loss_with(net, unrolled, val)
    oracle = torch.autograd.grad(loss_v, net.arch_parameters())
    torch.testing.assert_close(grads, list(oracle), rtol=1e-9, atol=1e-12)
    fd, _, _ = arch_gradient(net, train, val, order=2, hvp="finite", xi=xi, momentum=mom,
                             weight_decay=wd, momentum_buffers=bufs, eps_scale=EPS_SCALE)
    assert _rel(fd, oracle) < 1e-3


def test_arch_gradient_leaves_weights_and_batchnorm_statistics_untouched(setup):
    net, train, val, _ = setup
    before = copy.deepcopy(net.state_dict())
    for order, hvp in [(1, "finite"), (2, "finite"), (2, "exact")]:
        arch_gradient(net, train, val, order=order, hvp=hvp, xi=0.1)
        after = net.state_dict()
        for k in before:
            assert torch.equal(before[k], after[k]), (order, hvp, k)


def test_bad_order_or_hvp_is_rejected(setup):
    net, train, val, _ = setup
    with pytest.raises(ValueError, match="order"):
        arch_gradient(net, train, val, order=3)
    with pytest.raises(ValueError, match="hvp"):
        arch_gradient(net, train, val, order=2, hvp="magic")


def test_a_clipped_virtual_step_clips_the_training_gradient_first(setup):
    from dartsviz.bilevel import virtual_step
    net, train, val, _ = setup
    w = weight_dict(net)
    loss, _ = loss_with(net, None, train)
    grads = torch.autograd.grad(loss, list(w.values()))
    norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))
    clip = float(norm) / 4                                          # the clip binds
    out = virtual_step(net, train, xi=0.5, momentum=0.0, weight_decay=0.0, max_norm=clip)
    for (name, p), g in zip(w.items(), grads):
        torch.testing.assert_close(out[name], p.detach() - 0.5 * g * clip / (float(norm) + 1e-6))
    loose = virtual_step(net, train, xi=0.5, momentum=0.0, weight_decay=0.0, max_norm=10 * float(norm))
    for (name, p), g in zip(w.items(), grads):                      # a loose clip changes nothing
        torch.testing.assert_close(loose[name], p.detach() - 0.5 * g)
