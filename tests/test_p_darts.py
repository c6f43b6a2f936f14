"""P-DARTS: stages of deeper supernets, per-edge op sets, skip dropout and the skip cap.

Oracles: plain DARTS (same seed, float64) for the first stage; a supernet with every op
and the dropped ops' weights at zero for a masked one; a hand-made cell for the skip cap;
an uninterrupted run for resume.
"""
import dataclasses
import functools

import numpy as np
import pytest
import torch

from dartsviz import Search, SearchConfig, SearchNetwork
from dartsviz.cli import main
from dartsviz.data import load_data
from dartsviz.methods import get_method
from dartsviz.methods.p_darts import keep_strongest
from dartsviz.spaces import get_space
from dartsviz.spaces.cnn.genotype import edges_of
from dartsviz.spaces.cnn.ops import PRIMITIVES
from dartsviz.spaces.cnn.supernet import MixedOp

DATASET = "synthetic:1x8x8"
SKIP, NONE = PRIMITIVES.index("skip_connect"), PRIMITIVES.index("none")
CNN = get_space("cnn")


@functools.lru_cache(maxsize=None)
def _data():
    d = load_data(DATASET)
    return dataclasses.replace(d, test=(d.test[0][:16], d.test[1][:16]))


def _config(variant="p_darts", **kw):
    base = dict(variant=variant, dataset=DATASET, layers=3, channels=4, batch_size=4, steps_per_epoch=2,
                epochs=6, warmup_epochs=1, dtype="float64", impl="reference")
    return SearchConfig.preset("tiny", **{**base, **kw})


def _search(variant="p_darts", out=None, **kw):
    return Search(_config(variant, **kw), out=out, data=_data())


def _state(search):
    return {k: v.detach().clone() for k, v in search.model.state_dict().items()}


# -- the stages ----------------------------------------------------------------------------


def test_the_first_stage_is_darts_with_the_stage_as_its_whole_search():
    """Stage 1 (all 8 ops, skip dropout 0) is DARTS run for the stage's 2 epochs: the same
    cosine schedule, warm-up and steps, bit for bit in float64."""
    pd = _search(variant_options={"dropout_0": 0.0})
    pd.run(steps=4)                                       # epochs 0 and 1: stage 1 of 6 / 3 = 2 epochs
    darts = _search("darts", epochs=2)
    darts.run(steps=4)
    want, got = _state(darts), _state(pd)
    assert set(want) == set(got) and all(torch.equal(want[k], got[k]) for k in want)
    assert [r.lr for r in pd.history if r.kind == "step"] == [r.lr for r in darts.history if r.kind == "step"]


def test_each_stage_is_a_fresh_deeper_supernet_of_the_previous_stages_strongest_ops():
    search = _search(variant_options={"add_layers_1": 1, "add_layers_2": 2, "keep_1": 5, "keep_2": 3})
    seen = []
    search.subscribe(lambda r: seen.append(r))
    search.run(steps=4)
    last_probs = search.model.probs()
    old_alpha = search.model.alpha_normal.detach().clone()
    search.step()                                          # the first step of stage 2
    model = search.model
    assert len(model.cells) == 4 and search.method.stage == 1
    for k in ("normal", "reduce"):
        mask = search.method.masks[k]
        assert mask.sum(1).tolist() == [5] * 14
        want = np.argsort(-last_probs[k].double().numpy(), axis=1, kind="stable")[:, :5]
        assert all(set(np.flatnonzero(mask[e].numpy())) == set(want[e]) for e in range(14))
        assert [len(m.ops) for m in model.cells[0].mixed] == [5] * 14
        assert (seen[-1].probs[k][~mask.numpy()] == 0).all() and (seen[-1].probs[k][mask.numpy()] > 0).all()
    assert not torch.equal(model.alpha_normal.detach()[:, :1], old_alpha[:, :1])   # fresh alphas
    assert seen[-1].monitors == pytest.approx({"stage": 2, "layers": 4, "ops_kept": 5,
                                               "skip_dropout": 0.4 * (2 - 0 - 1) / 2})
    search.run()
    assert len(search.model.cells) == 5 and search.method.masks["normal"].sum(1).tolist() == [3] * 14
    for dst, node in enumerate(search.genotype.normal, start=2):
        for op, src in node:                                # the derived ops come from the kept sets
            assert search.method.masks["normal"][sum(range(2, dst)) + src, PRIMITIVES.index(op)]


