"""The Dashboard, headless: click its buttons and check what the widgets hold."""
import re
import sys

import pytest
import torch

from dartsviz import DARTS_V2, StepRecord
from dartsviz.bilevel import HVP_MODES, ORDERS
from dartsviz.search import Search, SearchConfig

torch.set_num_threads(1)

SMALL = dict(layers=3, channels=4, batch_size=16, steps_per_epoch=3, epochs=2, warmup_epochs=0)


def test_import_dartsviz_does_not_load_widgets():
    import subprocess
    code = "import sys, dartsviz, dartsviz.viz; print('ipywidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _tab(dash, title):
    """Show the tab called `title` (what a click on it does)."""
    titles = [dash.panels.tabs.get_title(i) for i in range(len(dash.panels.tabs.children))]
    dash.panels.tabs.selected_index = titles.index(title)


def test_step_buttons_update_images_counter_and_genotype(dash):
    before = {k: w.value for k, w in dash.images.items()}
    assert all(len(v) > 1000 for v in before.values())          # drawn at construction
    graph0 = dash.graph.value
    genotype0 = dash.genotype_text.value
    assert dash.search.space.parse_genotype(genotype0) == dash.search.genotype
    dash.step_button.click()
    assert dash.search.step_count == 1
    assert "step <b>1</b>" in dash.counter.value
    assert dash.progress.value == 1
    assert dash.images["weights"].value != before["weights"]
    assert dash.graph.value != graph0                            # the live graph, in view
    assert dash.images["curves"].value == before["curves"]       # in a hidden tab: drawn when shown
    _tab(dash, "Curves & cost")
    assert dash.images["curves"].value != before["curves"]
    after1 = dash.images["weights"].value
    dash.step10_button.click()
    assert dash.search.step_count == 11
    assert "step <b>11</b>" in dash.counter.value
    assert dash.images["weights"].value != after1
    text = dash.genotype_text.value
    assert text == dash.search.genotype.to_text() and text != genotype0
    from dartsviz.viz.cellgraph import as_html, cell_svg
    _tab(dash, "Cells & genotype")                       # the tab's drawings follow the current step
    assert dash.cells["derived_normal"].value == as_html(cell_svg(dash.search.genotype, "normal"), hint=False)
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
    real = d.panels.draw
    d.panels.draw = lambda panels: (calls.append(tuple(panels)), real(panels))
    d.run(steps=4)
    assert sorted(p for c in calls for p in c) == ["graph", "heatmap", "weights"]   # only the final redraw
    assert d.panels.stale == {"curves", "cells", "trajectories", "collapse"}         # hidden: drawn when shown


def test_one_screen_layout_controls_weights_and_graph_on_top_the_rest_in_tabs(dash, tree):
    import ipywidgets as widgets
    top = dash.widget.children
    tabs = top[-1]
    assert isinstance(tabs, widgets.Tab) and tabs is dash.panels.tabs
    titles = [tabs.get_title(i) for i in range(len(tabs.children))]
    assert titles == ["Heat map", "Trajectories", "Curves & cost", "Collapse", "Cells & genotype", "Training", "Setup"]
    above = [w for c in top[:-1] for w in tree(c)]
    for w in (dash.step_button, dash.step10_button, dash.run_button, dash.pause_button, dash.order, dash.hvp,
              dash.counter, dash.status, dash.projector, dash.panels.cell_type, dash.images["weights"], dash.graph):
        assert any(w is x for x in above), w
    inside = [w for w in tree(tabs)]
    for w in (dash.images["heatmap"], dash.images["trajectories"], dash.images["curves"], dash.images["collapse"],
              dash.genotype_text, dash.train_panel.widget, dash.reset_button, dash.seed, dash.preset):
        assert any(w is x for x in inside), w
    assert "dartsviz-dashboard" in dash.widget._dom_classes


def test_panels_are_svg_at_a_fixed_width_with_text_of_at_least_11_px(dash):
    from dartsviz.viz.figures import display_width
    dash.step(1)
    dash.redraw(everything=True)
    for name, image in dash.images.items():
        value = bytes(image.value)                               # ipywidgets 8 holds a memoryview
        assert image.format == "svg+xml" and b"<svg" in value[:600], name
        assert image.layout.width == f"{display_width(dash.panels.figs[name])}px" and image.layout.max_width == "100%"
        assert 500 <= int(image.layout.width[:-2]) <= 900, (name, image.layout.width)     # fits 1366 px with a sidebar
        sizes = [float(x) for x in re.findall(rb"font-size: ?([\d.]+)px", value)]
        assert sizes and min(sizes) >= 11, (name, sorted(set(sizes)))
    graph = dash.graph.value
    assert re.search(r'<svg[^>]*width="\d+(\.\d+)?"', graph) and 'pt"' not in graph.split("<g")[0]  # 1 pt = 1 px
    sizes = [float(x) for x in re.findall(r'font-size="([\d.]+)"', graph)]
    assert sizes and min(sizes) >= 11


