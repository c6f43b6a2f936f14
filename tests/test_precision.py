"""bf16 autocast: alphas and their softmax stay in the weights' precision, the
finite-difference terms run unrounded, and a bf16 search runs every order."""
import pytest
import torch
import torch.nn.functional as F

from dartsviz import Search, SearchConfig
from dartsviz.bilevel import finite_difference_terms, forward_with, substituted
from dartsviz.spaces.cnn.fastnet import FastSearchNetwork
from dartsviz.spaces.cnn.supernet import SearchNetwork, edge_weights


def _batch(seed, B=16):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, 1, 8, 8, generator=g), torch.randint(0, 10, (B,), generator=g)


def test_edge_weights_ignore_autocast():
    alpha = 1e-3 * torch.randn(14, 8, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        w = edge_weights(alpha)
        rounded = F.softmax(alpha.to(torch.bfloat16), -1)
    assert w.dtype == torch.float32
    torch.testing.assert_close(w, F.softmax(alpha, -1), rtol=0, atol=0)
    assert not torch.equal(rounded.float(), w)        # what bf16 would have made of them


@pytest.mark.parametrize("cls", [SearchNetwork, FastSearchNetwork])
def test_bf16_forward_and_alpha_gradient_track_fp32(cls):
    torch.manual_seed(0)
    net = cls(8, 10, 3, 1)
    x, y = _batch(1)
    g32 = torch.autograd.grad(F.cross_entropy(net(x), y), net.arch_parameters())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = net(x)
        loss = F.cross_entropy(logits, y)
    g16 = torch.autograd.grad(loss, net.arch_parameters())
    assert logits.dtype == torch.bfloat16
    assert all(g.dtype == torch.float32 for g in g16)
    for a, b in zip(g16, g32):
        assert F.cosine_similarity(a.flatten(), b.flatten(), 0) > 0.95


def test_finite_difference_terms_are_not_rounded_by_an_outer_autocast():
    torch.manual_seed(0)
    net = FastSearchNetwork(4, 10, 3, 1)
    batch = _batch(2)
    v = [torch.randn_like(p) for p in net.weight_parameters()]
    gp, gn, eps = finite_difference_terms(net, batch, v)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gp16, gn16, eps16 = finite_difference_terms(net, batch, v)
    for a, b in zip(gp + gn, gp16 + gn16):
        assert torch.equal(a, b)


def test_substituted_parameters_carry_gradients_and_are_put_back():
    torch.manual_seed(0)
    net = FastSearchNetwork(4, 10, 3, 1)
    x, y = _batch(3)
    name, p = next(iter(net.named_weight_parameters()))
    other = (p.detach() * 2).requires_grad_(True)
    before = net(x)
    out = forward_with(net, {name: other}, x)
    assert not torch.allclose(out, before)
    (g,) = torch.autograd.grad(F.cross_entropy(out, y), other)
    assert g.abs().sum() > 0
    assert dict(net.named_parameters())[name] is p
    torch.testing.assert_close(net(x), before, rtol=0, atol=0)
    with pytest.raises(KeyError, match="no parameter"):
        with substituted(net, {"not.a.weight": other}):
            pass
    assert dict(net.named_parameters())[name] is p


@pytest.mark.parametrize("order,hvp", [(1, "finite"), (2, "finite"), (2, "exact")])
def test_a_bf16_search_runs_and_keeps_fp32_alphas(tiny_overrides, order, hvp):
    s = Search(SearchConfig.preset("tiny", **tiny_overrides, order=order, hvp=hvp, precision="bf16"))
    start = [a.detach().clone() for a in s.model.arch_parameters()]
    recs = [s.step() for _ in range(2)]
    assert all(a.dtype == torch.float32 for a in s.model.arch_parameters())
    assert all(torch.isfinite(torch.tensor([r["train_loss"], r["val_loss"]])).all() for r in recs)
    assert any(not torch.equal(a, b) for a, b in zip(start, s.model.arch_parameters()))
    test = s.evaluate("test")
    assert test["loss"] > 0 and 0 <= test["acc"] <= 1


def test_precision_is_validated():
    with pytest.raises(ValueError, match="precision"):
        SearchConfig.preset("tiny", precision="fp16")
    with pytest.raises(ValueError, match="float32"):
        SearchConfig.preset("tiny", precision="bf16", dtype="float64")