def test_the_learning_rate_restarts_and_the_skip_dropout_follows_the_authors_schedule():
    search = _search(epochs=9, variant_options={"dropout_1": 0.4, "dropout_2": 0.7})
    search.run()
    steps = [r for r in search.history if r.kind == "step"]
    c = search.config
    for r in steps:
        s, e = r.epoch // 3, r.epoch % 3
        cosine = c.lr_min + 0.5 * (c.lr - c.lr_min) * (1 + np.cos(np.pi * e / 3))
        p0 = (0.0, 0.4, 0.7)[s]
        p = p0 * (3 - e - 1) / 3 if e < 1 else p0 * np.exp(-(e - 1) * 0.2)
        assert r.lr == pytest.approx(cosine) and r.monitors["skip_dropout"] == pytest.approx(p)
        assert r.arch_updated == (e >= 1) and r.monitors["stage"] == s + 1


# -- the supernet's op sets and skip dropout ----------------------------------------------------


def test_a_masked_supernet_equals_the_full_one_with_the_dropped_ops_weighted_zero():
    torch.manual_seed(0)
    masks = {k: torch.rand(14, 8) < 0.5 for k in ("normal", "reduce")}
    for m in masks.values():
        m[:, 4] = True                                     # every edge keeps an op
    full = SearchNetwork(4, 10, 3, 1).double()
    masked = SearchNetwork(4, 10, 3, 1, op_masks=masks).double()
    state = {}
    for key, value in full.state_dict().items():          # the kept ops' modules, renumbered
        parts = key.split(".")
        if "mixed" in parts and parts[parts.index("mixed") + 2] == "ops":
            i = parts.index("mixed")
            cell, e, o = int(parts[1]), int(parts[i + 1]), int(parts[i + 3])
            kept = masked.cells[cell].mixed[e].kept
            if o not in kept:
                continue
            parts[i + 3] = str(kept.index(o))
        state[".".join(parts)] = value
    masked.load_state_dict(state)
    with torch.no_grad():
        for k in ("normal", "reduce"):
            getattr(full, f"alpha_{k}").copy_(getattr(full, f"alpha_{k}").masked_fill(~masks[k], -1e30))
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    assert torch.allclose(masked(x), full(x), rtol=1e-12, atol=1e-12)
    probs = masked.probs()
    assert all((probs[k][~masks[k]] == 0).all() and torch.allclose(probs[k].sum(1), torch.ones(14, dtype=torch.float32))
               for k in masks)
    with pytest.raises(ValueError, match="op kept on every edge"):
        SearchNetwork(4, 10, 3, 1, op_masks={k: torch.zeros(14, 8, dtype=torch.bool) for k in masks})


def test_skip_dropout_drops_only_the_identity_and_only_in_training():
    torch.manual_seed(0)
    op = MixedOp(4, 1, kept=[SKIP, NONE]).double()
    op.skip_dropout = 0.5
    x = torch.rand(64, 4, 3, 3, dtype=torch.float64) + 1.0
    w = torch.zeros(8, dtype=torch.float64)
    w[SKIP] = 1.0
    y = op(x, w)
    ratio = (y / x).flatten()
    assert set(ratio.unique().tolist()) == {0.0, 2.0}     # inverted dropout at p = 0.5
    op.eval()
    assert torch.equal(op(x, w), x)
    reduce = MixedOp(4, 2, kept=[SKIP]).double()           # a stride-2 skip is a FactorizedReduce: no dropout
    reduce.skip_dropout = 0.5
    assert reduce.skip_at is None


def test_keep_strongest_keeps_the_largest_weights_per_edge():
    p = torch.tensor([[0.1, 0.3, 0.2, 0.4], [0.25, 0.25, 0.4, 0.1]])
    assert keep_strongest(p, 2).tolist() == [[False, True, False, True], [True, False, True, False]]


# -- the skip cap -------------------------------------------------------------------------------


def _hand_made_probs():
    """Normal cell: every node's two strongest edges (from inputs 0 and 1) are skips, of weights
    0.9, 0.8, 0.7, 0.6 for nodes 2..5; each of those edges' second op sep_conv_3x3 at 0.05;
    the other edges weak (max_pool 0.3, the rest spread)."""
    probs = np.full((14, 8), 0.1)
    skip_w = {2: 0.9, 3: 0.8, 4: 0.7, 5: 0.6}
    for e, (src, dst) in enumerate(edges_of(4)):
        if src < 2:
            probs[e] = 0.0
            probs[e, SKIP] = skip_w[dst] - 0.01 * src
            probs[e, PRIMITIVES.index("sep_conv_3x3")] = 0.05
        else:
            probs[e] = 0.0
            probs[e, PRIMITIVES.index("max_pool_3x3")] = 0.3
    return {"normal": probs, "reduce": probs.copy()}


