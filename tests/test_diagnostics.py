"""Collapse diagnostics: the power iteration against the full Hessian (both spaces), collapse
statistics on hand-made cells, a monitor that leaves the search's trajectory alone, DARTS-ES
on scripted eigenvalues, exact resume, and bad settings refused in one line."""
import contextlib
import dataclasses
import json

import numpy as np
import pytest
import torch

from dartsviz import (DARTS_RNN_V1, DARTS_RNN_V2, DARTS_V1, DARTS_V2, Genotype, RNNGenotype, Search,
                      SearchConfig, get_space)
from dartsviz.bilevel import loss_with
from dartsviz.diagnostics import (MONITOR_SEED, Eigen, collapse_stats, darts_es, fixed_rng,
                                  hessian_max_eigenvalue)
from dartsviz.records import EpochRecord, StepRecord, record_from_dict
from dartsviz.runs import RunDir, load_checkpoint
from dartsviz.text import load_text


@pytest.fixture(scope="module")
def corpus():
    """A slice of the embedded corpus: 1,200 tokens, 300 words (as the recurrent search tests)."""
    data = load_text("pydoc", vocab_size=300).truncated(1200)
    return dataclasses.replace(data, test=data.test[:320], eval_batch_size=16)


def _cnn(tiny_overrides, **kw):
    """The tiny test search, narrower (2 channels, batches of 8)."""
    return SearchConfig.preset("tiny", **{**tiny_overrides, "channels": 2, "batch_size": 8, **kw})


def _rnn(**kw):
    return SearchConfig.preset("tiny_rnn", **{**dict(nhid=8, batch_size=4, bptt=5, epochs=2, steps_per_epoch=3,
                                                     device="cpu", arch_lr=0.05), **kw})


def _full_hessian(model, batch, seed):
    """The oracle: the Hessian of the loss in every alpha entry, row by row by double backward,
    with the random draws (dropout masks) the monitor's fixed_rng(seed) makes. (n, n)."""
    alphas = list(model.alpha_of().values())
    model.train()
    with fixed_rng(seed, torch.device("cpu")):
        loss, _ = loss_with(model, None, batch)
    grads = torch.autograd.grad(loss, alphas, create_graph=True, allow_unused=True)
    flat = torch.cat([torch.zeros(a.numel(), dtype=a.dtype) if g is None else g.flatten()
                      for g, a in zip(grads, alphas)])                          # (n,)
    rows = []
    for gi in flat:
        if not gi.requires_grad:                  # an alpha no cell uses: its row is zero
            rows.append(torch.zeros_like(flat))
            continue
        r = torch.autograd.grad(gi, alphas, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([torch.zeros(a.numel(), dtype=a.dtype) if x is None else x.flatten()
                               for x, a in zip(r, alphas)]))
    return torch.stack(rows)                                                    # (n, n)


def _check_against_full_hessian(search):
    """search.hessian_eigen() (power iteration, tight tolerance) against the largest eigenvalue
    of the full Hessian plus arch_weight_decay * I; returns the oracle's spectrum."""
    c = search.config
    batch = search.monitor_batch()
    rng, state = torch.get_rng_state(), {k: v.clone() for k, v in search.model.state_dict().items()
                                         if torch.is_tensor(v)}
    eig = search.hessian_eigen()
    assert torch.equal(torch.get_rng_state(), rng)                      # no draw taken from the caller
    assert all(torch.equal(v, search.model.state_dict()[k]) for k, v in state.items())
    H = _full_hessian(search.model, batch, c.seed + MONITOR_SEED)
    assert torch.allclose(H, H.T, atol=1e-12)
    spectrum = torch.linalg.eigvalsh(H + c.arch_weight_decay * torch.eye(len(H), dtype=H.dtype))
    assert eig.converged and 1 < eig.iters < c.monitor_iters and eig.seconds > 0
    assert abs(eig.value - spectrum[-1].item()) < 1e-3 * abs(spectrum[-1].item())
    return spectrum


def test_power_iteration_finds_the_largest_eigenvalue_of_the_full_hessian_cnn():
    # one reduction cell (layers=1), so 112 live alpha entries and a normal alpha no cell uses
    search = Search(SearchConfig.preset("tiny", layers=1, channels=2, batch_size=4, steps_per_epoch=3, epochs=1,
                                        warmup_epochs=0, dtype="float64", arch_weight_decay=1e-3,
                                        monitor_tol=1e-4, monitor_iters=400))
    search.run(steps=2)                           # alphas away from their start
    spectrum = _check_against_full_hessian(search)
    assert spectrum[-1] > abs(spectrum[0])        # the plain power iteration's case


