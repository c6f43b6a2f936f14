"""The Dashboard, headless: click its buttons and check what the widgets hold."""
import sys

import pytest
import torch

from dartsviz import DARTS_V2, StepRecord
from dartsviz.bilevel import HVP_MODES, ORDERS
from dartsviz.search import Search, SearchConfig

torch.set_num_threads(1)

SMALL = dict(layers=3, channels=4, batch_size=16, steps_per_epoch=3, epochs=2, warmup_epochs=0)


@pytest.fixture(scope="module")
def data():
    return Search(SearchConfig.preset("tiny", **SMALL)).data


@pytest.fixture
def dash(data):
    from dartsviz.viz.dashboard import Dashboard
    return Dashboard(Search(SearchConfig.preset("tiny", **SMALL), data=data))


def test_import_dartsviz_does_not_load_widgets():
    import subprocess
    code = "import sys, dartsviz, dartsviz.viz; print('ipywidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_step_buttons_update_images_counter_and_genotype(dash):
    before = {k: w.value for k, w in dash.images.items()}
    assert all(len(v) > 1000 for v in before.values())          # drawn at construction
    genotype0 = dash.genotype_text.value
    assert dash.search.space.parse_genotype(genotype0) == dash.search.genotype
    dash.step_button.click()
    assert dash.search.step_count == 1
    assert "step <b>1</b>" in dash.counter.value
    assert dash.progress.value == 1
    assert dash.images["weights"].value != before["weights"]
    assert dash.images["curves"].value != before["curves"]
    after1 = dash.images["weights"].value
    dash.step10_button.click()
    assert dash.search.step_count == 11
    assert "step <b>11</b>" in dash.counter.value
    assert dash.images["weights"].value != after1
    text = dash.genotype_text.value
    assert text == dash.search.genotype.to_text() and text != genotype0
    assert "normal" in dash.cells["derived_normal"].value or "<svg" in dash.cells["derived_normal"].value
    assert "error" not in dash.status.value


def test_handler_error_shows_in_status_line(dash, monkeypatch):
    def boom():
        raise RuntimeError("boom in step")
    monkeypatch.setattr(dash.search, "step", boom)
    dash.step_button.click()                                    # must not raise
    assert "boom in step" in dash.status.value
    assert "RuntimeError" in dash.status.value
    assert "boom in step" in dash.last_error


def test_order_toggle_is_used_by_next_step(dash):
    assert [v for _, v in dash.order.options] == list(ORDERS) and list(dash.hvp.options) == list(HVP_MODES)
    dash.step_button.click()
    assert dash.search.history[-1].order == 1
    dash.order.value = 2
    assert dash.search.config.order == 2 and not dash.hvp.disabled
    dash.step_button.click()
    rec = [r for r in dash.search.history if r.kind == "step"][-1]
    assert rec.order == 2 and rec.hvp == "finite"
    assert "order 2" in dash.counter.value
    dash.hvp.value = "exact"
    dash.step_button.click()
    rec = [r for r in dash.search.history if r.kind == "step"][-1]
    assert rec.order == 2 and rec.hvp == "exact" and dash.search.config.hvp == "exact"
    dash.order.value = 1
    dash.step_button.click()
    assert [r for r in dash.search.history if r.kind == "step"][-1].order == 1
    assert dash.hvp.disabled


def test_toggles_show_the_search_config(dash):
    """The search's config is the one place the order is held: a change from code shows."""
    dash.search.set(order=2, hvp="exact")
    dash.step(1)
    assert (dash.order.value, dash.hvp.value) == (2, "exact")
    assert dash.history[-1].order == 2
    dash.order.value = 1
    dash.reset()                                                # a new search keeps the settings
    assert dash.search.config.order == 1 and dash.order.value == 1 and dash.search.config.hvp == "exact"


def test_a_refused_setting_leaves_the_toggle_on_the_searchs_value(dash, monkeypatch):
    def refuse(**settings):
        raise ValueError("not now")
    monkeypatch.setattr(dash.search, "set", refuse)
    dash.order.value = 2
    assert "not now" in dash.status.value
    assert dash.order.value == 1 == dash.search.config.order


def test_dashboard_draws_the_snapshot_then_the_records_it_is_pushed(dash):
    snap = dash.search.snapshot()
    assert dash.current() == snap and dash.history == []
    assert dash.genotype_text.value == snap.genotype.to_text()
    dash.step(2)
    assert dash.history == dash.search.history and all(a is b for a, b in zip(dash.history, dash.search.history))
    # a record pushed by the search is what is drawn, whatever the model holds
    uniform = {c: torch.full((14, 8), 1 / 8).numpy() for c in dash.search.space.cell_types}
    pushed = StepRecord(step=3, epoch=0, space="cnn", probs=uniform, genotype=DARTS_V2)
    dash.search._emit(pushed)
    dash.redraw()
    assert dash.current() is pushed and dash.genotype_text.value == DARTS_V2.to_text()


def test_code_api_run_pause_and_reset(dash):
    recs = dash.run(epochs=1)
    assert [r.kind for r in recs].count("step") == 3 and recs[-1].kind == "epoch"
    assert dash.progress.value == 3 and "done" in dash.status.value
    dash.pause()
    assert "nothing is running" in dash.status.value
    dash.seed.value = 5
    dash.reset_button.click()
    assert "error" not in dash.status.value, dash.status.value
    assert dash.search.step_count == 0 and dash.search.config.seed == 5
    assert dash.progress.value == 0
    old = dash.images["weights"].value
    dash.step(2)
    assert dash.search.step_count == 2 and dash.images["weights"].value != old


def test_interrupt_during_run_stops_cleanly_and_continues(dash, monkeypatch):
    real_step = dash.search.step
    calls = {"n": 0}

    def step():
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt                              # what a second Ctrl-C looks like
        return real_step()
    monkeypatch.setattr(dash.search, "step", step)
    dash.run_button.click()
    assert dash.search.step_count == 1
    assert "continue" in dash.status.value and "error" not in dash.status.value
    dash.run(steps=2)
    assert dash.search.step_count == 3


def test_throttle_limits_redraws_during_run(data):
    from dartsviz.viz.dashboard import Dashboard
    d = Dashboard(Search(SearchConfig.preset("tiny", **SMALL), data=data), redraw_every=1000)
    d.draw_seconds = 0.0
    calls = []
    real = d._redraw_now
    d._redraw_now = lambda panels: (calls.append(tuple(panels)), real(panels))
    d.run(steps=4)
    assert len(calls) == 1                                       # only the final redraw
    assert set(calls[0]) >= {"weights", "curves", "cells"}
