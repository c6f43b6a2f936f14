"""Replay, Compare, the comparison report and the static export, on run directories
written by the tests themselves."""
import json
import shutil

import pytest
import torch

from dartsviz.runs import RunDir, RunDirError
from dartsviz.search import Search, SearchConfig

torch.set_num_threads(1)

SMALL = dict(layers=3, channels=4, batch_size=16, steps_per_epoch=2, epochs=2, warmup_epochs=0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished searches, first and second order, same seed and data."""
    root = tmp_path_factory.mktemp("viz_runs")
    a = Search(SearchConfig.preset("tiny", order=1, **SMALL), out=root / "o1")
    a.run()
    b = Search(SearchConfig.preset("tiny", order=2, **SMALL), out=root / "o2", data=a.data)
    b.run()
    return root / "o1", root / "o2"


def test_replay_scrubs_history_without_training(runs):
    from dartsviz.viz.replay import Replay
    rp = Replay(runs[0])
    steps = [r for r in RunDir(runs[0]).read_records() if r.kind == "step"]
    assert rp.slider.max == len(steps) == 4 and rp.record.step == 4
    last = {k: w.value for k, w in rp.images.items()}
    rp.show(step=1)
    assert rp.record == steps[0]
    assert rp.images["weights"].value != last["weights"]
    assert rp.images["curves"].value != last["curves"]           # the step marker moved
    assert rp.genotype_text.value == steps[0].genotype.to_text()
    assert f"val acc {steps[0].metrics['val_acc']:.2f}" in rp.title.value
    rp.next_button.click()
    assert rp.record.step == 2 and "step 2" in rp.title.value
    rp.prev_button.click(); rp.prev_button.click()
    assert rp.record.step == 1                                    # clamped at the start
    with pytest.raises(ValueError, match="no step 99"):
        rp.show(step=99)
    assert not (runs[0] / "plots").exists()                       # replay writes nothing


def _schema1_copy(src, dst):
    """A copy of run directory `src` as dartsviz wrote it before records had a schema: flat
    history lines (`train_loss`, `val_acc`, ...; the genotype as text) and no space in the
    config. Made from the run's own records, so every number is the search's."""
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    for key in ("space", "variant"):
        config.pop(key, None)
    (dst / "config.json").write_text(json.dumps(config))
    lines = []
    for r in RunDir(src).read_records():
        flat = {k: v for k, v in r.flat().items() if k not in ("space", "variant")}
        flat["genotype"] = r.genotype.to_text()
        if r.kind == "step":
            flat["probs"] = {c: p.tolist() for c, p in r.probs.items()}
        lines.append(json.dumps(flat))
    (dst / "history.jsonl").write_text("\n".join(lines) + "\n")
    return dst


def test_old_format_history_still_replays(runs, tmp_path):
    from dartsviz.viz.compare import compare_report
    from dartsviz.viz.replay import Replay
    from dartsviz.viz.rundata import load_run
    old = _schema1_copy(runs[0], tmp_path / "old")
    first = json.loads((old / "history.jsonl").read_text().splitlines()[0])
    assert "schema" not in first and "losses" not in first and "val_acc" in first and "train_loss" in first
    run, new = load_run(old), load_run(runs[0])
    assert run.records == new.records and run.space.name == "cnn"
    rp = Replay(old)
    assert rp.slider.max == 4 and rp.record == new.steps[-1]
    rp.show(step=2)
    assert rp.genotype_text.value == new.steps[1].genotype.to_text() and "error" not in rp.status.value
    page = compare_report(old, runs[0], tmp_path / "report")
    assert "identical" in page.read_text()                       # the same search, read from both schemas


def test_replay_handler_errors_go_to_the_status_line(runs, monkeypatch):
    from dartsviz.viz.replay import Replay
    rp = Replay(runs[0])

    def boom(*a, **k):
        raise RuntimeError("renderer broke")
    monkeypatch.setattr(rp.panels, "render", boom)
    rp.prev_button.click()                        # the slider moves, the redraw fails
    assert "error: RuntimeError: renderer broke" in rp.status.value
    assert "Traceback" in rp.last_error and "renderer broke" in rp.last_error


def test_replay_refuses_broken_run_dirs(tmp_path):
    from dartsviz.viz.replay import Replay
    with pytest.raises(RunDirError, match="does not exist"):
        Replay(tmp_path / "missing")
    (tmp_path / "history.jsonl").write_text("{not json\n")
    with pytest.raises(RunDirError, match="not valid JSON"):
        Replay(tmp_path)
    (tmp_path / "history.jsonl").write_text("")
    with pytest.raises(RunDirError, match="no step records"):
        Replay(tmp_path)


def test_compare_widget_from_run_dirs(runs):
    from dartsviz.viz.compare import Compare
    cmp = Compare(*runs, labels=("first order", "second order"))
    assert all(len(cmp.images[k].value) > 5000 for k in ("heat_a", "heat_b", "curves", "cost"))
    assert cmp.images["heat_a"].value != cmp.images["heat_b"].value
    assert "first order" in cmp.summary.value and "second order" in cmp.summary.value
    assert "x</b> the time per step" in cmp.summary.value         # the order-2 cost ratio
    assert "<svg" in cmp.cells["a_normal"].value and "<svg" in cmp.cells["b_reduce"].value
    assert "differ" in cmp.differences.value or "identical" in cmp.differences.value
    assert cmp.step_button.disabled                               # saved runs cannot step


def test_compare_live_searches_step_both():
    from dartsviz.viz.compare import Compare
    a = Search(SearchConfig.preset("tiny", order=1, **SMALL))
    b = Search(SearchConfig.preset("tiny", order=2, **SMALL), data=a.data)
    cmp = Compare(a, b)
    assert [r.records for r in cmp.runs] == [[], []]
    before = cmp.images["curves"].value
    cmp.step_button.click()
    assert a.step_count == 1 and b.step_count == 1
    assert [r.kind for r in cmp.runs[1].records] == ["step"] and cmp.runs[1].records[-1].order == 2
    assert cmp.runs[0].records[-1] is a.history[-1]              # the records the searches pushed
    assert cmp.images["curves"].value != before and "error" not in cmp.status.value


def test_compare_report_files(runs, tmp_path):
    from dartsviz.viz.compare import compare_report
    page = compare_report(*runs, tmp_path / "report")
    text = page.read_text()
    for name in ("heatmap_a", "heatmap_b", "validation", "cost"):
        assert (tmp_path / "report" / f"{name}.png").stat().st_size > 5000
        assert (tmp_path / "report" / f"{name}.svg").stat().st_size > 5000
        assert f"{name}.png" in text
    for k in "ab":
        for cell in ("normal", "reduce"):
            assert (tmp_path / "report" / f"cell_{k}_{cell}.svg").stat().st_size > 2000
    assert "Where the cells differ" in text and "Genotype(normal=" in text


def test_export_writes_every_panel_and_animation(runs, tmp_path):
    from PIL import Image
    from dartsviz.viz.export import export_run, frame_indices
    paths = export_run(runs[1], out=tmp_path / "plots", max_frames=3)
    names = {p.name for p in paths}
    for panel in ("weights", "heatmap", "curves", "collapse"):
        assert {f"{panel}.png", f"{panel}.svg"} <= names
    assert any(n.startswith("trajectories_") and n.endswith(".png") for n in names)
    for cell in ("normal", "reduce"):
        assert {f"cell_{cell}.png", f"cell_{cell}.svg", f"soft_cell_{cell}.svg", f"cell_{cell}.gv"} <= names
    assert all(p.stat().st_size > 100 for p in paths)
    gif = Image.open(tmp_path / "plots" / "alphas.gif")
    assert gif.n_frames == 3
    html = (tmp_path / "plots" / "alphas.html").read_text()
    assert html.count("data:image/png;base64,") == 3 and "http" not in html.split("<body")[1]
    idx = frame_indices(100, 5)
    assert len(idx) == 5 and idx[0] == 0 and idx[-1] == 99 and idx == sorted(set(idx))
    assert frame_indices(3, 5) == [0, 1, 2]
