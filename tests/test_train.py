"""Train: presets, records, the auxiliary loss, exact resume, genotype resolution, the CLI."""
import json

import pytest
import torch
import torch.nn.functional as F

from dartsviz import DARTS_V1, DARTS_V2, random_genotype
from dartsviz.cli import main
from dartsviz.data import load_data
from dartsviz.runs import RunDir, RunDirError, save_checkpoint
from dartsviz.train import TRAIN_PRESETS, Train, TrainConfig, full_training_data, resolve_genotype

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    return load_data("digits", device="cpu")


def small(**kw):
    """A network small enough for a test: 3 cells, 4 channels, a slim auxiliary head."""
    base = dict(device="cpu", layers=3, channels=4, batch_size=32, epochs=2, steps_per_epoch=3,
                aux_widths=(8, 8), drop_path_prob=0.3)
    return TrainConfig.preset("tiny", **{**base, **kw})


def test_paper_preset_is_the_papers_evaluation_setting():
    c = TrainConfig.preset("paper")
    assert (c.dataset, c.layers, c.channels, c.batch_size, c.epochs) == ("cifar10", 20, 36, 96, 600)
    assert (c.lr, c.lr_min, c.momentum, c.weight_decay, c.grad_clip) == (0.025, 0.0, 0.9, 3e-4, 5.0)
    assert (c.auxiliary, c.auxiliary_weight, c.drop_path_prob, c.cutout, c.cutout_length) == (True, 0.4, 0.2, True, 16)
    assert set(TRAIN_PRESETS) >= {"paper", "tiny"}
    assert TrainConfig.preset("tiny").dataset == "digits"


def test_bad_presets_and_settings_are_clear_errors():
    with pytest.raises(ValueError, match="unknown preset"):
        TrainConfig.preset("huge")
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        TrainConfig.preset("tiny", chanels=8)
    with pytest.raises(ValueError, match="even"):
        TrainConfig.preset("tiny", channels=7)
    with pytest.raises(ValueError, match="drop_path_prob"):
        TrainConfig.preset("tiny", drop_path_prob=1.5)


def test_full_training_data_joins_both_halves(digits):
    full = full_training_data(digits)
    assert len(full.train[0]) == len(digits.train[0]) + len(digits.val[0])
    assert torch.equal(full.train[1], torch.cat([digits.train[1], digits.val[1]]))
    assert full.test[0] is digits.test[0]


def test_schedules_lr_cosine_and_drop_path_linear(digits):
    t = Train(DARTS_V2, small(epochs=4, lr=0.1, lr_min=0.0, drop_path_prob=0.2), data=digits)
    assert [t.drop_path_at(e) for e in range(4)] == pytest.approx([0.0, 0.05, 0.1, 0.15])
    assert t.lr_at(0) == pytest.approx(0.1) and t.lr_at(2) == pytest.approx(0.05)
    t.run(epochs=2)
    steps = [r for r in t.history if r["kind"] == "step"]
    assert [r["drop_path_prob"] for r in steps] == pytest.approx([0.0] * 3 + [0.05] * 3)


def test_step_loss_is_main_plus_weighted_auxiliary_loss(digits):
    t = Train(DARTS_V1, small(cutout=False, drop_path_prob=0.0, auxiliary_weight=0.4), data=digits)
    state = t.stream.state_dict()
    x, y = next(t.stream)
    t.stream.load_state_dict(state)
    with torch.no_grad():
        logits, aux = t.model.train()(x)
        expected = F.cross_entropy(logits, y) + 0.4 * F.cross_entropy(aux, y)
    r = t.step()
    assert r["train_loss"] == pytest.approx(float(expected), rel=1e-5)


def test_records_subscribers_and_summary(digits):
    t = Train(random_genotype(1), small(), data=digits)
    got = []
    t.subscribe(got.append)
    t.run(epochs=1)
    assert [r["kind"] for r in got] == ["step"] * 3 + ["epoch"]
    epoch = got[-1]
    assert 0 <= epoch["test_acc"] <= 1 and epoch["params"] == t.params and epoch["macs"] == t.macs
    from dartsviz.records import TrainEpochRecord, TrainStepRecord, record_from_dict
    assert [type(r) for r in got] == [TrainStepRecord] * 3 + [TrainEpochRecord]
    assert [record_from_dict(json.loads(r.to_json())) for r in got] == got      # JSON round trip
    assert got[0].losses.keys() == {"train"} and epoch.losses.keys() == {"train", "test"}
    s = t.summary()
    assert s["test_acc"] == epoch["test_acc"] and s["steps"] == 3 and s["genotype"] == random_genotype(1).to_text()