def test_the_skip_cap_replaces_the_weakest_skips_first():
    method = get_method("p_darts").bind(_config(variant_options={"skip_cap": 2}), CNN)
    probs = _hand_made_probs()
    darts = CNN.derive(probs)
    assert sum(op == "skip_connect" for node in darts.normal for op, _ in node) == 8
    capped = method.derive(CNN, probs)
    assert sum(op == "skip_connect" for node in capped.normal for op, _ in node) == 2
    # the two strongest skips (node 2's, 0.9 and 0.89) stay; every other node's skips lose their
    # weight, so its max_pool edges (0.3) from intermediate nodes outrank the sep_conv remains (0.05)
    nodes = [set(node) for node in capped.normal]
    assert nodes[0] == {("skip_connect", 0), ("skip_connect", 1)}
    assert nodes[1] == {("max_pool_3x3", 2), ("sep_conv_3x3", 0)}
    assert nodes[2] == {("max_pool_3x3", 2), ("max_pool_3x3", 3)}
    assert capped.reduce == darts.reduce                   # the reduction cell is not capped
    uncapped = get_method("p_darts").bind(_config(variant_options={"skip_cap": 8}), CNN)
    assert uncapped.derive(CNN, probs) == darts


# -- resume, settings ---------------------------------------------------------------------------


@pytest.mark.parametrize("stop", [4, 7])
def test_a_resumed_p_darts_search_is_bit_identical_across_stages(stop, tmp_path):
    """Stopped at a stage's end (step 4) or inside the second stage (step 7), with skip dropout."""
    options = {"add_layers_1": 1, "add_layers_2": 1, "dropout_1": 0.4}
    whole = _search(variant_options=options)
    whole.run()
    part = _search(variant_options=options, out=tmp_path / "run")
    part.run(steps=stop)
    del part
    resumed = Search.resume(tmp_path / "run", data=_data())
    assert resumed.step_count == stop
    resumed.run()
    want, got = _state(whole), _state(resumed)
    assert set(want) == set(got) and all(torch.equal(want[k], got[k]) for k in want)
    assert resumed.genotype == whole.genotype
    assert all(torch.equal(whole.method.masks[k], resumed.method.masks[k]) for k in ("normal", "reduce"))


@pytest.mark.parametrize("overrides,message", [
    (dict(impl="fast"), "p_darts builds only each edge's kept ops, on the reference supernet: use impl='reference'"),
    (dict(epochs=2), "p_darts searches in 3 stages: epochs must be at least 3, got 2"),
    (dict(variant_options={"keep_1": 2, "keep_2": 3}), "keep_2 <= keep_1"),
    (dict(variant_options={"keep_1": 2.5}), "variant option keep_1 must be a whole number, got 2.5"),
    (dict(variant_options={"dropout_2": 1.0}), "variant option dropout_2 must be a finite number in [0.0, 0.99]"),
    (dict(variant_options={"keep_1": 9}), "keep_1 must be at most the 8 ops"),
    (dict(space="rnn", dataset="pydoc"), "variant 'p_darts' works in the cnn space(s), not 'rnn'"),
])
def test_bad_p_darts_settings_are_refused_in_one_line(overrides, message):
    with pytest.raises(ValueError) as e:
        _config(**overrides).validate()
    assert message in str(e.value) and "\n" not in str(e.value)


def test_p_darts_presets_and_the_command_line(tmp_path, capsys):
    paper = SearchConfig.preset("paper", variant="p_darts")
    assert (paper.layers, paper.epochs, paper.warmup_epochs, paper.batch_size, paper.lr, paper.arch_lr) == \
        (5, 75, 10, 96, 0.025, 6e-4)
    assert paper.impl == "reference" and paper.order == 1
    tiny = SearchConfig.preset("tiny", variant="p_darts")
    assert tiny.impl == "reference" and tiny.epochs == 9 and tiny.dataset == "digits"
    out = tmp_path / "bad"
    assert main(["search", "--variant", "p_darts", "--preset", "tiny", "--impl", "fast", "--out", str(out)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "impl='reference'" in err[0] and not out.exists()