def test_power_iteration_finds_the_largest_eigenvalue_of_the_full_hessian_rnn(corpus):
    # one-token segments keep the 180-row oracle short; training mode: dropout masks drawn in fixed_rng
    search = Search(_rnn(bptt=1, dtype="float64", arch_weight_decay=0.0, monitor_tol=1e-4, monitor_iters=400),
                    data=corpus)
    search.run(steps=2)
    spectrum = _check_against_full_hessian(search)
    # the most negative eigenvalue dominates in magnitude here: the shifted second run is what finds lambda_max
    assert abs(spectrum[0]) > spectrum[-1] > 0


def test_power_iteration_on_a_known_quadratic_and_its_limits():
    class Quadratic(torch.nn.Module):
        """loss = 0.5 a^T A a with A = diag(-3, 1, 2): lambda_max 2 though -3 dominates."""
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Parameter(torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64))
            self.frozen_bn_stats = contextlib.nullcontext

        def alpha_of(self):
            return {"c": self.a}

        def loss(self, batch):
            return 0.5 * (torch.tensor([-3.0, 1.0, 2.0], dtype=torch.float64) * self.a ** 2).sum(), None
    q = Quadratic()
    e = hessian_max_eigenvalue(q, None, tol=1e-8, max_iters=500)
    assert isinstance(e, Eigen) and e.value == pytest.approx(2.0, rel=1e-6) and e.converged
    # diag(-2.5, 1.5, 2.5): the two ends tie in magnitude, the first run never settles
    tied = hessian_max_eigenvalue(q, None, tol=1e-8, max_iters=500, weight_decay=0.5)
    assert tied.value == pytest.approx(2.5, rel=1e-6) and tied.converged and tied.iters > 500
    capped = hessian_max_eigenvalue(q, None, tol=1e-12, max_iters=2)
    assert capped.iters == 4 and not capped.converged             # two runs of two
    with pytest.raises(ValueError, match="tol"):
        hessian_max_eigenvalue(q, None, tol=0)
    with pytest.raises(ValueError, match="max_iters"):
        hessian_max_eigenvalue(q, None, max_iters=0)


def test_collapse_stats_on_hand_made_cells():
    cnn, rnn = get_space("cnn"), get_space("rnn")
    normal = ((("skip_connect", 0), ("max_pool_3x3", 1)), (("skip_connect", 0), ("sep_conv_3x3", 2)),
              (("avg_pool_3x3", 1), ("dil_conv_5x5", 3)), (("skip_connect", 4), ("sep_conv_5x5", 0)))
    g = Genotype(normal, (2, 3, 4, 5), DARTS_V2.reduce, DARTS_V2.reduce_concat)   # reduce: pools, not counted
    probs = {"normal": np.full((14, 8), 0.1), "reduce": np.full((14, 8), 0.9)}
    probs["normal"][3, cnn.ops.index("none")] = 0.42
    probs["normal"][9, cnn.ops.index("skip_connect")] = 0.61
    assert collapse_stats(cnn, g, probs) == {"param_free_ops": 5, "max_none": 0.42, "max_skip": 0.61}
    # the paper's cells (variants-reference: 3 of 8 normal-cell skips in V1, 2 in V2, no pools)
    assert collapse_stats(cnn, DARTS_V1, probs)["param_free_ops"] == 3
    assert collapse_stats(cnn, DARTS_V2, probs)["param_free_ops"] == 2
    # the recurrent space has no parameter-free op: its skip-like identity is counted
    cell = (("identity", 0), ("relu", 1), ("identity", 1), ("tanh", 2), ("identity", 0), ("sigmoid", 5),
            ("relu", 3), ("identity", 7))
    p = np.zeros((36, 5))
    p[:, rnn.ops.index("none")] = 0.3
    p[7, rnn.ops.index("identity")] = 0.55
    stats = collapse_stats(rnn, RNNGenotype(cell), {"recurrent": p})
    assert stats == {"param_free_ops": 4, "max_none": 0.3, "max_skip": 0.55}
    assert [collapse_stats(rnn, g, {"recurrent": p})["param_free_ops"] for g in (DARTS_RNN_V1, DARTS_RNN_V2)] == [1, 1]
    with pytest.raises(ValueError, match=r"probs\['normal'\] must be \(edges, 8\)"):
        collapse_stats(cnn, g, {"normal": np.zeros((14, 5)), "reduce": np.zeros((14, 5))})


