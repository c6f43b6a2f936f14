"""Replay, Compare, the comparison report and the static export, on run directories
written by the tests themselves."""
import dataclasses
import json
import shutil

import pytest
import torch

from dartsviz.runs import RunDir, RunDirError
from dartsviz.search import Search, SearchConfig

torch.set_num_threads(1)

SMALL = dict(layers=3, channels=4, batch_size=16, steps_per_epoch=2, epochs=2, warmup_epochs=0)


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


# record fields added after schema 1 (the collapse diagnostics): None when an old file loads
LATER_FIELDS = ("param_free_ops", "max_none", "max_skip", "lambda_max", "lambda_iters", "lambda_seconds",
                "early_stop_epoch")


def _without_later_fields(records):
    return [dataclasses.replace(r, **{k: None for k in LATER_FIELDS if hasattr(r, k)}) for r in records]


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
        flat = {k: v for k, v in r.flat().items() if k not in ("space", "variant") + LATER_FIELDS}
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
    assert all(r.param_free_ops is None for r in run.steps) and all(r.param_free_ops is not None for r in new.steps)
    assert run.records == _without_later_fields(new.records) and run.space.name == "cnn"
    rp = Replay(old)
    assert rp.slider.max == 4 and rp.record == _without_later_fields(new.steps)[-1]
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


def test_compare_widget_from_run_dirs(runs, expected_differences):
    from dartsviz.viz.compare import Compare
    cmp = Compare(*runs, labels=("first order", "second order"))
    assert all(len(cmp.images[k].value) > 5000 for k in ("heat_a", "heat_b", "curves", "cost"))
    assert cmp.images["heat_a"].value != cmp.images["heat_b"].value
    assert "first order" in cmp.summary.value and "second order" in cmp.summary.value
    assert "x</b> the time per step" in cmp.summary.value         # the order-2 cost ratio
    assert "<svg" in cmp.cells["a_normal"].value and "<svg" in cmp.cells["b_reduce"].value
    assert cmp.differences.value.startswith(expected_differences([r.genotype for r in cmp.runs], cmp.runs[0].space))
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
    import base64
    import io
    first = html.split("data:image/png;base64,")[1].split('"')[0]
    frame = Image.open(io.BytesIO(base64.b64decode(first)))
    assert gif.size[0] >= 900 and frame.size == gif.size                      # readable at native size
    assert f"width:{frame.size[0]}px" in html                                  # the page as wide as a frame
    idx = frame_indices(100, 5)
    assert len(idx) == 5 and idx[0] == 0 and idx[-1] == 99 and idx == sorted(set(idx))
    assert frame_indices(3, 5) == [0, 1, 2]


def test_animation_frame_text_is_at_least_11_px():
    from matplotlib.text import Text
    from dartsviz.viz.export import FRAME_DPI
    from dartsviz.viz.figures import draw_heatmap, new_figure
    from dartsviz.records import StepRecord
    from dartsviz import DARTS_V2
    import numpy as np
    rec = StepRecord(step=1, epoch=0, space="cnn", probs={c: np.full((14, 8), 1 / 8) for c in ("normal", "reduce")},
                     genotype=DARTS_V2)
    fig = draw_heatmap(rec, new_figure("heatmap", dpi=FRAME_DPI))
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    assert sizes and min(sizes) * FRAME_DPI / 72 >= 11


def _with_warmup(path, n_warm=2, seconds=5.0):
    """The run of `path` with its first `n_warm` steps turned into slow warm-up steps."""
    import dataclasses
    from dartsviz.records import StepRecord
    from dartsviz.viz.rundata import load_run
    run = load_run(path)
    k = 0
    for i, r in enumerate(run.records):
        if isinstance(r, StepRecord) and k < n_warm:
            run.records[i] = dataclasses.replace(r, arch_updated=False, seconds=seconds)
            k += 1
    return run


def test_compare_table_figure_and_caption_share_one_median_without_warm_up(runs, tmp_path):
    import numpy as np
    from dartsviz.summary import cost_summary
    from dartsviz.viz.compare import compare_report, draw_compare_cost
    a, b = _with_warmup(runs[0]), _with_warmup(runs[1])
    a.label, b.label = "o1", "o2"
    medians = {}
    for run in (a, b):
        secs = [r.seconds for r in run.steps]
        without = float(np.median([r.seconds for r in run.steps if r.arch_updated]))
        assert abs(float(np.median(secs)) - without) > 1e-3         # the two definitions differ here
        medians[run.label] = (without, float(np.median(secs)))
        assert cost_summary(run.steps)["median_s"] == cost_summary(run.steps)[f"median_s_order{run.steps[-1].order}"] == without
    fig = draw_compare_cost([a, b])
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    for label, (without, with_warm) in medians.items():
        order = {"o1": 1, "o2": 2}[label]
        assert f"{label} (order {order}): median {without:.3f} s" in legend
        assert not any(f"{with_warm:.3f}" in t for t in legend)
        assert f"{label}: warm-up (not in median)" in legend
    page = compare_report(a, b, tmp_path / "report").read_text()
    table = page.split("<table")[1]
    for without, with_warm in medians.values():
        assert f"<td>{without:.3f}</td>" in table and f"{with_warm:.3f}" not in table
    assert "2 warm-up" in table and "warm-up steps (weights only, arch_updated false)" in page


