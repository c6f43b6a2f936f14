"""DARTS-, beta-DARTS and SDARTS-RS: each changes DARTS exactly where its paper says.

Oracles: plain DARTS on the same seed in float64 where a variant's knob is zero; the
formulas written out here (schedules, the logsumexp penalty, the perturbed simplex, the
auxiliary skip); an uninterrupted run for resume.
"""
import dataclasses
import functools
import json

import pytest
import torch
import torch.nn.functional as F

from dartsviz import FastSearchNetwork, Method, Search, SearchConfig, SearchNetwork, get_method, register_method
from dartsviz.bilevel import arch_gradient
from dartsviz.cli import main
from dartsviz.data import load_data
from dartsviz.methods import method_names
from dartsviz.methods.sdarts_rs import perturbed_simplex
from dartsviz.runs import RunDir
from dartsviz.spaces.cnn.ops import PRIMITIVES, channel_shuffle
from dartsviz.spaces.cnn.supernet import MixedOp

VARIANTS = ("darts_minus", "beta_darts", "sdarts_rs")
ZERO = {"darts_minus": {"beta_0": 0.0}, "beta_darts": {"lambda_max": 0.0},
        "sdarts_rs": {"eps_min": 0.0, "eps_max": 0.0}}
SKIP = PRIMITIVES.index("skip_connect")
DATASET = "synthetic:1x8x8"


@functools.lru_cache(maxsize=None)
def _data():
    """Synthetic 1x8x8 images (digits' shape) with a 16-image test split (epoch records evaluate it)."""
    d = load_data(DATASET)
    return dataclasses.replace(d, test=(d.test[0][:16], d.test[1][:16]))


def _config(variant="darts", **kw):
    base = dict(variant=variant, dataset=DATASET, layers=3, channels=4, batch_size=4, steps_per_epoch=2, epochs=2,
                warmup_epochs=0, dtype="float64")
    return SearchConfig.preset("tiny", **{**base, **kw})


def _search(variant="darts", out=None, **kw):
    return Search(_config(variant, **kw), out=out, data=_data())


def _state(search):
    return {k: v.detach().clone() for k, v in search.model.state_dict().items()}


@functools.lru_cache(maxsize=None)
def _darts_state(order, steps):
    search = _search(order=order)
    search.run(steps=steps)
    return _state(search)


# -- the knob at zero is DARTS; on, it is not ------------------------------------------
@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("variant", VARIANTS)
def test_a_variant_with_its_knob_at_zero_is_darts_and_with_it_on_is_not(variant, order):
    steps = 3 if order == 1 else 2                       # order 1: into the second epoch, every schedule moved
    zero = _search(variant, order=order, variant_options=ZERO[variant])
    zero.run(steps=steps)
    darts = _darts_state(order, steps)
    got = _state(zero)
    for k in darts:                                      # alphas, weights, BatchNorm statistics
        if variant in ("sdarts_rs", "darts_minus"):      # SDARTS: clip-and-renormalise rounds in the last
            # bit; DARTS-: the gradient norm that clipping divides by runs over the aux skips' zeros too
            torch.testing.assert_close(got[k], darts[k], rtol=1e-12, atol=1e-12, msg=k)
        else:
            assert torch.equal(got[k], darts[k]), k
    if order == 1:
        on = _search(variant)                            # the paper's settings
        on.run(steps=3)
        moved = _state(on)
        assert any(not torch.allclose(moved[k], darts[k], rtol=0, atol=1e-9) for k in darts)
        # DARTS- and beta-DARTS change the alphas; SDARTS-RS the weight step, so the weights
        keys = [k for k in darts if ("alpha" in k) == (variant != "sdarts_rs")]
        assert any(not torch.allclose(moved[k], darts[k], rtol=0, atol=1e-9) for k in keys)


# -- DARTS-: beta_t times the identity on every edge -------------------------------------
def test_darts_minus_appends_beta_t_as_the_auxiliary_skip_weight_in_both_phases():
    method = get_method("darts_minus").bind(_config("darts_minus", epochs=4, variant_options={"beta_0": 0.8}))
    alpha = torch.randn(14, len(PRIMITIVES), dtype=torch.float64)
    for t in range(4):
        for phase in ("arch", "weight"):
            w = method.edge_weights(alpha, phase, progress=(t + 0.5) / 4)
            assert w.shape == (14, len(PRIMITIVES) + 1)
            torch.testing.assert_close(w[:, :-1], F.softmax(alpha, -1), rtol=0, atol=0)
            torch.testing.assert_close(w[:, -1], torch.full((14,), 0.8 * (4 - t) / 4, dtype=torch.float64))


