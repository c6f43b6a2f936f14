import dataclasses
import json
import os
import signal

import numpy as np
import pytest
import torch

from dartsviz import Genotype, Search, SearchConfig
from dartsviz.records import StepRecord
from dartsviz.runs import RunDir, RunDirError, load_checkpoint, save_checkpoint


def _config(tiny_overrides, **kw):
    return SearchConfig.preset("tiny", **{**tiny_overrides, **kw})


def _assert_same_state(a: Search, b: Search):
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_records_carry_what_views_need(tiny_overrides):
    search = Search(_config(tiny_overrides))
    seen = []
    search.subscribe(seen.append)
    rec = search.step()
    assert seen == [rec] == search.history
    for key in ("step", "epoch", "order", "train_loss", "train_acc", "val_loss", "val_acc", "lr",
                "probs", "genotype", "seconds", "peak_mem_mb"):
        assert key in rec
    probs = np.array(rec["probs"]["normal"])
    assert probs.shape == (14, 8)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert rec.genotype == search.genotype and isinstance(rec.genotype, Genotype)
    assert rec.space == "cnn" and rec.variant == "darts" and set(rec.probs) == {"normal", "reduce"}
    assert StepRecord.from_dict(json.loads(rec.to_json())) == rec        # text only on disk
    search.run()                                  # to the configured end: 2 epochs of 3 steps
    kinds = [r["kind"] for r in search.history]
    assert kinds.count("step") == 6 and kinds.count("epoch") == 2
    epoch_rec = [r for r in search.history if r["kind"] == "epoch"][-1]
    assert 0.0 <= epoch_rec["test_acc"] <= 1.0
    assert search.done


def test_deferred_records_equal_per_step_records(tiny_overrides):
    # sync_every=4 keeps each step's numbers on the device and reads them in bursts; the
    # records must be the ones a per-step search makes, in order, none lost at epoch ends
    over = dict(tiny_overrides, steps_per_epoch=5, epochs=2)
    eager, lazy = Search(_config(over)), Search(_config(over, sync_every=4))
    seen = []
    lazy.subscribe(seen.append)
    returned = [lazy.step() for _ in range(3)]
    assert returned == [None, None, None] and lazy.history == [] and seen == []
    fourth = lazy.step()
    assert fourth is not None and fourth["step"] == 4 and len(lazy.history) == 4
    assert lazy.step() is not None                # step 5 ends epoch 0: flushed at once
    assert [r["kind"] for r in lazy.history] == ["step"] * 5 + ["epoch"]
    lazy.run(steps=2)                             # run() flushes when it returns
    eager.run(steps=7)
    assert seen == lazy.history
    volatile = {"seconds", "peak_mem_mb", "mem_baseline_mb"}   # time and memory readings of the process
    strip = lambda hist: [{k: v for k, v in r.to_dict().items() if k not in volatile} for r in hist]
    assert strip(lazy.history) == strip(eager.history)
    _assert_same_state(eager, lazy)


def test_order_can_change_between_steps_and_the_record_says_so(tiny_overrides):
    search = Search(_config(tiny_overrides))
    assert search.step()["order"] == 1
    search.set(order=2, hvp="exact")
    rec = search.step()
    assert rec["order"] == 2 and rec["hvp"] == "exact"
    with pytest.raises(ValueError, match="order"):
        search.set(order=3)
    with pytest.raises(ValueError, match="cannot change"):
        search.set(layers=5)


def test_second_order_moves_alpha_differently_and_weights_follow_a_plain_weight_step(tiny_overrides):
    cfg = dict(tiny_overrides, dtype="float64")
    first, second, plain = (Search(_config(cfg)) for _ in range(3))
    for s in (first, second, plain):
        s.set(warmup_epochs=0)
        s.step()                                  # a first step so momentum buffers exist
    second.set(order=2)
    first.step()
    second.step()
    assert not torch.allclose(first.model.alpha_normal, second.model.alpha_normal)
    # plain: same state, alphas set to second-order's result, weight step only
    with torch.no_grad():
        for a, b in zip(plain.model.arch_parameters(), second.model.arch_parameters()):
            a.copy_(b)
    plain.set(warmup_epochs=10 ** 6)              # no architecture step
    plain.step()
    _assert_same_state(plain, second)


def test_a_short_search_on_digits_beats_chance_by_far():
    search = Search(SearchConfig.preset("tiny", layers=3, channels=8, batch_size=32, epochs=2, warmup_epochs=0))
    search.run()
    epochs = [r for r in search.history if r["kind"] == "epoch"]
    assert epochs[-1]["test_acc"] > 0.6          # chance is 0.1
    assert epochs[-1]["val_acc"] > 0.5