def test_no_empty_image_anywhere_before_anything_ran(data, tree):
    import ipywidgets as widgets
    from dartsviz.viz.dashboard import Dashboard
    d = Dashboard(Search(SearchConfig.preset("tiny", **SMALL), data=data))
    images = [w for w in tree(d.widget) if isinstance(w, widgets.Image)]
    assert len(images) == 6                                       # five panels and the training curves
    for w in images:
        assert len(w.value) > 1000 or w.layout.display == "none"
    assert d.train_panel.image.layout.display == "none" and "nothing trained yet" in d.train_panel.placeholder.value
    assert all(b"nothing yet" in bytes(d.images[p].value) for p in ("curves", "trajectories", "collapse"))


def test_cell_type_and_graph_kind_switch_the_main_view(dash):
    dash.step(1)
    weights, graph = bytes(dash.images["weights"].value), dash.graph.value
    assert "continuous normal cell" in graph and b"normal cell" in weights and b"reduction cell" not in weights
    dash.panels.cell_type.value = "reduce"
    assert b"reduction cell" in bytes(dash.images["weights"].value) and "continuous reduction cell" in dash.graph.value
    dash.panels.graph_kind.value = "derived"
    assert "derived reduction cell" in dash.graph.value
    for _, _, op in dash.search.genotype.edges("reduce"):
        assert op in dash.graph.value
    dash.step(1)                                                 # the choice stays
    assert "derived reduction cell" in dash.graph.value and "error" not in dash.status.value


def test_scale_and_projector_toggle_enlarge_everything(data):
    from dartsviz.viz.dashboard import Dashboard
    d = Dashboard(Search(SearchConfig.preset("tiny", **SMALL), data=data), scale=1.25)
    style = lambda: d.panels._style.value
    assert d.scale == 1.25 and "zoom: 1.25" in style() and "dartsviz-zoom-125" in d.widget._dom_classes
    d.projector.value = True
    assert d.scale == 1.5 and "zoom: 1.5" in style() and "dartsviz-zoom-150" in d.widget._dom_classes
    assert "dartsviz-zoom-125" not in d.widget._dom_classes
    d.projector.value = False
    assert d.scale == 1.25
    d.set_scale(1.0)
    assert "zoom: 1;" in style() and not d.projector.value
    with pytest.raises(ValueError):
        d.set_scale(0)


@pytest.mark.parametrize("nodes", [2, 5])
def test_cells_of_other_node_counts_draw_and_step(data, nodes):
    from dartsviz.viz.dashboard import Dashboard
    d = Dashboard(Search(SearchConfig.preset("tiny", **SMALL, nodes=nodes), data=data))
    before = d.images["weights"].value
    d.step_button.click()
    assert d.search.step_count == 1 and "error" not in d.status.value
    assert d.images["weights"].value != before and len(d.graph.value) > 1000
    g = d.search.space.parse_genotype(d.genotype_text.value)
    assert tuple(g.normal_concat) == tuple(range(2, 2 + nodes))


def test_the_status_line_is_the_counter_as_plain_text(dash):
    dash.step(1)
    assert "step <b>1</b> / 6" in dash.counter.value
    assert dash.status_line.startswith("step 1 / 6 \u00b7 epoch 1 / 2 \u00b7 order 1") and "<" not in dash.status_line


def test_a_search_stepped_past_its_plan_says_so_on_the_status_line(data):
    """Step after the planned steps extends the search: the counter says "step 3 (planned 2)",
    never "step 3 / 2", and the progress bar is full."""
    from dartsviz.viz.dashboard import Dashboard
    d = Dashboard(Search(SearchConfig.preset("tiny", **{**SMALL, "steps_per_epoch": 2, "epochs": 1}), data=data))
    d.step(2)
    assert d.status_line.startswith("step 2 / 2 \u00b7 epoch 1 / 1 \u00b7")
    d.step(1)
    assert d.search.step_count == 3
    assert d.status_line.startswith("step 3 (planned 2) \u00b7 epoch 2 (planned 1) \u00b7"), d.status_line
    assert d.progress.value == d.progress.max == 3