@pytest.mark.parametrize("K", [1, 2])
def test_darts_minus_edge_output_is_the_mixed_ops_plus_beta_t_times_its_own_aux_skip(K):
    """Each edge adds beta_t * aux(x): the identity at stride 1, and at stride 2 a FactorizedReduce
    of its own (not the skip op's), as the authors build it. The edge-batched supernet equals a
    reference whose every MixedOp adds that term explicitly (a slow oracle written here)."""
    torch.manual_seed(0)
    method = get_method("darts_minus").bind(_config("darts_minus", epochs=4))
    beta = 0.75                                                              # epoch 1 of 4
    mix = functools.partial(method.edge_weights, phase="weight", progress=0.3)
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    alpha = torch.randn(1, len(PRIMITIVES), dtype=torch.float64)
    op = MixedOp(4, 1).double()                                              # stride 1: + beta x
    torch.testing.assert_close(op(x, mix(alpha)[0]), op(x, F.softmax(alpha, -1)[0]) + beta * x)
    fast = FastSearchNetwork(4, 10, 3, 1, partial_channels=K, aux_skip=True).double()
    ref = SearchNetwork(4, 10, 3, 1, partial_channels=K, aux_skip=True).double()
    ref.load_state_dict(fast.state_dict())
    reduce_edges = [m for cell in ref.cells for m in cell.mixed if m.stride == 2]
    assert reduce_edges and all(isinstance(m.aux, type(m.ops[SKIP])) and m.aux is not m.ops[SKIP]
                                for m in reduce_edges)                      # its own FactorizedReduce
    assert all(m.aux is None for cell in ref.cells for m in cell.mixed if m.stride == 1)
    images = torch.randn(8, 1, 8, 8, dtype=torch.float64)
    fast.mixing = ref.mixing = mix
    got = fast(images)
    want = ref(images)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    # the oracle: the plain supernet with every edge's term added by hand
    plain = SearchNetwork(4, 10, 3, 1, partial_channels=K, aux_skip=True).double()
    plain.load_state_dict(fast.state_dict())

    def edge(m, x_, w):
        C = m.C_op
        xo = x_[:, :C]
        out = sum(wk * o(xo) for wk, o in zip(w, m.ops)) + beta * (xo if m.stride == 1 else m.aux(xo))
        if K == 1:
            return out
        xb = x_[:, C:]
        if m.stride == 2:
            xb = F.max_pool2d(xb, 2, 2, ceil_mode=True)
        return channel_shuffle(torch.cat([out, xb], 1), K)
    for m in (mm for cell in plain.cells for mm in cell.mixed):
        m.forward = functools.partial(edge, m)
    torch.testing.assert_close(plain(images), want, rtol=1e-10, atol=1e-10)
    without = SearchNetwork(4, 10, 3, 1, partial_channels=K, aux_skip=True).double()
    without.load_state_dict(fast.state_dict())
    assert (without(images) - got).abs().max() > 1e-3
    g_fast = torch.autograd.grad(fast(images).sum(), [m.aux.conv_1.weight for cell in fast.cells
                                                      for m in cell.mixed if m.stride == 2])
    g_ref = torch.autograd.grad(ref(images).sum(), [m.aux.conv_1.weight for m in reduce_edges])
    for a, b in zip(g_fast, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_darts_minus_builds_the_aux_skips_after_every_other_parameter():
    search = _search("darts_minus")
    darts = _search("darts")
    want, got = _state(darts), _state(search)
    extra = sorted(set(got) - set(want))
    assert extra and all(".aux." in k for k in extra)
    assert all(torch.equal(want[k], got[k]) for k in want)                    # the rest starts as DARTS'


# -- beta-DARTS: the penalty's gradient is autograd of the formula ----------------------------
def test_beta_darts_adds_the_gradient_of_lambda_t_mean_logsumexp_to_the_arch_gradient():
    search = _search("beta_darts", steps_per_epoch=1, epochs=4, variant_options={"lambda_max": 8.0})
    twin = _search("darts", steps_per_epoch=1, epochs=4)
    search.step()                                          # epoch 0: lambda_0 = 0, still DARTS
    twin.step()
    alphas = [a.detach().clone() for a in search.model.arch_parameters()]
    assert all(torch.equal(a, b) for a, b in zip(alphas, twin.model.arch_parameters()))
    seen = {}
    search.a_opt.step = lambda: seen.update(g=[a.grad.clone() for a in search.model.arch_parameters()])
    record = search.step()                                 # epoch 1: lambda_1 = 8 * 1/4
    plain, _, _ = arch_gradient(twin.model, next(twin.train_stream), next(twin.val_stream), order=1)
    leaves = [a.clone().requires_grad_(True) for a in alphas]
    lse = torch.cat([torch.log(torch.exp(a).sum(-1)) for a in leaves])     # (28,): per edge, both cells
    penalty = torch.autograd.grad(2.0 * lse.mean(), leaves)
    for g, p, q, a in zip(seen["g"], plain, penalty, alphas):
        torch.testing.assert_close(g, p + q, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(q, 2.0 * F.softmax(a, -1) / 28)       # lambda softmax / edges
    assert record.monitors["lambda_t"] == pytest.approx(2.0)


# -- SDARTS-RS: uniform noise, in bounds, in the weight step only ------------------------------
def test_sdarts_perturbs_the_softmax_weights_in_the_weight_step_only():
    search = _search("sdarts_rs", variant_options={"eps_min": 0.2, "eps_max": 0.2})
    calls = []
    mix = search.method.edge_weights

    def spy(alpha, phase="arch", progress=0.0):
        out = mix(alpha, phase, progress)
        calls.append((phase, F.softmax(alpha.detach(), -1), out))
        return out
    search.method.edge_weights = spy
    rng = torch.get_rng_state()
    search.step()
    arch = [(p, w) for phase, p, w in calls if phase == "arch"]
    weight = [(p, w) for phase, p, w in calls if phase == "weight"]
    assert arch and len(weight) == 2                       # one forward: normal and reduce
    assert all(torch.equal(p, w) for p, w in arch)         # the architecture step is plain DARTS
    torch.set_rng_state(rng)                               # the same draws, written out
    for p, w in weight:
        delta = torch.empty_like(p).uniform_(-0.2, 0.2)
        assert delta.abs().max() <= 0.2 and delta.abs().max() > 0.1
        noisy = (p + delta).clamp(0, 1)
        torch.testing.assert_close(w, noisy / noisy.sum(-1, keepdim=True), rtol=0, atol=1e-15)
        assert not w.requires_grad and (w >= 0).all() and not torch.allclose(w, p, atol=1e-3)


def test_an_edge_clipped_to_nothing_keeps_its_largest_perturbed_entry():
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.2, 0.5, 0.3]], dtype=torch.float64)
    delta = torch.tensor([[-0.6, -0.35, -0.4], [0.1, -0.1, 0.0]], dtype=torch.float64)
    out = perturbed_simplex(probs, delta)
    assert torch.equal(out[0], torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))   # argmax of (-0.1, -0.05, -0.2)
    torch.testing.assert_close(out[1], torch.tensor([0.3, 0.4, 0.3], dtype=torch.float64))


