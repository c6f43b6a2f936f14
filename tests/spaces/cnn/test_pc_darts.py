"""PC-DARTS: partial channels, edge normalisation, their fast path, the beta-aware
derivation, and the `pc_darts` variant on the method seam."""
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dartsviz import Search, SearchConfig
from dartsviz.bilevel import arch_gradient
from dartsviz.methods import get_method
from dartsviz.methods.pc_darts import edge_entropy
from dartsviz.spaces.cnn.fastnet import FastSearchNetwork
from dartsviz.spaces.cnn.genotype import derive
from dartsviz.spaces.cnn.ops import PRIMITIVES, channel_shuffle
from dartsviz.spaces.cnn.space import CNN, derive_cell_edge_normalised
from dartsviz.spaces.cnn.supernet import MixedOp, SearchNetwork, edge_softmax

SMALL = dict(layers=3, channels=8, batch_size=16, steps_per_epoch=2, epochs=2, warmup_epochs=1)


@pytest.fixture(scope="module")
def digits():
    """The digits splits, loaded once for every search of this module."""
    return CNN.load_data(SearchConfig.preset("tiny"), torch.device("cpu"))


def _pc_config(**kw):
    return SearchConfig.preset("tiny", variant="pc_darts", **{**SMALL, **kw})


def _same_state(a, b, atol=0.0):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        if atol and sa[k].is_floating_point():
            torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=atol, msg=k)
        else:
            assert torch.equal(sa[k], sb[k]), k


# -- the variant reduces to DARTS ------------------------------------------------------

@pytest.mark.parametrize("order", [1, 2])
def test_k1_without_edge_norm_equals_darts(order, digits):
    pc_cfg = _pc_config(variant_options=dict(partial_channels=1, edge_norm=False), dtype="float64", order=order)
    pc = Search(pc_cfg, data=digits)
    darts = Search(dataclasses.replace(pc_cfg, variant="darts", variant_options={}), data=digits)
    assert len(pc.model.arch_parameters()) == 2 and pc.method.name == "pc_darts"
    for _ in range(3):                           # epoch 0 frozen, then a step that moves alpha
        rp, rd = pc.step(), darts.step()
        assert rp.genotype == rd.genotype and rp.losses["train"] == pytest.approx(rd.losses["train"], rel=1e-12)
    assert rp.arch_updated
    _same_state(pc.model, darts.model, atol=1e-12)     # alphas, weights, running statistics


# -- partial channels ---------------------------------------------------------------------

def _max_pool_2x2_ceil(t):
    """2x2 max pooling, stride 2, a last half window kept for odd sizes: four strided slices."""
    H, W = t.shape[-2:]
    t = F.pad(t, (0, W % 2, 0, H % 2), value=-float("inf"))
    return torch.stack([t[..., a::2, b::2] for a in (0, 1) for b in (0, 1)]).amax(0)


