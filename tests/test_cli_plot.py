"""`dartsviz plot`, `dartsviz compare` and the plots written by `dartsviz search`."""
import pytest
import torch

from dartsviz.cli import build_parser, main

torch.set_num_threads(1)


def test_plot_writes_panels(runs, tmp_path, capsys):
    out = tmp_path / "p"
    assert main(["plot", str(runs[0]), "--out", str(out), "--frames", "2", "--animation", "gif"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (out / "weights.png").stat().st_size > 5000 and (out / "curves.svg").stat().st_size > 5000
    assert (out / "alphas.gif").exists() and not (out / "alphas.html").exists()


def test_plot_default_folder_is_run_dir_plots(runs):
    assert main(["plot", str(runs[1]), "--animation", "none", "--formats", "png"]) == 0
    assert (runs[1] / "plots" / "heatmap.png").exists()
    assert not (runs[1] / "plots" / "heatmap.svg").exists()


def test_compare_writes_report(runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", str(runs[0]), str(runs[1]), "--out", str(out), "--labels", "o1", "o2"]) == 0
    assert str(out / "index.html") in capsys.readouterr().out
    page = (out / "index.html").read_text()
    assert "o1" in page and "o2" in page and (out / "cost.png").stat().st_size > 5000


@pytest.mark.parametrize("argv, message", [
    (["plot", "{missing}"], "does not exist"),
    (["plot", "{broken}"], "not valid JSON"),
    (["plot", "{empty}"], "not a dartsviz run directory"),
    (["plot", "{o1}", "--formats", "jpg"], "unknown format"),
    (["compare", "{o1}"], "needs two run directories"),
    (["compare"], "needs two run directories"),
    (["compare", "{o1}", "{missing}"], "does not exist"),
    (["compare", "{broken}", "{o1}"], "not valid JSON"),
])
def test_errors_are_one_line(runs, tmp_path, capsys, argv, message):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    (broken / "history.jsonl").write_text('{"kind": "step"\n')
    (tmp_path / "empty").mkdir()
    paths = dict(missing=tmp_path / "nope", broken=broken, empty=tmp_path / "empty", o1=runs[0])
    argv = [a.format(**paths) for a in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_search_writes_plots_unless_told_not_to_and_says_once_how_to_get_dot(tmp_path, capsys, monkeypatch):
    from dartsviz.viz.cellgraph import DOT_HINT
    args = ["search", "--steps", "2", "--layers", "3", "--channels", "4", "--batch-size", "16", "--quiet"]
    assert build_parser().parse_args(args + ["--no-plots"]).no_plots is True
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))          # no `dot` on PATH
    assert main(args + ["--out", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "plots" / "weights.png").exists()
    assert (tmp_path / "run" / "plots" / "alphas.gif").exists()
    out, err = capsys.readouterr()
    assert "plots:" in out and err.count(DOT_HINT) == 1 and err.count("\n") == 1, err
    assert main(args + ["--out", str(tmp_path / "quiet"), "--no-plots"]) == 0
    assert (tmp_path / "quiet" / "history.jsonl").exists() and not (tmp_path / "quiet" / "plots").exists()
    assert DOT_HINT not in capsys.readouterr().err               # no plots written: no hint


def test_no_dot_hint_when_dot_is_there(tmp_path, capsys, monkeypatch):
    import dartsviz.viz.cellgraph as cg
    from dartsviz.commands.common import dot_hint
    monkeypatch.setattr(cg, "dot_available", lambda: True)
    dot_hint()
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(cg, "dot_available", lambda: False)
    dot_hint()
    assert capsys.readouterr().err == cg.DOT_HINT + "\n"


@pytest.fixture(scope="module")
def training(tmp_path_factory):
    from dartsviz import DARTS_V2
    from dartsviz.train import Train, TrainConfig
    out = tmp_path_factory.mktemp("cli_train") / "train"
    Train(DARTS_V2, TrainConfig.preset("tiny", epochs=2, layers=3, channels=4, batch_size=64, steps_per_epoch=3,
                                       device="cpu"), out=out).run()
    return out


def test_plot_draws_a_training_run_dir(training, runs, tmp_path, capsys):
    from PIL import Image
    from dartsviz.runs import RunDir
    assert RunDir(training).loop == "train" and RunDir(runs[0]).loop == "search"
    out = tmp_path / "tp"
    assert main(["plot", str(training), "--out", str(out)]) == 0
    assert "training curves" in capsys.readouterr().out
    names = {p.name for p in out.iterdir()}
    assert {"training.png", "training.svg", "cell_normal.png", "cell_reduce.svg", "genotype.txt"} <= names
    assert not any(n.startswith("alphas") for n in names)
    assert Image.open(out / "training.png").size[0] >= 900
    assert main(["plot", str(training), "--animation", "none", "--formats", "png"]) == 0   # default folder
    assert (training / "plots" / "training.png").exists() and not (training / "plots" / "training.svg").exists()


def test_training_curves_show_loss_accuracy_test_and_lr(training):
    from dartsviz.runs import RunDir
    from dartsviz.viz.export import draw_training_curves
    records = RunDir(training).read_records()
    fig = draw_training_curves(records)
    titles = [ax.get_title() for ax in fig.axes[:3]]
    assert titles == ["loss", "accuracy", "learning rate"]
    test_acc = [r["test_acc"] for r in records if r["kind"] == "epoch"]
    lines = {l.get_label(): l for l in fig.axes[1].lines}
    assert list(lines["test (each epoch)"].get_ydata()) == test_acc and len(lines["train (each step)"].get_ydata()) == 6
    assert list(fig.axes[2].lines[0].get_ydata()) == [r["lr"] for r in records if r["kind"] == "step"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:3] == ["train (each step)", "train (epoch mean)", "test (each epoch)"] and "learning rate" in legend