def test_deferred_training_records_equal_per_step_records(digits):
    eager, lazy = (Train(random_genotype(1), small(sync_every=k), data=digits) for k in (1, 2))
    assert lazy.step() is None and lazy.history == []
    assert lazy.step()["step"] == 2
    lazy.run(epochs=1)                                    # 3 steps an epoch: flushed at its end
    eager.run(epochs=1)
    strip = lambda hist: [{k: v for k, v in r.items() if k not in ("seconds", "peak_mem_mb")} for r in hist]
    assert strip(lazy.history) == strip(eager.history)
    assert [r["kind"] for r in lazy.history] == ["step"] * 3 + ["epoch"]


def test_training_steps_read_no_tensor_values_to_the_host_until_flush(digits, host_reads):
    t = Train(DARTS_V2, small(sync_every=100, steps_per_epoch=50), data=digits)
    t.step()
    with host_reads() as spy:
        assert t.step() is None and t.step() is None
    assert spy.hits == []
    assert [r["step"] for r in t.flush()] == [1, 2, 3]


def test_tiny_training_lifts_test_accuracy_well_above_chance(digits):
    t = Train(DARTS_V2, TrainConfig.preset("tiny", device="cpu", epochs=3), data=digits)
    before = t.evaluate("test")["acc"]
    t.run()
    assert t.test_acc > 0.6 > before + 0.3               # chance is 0.1


def _strip(records):
    return [{k: v for k, v in r.items() if k not in ("seconds", "peak_mem_mb")} for r in records]


def test_resume_is_exact_on_cpu(tmp_path, digits):
    straight = Train(DARTS_V2, small(), data=digits)
    straight.run()
    first = Train(DARTS_V2, small(), out=tmp_path / "run", data=digits)
    first.run(steps=4)                                    # stops inside the second epoch
    resumed = Train.resume(tmp_path / "run", data=digits)
    assert resumed.step_count == 4
    resumed.run()
    assert _strip(resumed.history) == _strip(straight.history)
    for (n, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), n
    # the run directory holds what readers need
    rd = RunDir(tmp_path / "run")
    assert rd.read_genotype() == DARTS_V2
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 6


def test_resume_errors_are_clear(tmp_path, digits):
    with pytest.raises(RunDirError, match="does not exist"):
        Train.resume(tmp_path / "missing")
    save_checkpoint(tmp_path / "checkpoint.pt", {"config": {}}, kind="search")
    with pytest.raises(RunDirError, match="search checkpoint"):
        Train.resume(tmp_path)


def test_resolve_genotype_forms(tmp_path):
    assert resolve_genotype("DARTS_V1") == DARTS_V1 and resolve_genotype("darts_v2") == DARTS_V2
    assert resolve_genotype(DARTS_V2.to_text()) == DARTS_V2
    assert resolve_genotype("DARTS_V2 = " + DARTS_V2.to_text()) == DARTS_V2
    assert resolve_genotype(DARTS_V1.to_json()) == DARTS_V1
    assert resolve_genotype("random:7") == random_genotype(7)
    (tmp_path / "g.json").write_text(DARTS_V1.to_json())
    (tmp_path / "g.txt").write_text(DARTS_V2.to_text())
    assert resolve_genotype(tmp_path / "g.json") == DARTS_V1
    assert resolve_genotype(str(tmp_path / "g.txt")) == DARTS_V2
    RunDir(tmp_path / "run").write_genotype(DARTS_V1)
    assert resolve_genotype(str(tmp_path / "run")) == DARTS_V1


@pytest.mark.parametrize("spec, error, match", [
    ("Genotype(normal=[('sep_conv_3x3', 0)", ValueError, "does not parse"),
    ("Genotype(normal=[('bogus_op', 0), ('sep_conv_3x3', 1)], normal_concat=[2], "
     "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2])", ValueError, "unknown op"),
    ("Genotype(normal=[('sep_conv_3x3', 5), ('sep_conv_3x3', 1)], normal_concat=[2], "
     "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2])", ValueError, "input 5"),
    ("__import__('os').system('true')", ValueError, "not a run directory"),
    ("runs/no-such-run", RunDirError, "does not exist"),
    ("random:x", ValueError, "integer"),
    ("{\"normal\": []}", ValueError, "lacks"),
])
def test_malformed_genotypes_and_missing_run_dirs(spec, error, match):
    with pytest.raises(error, match=match):
        resolve_genotype(spec)