def test_every_step_record_carries_collapse_stats_of_its_own_cell(tiny_overrides):
    search = Search(_cnn(tiny_overrides, steps_per_epoch=2, epochs=1))
    records = [search.snapshot()] + list(search.run())
    steps = [r for r in records if r.kind == "step"]
    space = search.space
    for r in steps:
        kept = [op for node in r.genotype.normal for op, _ in node]
        assert r.param_free_ops == sum(op in ("max_pool_3x3", "avg_pool_3x3", "skip_connect") for op in kept)
        assert r.max_none == r.probs["normal"][:, space.ops.index("none")].max()
        assert r.max_skip == r.probs["normal"][:, space.ops.index("skip_connect")].max()
        assert r.lambda_max is None and r.lambda_seconds is None          # monitor off by default
        assert StepRecord.from_dict(json.loads(r.to_json())) == r
    assert records[-1].kind == "epoch" and records[-1].lambda_max is None
    # a history line written before these fields existed still loads, with them None
    old = {k: v for k, v in steps[-1].to_dict().items()
           if k not in ("param_free_ops", "max_none", "max_skip", "lambda_max", "lambda_iters", "lambda_seconds")}
    assert record_from_dict(old).max_skip is None
    old_epoch = {k: v for k, v in records[-1].to_dict().items() if k not in ("lambda_max", "early_stop_epoch")}
    assert isinstance(record_from_dict(old_epoch), EpochRecord)


def test_the_monitor_leaves_the_trajectory_bit_identical(corpus):
    # the recurrent space draws its dropout masks from the global RNG: a monitor taking draws
    # from it (its own masks) would change every later step
    plain = Search(_rnn(), data=corpus)
    plain.run()
    rng_after_plain = torch.get_rng_state()
    watched = Search(_rnn(monitor_every=1, monitor_iters=3), data=corpus)
    watched.run()
    assert torch.equal(torch.get_rng_state(), rng_after_plain)      # the same draws, no more
    for (n, a), (_, b) in zip(plain.model.state_dict().items(), watched.model.state_dict().items()):
        if n != "_extra_state":
            assert torch.equal(a, b), n
    for name, st in plain.model.get_extra_state().items():
        assert torch.equal(st["next"], watched.model.get_extra_state()[name]["next"])
    sa, sb = plain.a_opt.state_dict()["state"], watched.a_opt.state_dict()["state"]
    assert all(torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) for i in sa)
    p_steps = [r for r in plain.history if r.kind == "step"]
    w_steps = [r for r in watched.history if r.kind == "step"]
    assert [r.losses for r in p_steps] == [r.losses for r in w_steps]
    assert all(r.lambda_max is None for r in p_steps)
    assert all(isinstance(r.lambda_max, float) and 1 <= r.lambda_iters <= 6 and r.lambda_seconds > 0
               for r in w_steps)                  # at most 3 per run, a second run when the first did not settle
    w_epochs = [r for r in watched.history if r.kind == "epoch"]
    assert [r.lambda_max for r in w_epochs] == [w_steps[2].lambda_max, w_steps[5].lambda_max]
    assert all(r.param_free_ops == sum(op == "identity" for op, _ in r.genotype.recurrent) for r in w_steps)


def test_darts_es_rule_on_sequences():
    lam = {0: 1.0, 1: 1.1, 2: 1.2, 3: 1.25, 4: 2.0}
    assert [darts_es(lam, e, 2, 1.3) for e in range(5)] == [None, None, None, None, 2]   # 2.0 / 1.2 > 1.3
    assert darts_es(lam, 4, 2, 1.7) is None                                             # 1.67 is not > 1.7
    assert darts_es({0: 0.0, 2: 5.0}, 2, 2, 1.3) is None          # no ratio to a non-positive value
    assert darts_es({0: float("nan"), 2: 5.0}, 2, 2, 1.3) is None
    assert darts_es({2: 5.0}, 2, 2, 1.3) is None                  # no measurement two epochs before


