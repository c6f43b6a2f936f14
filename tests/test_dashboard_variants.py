"""The Dashboard and the variants: the dropdown resets the search with the chosen method, the
line beside the status shows the variant's own numbers from the records, and the collapse
panel plots the records' diagnostics."""
import dataclasses

import numpy as np
import pytest
import torch

from dartsviz import DARTS_V2, EpochRecord, StepRecord
from dartsviz.methods import method_names
from dartsviz.search import SearchConfig

torch.set_num_threads(1)

SMALL = dict(layers=3, channels=4, batch_size=16, steps_per_epoch=3, epochs=2, warmup_epochs=0)


def _last_step(dash):
    return [r for r in dash.search.history if r.kind == "step"][-1]


def test_the_dropdown_beside_the_order_toggle_resets_the_search_with_the_chosen_variant(dash):
    assert list(dash.variant.options) == method_names() and dash.variant.value == "darts"
    first_row = dash.widget.children[1].children                 # after the hidden style element
    assert any(w is dash.variant for w in first_row) and any(w is dash.order for w in first_row)
    i = [id(w) for w in first_row]
    assert i.index(id(dash.variant)) + 1 == i.index(id(dash.order))
    status_row = dash.widget.children[3]
    assert dash.status in status_row.children and dash.quantities in status_row.children
    assert status_row.layout.flex_flow == "row"                  # never wraps onto a second line
    dash.seed.value = 3
    dash.step(1)
    old_data = dash.search.data
    dash.variant.value = "darts_minus"
    s = dash.search
    assert s.config.variant == "darts_minus" and s.method.name == "darts_minus" and s.step_count == 0
    assert s.config.seed == 3 and s.data is old_data                  # same seed, same data
    assert s.config.variant_options == {"beta_0": 1.0}
    assert "new search: variant darts_minus" in dash.status.value and "error" not in dash.status.value
    assert dash.records == [] and dash.progress.value == 0
    dash.step(1)
    rec = _last_step(dash)
    assert rec.variant == "darts_minus" and set(rec.monitors) == {"beta_t"}
    dash.variant.value = "beta_darts"
    assert dash.search.config.variant_options == {"lambda_max": 50.0}
    dash.step(1)
    assert _last_step(dash).variant == "beta_darts" and "lambda_t" in _last_step(dash).monitors


def test_pc_darts_brings_its_preset_layer_and_keeps_the_settings_the_search_was_made_with(dash):
    made = dash.search.config
    dash.variant.value = "pc_darts"
    c = dash.search.config
    # its tiny layer (partial channels, edge normalisation, lr) over what differed from the tiny preset
    assert c == SearchConfig.preset("tiny", variant="pc_darts", **SMALL)
    assert c.variant_options == {"partial_channels": 4, "edge_norm": True}
    assert (c.channels, c.batch_size, c.lr) == (4, 16, 0.1)
    assert "of its settings" in dash.status.value and "lr 0.05 \u2192 0.1" in dash.status.value  # on hover
    assert "variant_options {} \u2192" in dash.status.value and "partial_channels" in dash.status.value
    dash.step(1)
    rec = _last_step(dash)
    assert rec.variant == "pc_darts" and set(rec.monitors) == {"beta_entropy_normal", "beta_entropy_reduce"}
    shown = dash.quantities.value
    assert f"normal {rec.monitors['beta_entropy_normal']:.3g}" in shown and "H(\u03b2)" in shown
    dash.variant.value = "darts"
    assert dash.search.config == made


def test_variant_config_keeps_what_the_dashboard_was_made_with():
    from dartsviz.viz.dashboard import variant_config
    made = dict(SMALL, epochs=3)
    old = SearchConfig.preset("tiny", **made)
    pc = variant_config(old, "pc_darts", "tiny", made)
    assert pc == SearchConfig.preset("tiny", variant="pc_darts", **made)     # the CLI's order: preset, layer, flags
    assert pc.channels == 4 and pc.variant_options["partial_channels"] == 4 and pc.epochs == 3
    back = variant_config(dataclasses.replace(pc, order=2, seed=9), "darts", "tiny", made)
    assert back == dataclasses.replace(old, order=2, seed=9)                 # the toggles' values stay
    with pytest.raises(ValueError, match="unknown variant"):
        variant_config(old, "no_such_variant")


def test_the_quantities_shown_are_the_records_and_a_refused_variant_changes_nothing(dash, monkeypatch):
    dash.step(1)
    assert "<b>darts</b>" in dash.quantities.value
    assert f"param-free {_last_step(dash).param_free_ops}" in dash.quantities.value
    uniform = {c: np.full((14, 8), 1 / 8) for c in ("normal", "reduce")}
    pushed = StepRecord(step=2, epoch=0, space="cnn", probs=uniform, genotype=DARTS_V2, variant="sdarts_rs",
                        monitors={"eps_t": 0.123456, "custom_number": 7.0}, param_free_ops=5, lambda_max=2.5)
    dash.search._emit(pushed)
    shown = dash.quantities.value
    assert "<b>sdarts_rs</b>" in shown and "\u03b5_t 0.123" in shown and "custom_number 7" in shown
    assert "param-free 5" in shown and "\u03bb_max 2.5 @2" in shown
    assert 'title="sdarts_rs' in shown                                   # the whole line on hover
    def refuse(config, data=None):
        raise ValueError("not this one")
    monkeypatch.setattr(dash, "_Search", refuse)
    dash.variant.value = "sdarts_rs"
    assert "not this one" in dash.status.value
    assert dash.variant.value == "darts" == dash.search.config.variant


