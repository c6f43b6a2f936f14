"""A panel is one registration: a figure function and one `register_panel` entry put it in
the Dashboard (its own tab, drawn when shown), in Replay and in the static export."""
import pytest
import torch

from dartsviz.search import Search, SearchConfig
from dartsviz.viz.panel_registry import Panel, figure_panels, get_panel, register_panel, unregister_panel

SMALL = dict(layers=3, channels=4, batch_size=16, steps_per_epoch=3, epochs=1, warmup_epochs=0)


def draw_val_loss(data, fig):
    """The validation loss of every step so far (the test's own panel)."""
    fig.clear()
    ax = fig.subplots()
    steps = data.steps
    ax.plot([r.step for r in steps], [r.losses["val"] for r in steps], "o-")
    ax.set_title(f"validation loss, {len(steps)} steps")
    fig.dartsviz_drawn = (len(steps), data.upto)             # what the test reads back
    return fig


@pytest.fixture
def val_loss_panel():
    panel = register_panel(Panel("val_loss", draw_val_loss, (8.0, 2.5), tab="Validation loss"))
    yield panel
    unregister_panel("val_loss")


def test_a_registered_panel_is_in_the_dashboard_replay_and_export(val_loss_panel, tmp_path):
    from dartsviz.viz.dashboard import Dashboard
    from dartsviz.viz.export import export_run
    from dartsviz.viz.replay import Replay
    torch.manual_seed(0)
    search = Search(SearchConfig.preset("tiny", **SMALL), out=tmp_path / "run")
    dash = Dashboard(search)
    titles = [dash.panels.tabs.get_title(i) for i in range(len(dash.panels.tabs.children))]
    assert titles == ["Heat map", "Trajectories", "Curves & cost", "Collapse", "Validation loss", "Cells & genotype",
                      "Training", "Setup"] and "val_loss" in dash.images
    dash.panels.select_tab("Validation loss")
    with pytest.raises(ValueError, match="no tab 'Nope'; tabs: Heat map, "):
        dash.panels.select_tab("Nope")
    dash.step(2)
    assert dash.panels.figs["val_loss"].dartsviz_drawn == (2, None) and len(dash.images["val_loss"].value) > 1000
    search.run()
    replay = Replay(tmp_path / "run")
    replay.slider.value = 2                                       # the second step in view
    replay._draw(("val_loss",))
    assert replay.panels.figs["val_loss"].dartsviz_drawn == (3, replay.steps[1].step)
    written = {p.name for p in export_run(tmp_path / "run", out=tmp_path / "plots", animation=())}
    assert {"val_loss.png", "val_loss.svg", "weights.png", "collapse.svg"} <= written


def test_registration_checks_the_name_and_keeps_the_order(val_loss_panel):
    names = [p.name for p in figure_panels()]
    assert names == ["weights", "heatmap", "trajectories", "curves", "collapse", "truth", "val_loss"]
    assert [p.name for p in figure_panels("cnn")] == [n for n in names if n != "truth"]   # nb201's own panel
    assert [p.name for p in figure_panels("nb201")] == names
    assert get_panel("val_loss") is val_loss_panel
    with pytest.raises(ValueError, match="identifier"):
        register_panel(Panel("val loss", draw_val_loss, (8.0, 2.5)))
    with pytest.raises(ValueError, match="unknown panel 'nope'"):
        get_panel("nope")