def test_run_dir_without_genotype_is_a_clear_error(tmp_path):
    with pytest.raises(RunDirError, match="no genotype.json"):
        resolve_genotype(tmp_path)


def test_cli_search_then_train_then_resume(tmp_path, capsys):
    s_dir, t_dir = tmp_path / "search", tmp_path / "train"
    assert main(["search", "--steps", "2", "--layers", "3", "--channels", "4", "--device", "cpu",
                 "--out", str(s_dir), "--quiet"]) == 0
    found = RunDir(s_dir).read_genotype()
    capsys.readouterr()
    args = ["train", "--genotype", str(s_dir), "--epochs", "2", "--layers", "3", "--channels", "4",
            "--batch-size", "32", "--device", "cpu", "--out", str(t_dir), "--quiet"]
    assert main(args + ["--steps", "3", "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert f"genotype: {found.to_text()}" in out and "multiply-adds" in out and "test accuracy: " in out
    assert (t_dir / "checkpoint.pt").is_file() and not (t_dir / "plots").exists()
    assert main(["train", "--genotype", "DARTS_V1", "--out", str(s_dir), "--quiet"]) == 1
    assert "already holds a run" in capsys.readouterr().err      # never overwrites the search
    assert main(["train", "--resume", str(t_dir), "--quiet"]) == 0
    assert f"plots: 9 files in {t_dir / 'plots'}" in capsys.readouterr().out    # the training's curves
    assert (t_dir / "plots" / "training.png").stat().st_size > 20000
    assert {"cell_normal.png", "cell_reduce.svg", "genotype.txt"} <= {p.name for p in (t_dir / "plots").iterdir()}
    summary = json.loads((t_dir / "summary.json").read_text())
    assert summary["steps"] == 2 * (1438 // 32)        # both halves of digits' training split
    assert summary["genotype"] == found.to_text()


@pytest.mark.parametrize("args, match", [
    (["--genotype", "runs/does-not-exist"], "does not exist"),
    (["--genotype", "Genotype(normal=[('sep_conv_3x3', 0)"], "does not parse"),
    (["--genotype", "DARTS_V3"], "not a run directory"),
    ([], "give --genotype"),
    (["--genotype", "DARTS_V2", "--epochs", "0"], "must be positive"),
])
def test_cli_errors_are_one_line(args, match, capsys, tmp_path):
    assert main(["train", "--out", str(tmp_path / "t"), "--quiet", *args]) == 1
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1 and err.startswith("dartsviz train: error:")


def test_cli_random_baseline_reports_mean_and_std(tmp_path, capsys):
    args = ["train", "--random", "2", "--epochs", "1", "--layers", "3", "--channels", "4", "--batch-size", "64",
            "--seed", "1", "--device", "cpu", "--out", str(tmp_path), "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    res = json.loads((tmp_path / "results.json").read_text())
    import statistics
    accs, row = [r["test_acc"] for r in res["runs"]], res["rows"][0]
    assert row["test_acc_mean"] == pytest.approx(statistics.fmean(accs)) and len(accs) == 2
    assert row["test_acc_std"] == pytest.approx(statistics.stdev(accs))
    assert f"{100 * row['test_acc_mean']:.2f} ± {100 * row['test_acc_std']:.2f} %" in out
    import random
    rng = random.Random(1)
    assert ([RunDir(tmp_path / r["train_dir"]).read_genotype() for r in res["runs"]]
            == [random_genotype(rng) for _ in range(2)])


def test_pause_stops_at_a_step_boundary_and_run_continues(digits):
    t = Train(DARTS_V2, small(), data=digits)
    t.subscribe(lambda r: r["step"] == 2 and r["kind"] == "step" and t.pause())
    t.run()
    assert t.interrupted and t.step_count == 2
    t.run()
    assert not t.interrupted and t.done and t.step_count == 6


@pytest.mark.parametrize("field", [f.name for f in __import__("dataclasses").fields(TrainConfig)
                                   if f.type in ("float", float)])
def test_every_float_field_of_a_training_is_checked(field):
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match=field):
            TrainConfig.preset("tiny", **{field: bad})
