"""The recurrent cells and language models: parameter counts from the formulas, the search
cell against a slow transcription of the reference's loops, the search cell on one-hot
alphas against a genotype's cell, the carried hidden state, TAR, and the bilevel
Hessian-vector products of this space against slow oracles (float64)."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from dartsviz.bilevel import hvp_exact, hvp_finite_difference, loss_with
from dartsviz.spaces.rnn import (DARTS_RNN_V1, DARTS_RNN_V2, ENAS_RNN, PRIMITIVES, RNNModel, RNNSearchModel,
                                 count_parameters, edges_of)
from dartsviz.spaces.rnn.cell import ACTIVATION_FNS

V, H, T, B = 40, 6, 4, 3
NO_DROPOUT = dict(dropout=0.0, dropouth=0.0, dropoutx=0.0, dropouti=0.0, dropoute=0.0)


def _tokens(seed, shape=(T, B)):
    return torch.randint(0, V, shape, generator=torch.Generator().manual_seed(seed))


def test_parameter_counts_follow_the_formulas():
    search = RNNSearchModel(V, H)
    # embedding (tied decoder: its weight is the embedding) + decoder bias + W0 + 8 W_i; no biases, BN affine=False
    expected = V * H + V + (H + H) * (2 * H) + 8 * H * (2 * H)
    assert sum(p.numel() for p in search.weight_parameters()) == expected == count_parameters(V, H)
    assert [a.shape for a in search.arch_parameters()] == [(36, 5)] and len(search.alphas()) == 1
    assert not any(p is search.alpha_recurrent for p in search.weights())
    assert {k: tuple(v.shape) for k, v in search.probs().items()} == {"recurrent": (36, 5)}
    for g in (DARTS_RNN_V1, DARTS_RNN_V2):
        assert sum(p.numel() for p in RNNModel(V, H, g).parameters()) == expected
    assert sum(p.numel() for p in RNNModel(V, H, ENAS_RNN).parameters()) == count_parameters(V, H, steps=11)
    # the paper's sizes: about 4.8M in search (PTB, 300 wide) and 23M for the 850-wide final network
    assert round(count_parameters(10000, 300) / 1e6, 1) == 4.8
    assert round(count_parameters(10000, 850) / 1e6) == 23
    # every weight starts in ±0.04, the decoder bias at zero, the alphas at 1e-3 scale
    assert max(float(p.detach().abs().max()) for n, p in search.named_weight_parameters() if n != "decoder_bias") <= 0.04
    assert not search.decoder_bias.detach().any() and float(search.alpha_recurrent.detach().abs().max()) < 0.01


def _reference_step(cell, x, h_prev, x_mask, h_mask, probs):
    """One time step of the search cell written as the reference's loops: per (predecessor,
    op) pair s_j + σ(c_j)(f(h_j) - s_j), weighted and summed; BN on s0 and every node."""
    xh = torch.cat([x * x_mask, h_prev * h_mask], -1)
    c0, h0 = torch.split(xh.mm(cell.W0), H, -1)
    s0 = cell.bn(h_prev + c0.sigmoid() * (h0.tanh() - h_prev))
    states, offset = [s0], 0
    for i in range(8):
        s = torch.zeros_like(s0)
        for j, s_j in enumerate(states):
            c, h = torch.split((s_j * h_mask).mm(cell.Ws[i]), H, -1)
            for k, name in enumerate(PRIMITIVES):
                if name != "none":
                    s = s + probs[offset + j, k] * (s_j + c.sigmoid() * (ACTIVATION_FNS[name](h) - s_j))
        states.append(cell.bn(s))
        offset += i + 1
    return torch.stack(states[1:]).mean(0)


def test_the_search_cell_is_the_reference_sum_over_predecessors_and_ops():
    torch.manual_seed(0)
    model = RNNSearchModel(V, H, alpha_init_std=1.0).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, B, H, generator=g, dtype=torch.float64)
    h = torch.randn(B, H, generator=g, dtype=torch.float64)
    xm = (torch.rand(B, H, generator=g) < 0.5).double() * 2
    hm = (torch.rand(B, H, generator=g) < 0.7).double() / 0.7
    probs = F.softmax(model.alpha_recurrent, -1)
    out, last = model.cell(x, h, xm, hm, probs)                                       # (2, B, H), (B, H)
    expected = _reference_step(model.cell, x[1], _reference_step(model.cell, x[0], h, xm, hm, probs), xm, hm, probs)
    torch.testing.assert_close(last, expected, rtol=1e-12, atol=1e-12)


def _one_hot_alphas(genotype, big=60.0):
    """Logits whose softmax is one-hot (to 1e-26) on the genotype: the kept op on the kept
    edge, `none` on every other edge into a node."""
    alpha = torch.zeros(36, 5, dtype=torch.float64)
    keep = {(pred, node): op for pred, node, op in genotype.edges("recurrent")}
    for e, edge in enumerate(edges_of()):
        alpha[e, PRIMITIVES.index(keep.get(edge, "none"))] = big
    return alpha


@pytest.mark.parametrize("genotype", [DARTS_RNN_V2, DARTS_RNN_V1], ids=["V2", "V1"])
def test_a_search_cell_with_one_hot_alphas_is_the_genotypes_cell(genotype):
    torch.manual_seed(0)
    search = RNNSearchModel(V, H, **NO_DROPOUT).double()
    final = RNNModel(V, H, genotype, **NO_DROPOUT).double()
    missing, unexpected = final.load_state_dict(search.state_dict(), strict=False)
    assert missing == [] and set(unexpected) <= {"alpha_recurrent", "cell.bn.running_mean", "cell.bn.running_var",
                                                 "cell.bn.num_batches_tracked"}
    with torch.no_grad():
        search.alpha_recurrent.copy_(_one_hot_alphas(genotype))
    x, h0 = _tokens(3), torch.randn(B, H, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    # batch norm off: eval mode normalises with the fresh running statistics (mean 0, var 1),
    # which with eps = 0 is exactly the identity; eval mode also turns every dropout off
    search.cell.bn.eps = 0.0
    search.eval(), final.eval()
    lp_s, h_s = search(x, h0)                                                          # (T, B, V), (B, H)
    lp_f, h_f = final(x, h0)
    torch.testing.assert_close(lp_s, lp_f, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h_s, h_f, rtol=1e-12, atol=1e-12)
    # training mode with dropout: the same masks hit the same places in both cells
    # (BN removed from the search cell: in training mode it normalises with batch statistics)
    search.cell.bn = nn.Identity()
    search.train(), final.train()
    for m in (search, final):
        m.dropout, m.dropouth, m.dropoutx, m.dropouti, m.dropoute = 0.5, 0.3, 0.4, 0.2, 0.1
    masks = search.sample_masks(B)
    assert all(v is not None for v in masks.values())
    lp_s, h_s, raw_s = search.run(x, h0, masks)
    lp_f, h_f, raw_f = final.run(x, h0, masks)
    torch.testing.assert_close(lp_s, lp_f, rtol=1e-12, atol=1e-12)


def _model(**kw):
    torch.manual_seed(0)
    return RNNSearchModel(V, H, alpha_init_std=0.5, **{**dict(dropout=0.3, dropouth=0.2, dropoutx=0.3,
                                                               dropouti=0.1, dropoute=0.1), **kw}).double()


def test_a_loss_call_never_advances_the_carried_hidden_state_and_the_next_batch_continues_it():
    model = _model()
    x1, y1, x2, y2 = _tokens(1), _tokens(2), _tokens(3), _tokens(4)
    first = model.loss((x1, y1, ("train", 0, True)))[0]
    for _ in range(2):                   # the same batch again (w', w+, w-): same state, same masks
        assert torch.equal(loss_with(model, None, (x1, y1, ("train", 0, True)))[0], first)
    model.eval()
    with torch.no_grad():
        # the next batch starts where the first ended (computed by the first call, in training mode)
        carried = model._carry["train"]["next"]
        got = model.loss((x2, y2, ("train", 1, False)))[0]
        lp, _ = model(x2, carried)
        assert torch.equal(got, F.nll_loss(lp.reshape(-1, V), y2.reshape(-1)))
        # a fresh pass starts from zero; so does a batch without a key; streams are independent
        zero = F.nll_loss(model(x2)[0].reshape(-1, V), y2.reshape(-1))
        assert torch.equal(model.loss((x2, y2, ("train", 2, True)))[0], zero)
        assert torch.equal(model.loss((x2, y2))[0], zero)
        assert torch.equal(model.loss((x2, y2, ("val", 7, False)))[0], zero)
    # the carried states travel in state_dict() and come back
    state = model.state_dict()
    other = _model()
    other.load_state_dict(state)
    assert other._carry.keys() == model._carry.keys()
    assert torch.equal(other._carry["train"]["next"], model._carry["train"]["next"])


def test_tar_joins_the_weight_steps_gradient_only_and_leaves_the_loss_value_alone():
    x, y = _tokens(1), _tokens(2)
    key = ("train", 0, True)
    grads = {}
    for beta in (0.0, 1.0):
        model = _model(tar_beta=beta)
        weight_step, out = model.loss((x, y, key))                      # outside frozen_bn_stats: TAR
        arch_side, _ = loss_with(model, None, (x, y, key))              # inside: plain NLL
        assert torch.equal(weight_step, arch_side)                      # the value is the NLL either way
        assert torch.equal(weight_step, F.nll_loss(out.reshape(-1, V), y.reshape(-1)))
        grads[beta] = [torch.autograd.grad(l, model.cell.W0)[0] for l in (weight_step, arch_side)]
    assert torch.equal(grads[0.0][0], grads[0.0][1])
    assert not torch.allclose(grads[1.0][0], grads[1.0][1])
    assert torch.equal(grads[1.0][1], grads[0.0][1])


def test_frozen_bn_stats_leaves_the_running_statistics_alone():
    model = _model()
    batch = (_tokens(1), _tokens(2), ("train", 0, True))
    before = model.cell.bn.running_mean.clone()
    loss_with(model, None, batch)
    assert torch.equal(model.cell.bn.running_mean, before)
    model.loss(batch)
    assert not torch.equal(model.cell.bn.running_mean, before)
    assert int(model.cell.bn.num_batches_tracked) == T * 9          # s0 and 8 nodes per time step


def test_exact_hvp_matches_a_slow_oracle_and_finite_differences_with_dropout_on(hvp_entry_oracle):
    # dropout stays on: the keyed batch's masks are drawn once and reused by every evaluation
    model = _model()
    batch = (_tokens(1), _tokens(2), ("train", 0, True))
    g = torch.Generator().manual_seed(5)
    v = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in model.weight_parameters()]
    exact = hvp_exact(model, batch, v)[0]                                          # (36, 5)
    for idx in [(0, 1), (7, 4), (20, 0), (35, 2)]:
        slow = hvp_entry_oracle(model, batch, v, model.alpha_recurrent, idx)
        assert slow == pytest.approx(float(exact[idx]), rel=1e-5, abs=1e-9)
    fd = hvp_finite_difference(model, batch, v, eps_scale=1e-6)[0]
    assert float((fd - exact).norm() / exact.norm()) < 1e-4