def test_darts_es_with_local_averages_and_a_start_epoch_against_a_loop():
    """smooth=n compares means of n epochs, window epochs apart, once the earlier side ends at
    `start` or later; the oracle is the rule written out as a loop over epochs."""
    rng = np.random.default_rng(0)
    lam = {e: float(v) for e, v in enumerate(np.cumprod(rng.uniform(0.9, 1.25, 30)))}
    for window, ratio, smooth, start in [(4, 1.3, 5, 10), (2, 1.1, 3, 0), (5, 1.2, 1, 6)]:
        for e in range(30):
            b = e - window
            ok = b >= start and b - smooth + 1 >= 0
            want = None
            if ok:
                now = sum(lam[i] for i in range(e - smooth + 1, e + 1)) / smooth
                before = sum(lam[i] for i in range(b - smooth + 1, b + 1)) / smooth
                want = b if now / before > ratio else None
            assert darts_es(lam, e, window, ratio, smooth, start) == want
    assert darts_es({0: 1.0, 1: 1.0, 3: 9.0, 4: 9.0}, 4, 2, 1.3, smooth=2) is None   # epoch 2 missing


def test_a_smoothed_early_stop_reports_the_means_it_compared(tmp_path, tiny_overrides, monkeypatch):
    _scripted(monkeypatch, [1.0, 1.0, 1.0, 1.0, 3.0, 9.0, 9.0, 9.0])
    search = Search(_cnn(tiny_overrides, steps_per_epoch=1, epochs=8, early_stop=True, early_stop_window=2,
                         early_stop_smooth=2, early_stop_start=1), out=tmp_path / "run")
    search.run()
    es = search.early_stopped                  # epoch 4: mean(1, 3) / mean(1, 1) = 2 > 1.3
    assert (es.epoch, es.selected_epoch, es.lambda_now, es.lambda_before, es.smooth) == (4, 2, 2.0, 1.0, 2)
    assert "mean lambda_max of 2 epochs 2 / 1 at epoch 2" in es.message()
    resumed = Search.resume(tmp_path / "run")
    assert resumed.early_stopped == es
    with pytest.raises(ValueError, match="early_stop_start must be an epoch"):
        _cnn(tiny_overrides, early_stop_start=-1).validate()