@pytest.mark.parametrize("order", [1, 2])
def test_stop_and_resume_ends_bit_identical(tmp_path, tiny_overrides, order):
    cfg = _config(tiny_overrides, order=order)
    whole = Search(cfg)
    whole.run()
    part = Search(_config(tiny_overrides, order=order), out=tmp_path / "run")
    part.run(steps=4)                             # stops inside the second epoch
    del part
    resumed = Search.resume(tmp_path / "run")
    assert resumed.step_count == 4
    resumed.run()
    _assert_same_state(whole, resumed)
    assert [r["train_loss"] for r in whole.history] == [r["train_loss"] for r in resumed.history]
    assert [r["genotype"] for r in whole.history] == [r["genotype"] for r in resumed.history]
    assert len(RunDir(tmp_path / "run").read_history()) == len(whole.history)


def test_pause_stops_at_a_step_boundary_and_run_continues(tiny_overrides):
    search = Search(_config(tiny_overrides))
    search.subscribe(lambda r: search.pause() if r["step"] == 2 else None)
    search.run()
    assert search.interrupted and search.step_count == 2
    search.run()
    assert not search.interrupted and search.done


def test_ctrl_c_stops_at_a_step_boundary(tiny_overrides):
    search = Search(_config(tiny_overrides))
    search.subscribe(lambda r: os.kill(os.getpid(), signal.SIGINT) if r["step"] == 1 else None)
    search.run()                                   # does not raise
    assert search.interrupted and search.step_count == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    search.run()
    assert search.done


