"""StepRecord / EpochRecord: one contract, JSON lines on disk, old files still load."""
import json
import math

import numpy as np
import pytest

from dartsviz import DARTS_V1, DARTS_V2, EpochRecord, Search, SearchConfig, StepRecord
from dartsviz.records import SCHEMA, record_from_dict
from dartsviz.runs import RunDir


def _step(**kw):
    rng = np.random.default_rng(0)
    p = rng.random((14, 8))
    probs = {"normal": p / p.sum(1, keepdims=True), "reduce": p[::-1] / p[::-1].sum(1, keepdims=True)}
    base = dict(step=3, epoch=0, space="cnn", probs=probs, genotype=DARTS_V2,
                losses={"train": 1.5, "val": 1.75}, metrics={"train_acc": 0.5, "val_acc": 0.25}, order=2,
                hvp="exact", seconds=0.1, peak_mem_mb=12.0)
    return StepRecord(**{**base, **kw})


def test_a_step_record_round_trips_through_json_with_the_genotype_as_text():
    rec = _step()
    d = json.loads(rec.to_json())
    assert d["schema"] == SCHEMA and d["kind"] == "step" and d["genotype"] == DARTS_V2.to_text()
    back = StepRecord.from_dict(d)
    assert back == rec and back.genotype == DARTS_V2 and back.genotype is not DARTS_V2
    assert back != _step(genotype=DARTS_V1)
    np.testing.assert_array_equal(back.probs["reduce"], rec.probs["reduce"])


def test_flat_reads_give_losses_and_metrics_by_their_old_names():
    rec = _step()
    assert (rec["kind"], rec["val_loss"], rec["train_acc"], rec["step"]) == ("step", 1.75, 0.5, 3)
    assert "val_acc" in rec and "test_acc" not in rec and rec.get("test_acc", -1) == -1
    with pytest.raises(KeyError):
        rec["test_acc"]


def test_schema_1_lines_still_load():
    old_step = {"kind": "step", "step": 7, "epoch": 1, "order": 1, "hvp": None, "arch_updated": True,
                "lr": 0.05, "arch_lr": 0.1, "train_loss": 0.9, "train_acc": 0.7, "val_loss": 1.1,
                "val_acc": 0.6, "probs": {"normal": [[0.125] * 8] * 14, "reduce": [[0.125] * 8] * 14},
                "genotype": DARTS_V1.to_text(), "seconds": 0.2, "peak_mem_mb": 300.0, "device": "cpu"}
    old_epoch = {"kind": "epoch", "step": 8, "epoch": 1, "train_loss": 0.9, "train_acc": 0.7,
                 "val_loss": 1.1, "val_acc": 0.6, "test_loss": 1.2, "test_acc": 0.55, "seconds": 3.0,
                 "genotype": DARTS_V2.to_text()}
    step, epoch = record_from_dict(old_step), record_from_dict(old_epoch)
    assert isinstance(step, StepRecord) and isinstance(epoch, EpochRecord)
    assert step.space == "cnn" and step.genotype == DARTS_V1 and step.losses == {"train": 0.9, "val": 1.1}
    assert step.metrics == {"train_acc": 0.7, "val_acc": 0.6} and step.lr == 0.05
    assert epoch.losses["test"] == 1.2 and epoch.metrics["test_acc"] == 0.55 and epoch.genotype == DARTS_V2


def test_a_trainings_flat_lines_of_earlier_versions_load_as_training_records(tmp_path):
    from dartsviz.records import TrainEpochRecord, TrainStepRecord
    cnn_step = {"kind": "step", "step": 1, "epoch": 0, "lr": 0.05, "drop_path_prob": 0.0, "train_loss": 2.0,
                "train_acc": 0.3, "seconds": 0.1, "peak_mem_mb": 100.0, "device": "cpu"}
    cnn_epoch = {"kind": "epoch", "step": 3, "epoch": 0, "train_loss": 1.9, "train_acc": 0.35, "test_loss": 1.7,
                 "test_acc": 0.4, "seconds": 0.3, "params": 1234, "macs": 5678}
    rnn_step = {"kind": "step", "step": 1, "epoch": 0, "lr": 20.0, "seq_len": 35, "optimizer": "sgd",
                "train_loss": 5.0, "train_ppl": 148.4, "seconds": 0.2, "peak_mem_mb": 90.0, "device": "cpu"}
    step, epoch = record_from_dict(cnn_step), record_from_dict(cnn_epoch)
    assert isinstance(step, TrainStepRecord) and isinstance(epoch, TrainEpochRecord) and step.space == "cnn"
    assert step.losses == {"train": 2.0} and step.metrics == {"train_acc": 0.3} and step.lr == 0.05
    assert step.extras == {"drop_path_prob": 0.0} and step["drop_path_prob"] == 0.0 and step["train_acc"] == 0.3
    assert epoch.losses == {"train": 1.9, "test": 1.7} and epoch.metrics == {"train_acc": 0.35, "test_acc": 0.4}
    assert epoch.extras == {"params": 1234, "macs": 5678}
    r = record_from_dict(rnn_step, space="rnn")
    assert r.space == "rnn" and r.metrics == {"train_ppl": 148.4} and r.extras == {"seq_len": 35, "optimizer": "sgd"}
    # a new line carries its loop, and reads back equal
    assert record_from_dict(r.to_dict()) == r and r.to_dict()["run"] == "train"
    # an old run directory: its config names the space (rnn) or none (cnn); one function reads both kinds
    old = tmp_path / "old_rnn"
    old.mkdir()
    (old / "config.json").write_text('{"space": "rnn", "epochs": 1}')
    (old / "history.jsonl").write_text(json.dumps(rnn_step) + "\n")
    assert RunDir(old).read_records() == [r] and RunDir(old).loop == "train"
    with pytest.raises(ValueError, match="kind"):
        record_from_dict({"kind": "stage", "step": 1})


def test_the_snapshot_is_the_state_before_the_next_step(tiny_overrides):
    search = Search(SearchConfig.preset("tiny", **tiny_overrides))
    snap = search.snapshot()
    assert snap.step == 0 and snap.losses == {} and snap.metrics == {} and not snap.arch_updated
    probs = {k: v.numpy() for k, v in search.model.probs().items()}
    np.testing.assert_allclose(snap.probs["normal"], probs["normal"], atol=1e-6)
    assert snap.genotype == search.genotype
    first = search.step()
    assert first.step == 1 and search.snapshot().genotype == search.genotype
    assert search.history == [first]                      # a snapshot is not emitted


def test_the_history_file_holds_schema_2_lines_and_reads_back_as_records(tmp_path, tiny_overrides):
    search = Search(SearchConfig.preset("tiny", **tiny_overrides), out=tmp_path / "run")
    search.run()
    lines = [json.loads(l) for l in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert {l["schema"] for l in lines} == {SCHEMA} and [l["kind"] for l in lines].count("epoch") == 2
    assert all(isinstance(l["genotype"], str) for l in lines)
    assert RunDir(tmp_path / "run").read_records() == search.history
    last = search.history[-1]
    assert isinstance(last, EpochRecord) and math.isfinite(last.losses["test"]) and "test_acc" in last.metrics
