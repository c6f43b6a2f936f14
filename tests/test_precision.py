"""bf16 autocast: alphas and their softmax stay in the weights' precision, the
finite-difference terms run unrounded, and a bf16 search runs every order."""
import pytest
import torch
import torch.nn.functional as F

from dartsviz import Search, SearchConfig
from dartsviz.bilevel import finite_difference_terms, forward_with, substituted
from dartsviz.spaces.cnn.fastnet import FastSearchNetwork
from dartsviz.spaces.cnn.supernet import SearchNetwork, edge_weights


def _batch(seed, B=16, H=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, 1, H, H, generator=g), torch.randint(0, 10, (B,), generator=g)


def test_edge_weights_ignore_autocast():
    alpha = 1e-3 * torch.randn(14, 8, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        w = edge_weights(alpha)
        rounded = F.softmax(alpha.to(torch.bfloat16), -1)
    assert w.dtype == torch.float32
    torch.testing.assert_close(w, F.softmax(alpha, -1), rtol=0, atol=0)
    assert not torch.equal(rounded.float(), w)        # what bf16 would have made of them


@pytest.mark.parametrize("H", [8, 16])       # 16x16: the fast path's channels_last stages
@pytest.mark.parametrize("cls", [SearchNetwork, FastSearchNetwork])
def test_bf16_forward_and_alpha_gradient_track_fp32(cls, H):
    torch.manual_seed(0)
    net = cls(8, 10, 3, 1)
    x, y = _batch(1, H=H)
    g32 = torch.autograd.grad(F.cross_entropy(net(x), y), net.arch_parameters())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = net(x)
        loss = F.cross_entropy(logits, y)
    g16 = torch.autograd.grad(loss, net.arch_parameters())
    assert logits.dtype == torch.bfloat16
    assert all(g.dtype == torch.float32 for g in g16)
    for a, b in zip(g16, g32):
        assert F.cosine_similarity(a.flatten(), b.flatten(), 0) > 0.95
    net.eval()                                         # running statistics (fp32) on bf16 inputs
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ev16 = net(x)
    ev32 = net(x)
    assert F.cosine_similarity(ev16.float().flatten(), ev32.flatten(), 0) > 0.99


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
        SearchConfig.preset("tiny", precision="fp8")
    with pytest.raises(ValueError, match="float32"):
        SearchConfig.preset("tiny", precision="bf16", dtype="float64")


@pytest.mark.parametrize("precision,order", [("fp16", 1), ("fp16", 2), ("bf16", 1)])
def test_reduced_precision_searches_keep_alpha_and_its_softmax_in_fp32(precision, order):
    search = Search(SearchConfig.preset("tiny", layers=2, channels=4, batch_size=8, steps_per_epoch=3, epochs=1,
                                        device="cpu", warmup_epochs=0, precision=precision, order=order))
    before = [a.detach().clone() for a in search.model.arch_parameters()]
    records = [r for r in search.run() if r["kind"] == "step"]
    assert all(a.dtype == torch.float32 for a in search.model.arch_parameters())
    assert all(p.dtype == torch.float32 for p in search.model.probs().values())
    assert any(not torch.equal(a, b) for a, b in zip(search.model.arch_parameters(), before))   # alpha moved
    assert all(torch.isfinite(torch.tensor(r.losses["train"])) for r in records)
    assert search.w_scaler.is_enabled() == search.a_scaler.is_enabled() == (precision == "fp16")


def test_a_step_whose_scaled_gradients_overflow_moves_neither_alpha_nor_the_weights():
    search = Search(SearchConfig.preset("tiny", layers=2, channels=4, batch_size=8, steps_per_epoch=4, epochs=1,
                                        device="cpu", warmup_epochs=0, precision="fp16"))
    search.step()                                      # a normal step first: Adam and momentum have state
    alphas = [a.detach().clone() for a in search.model.arch_parameters()]
    weights = [w.detach().clone() for w in search.model.weight_parameters()]
    for scaler in (search.w_scaler, search.a_scaler):
        scaler.update(new_scale=3e38)                  # the scaled loss overflows float32
    search.step()
    assert all(torch.equal(a, b) for a, b in zip(search.model.arch_parameters(), alphas))
    assert all(torch.equal(w, b) for w, b in zip(search.model.weight_parameters(), weights))
    assert search.a_scaler.get_scale() < 3e38 and search.w_scaler.get_scale() < 3e38   # backed off
    for scaler in (search.w_scaler, search.a_scaler):
        scaler.update(new_scale=1024.0)
    search.step()                                      # with a sane scale the next step moves again
    assert any(not torch.equal(a, b) for a, b in zip(search.model.arch_parameters(), alphas))


def test_fp16_needs_float32_weights():
    with pytest.raises(ValueError, match="precision fp16 autocasts float32 weights"):
        SearchConfig.preset("tiny", precision="fp16", dtype="float64")
