import re

from dartsviz import SearchConfig, Search
from dartsviz.viz.dashboard import Dashboard
from dartsviz.viz.trainpanel import TrainPanel


def _dash():
    return Dashboard(Search(SearchConfig.preset("tiny", layers=3, channels=4, batch_size=16,
                                                steps_per_epoch=3, epochs=2, warmup_epochs=0)))


def test_dashboard_trains_the_derived_cell_with_live_curves():
    dash = _dash()
    dash.step(2)
    panel = dash.train_panel
    before = panel.image.value
    # before any training: a 'nothing yet' line, no (broken, empty) image
    assert len(before) == 0 and panel.image.layout.display == "none"
    assert "nothing trained yet" in panel.placeholder.value and panel.placeholder.layout.display != "none"
    t = dash.train(steps=3)
    assert t.step_count == 3 and panel.progress.value == 3
    assert t.genotype == dash.search.genotype
    assert panel.image.value != before and len(panel.image.value) > 1000
    assert panel.image.format == "svg+xml" and panel.image.layout.display is None
    assert panel.placeholder.layout.display == "none"
    assert "done at step 3" in panel.status.value and "parameters" in panel.status.value
    assert panel.widget in dash.panels.tabs.children
    # the projector redraws the curves narrower: zoomed 1.5x they fit the column, their text 16 px or more
    from dartsviz.viz.figures import SCREEN_COLUMN
    assert panel.image.layout.width == "864px"
    dash.projector.value = True
    width = int(panel.image.layout.width[:-2])
    sizes = [float(x) for x in re.findall(rb"font-size: ?([\d.]+)px", bytes(panel.image.value))]
    assert width * 1.5 <= SCREEN_COLUMN and sizes and min(sizes) * 1.5 >= 16, (width, sorted(set(sizes)))
    dash.projector.value = False
    assert panel.image.layout.width == "864px"


def test_train_button_runs_an_epoch_and_errors_reach_the_status_line():
    dash = _dash()
    panel = dash.train_panel
    panel.overrides.update(layers=3, channels=4, batch_size=256)
    panel.epochs.value = 1
    panel.button.click()
    assert panel.trainer is not None and panel.trainer.done
    assert "test accuracy" in panel.status.value
    broken = TrainPanel(lambda: (_ for _ in ()).throw(ValueError("no genotype yet")))
    broken.button.click()                       # must not raise
    assert "no genotype yet" in broken.status.value and broken.last_error