# -- schedules in the records; resume ------------------------------------------------------------
SCHEDULES = {"darts_minus": ("beta_t", lambda t, T: 1.0 * (T - t) / T),
             "beta_darts": ("lambda_t", lambda t, T: 50.0 * t / T),
             "sdarts_rs": ("eps_t", lambda t, T: 0.03 + (0.3 - 0.03) * t / T)}


@pytest.mark.parametrize("variant", VARIANTS)
def test_schedules_reach_the_records_and_a_resumed_search_is_bit_identical(variant, tmp_path):
    whole = _search(variant)
    whole.run()
    part = _search(variant, out=tmp_path / "run")
    part.run(steps=3)                                      # stops inside the second epoch
    del part
    resumed = Search.resume(tmp_path / "run", data=_data())
    assert resumed.step_count == 3
    resumed.run()
    want, got = _state(whole), _state(resumed)
    assert all(torch.equal(want[k], got[k]) for k in want)
    steps = [r for r in whole.history if r.kind == "step"]
    name, formula = SCHEDULES[variant]
    assert [r.monitors[name] for r in steps] == pytest.approx([formula(r.epoch, 2) for r in steps], rel=1e-6)
    assert [r.epoch for r in steps] == [0, 0, 1, 1]
    again = [r for r in resumed.history if r.kind == "step"]
    assert [(r.losses, r.monitors) for r in again] == [(r.losses, r.monitors) for r in steps]


# -- settings: presets, options, names -------------------------------------------------------------
def test_each_variant_has_paper_and_tiny_presets_layered_between_the_preset_and_the_overrides():
    tiny = SearchConfig.preset("tiny").to_dict()
    for variant in VARIANTS:
        assert {"paper", "tiny"} <= set(get_method(variant).presets)
        c = SearchConfig.preset("tiny", variant=variant)
        assert c.variant_options == get_method(variant).DEFAULTS
        assert {k: v for k, v in c.to_dict().items() if k not in ("variant", "variant_options")} == \
            {k: v for k, v in tiny.items() if k not in ("variant", "variant_options")}
        assert SearchConfig.preset("paper", variant=variant).dataset == "cifar10"
    c = SearchConfig.preset("tiny", variant="sdarts_rs", variant_options={"eps_max": 0.1})
    assert c.variant_options == {"eps_min": 0.03, "eps_max": 0.1}          # dicts merge key by key
    assert SearchConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c

    class Layered(Method):
        name = "layered-test"
        DEFAULTS = {"k": 0, "m": 0}
        presets = {"tiny": {"epochs": 7, "variant_options": {"k": 1}}}
    register_method(Layered())
    try:
        assert SearchConfig.preset("tiny", variant="layered-test").epochs == 7
        c = SearchConfig.preset("tiny", variant="layered-test", epochs=3, variant_options={"m": 2})
        assert (c.epochs, c.variant_options) == (3, {"k": 1, "m": 2})
        assert SearchConfig.preset("paper", variant="layered-test").epochs == 50
    finally:                                  # other tests count the registered methods
        from dartsviz.methods import _REGISTRY
        _REGISTRY.pop("layered-test", None)