def test_checkpoint_loads_with_weights_only_and_rejects_corrupt_or_foreign_files(tmp_path, tiny_overrides):
    search = Search(_config(tiny_overrides), out=tmp_path / "run")
    search.run(steps=2)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 2 and "alpha_normal" in state["model"]
    good = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(good[: len(good) // 2])
    (tmp_path / "text.pt").write_text("hello")
    torch.save({"weights": torch.ones(2)}, tmp_path / "foreign.pt")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "pickled_module.pt")   # needs unpickling of code
    for name in ("trunc.pt", "text.pt", "foreign.pt", "pickled_module.pt"):
        with pytest.raises(RunDirError, match="checkpoint"):
            load_checkpoint(tmp_path / name)
    with pytest.raises(RunDirError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    save_checkpoint(tmp_path / "train.pt", {"x": 1}, kind="train")
    with pytest.raises(RunDirError, match="expected a search"):
        Search.resume(tmp_path / "train.pt")


def test_run_directory_holds_config_history_genotype_and_checkpoint(tmp_path, tiny_overrides):
    search = Search(_config(tiny_overrides), out=tmp_path / "run")
    search.run()
    run = RunDir(tmp_path / "run").require()
    assert run.read_config()["dataset"] == "digits"
    assert len(run.read_history()) == len(search.history)
    assert run.read_genotype() == search.genotype
    assert Genotype.from_text((tmp_path / "run" / "genotype.txt").read_text()) == search.genotype
    assert not list((tmp_path / "run").glob(".*tmp"))       # no temporary files left behind


def test_seeds_make_cpu_runs_reproducible_and_differ_between_seeds(tiny_overrides):
    a, b, c = Search(_config(tiny_overrides)), Search(_config(tiny_overrides)), Search(_config(tiny_overrides, seed=7))
    for s in (a, b, c):
        s.run(steps=2)
    _assert_same_state(a, b)
    assert not torch.equal(a.model.alpha_normal, c.model.alpha_normal)


def test_config_validation():
    with pytest.raises(ValueError, match="order"):
        SearchConfig.preset("tiny", order=3)
    with pytest.raises(ValueError, match="unknown preset"):
        SearchConfig.preset("huge")
    with pytest.raises(ValueError, match="unknown SearchConfig field"):
        SearchConfig.preset("tiny", colour="red")
    with pytest.raises(ValueError, match="batch_size"):
        SearchConfig(batch_size=0)
    assert SearchConfig().arch_lr == 3e-4 and SearchConfig().layers == 8 and SearchConfig().seed == 2


# the fields of a config.json written before space_options: the rnn space's (their old defaults) and PC-DARTS'
OLD_RNN_FIELDS = dict(nhid=300, bptt=35, dropout=0.75, dropouth=0.25, dropoutx=0.75, dropouti=0.2, dropoute=0.0,
                      tar_beta=1e-3, vocab_size=10000, eval_batch_size=10, bptt_jitter=False)


def test_search_and_train_configs_carry_no_space_or_variant_fields():
    from dartsviz.spaces.cnn.train import TrainConfig
    for cls in (SearchConfig, TrainConfig):
        names = {f.name for f in dataclasses.fields(cls)}
        assert not names & {*OLD_RNN_FIELDS, "partial_channels", "edge_norm"}, cls
    assert SearchConfig().space_options == {} and SearchConfig().to_dict()["space_options"] == {}


def test_a_space_setting_goes_into_space_options_and_a_bad_one_is_one_line():
    c = SearchConfig(space="rnn", nhid=16)
    assert c.space_options == {"nhid": 16} and (c.nhid, c.bptt) == (16, 35)       # read-only, the space's defaults
    assert c == SearchConfig(space="rnn", space_options={"nhid": 16}) == SearchConfig.from_dict(c.to_dict())
    assert dataclasses.replace(c, bptt=7).space_options == {"nhid": 16, "bptt": 7}
    assert getattr(SearchConfig(), "nhid", None) is None                           # not a cnn setting
    with pytest.raises(AttributeError, match="space_options"):
        c.nhid = 8
    for make, message in ((lambda: SearchConfig(nhid=16), "nhid is a setting of the rnn space, not the cnn space"),
                          (lambda: SearchConfig.preset("tiny", bptt=5), "bptt is a setting of the rnn space"),
                          (lambda: SearchConfig(space="rnn", space_options={"width": 3}),
                           "unknown option(s) 'width' for the rnn space; known options: nhid, bptt"),
                          (lambda: SearchConfig(space_options={"nhid": 3}), "unknown option(s) 'nhid' for the cnn space"),
                          (lambda: SearchConfig(space="rnn", space_options=[1]), "space_options must be a dict"),
                          (lambda: SearchConfig(space="rnn", bptt_jitter=1), "bptt_jitter must be True or False"),
                          (lambda: SearchConfig(space="rnn", vocab_size=2), "vocab_size must be 0")):
        with pytest.raises(ValueError) as e:
            make()
        assert message in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ValueError, match="unknown SearchConfig field"):
        SearchConfig.preset("tiny", space="rnn", colour=3)


def test_a_config_dict_from_before_space_options_loads_to_the_same_settings():
    """A config.json of an older version holds every space's fields at the top level and
    PC-DARTS' two fields; it loads to the same settings."""
    old = dict(space="cnn", variant="pc_darts", variant_options={}, dataset="digits", layers=3, channels=16,
               seed=5, partial_channels=2, edge_norm=True, arch_betas=[0.9, 0.999], **OLD_RNN_FIELDS)
    c = SearchConfig.from_dict(old)
    assert c.variant_options == {"partial_channels": 2, "edge_norm": True} and c.space_options == {}
    assert c == SearchConfig(variant="pc_darts", variant_options={"partial_channels": 2, "edge_norm": True},
                             dataset="digits", layers=3, channels=16, seed=5, arch_betas=(0.9, 0.999))
    plain = SearchConfig.from_dict({**old, "variant": "darts", "partial_channels": 1, "edge_norm": False})
    assert plain == dataclasses.replace(c, variant="darts", variant_options={})
    with pytest.raises(ValueError, match="partial_channels=2, edge_norm=True, which only variant pc_darts") as e:
        SearchConfig.from_dict({**old, "variant": "darts"})
    assert "\n" not in str(e.value)
    rnn = SearchConfig.from_dict({**old, "space": "rnn", "variant": "darts", "partial_channels": 1,
                                  "edge_norm": False, "dataset": "pydoc", "nhid": 32, "bptt_jitter": True})
    assert rnn.space_options == {**OLD_RNN_FIELDS, "nhid": 32, "bptt_jitter": True}
    assert (rnn.nhid, rnn.bptt, rnn.bptt_jitter, rnn.variant_options) == (32, 35, True, {})
    assert SearchConfig.from_dict(rnn.to_dict()) == rnn


FLOAT_FIELDS = [f.name for f in dataclasses.fields(SearchConfig) if f.type in ("float", float)]


@pytest.mark.parametrize("field", FLOAT_FIELDS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_every_float_field_is_checked_for_finiteness_and_range(field, bad):
    with pytest.raises(ValueError, match=field):
        SearchConfig.preset("tiny", **{field: bad})


@pytest.mark.parametrize("overrides", [dict(lr_min=1.0, lr=0.1), dict(momentum=1.0), dict(train_portion=1.0),
                                       dict(arch_betas=(0.5, float("nan"))), dict(arch_betas=(1.0, 0.9))])
def test_out_of_range_settings_are_refused(overrides):
    with pytest.raises(ValueError):
        SearchConfig.preset("tiny", **overrides)


def test_a_refused_checkpoint_does_not_pass_on_torchs_advice(tmp_path):
    import argparse
    torch.save({"format": "dartsviz-checkpoint", "x": argparse.Namespace(a=1)}, tmp_path / "c.pt")
    with pytest.raises(RunDirError) as e:
        load_checkpoint(tmp_path / "c.pt")
    msg = str(e.value)
    assert "untrusted source" in msg and "weights_only" not in msg and len(msg.splitlines()) == 1


def test_the_tiny_preset_makes_the_weights_separate_within_its_budget():
    """The teaching preset must show something: after its 10 epochs most edges have a
    strongest op clearly above the rest (uniform would be 1/8 everywhere)."""
    search = Search(SearchConfig.preset("tiny"))
    search.run()
    probs = np.concatenate([np.array(v) for v in search.history[-2]["probs"].values()])   # (28, 8)
    top2 = np.sort(probs, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    assert probs.max(1).mean() > 0.3                 # uniform: 0.125
    assert (margin > 0.1).mean() >= 0.5              # half the edges or more separate (75 % with 2 threads, 50 % with 1)
    first = np.concatenate([np.array(v) for v in search.history[0]["probs"].values()])
    assert probs.max(1).mean() > 2 * first.max(1).mean()
    epochs = [r for r in search.history if r["kind"] == "epoch"]
    assert epochs[-1]["test_acc"] > 0.9
    # the derived cell settles: most kept (op, input) choices no longer change between epochs
    slots = lambda g: [c for cell in (g.normal, g.reduce) for node in cell for c in node]
    last, before = (slots(r.genotype) for r in (epochs[-1], epochs[-2]))
    first_change = (slots(r.genotype) for r in (epochs[1], epochs[2]))
    same_late = sum(a == b for a, b in zip(last, before))
    same_early = sum(a == b for a, b in zip(*first_change))
    assert same_late >= 11 and same_late > same_early      # of 16 kept choices


@pytest.mark.parametrize("order,hvp", [(1, "finite"), (2, "finite"), (2, "exact")])
def test_steps_read_no_tensor_values_to_the_host_until_flush(tiny_overrides, order, hvp, host_reads):
    # With sync_every > 1 a step reads no tensor value to the host (each such read waits
    # for the GPU); the only values read are Adam's step counters, CPU tensors on every device.
    s = Search(_config(tiny_overrides, order=order, hvp=hvp, sync_every=100, steps_per_epoch=50))
    s.step()
    with host_reads(exempt=[st["step"] for st in s.a_opt.state.values()]) as spy:
        assert s.step() is None and s.step() is None
    assert spy.hits == []
    assert [r["step"] for r in s.flush()] == [1, 2, 3] and len(s.history) == 3


def test_history_appends_what_is_new_and_rewrites_otherwise(tmp_path):
    recs = [{"kind": "step", "step": i, "x": [i] * 3} for i in range(1, 6)]
    full = lambda rs: "".join(__import__("json").dumps(r, separators=(",", ":")) + "\n" for r in rs)
    run = RunDir(tmp_path)
    run.write_history(recs[:2])
    ino = (tmp_path / "history.jsonl").stat().st_ino
    run.write_history(recs[:4])                   # grown: appended in place, same file
    assert (tmp_path / "history.jsonl").stat().st_ino == ino
    assert (tmp_path / "history.jsonl").read_text() == full(recs[:4])
    run.write_history(recs[:3])                   # shrunk: rewritten
    assert run.read_history() == recs[:3]
    (tmp_path / "history.jsonl").write_text(full(recs[:1]))   # changed behind its back
    run.write_history(recs)                       # rewritten, not appended to the stranger's file
    assert run.read_history() == recs
    # a crash in the middle of an append leaves a partial last line: it is dropped
    with open(tmp_path / "history.jsonl", "a") as f:
        f.write('{"kind":"step","st')
    assert RunDir(tmp_path).read_history() == recs
    (tmp_path / "history.jsonl").write_text(full(recs[:1]) + "{bad\n" + full(recs[1:2]))
    with pytest.raises(RunDirError, match="line 2 is not valid JSON"):
        RunDir(tmp_path).read_history()