def _svg_texts(image) -> str:
    return " ".join(re.findall(r"<text\b[^>]*>([^<]*)</text>", bytes(image.value).decode()))


def test_the_status_line_and_the_panels_number_epochs_alike(dash):
    """Counted from 1 everywhere, for the same record: at the last step of the first epoch (3 of
    3, where `search.epoch` already names the next one) and at the first step of the second."""
    for steps, epoch in ((3, 1), (1, 2)):
        dash.step(steps)
        rec = dash.current()
        assert rec.epoch + 1 == epoch                                   # records count from 0
        assert re.search(r"\bepoch (\d+)", dash.status_line).group(1) == str(epoch), dash.status_line
        title = re.search(r"at step (\d+) \(epoch (\d+),", _svg_texts(dash.images["weights"]))
        assert title and title.groups() == (str(rec.step), str(epoch)), _svg_texts(dash.images["weights"])
        _tab(dash, "Heat map")
        assert f"at step {rec.step} (epoch {epoch}," in _svg_texts(dash.images["heatmap"])


def test_a_panel_in_view_that_lags_says_drawing_and_which_step_it_shows(data):
    """Throttled (no redraw while running): while the records come in, the line beside the cell
    type says "drawing…" and the step the panels in view show; once drawn, nothing."""
    from dartsviz.viz.dashboard import Dashboard
    d = Dashboard(Search(SearchConfig.preset("tiny", **SMALL), data=data), redraw_every=1000)
    assert d.panels.note.value == "" and d.panels.lagging() == ()
    notes = []
    d.search.subscribe(lambda r: notes.append((r.step, d.panels.note.value, d.panels.lagging())))
    d.run(steps=3)
    assert [n[0] for n in notes] == [1, 2, 3, 3]                       # three steps and the epoch's record
    for step, note, late in notes:
        assert "drawing\u2026" in note and "step 0 of" in note, note      # the snapshot is what is shown
        assert set(late) == {"weights", "graph", "heatmap"}                # the main view and the open tab
    assert d.panels.note.value == "" and d.panels.lagging() == ()   # drawn at the end of the run
    assert {d.panels.drawn[p] for p in ("weights", "graph")} == {3}
    assert "at step 3 (epoch 1," in _svg_texts(d.images["weights"]) and "step 3 / 6" in d.status_line
    _tab(d, "Collapse")                                             # a hidden tab waits silently, drawn when shown
    assert d.panels.note.value == "" and d.panels.drawn["collapse"] == 3


def test_tabs_keep_one_height_and_a_tall_page_scrolls_inside(dash):
    from dartsviz.viz.panels import TAB_HEIGHT, tab_height
    tabs = dash.panels.tabs
    assert tabs.layout.height == f"{TAB_HEIGHT}px" and tabs.layout.overflow == "hidden"
    for i in range(len(tabs.children)):
        tabs.selected_index = i
        assert tabs.layout.height == f"{TAB_HEIGHT}px"
        assert all(getattr(w.layout, "height", None) in (None, "", "auto") for w in tabs.children)  # no page grows it
    dash.projector.value = True                                     # enlarged: one height on screen too
    assert tabs.layout.height == f"{tab_height(1.5)}px" and tab_height(1.5) * 1.5 <= 640
    dash.projector.value = False
    assert tabs.layout.height == f"{TAB_HEIGHT}px"


def _svg_width(value) -> float:
    head = re.search(r"<svg\b[^>]*>", value if isinstance(value, str) else bytes(value).decode(), re.S).group(0)
    m = re.search(r'\swidth="([\d.]+)(pt)?"', head)
    return float(m.group(1)) * (4 / 3 if m.group(2) else 1)