@pytest.mark.parametrize("variant,options,message", [
    ("beta_darts", {"gamma": 1.0}, "unknown option(s) 'gamma' for variant 'beta_darts'; known options: lambda_max"),
    ("darts", {"beta_0": 1.0}, "unknown option(s) 'beta_0' for variant 'darts'; known options: none"),
    ("beta_darts", {"lambda_max": -1.0}, "variant option lambda_max must be a finite number in [0.0, inf], got -1.0"),
    ("beta_darts", {"lambda_max": float("nan")}, "lambda_max must be a finite number"),
    ("darts_minus", {"beta_0": "1"}, "variant option beta_0 must be a finite number in [0.0, inf], got '1'"),
    ("darts_minus", {"beta_0": True}, "beta_0 must be a finite number"),
    ("sdarts_rs", {"eps_max": 1.5}, "variant option eps_max must be a finite number in [0.0, 1.0], got 1.5"),
    ("sdarts_rs", {"eps_min": 0.3, "eps_max": 0.1}, "eps_min must not exceed eps_max, got 0.3 > 0.1"),
    ("sdarts_rs", [("eps_max", 0.1)], "variant_options must be a dict"),
])
def test_bad_variant_options_are_refused_in_one_line(variant, options, message):
    with pytest.raises(ValueError) as e:
        SearchConfig.preset("tiny", variant=variant, variant_options=options)
    assert message in str(e.value) and len(str(e.value).splitlines()) == 1


def test_darts_minus_is_refused_where_the_skip_op_is_not_an_identity():
    with pytest.raises(ValueError, match="variant 'darts_minus' works in the cnn space"):
        SearchConfig.preset("tiny", space="rnn", variant="darts_minus")


def test_the_variants_are_registered_by_importing_dartsviz():
    # this module imports sdarts_rs itself, not the other two: dartsviz.methods registers them
    import dartsviz
    assert [dartsviz.get_method(v).name for v in VARIANTS] == list(VARIANTS)
    assert set(VARIANTS) <= set(method_names())


FAST = ["--dataset", DATASET, "--layers", "3", "--channels", "4", "--batch-size", "8", "--no-plots", "--quiet"]


def test_the_search_command_takes_a_variant_and_refuses_a_bad_name_in_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", "--variant", "beta_dartz", "--steps", "1", "--out", str(out), *FAST]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "unknown variant 'beta_dartz'" in lines[0]
    assert all(v in lines[0] for v in VARIANTS) and not out.exists()
    assert main(["search", "--variant", "darts_minus", "--steps", "2", "--out", str(out), *FAST]) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["variant"], config["variant_options"]) == ("darts_minus", {"beta_0": 1.0})
    steps = [r for r in RunDir(out).read_records() if r.kind == "step"]
    assert [r.monitors["beta_t"] for r in steps] == [1.0, 1.0] and {r.variant for r in steps} == {"darts_minus"}


def test_variant_options_on_the_command_line_are_numbers_and_bad_ones_are_one_line(tmp_path, capsys):
    from dartsviz.commands.search import parse_variant_options
    assert parse_variant_options(["eps_max=0.1", "eps_min=0", "beta_0=1e-1"]) == \
        {"eps_max": 0.1, "eps_min": 0, "beta_0": 0.1}
    out = tmp_path / "run"
    assert main(["search", "--variant", "sdarts_rs", "--variant-option", "eps_max=0.1", "--steps", "1",
                 "--out", str(out), *FAST]) == 0
    assert json.loads((out / "config.json").read_text())["variant_options"] == {"eps_min": 0.03, "eps_max": 0.1}
    for item, message in (("eps_max", "takes KEY=VALUE"), ("eps_max=__import__('os')", "needs a number"),
                          ("eps_maxx=0.1", "eps_maxx")):
        capsys.readouterr()
        code = main(["search", "--variant", "sdarts_rs", "--variant-option", item, "--steps", "1",
                     "--out", str(tmp_path / "bad"), *FAST])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "bad").exists()