@pytest.mark.parametrize("stride,size", [(1, 8), (2, 8), (2, 7)])
def test_partial_channel_mixed_op_matches_a_slow_oracle(stride, size):
    torch.manual_seed(0)
    C, K = 8, 4
    mixed = MixedOp(C, stride, partial_channels=K).double()
    assert mixed.ops[PRIMITIVES.index("sep_conv_3x3")].block1.dw.weight.shape[0] == C // K   # ops on C/K
    x = torch.randn(3, C, size, size, dtype=torch.float64)
    w = torch.softmax(torch.randn(len(PRIMITIVES), dtype=torch.float64), 0)
    out = mixed(x, w)                                                    # (3, C, h, h)
    # slowly: ops on the first C/K channels, bypass the rest, concat, shuffle channel by channel
    ops_part = sum(w[k] * op(x[:, :C // K]) for k, op in enumerate(mixed.ops))
    bypass = x[:, C // K:] if stride == 1 else _max_pool_2x2_ceil(x[:, C // K:])
    y = torch.cat([ops_part, bypass], 1)
    expected = torch.empty_like(y)
    for g in range(K):
        for i in range(C // K):
            expected[:, i * K + g] = y[:, g * (C // K) + i]
    assert out.shape == (3, C, -(-size // stride), -(-size // stride))
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    if stride == 1:                       # input channel C/K, the first bypassed one, lands at 1
        assert torch.equal(out[:, 1], x[:, C // K])


def test_channel_shuffle_and_bad_channels_are_refused_in_one_line():
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert torch.equal(channel_shuffle(x, 1), x)
    for make in (lambda: SearchConfig.preset("tiny", variant="pc_darts", channels=6),
                 lambda: SearchNetwork(6, 10, 3, 1, partial_channels=4),
                 lambda: MixedOp(6, 1, partial_channels=4)):
        with pytest.raises(ValueError, match=r"channels \(6\) must be divisible by partial_channels K=4") as e:
            make()
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="partial_channels must be a positive integer"):
        SearchConfig.preset("tiny", variant="pc_darts", variant_options={"partial_channels": 0})
    with pytest.raises(ValueError, match="edge_norm must be True or False"):
        SearchConfig.preset("tiny", variant="pc_darts", variant_options={"edge_norm": "yes"})
    with pytest.raises(ValueError, match=r"channels \(16\) must be divisible by partial_channels K=3"):
        SearchConfig.preset("tiny", variant="pc_darts", variant_options={"partial_channels": 3})
    with pytest.raises(ValueError, match="unknown SearchConfig field"):      # PC-DARTS' options now
        SearchConfig.preset("tiny", partial_channels=2)
    with pytest.raises(ValueError, match="pc_darts"):
        SearchConfig.preset("tiny", space="rnn", variant="pc_darts")


# -- the fast supernet computes the same function -------------------------------------------

@pytest.mark.parametrize("K,edge_norm,C,size,kernels", [
    (4, True, 8, 8, "cpu"), (4, True, 8, 8, "generic"),       # generic: the conv2d path CUDA takes
    (2, False, 4, 7, "cpu"), (2, False, 4, 7, "generic"), (1, True, 4, 8, "cpu")])
def test_fast_supernet_equals_reference_with_pc_options(K, edge_norm, C, size, kernels, monkeypatch):
    import dartsviz.spaces.cnn.fast_kernels as fast_kernels
    monkeypatch.setattr(fast_kernels, "CPU_KERNELS", kernels == "cpu")
    torch.manual_seed(0)
    kw = dict(alpha_init_std=1.0, partial_channels=K, edge_norm=edge_norm)
    ref = SearchNetwork(C, 10, 3, 1, **kw).double()
    fast = FastSearchNetwork(C, 10, 3, 1, **kw).double()
    fast.load_state_dict(ref.state_dict())
    assert fast.fallback_reason is None
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 1, size, size, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (4,), generator=g)
    for mode in ("train", "eval"):               # eval: with the running statistics training left
        ref.train(mode == "train"), fast.train(mode == "train")
        outs = []
        for net in (ref, fast):
            logits = net(x)                                              # (4, 10)
            outs.append((logits, torch.autograd.grad(F.cross_entropy(logits, y), list(net.parameters()))))
        torch.testing.assert_close(outs[0][0], outs[1][0], rtol=1e-9, atol=1e-10)
        for ga, gb in zip(outs[0][1], outs[1][1]):
            torch.testing.assert_close(ga, gb, rtol=1e-9, atol=1e-10)
    _same_state(ref, fast, atol=1e-10)
    assert fast.last_path == "fast" and fast.reference_fallbacks == 0
    if kernels == "generic":
        return                                   # the double backward below: once per case is enough
    ref.train(), fast.train()
    batches = [(x, y), (x.flip(0), y.flip(0))]
    ga, _, _ = arch_gradient(ref, *batches, order=2, hvp="exact", xi=0.05)
    gb, _, _ = arch_gradient(fast, *batches, order=2, hvp="exact", xi=0.05)
    assert len(ga) == (4 if edge_norm else 2)
    for a, b in zip(ga, gb):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


# -- edge normalisation -----------------------------------------------------------------------

def test_edge_softmax_is_per_node():
    beta = torch.arange(14, dtype=torch.float64)
    p = edge_softmax(beta, 4)                                           # (14,)
    for part, b in zip(p.split([2, 3, 4, 5]), beta.split([2, 3, 4, 5])):
        torch.testing.assert_close(part, torch.softmax(b, 0))
    assert p.sum().item() == pytest.approx(4.0)


def _row(top_op, top, none=0.0):
    """A softmax row: `top` on op `top_op`, `none` on none, the rest shared by the other ops."""
    r = np.full(len(PRIMITIVES), (1.0 - top - none) / (len(PRIMITIVES) - 2))
    r[PRIMITIVES.index(top_op)], r[0] = top, none
    return r


def test_edge_normalised_derivation_on_hand_made_weights():
    # node 3: DARTS keeps sources 0 and 1 (0.5, 0.4 > 0.3); with softmax(beta) 0.2, 0.3, 0.5
    # the products are 0.10, 0.12, 0.15: sources 1 and 2. Node 4: products 0.14, 0.06, 0.07,
    # 0.015, where source 3's `none` (0.8 * 0.1 = 0.08) must not count. Node 5: equal betas.
    rows = [_row("sep_conv_3x3", 0.5), _row("max_pool_3x3", 0.3),                       # node 2
            _row("sep_conv_3x3", 0.5), _row("skip_connect", 0.4), _row("dil_conv_3x3", 0.3, none=0.6),  # 3
            _row("avg_pool_3x3", 0.2), _row("sep_conv_5x5", 0.6), _row("skip_connect", 0.7),
            _row("dil_conv_5x5", 0.15, none=0.8),                                                # node 4
            _row("sep_conv_3x3", 0.3), _row("skip_connect", 0.5), _row("max_pool_3x3", 0.2),
            _row("dil_conv_3x3", 0.4), _row("sep_conv_5x5", 0.25)]                                # node 5
    probs = np.stack(rows)                                                                      # (14, 8)
    beta_probs = np.array([0.5, 0.5, 0.2, 0.3, 0.5, 0.7, 0.1, 0.1, 0.1, 0.2, 0.2, 0.2, 0.2, 0.2])
    cell = derive_cell_edge_normalised(probs, beta_probs)
    assert cell == ((("sep_conv_3x3", 0), ("max_pool_3x3", 1)),
                    (("skip_connect", 1), ("dil_conv_3x3", 2)),
                    (("avg_pool_3x3", 0), ("skip_connect", 2)),
                    (("skip_connect", 1), ("dil_conv_3x3", 3)))       # equal betas: alpha decides
    darts = derive(probs, probs).normal
    assert darts[1] == (("sep_conv_3x3", 0), ("skip_connect", 1))    # the rule without beta differs
    assert darts[2] == (("sep_conv_5x5", 1), ("skip_connect", 2))
    genotype = CNN.derive({"normal": probs, "reduce": probs}, edge_probs={"normal": beta_probs, "reduce": beta_probs})
    assert genotype.normal == genotype.reduce == cell
    method = get_method("pc_darts")
    assert method.derive(CNN, {"normal": probs, "reduce": probs},
                         edge_probs={"normal": beta_probs, "reduce": beta_probs}) == genotype
    with pytest.raises(ValueError, match=r"edge_probs must have shape \(14,\)"):
        derive_cell_edge_normalised(probs, beta_probs[:3])


def _beta_favours_edge_4(search):
    """alpha: sep_conv_3x3 strongest on every edge, weaker edge by edge; beta: edge 4, (2, 3),
    its node's strongest (DARTS would keep sources 0 and 1 there)."""
    with torch.no_grad():
        for cell in ("normal", "reduce"):
            alpha, beta = getattr(search.model, f"alpha_{cell}"), getattr(search.model, f"beta_{cell}")
            alpha.copy_(torch.log(torch.as_tensor(np.stack([_row("sep_conv_3x3", 0.5 - 0.01 * e)
                                                             for e in range(14)]))))
            beta.zero_()
            beta[4] = 3.0


def test_the_search_genotype_ranks_edges_with_beta(digits):
    search = Search(_pc_config(), data=digits)
    _beta_favours_edge_4(search)
    probs = search.model.probs()
    assert set(probs) == {"normal", "reduce"}
    expected = CNN.derive(probs, edge_probs=probs.edge_probs)
    assert search.genotype == expected == search.model.genotype()
    assert expected.normal[1] == (("sep_conv_3x3", 0), ("sep_conv_3x3", 2))   # DARTS: sources 0 and 1
    assert CNN.derive(probs).normal[1] == (("sep_conv_3x3", 0), ("sep_conv_3x3", 1))


def test_step_records_and_the_snapshot_derive_with_beta(digits):
    search = Search(_pc_config(), data=digits)
    _beta_favours_edge_4(search)
    snap = search.snapshot()
    assert snap.genotype == search.genotype and snap.genotype != CNN.derive(search.model.probs())
    record = search.step()                               # warm-up epoch: alpha and beta rest
    assert record.genotype == search.genotype == snap.genotype


def test_records_carry_softmax_beta_per_edge_and_the_weights_panel_draws_it(digits):
    from dartsviz.records import StepRecord, record_from_dict
    from dartsviz.viz.figures import draw_weights
    search = Search(_pc_config(warmup_epochs=0), data=digits)
    record = search.step()
    beta = search.model.edge_probs()
    assert set(record.edge_probs) == {"normal", "reduce"}
    for k in beta:
        assert np.allclose(record.edge_probs[k], beta[k].double().numpy(), atol=1e-6)
        assert record.edge_probs[k].shape == (14,)
    again = record_from_dict(record.to_dict())
    assert isinstance(again, StepRecord) and again == record
    assert np.array_equal(again.edge_probs["normal"], record.edge_probs["normal"])
    fig = draw_weights(record)
    marks = fig._dartsviz_state["cells"][0]["betas"].get_offsets()
    assert np.allclose(np.asarray(marks)[:, 1], record.edge_probs["normal"]) and len(marks) == 14
    plain = Search(SearchConfig.preset("tiny", **SMALL), data=digits).step()
    assert plain.edge_probs is None and "edge_probs" in plain.to_dict()
    assert len(draw_weights(plain)._dartsviz_state["cells"][0]["betas"].get_offsets()) == 0


def test_edge_entropy_monitor():
    p = torch.tensor([0.5, 0.5, 1.0, 0.0, 0.0] + [0.25] * 4 + [0.2] * 5)
    assert edge_entropy(p, 4).item() == pytest.approx(0.75)             # nodes: 1, 0, 1, 1


# -- beta is an architecture parameter ----------------------------------------------------------

def test_beta_gets_gradients_and_adam_moves_it_after_the_freeze(digits):
    search = Search(_pc_config(dtype="float64"), data=digits)
    model = search.model
    betas = [model.beta_normal, model.beta_reduce]
    assert [n for n in model.ARCH_NAMES] == ["alpha_normal", "alpha_reduce", "beta_normal", "beta_reduce"]
    assert all(any(b is p for p in search.a_opt.param_groups[0]["params"]) for b in betas)
    assert not any(b is p for b in betas for p in model.weight_parameters())
    start = [b.detach().clone() for b in betas]
    for _ in range(2):                                    # epoch 0: alpha and beta frozen
        assert not search.step().arch_updated
    assert all(torch.equal(a, b) for a, b in zip(start, betas))
    seen, adam_step = {}, search.a_opt.step
    search.a_opt.step = lambda: (seen.update(g=[b.grad.clone() for b in betas]), adam_step())
    rec = search.step()
    assert rec.arch_updated and all(g.abs().min() > 0 for g in seen["g"])
    c = search.config
    for b0, b1, g in zip(start, betas, seen["g"]):
        g = g + c.arch_weight_decay * b0                  # Adam's L2 term, then its first step:
        torch.testing.assert_close(b1.detach(), b0 - c.arch_lr * g / (g.abs() + 1e-8), rtol=1e-9, atol=1e-12)
    assert model.reference_fallbacks == 0 and model.last_path == "fast"
    edge_probs = model.edge_probs()
    for cell in ("normal", "reduce"):
        assert rec.monitors[f"beta_entropy_{cell}"] == pytest.approx(edge_entropy(edge_probs[cell], 4).item())


def test_resume_is_bit_exact(tmp_path, digits):
    cfg = _pc_config(epochs=2, warmup_epochs=1)
    whole = Search(cfg, data=digits)
    whole.run()
    part = Search(_pc_config(epochs=2, warmup_epochs=1), out=tmp_path / "run", data=digits)
    part.run(steps=3)                                     # stops inside epoch 1, after an arch step
    del part
    resumed = Search.resume(tmp_path / "run", data=digits)
    assert resumed.step_count == 3
    resumed.run()
    _same_state(whole.model, resumed.model)
    assert "beta_normal" in resumed.model.state_dict()
    strip = lambda h: [(r["train_loss"], r["genotype"], r.get("monitors")) for r in h]
    assert strip(whole.history) == strip(resumed.history)


def test_presets_carry_the_papers_settings():
    paper = SearchConfig.preset("paper", variant="pc_darts")
    assert paper.variant_options == get_method("pc_darts").DEFAULTS == {"partial_channels": 4, "edge_norm": True}
    assert (paper.batch_size, paper.lr, paper.lr_min) == (256, 0.1, 0.0)
    assert (paper.arch_lr, paper.arch_betas, paper.arch_weight_decay) == (6e-4, (0.5, 0.999), 1e-3)
    assert (paper.warmup_epochs, paper.epochs, paper.order, paper.channels, paper.layers) == (15, 50, 1, 16, 8)
    tiny = SearchConfig.preset("tiny", variant="pc_darts")
    assert tiny.dataset == "digits" and tiny.variant_options == {"partial_channels": 4, "edge_norm": True}
    assert tiny.channels % tiny.variant_options["partial_channels"] == 0


def test_partial_channels_and_edge_norm_are_the_variants_options_handed_to_the_build(digits, tmp_path, capsys):
    import json
    from dartsviz.cli import main
    plain = Search(_pc_config(variant_options={}), data=digits)       # the paper's values by default
    assert plain.method.build_options() == {"partial_channels": 4, "edge_norm": True}
    assert plain.model.partial_channels == 4 and plain.model.edge_norm
    k2 = Search(_pc_config(variant_options={"partial_channels": 2, "edge_norm": False}), data=digits)
    assert k2.model.partial_channels == 2 and not k2.model.edge_norm and len(k2.model.arch_parameters()) == 2
    out = tmp_path / "run"
    flags = ["--dataset", "synthetic:1x8x8", "--layers", "3", "--channels", "4", "--batch-size", "8", "--steps", "1",
             "--no-plots", "--quiet"]
    assert main(["search", "--variant", "pc_darts", "--variant-option", "partial_channels=2",
                 "--variant-option", "edge_norm=false", "--out", str(out), *flags]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["variant_options"] == {"partial_channels": 2, "edge_norm": False}
    assert "partial_channels" not in config and "edge_norm" not in config
    capsys.readouterr()
    assert main(["search", "--variant", "pc_darts", "--variant-option", "partial_channels=3",
                 "--out", str(tmp_path / "bad"), *flags]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "channels (4) must be divisible by partial_channels K=3" in err[0]
    assert not (tmp_path / "bad").exists()
