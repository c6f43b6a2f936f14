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
    training = {"kind": "step", "step": 1, "train_loss": 2.0}          # a training's record: left a dict
    assert record_from_dict(training) is training


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