def test_compare_memory_means_something_and_no_label_is_cut(runs):
    from dartsviz.viz.compare import draw_compare_cost
    from dartsviz.summary import peak_memory
    from dartsviz.viz.figures import to_png
    from dartsviz.viz.rundata import load_run
    a, b = load_run(runs[0], "first order, with a label far too long to fit"), load_run(runs[1], "second order")
    mem, what = peak_memory(a.steps)
    peaks = [r.peak_mem_mb for r in a.steps]
    if a.steps[-1].device == "cuda":
        assert what == "CUDA peak allocated" and mem == max(peaks)
    else:                                                       # the growth over the idle process's RSS
        base = a.steps[0].mem_baseline_mb
        assert base > 0 and all(r.mem_baseline_mb == base for r in a.steps)
        assert what == "peak RSS growth over the idle process" and mem == max(0.0, max(peaks) - base)
        assert 0 <= mem < max(peaks)            # the idle process's RSS subtracted (0: nothing grew)
        low = [dataclasses.replace(r, mem_baseline_mb=max(peaks) + 1.0) for r in a.steps]
        assert peak_memory(low)[0] == 0.0       # counters a fraction of a MB apart: never negative
        old = [dataclasses.replace(r, mem_baseline_mb=0.0) for r in a.steps]   # files without a baseline
        assert peak_memory(old) == (max(peaks) - peaks[0], "peak RSS growth after step 1")
    fig = draw_compare_cost([a, b])
    to_png(fig)
    drawn, page = fig.get_tightbbox(fig._get_renderer()), fig.bbox_inches     # inches: all that is drawn
    assert drawn.x0 >= page.x0 - 0.01 and drawn.y0 >= page.y0 - 0.01
    assert drawn.x1 <= page.x1 + 0.01 and drawn.y1 <= page.y1 + 0.01
    ax_mem = fig.axes[1]
    assert what in ax_mem.get_title().replace("\n", " ")
    assert all(not lab.get_text().endswith("to") for lab in ax_mem.get_xticklabels())   # wrapped, not cut
    assert "far too long to fit" in " ".join(lab.get_text() for lab in ax_mem.get_xticklabels()).replace("\n", " ")


def test_seconds_legend_lists_only_orders_with_points_under_the_axes(runs):
    import numpy as np
    from dartsviz.summary import median_seconds
    from dartsviz.viz.figures import draw_curves, to_png
    from dartsviz.viz.rundata import load_run
    fig = draw_curves(load_run(runs[0]).records)
    ax = fig.axes[2]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["order 1"]
    run = _with_warmup(runs[1])
    fig = draw_curves(run.records, fig)
    ax = fig.axes[2]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["order 2", "warm-up (not in median)"]
    without = float(np.median([r.seconds for r in run.steps if r.arch_updated]))
    assert median_seconds(run.records, 2) == without and f"o2 {without:.3f}" in ax.get_title()
    to_png(fig)
    renderer = fig._get_renderer()
    legend = ax.get_legend().get_window_extent(renderer)
    assert not legend.overlaps(ax.get_window_extent(renderer))                 # outside the data
    assert not legend.overlaps(ax.xaxis.label.get_window_extent(renderer))
    assert legend.y0 >= fig.bbox.y0 and legend.x1 <= fig.bbox.x1


@pytest.mark.parametrize("draw", ["draw_compare_curves", "draw_compare_cost", "draw_compare_collapse"])
def test_the_comparison_figures_write_no_text_under_11_px(runs, draw):
    import re
    from dartsviz.viz import compare, figures
    from dartsviz.viz.rundata import load_run
    fig = getattr(compare, draw)([load_run(r) for r in runs])
    svg = figures.panel_svg(fig)                                  # text kept as text, with its size
    sizes = [float(x) for x in re.findall(rb"font-size: ?([\d.]+)px", svg)]
    assert len(sizes) >= 5 and min(sizes) >= figures.FONT, sorted(sizes)[:5]