def _scripted(monkeypatch, values):
    """Search.hessian_eigen returns values[epoch of the step just taken]."""
    def fake(self):
        return Eigen(values[(self.step_count - 1) // self.steps_per_epoch], 1, 0.001, True)
    monkeypatch.setattr(Search, "hessian_eigen", fake)


def test_early_stopping_returns_the_genotype_of_window_epochs_before(tmp_path, tiny_overrides, monkeypatch):
    _scripted(monkeypatch, [1.0, 1.1, 1.2, 1.25, 2.0, 9.0, 9.0, 9.0])       # fires at epoch 4: 2.0 / 1.2
    search = Search(_cnn(tiny_overrides, steps_per_epoch=1, epochs=8, early_stop=True, early_stop_window=2),
                    out=tmp_path / "run")
    search.run()
    epochs = [r for r in search.history if r.kind == "epoch"]
    assert search.step_count == 5 and search.done and not search.interrupted
    assert [r.lambda_max for r in epochs] == [1.0, 1.1, 1.2, 1.25, 2.0]
    assert [r.early_stop_epoch for r in epochs] == [None, None, None, None, 2]
    now = search.method.derive(search.space, search.model.probs())
    assert now == epochs[4].genotype != epochs[2].genotype       # the cells differ: the choice is visible
    assert search.genotype == epochs[2].genotype
    es = search.early_stopped
    assert (es.epoch, es.selected_epoch, es.lambda_now, es.lambda_before) == (4, 2, 2.0, 1.2)
    run = RunDir(tmp_path / "run")
    assert run.read_genotype() == epochs[2].genotype
    line = (tmp_path / "run" / "early_stop.txt").read_text()
    assert line.count("\n") == 1 and "epoch 4" in line and "epoch 2" in line
    assert search.run() == [] and search.step_count == 5          # nothing more to do
    resumed = Search.resume(tmp_path / "run")
    assert resumed.done and resumed.genotype == epochs[2].genotype and resumed.early_stopped == es


def test_early_stop_from_the_command_line(tmp_path, monkeypatch, capsys, tiny_overrides):
    from dartsviz.cli import main
    from dartsviz.search import PRESETS
    monkeypatch.setitem(PRESETS, "tiny", {**PRESETS["tiny"], **tiny_overrides, "channels": 2, "batch_size": 8,
                                          "steps_per_epoch": 1, "early_stop_window": 2})
    _scripted(monkeypatch, [1.0, 1.0, 1.0, 1.5, 1.5, 1.5])         # fires at epoch 3: 1.5 / 1.0
    out = tmp_path / "run"
    assert main(["search", "--early-stop", "--epochs", "6", "--out", str(out), "--quiet", "--no-plots"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert any(l.startswith("early stop (DARTS-ES) at epoch 3") and "epoch 1" in l for l in printed)
    history = RunDir(out).read_records()
    chosen = [r for r in history if r.kind == "epoch" and r.epoch == 1][0].genotype
    assert RunDir(out).read_genotype() == chosen and f"genotype: {chosen.to_text()}" in printed
    assert json.loads((out / "config.json").read_text())["early_stop"] is True
    assert (out / "early_stop.txt").read_text().strip() in printed
    assert main(["search", "--monitor-every", "-1", "--quiet", "--out", str(tmp_path / "bad")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "monitor_every" in err and not (tmp_path / "bad").exists()


def test_the_early_stop_rule_settings_from_the_command_line(tmp_path, monkeypatch, capsys, tiny_overrides):
    from dartsviz.cli import main
    from dartsviz.search import PRESETS
    monkeypatch.setitem(PRESETS, "tiny", {**PRESETS["tiny"], **tiny_overrides, "channels": 2, "batch_size": 8,
                                          "steps_per_epoch": 1})
    _scripted(monkeypatch, [1.0, 1.0, 1.0, 1.0, 1.6, 1.6, 1.6])   # means of 2: epoch 5 / epoch 3 = 1.6 > 1.5
    out = tmp_path / "run"
    assert main(["search", "--early-stop", "--early-stop-window", "2", "--early-stop-ratio", "1.5",
                 "--early-stop-smooth", "2", "--early-stop-start", "2", "--epochs", "7", "--out", str(out),
                 "--quiet", "--no-plots"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert [config[k] for k in ("early_stop_window", "early_stop_ratio", "early_stop_smooth", "early_stop_start")] \
        == [2, 1.5, 2, 2]
    assert (out / "early_stop.txt").read_text().startswith(
        "early stop (DARTS-ES) at epoch 5: mean lambda_max of 2 epochs 1.6 / 1 at epoch 3")
    capsys.readouterr()
    assert main(["search", "--early-stop-smooth", "0", "--quiet", "--out", str(tmp_path / "bad")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "early_stop_smooth" in err and not (tmp_path / "bad").exists()


def test_resume_with_the_monitor_on_is_bit_exact(tmp_path, tiny_overrides):
    cfg = _cnn(tiny_overrides, steps_per_epoch=2, monitor_every=3, monitor_iters=2, early_stop=True)
    whole = Search(cfg)
    whole.run()
    part = Search(cfg, out=tmp_path / "run")
    part.run(steps=3)                             # inside the second epoch, after a monitored step
    batch = part.monitor_batch()
    del part
    saved = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["diagnostics"]
    assert all(torch.equal(a, b) for a, b in zip(saved["monitor_batch"], batch))
    assert [e for e, _, _ in saved["epoch_lambdas"]] == [0]
    resumed = Search.resume(tmp_path / "run")
    resumed.run()
    for (n, a), (_, b) in zip(whole.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), n
    volatile = {"seconds", "peak_mem_mb", "mem_baseline_mb", "lambda_seconds"}
    strip = lambda hist: [{k: v for k, v in r.to_dict().items() if k not in volatile} for r in hist]
    assert strip(resumed.history) == strip(whole.history)
    lambdas = [r.lambda_max for r in whole.history if r.kind == "step"]
    assert [x is not None for x in lambdas] == [False, True, True, True]     # every 3 steps and at epoch ends


@pytest.mark.parametrize("bad", [dict(monitor_every=-1), dict(monitor_every=1.5), dict(monitor_tol=0.0),
                                 dict(monitor_iters=0), dict(early_stop_ratio=0.0), dict(early_stop_ratio=1.0),
                                 dict(early_stop_window=0), dict(early_stop="yes")])
def test_bad_monitor_settings_are_refused_in_one_line(bad):
    with pytest.raises(ValueError) as e:
        SearchConfig.preset("tiny", **bad)
    msg = str(e.value)
    assert next(iter(bad)) in msg and len(msg.splitlines()) == 1