def test_projector_redraws_figures_and_graph_for_16_px_text_on_one_screen(dash, tree):
    """1.5x: every figure drawn narrow enough that, zoomed, it fits a notebook's column at 1366 px
    (860 px, not capped, so 11 pt is 16.5 px); the weights panel compact; the graph tighter and
    without its title; only the step buttons and the counter above it, the settings below."""
    from dartsviz.viz.figures import SCREEN_COLUMN
    dash.step(1)
    heights = {"weights": dash.panels.figs["weights"].get_size_inches()[1] * 72, "graph": _svg_height(dash.graph.value)}
    dash.projector.value = True
    assert dash.scale == 1.5
    for name in ("weights", "heatmap", "trajectories", "curves", "collapse"):
        _tab(dash, {"weights": "Heat map", "heatmap": "Heat map", "trajectories": "Trajectories",
                    "curves": "Curves & cost", "collapse": "Collapse"}[name])
        image = dash.images[name]
        width = int(image.layout.width[:-2])
        assert width * 1.5 <= SCREEN_COLUMN and width == round(dash.panels.figs[name].get_size_inches()[0] * 72), name
        sizes = [float(x) for x in re.findall(rb"font-size: ?([\d.]+)px", bytes(image.value))]
        assert sizes and min(sizes) * 1.5 >= 16, (name, sorted(set(sizes)))
    assert "step 1 \u00b7 epoch 1" in _svg_texts(dash.images["weights"])      # title and legend on one line
    weights = dash.panels.figs["weights"].get_size_inches()[1] * 72
    graph = dash.graph.value
    assert _svg_width(graph) * 1.5 <= SCREEN_COLUMN and "continuous normal cell" not in graph
    sizes = [float(x) for x in re.findall(r'font-size="([\d.]+)"', graph)]
    assert sizes and min(sizes) * 1.5 >= 16
    # controls (2 rows of about 32 px) + toggles (32) + weights + graph, zoomed: within 647 px (JupyterLab's
    # notebook at 768 px, measured); at scale 1 it was taller than that, zoomed
    assert 1.5 * (3 * 34 + weights + _svg_height(graph)) <= 647, (weights, _svg_height(graph))
    assert 1.5 * (5 * 34 + heights["weights"] + heights["graph"]) > 647
    above = [w for c in dash.widget.children[:dash.widget.children.index(dash.panels.main)] for w in tree(c)]
    below = [w for c in dash.widget.children[dash.widget.children.index(dash.panels.main):] for w in tree(c)]
    for w in (dash.step_button, dash.step10_button, dash.run_button, dash.pause_button, dash.projector, dash.counter):
        assert any(w is x for x in above), w
    for w in (dash.order, dash.hvp, dash.variant, dash.status, dash.progress):
        assert any(w is x for x in below) and not any(w is x for x in above), w
    dash.step(1)                                                    # stays so while stepping
    assert "step 2 \u00b7 epoch 1" in _svg_texts(dash.images["weights"])
    assert int(dash.images["weights"].layout.width[:-2]) < 600
    dash.projector.value = False                                    # back: as before
    assert dash.images["weights"].layout.width == "864px" and "continuous normal cell" in dash.graph.value
    assert any(dash.order is x for c in dash.widget.children[:dash.widget.children.index(dash.panels.main)]
               for x in tree(c))


def _svg_height(html) -> float:
    head = re.search(r"<svg\b[^>]*>", html, re.S).group(0)
    return float(re.search(r'\sheight="([\d.]+)"', head).group(1))


def test_main_shows_a_chosen_panel_in_view_and_the_weights_in_a_tab(data, tree):
    """Notebook 09 opens with the collapse panel under the controls (Dashboard(main="collapse")):
    it leaves its tab, with the lambda_max setting over it; the weights get a tab of their own."""
    from dartsviz.viz.dashboard import Dashboard
    d = Dashboard(Search(SearchConfig.preset("tiny", **SMALL), data=data), main="collapse")
    titles = [d.panels.tabs.get_title(i) for i in range(len(d.panels.tabs.children))]
    assert "Collapse" not in titles and titles[0] == "Weights"
    main = list(tree(d.panels.main))
    assert any(d.images["collapse"] is w for w in main) and any(d.monitor_every is w for w in main)
    assert not any(d.images["weights"] is w for w in main) and any(d.graph is w for w in main)
    assert d.panels.visible() == ("collapse", "graph", "weights")       # in view, and the open tab
    before = bytes(d.images["collapse"].value)
    d.step(2)
    assert bytes(d.images["collapse"].value) != before                  # in view: redrawn with the steps
    assert b"at step 2 (epoch 1," in bytes(d.images["weights"].value)
    d.panels.select_tab("Heat map")
    assert d.panels.visible() == ("collapse", "graph", "heatmap") and "heatmap" not in d.panels.stale
    with pytest.raises(ValueError, match="no panel 'nope'"):
        Dashboard(d.search, main="nope")