def test_the_lambda_setting_in_the_collapse_tab_turns_the_monitor_on(dash, tree):
    tabs = dash.panels.tabs
    collapse = tabs.children[[tabs.get_title(i) for i in range(len(tabs.children))].index("Collapse")]
    assert any(w is dash.monitor_every for w in tree(collapse))
    dash.search.set(monitor_iters=3)
    dash.monitor_every.value = 2
    assert dash.search.config.monitor_every == 2 and "every 2 steps" in dash.status.value
    before = dash.images["collapse"].value
    dash.step(2)
    steps = [r for r in dash.search.history if r.kind == "step"]
    assert steps[0].lambda_max is None and steps[1].lambda_max is not None
    assert f"\u03bb_max {steps[1].lambda_max:.3g} @2" in dash.quantities.value
    # the Collapse tab, shown, draws the search's records
    tabs.selected_index = [tabs.get_title(i) for i in range(len(tabs.children))].index("Collapse")
    assert dash.images["collapse"].value != before
    ax_kept, ax_w, ax_lam = dash.panels.figs["collapse"].axes[:3]
    assert list(_line(ax_kept, "parameter-free (normal)").get_ydata()) == [r.param_free_ops for r in steps]
    assert list(_line(ax_w, "max_skip (skip_connect)").get_ydata()) == pytest.approx([r.max_skip for r in steps])
    assert list(_line(ax_lam, "\u03bb_max").get_ydata()) == pytest.approx([steps[1].lambda_max])
    dash.variant.value = "beta_darts"                                # a new search keeps the setting
    assert dash.search.config.monitor_every == 2 and dash.monitor_every.value == 2
    dash.monitor_every.value = 0
    assert dash.search.config.monitor_every == 0 and "off" in dash.status.value


def _diagnosed(history):
    """Records with collapse diagnostics, lambda_max on even steps, DARTS-ES after epoch 2."""
    out = []
    for r in history:
        if r.kind == "step":
            r = dataclasses.replace(r, param_free_ops=(r.step * 7) % 5, max_none=0.01 * r.step,
                                    max_skip=0.2 + 0.03 * r.step,
                                    lambda_max=1.5 ** r.step if r.step % 2 == 0 else None)
        elif r.epoch == 2:
            r = dataclasses.replace(r, early_stop_epoch=0)
        out.append(r)
    return out


def _fake_history(steps=9):
    rng = np.random.default_rng(0)
    from dartsviz import get_space
    cnn = get_space("cnn")
    out = []
    for s in range(1, steps + 1):
        probs = {c: rng.dirichlet(np.ones(8), size=14) for c in cnn.cell_types}
        out.append(StepRecord(step=s, epoch=(s - 1) // 3, space="cnn", probs=probs, genotype=cnn.derive(probs)))
        if s % 3 == 0:
            out.append(EpochRecord(step=s, epoch=(s - 1) // 3, space="cnn", genotype=out[-1].genotype))
    return out


def _line(ax, label):
    lines = [ln for ln in ax.get_lines() if ln.get_label() == label]
    assert len(lines) == 1, [ln.get_label() for ln in ax.get_lines()]
    return lines[0]


def test_the_collapse_panel_plots_the_records_diagnostics():
    from dartsviz.viz.figures import draw_collapse
    records = _diagnosed(_fake_history())
    steps = [r for r in records if r.kind == "step"]
    fig = draw_collapse(records)
    ax_kept, ax_w, ax_lam = fig.axes[:3]
    x = [r.step for r in steps]
    free = _line(ax_kept, "parameter-free (normal)")
    assert list(free.get_xdata()) == x and list(free.get_ydata()) == [r.param_free_ops for r in steps]
    assert list(_line(ax_w, "max_none").get_ydata()) == pytest.approx([r.max_none for r in steps])
    assert list(_line(ax_w, "max_skip (skip_connect)").get_ydata()) == pytest.approx([r.max_skip for r in steps])
    lam = _line(ax_lam, "\u03bb_max")
    assert list(lam.get_xdata()) == [2, 4, 6, 8]
    assert list(lam.get_ydata()) == pytest.approx([1.5 ** s for s in (2, 4, 6, 8)])
    stop = _line(ax_lam, "DARTS-ES stop (epoch 3)")                 # epochs counted from 1 on screen
    assert list(stop.get_xdata()) == [9, 9]                       # the stopping epoch record's step
    assert list(_line(ax_lam, "kept epoch's end").get_xdata()) == [3, 3]
    for ax in (ax_kept, ax_w):                                   # marked on every axes
        assert any(list(ln.get_xdata()) == [9, 9] for ln in ax.get_lines())
    # no lambda_max and no stop: a note saying how to measure it
    plain = [dataclasses.replace(r, lambda_max=None) if r.kind == "step" else
             dataclasses.replace(r, early_stop_epoch=None) for r in records]
    fig = draw_collapse(plain, fig)
    assert not fig.axes[2].get_lines() and "monitor_every" in " ".join(t.get_text() for t in fig.axes[2].texts)
