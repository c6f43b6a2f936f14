"""`dartsviz plot`, `dartsviz compare` and the plots written by `dartsviz search`."""
import pytest
import torch

from dartsviz.cli import build_parser, main
from dartsviz.search import Search, SearchConfig

torch.set_num_threads(1)

SMALL = dict(layers=3, channels=4, batch_size=16, steps_per_epoch=2, epochs=1, warmup_epochs=0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_runs")
    a = Search(SearchConfig.preset("tiny", order=1, **SMALL), out=root / "o1")
    a.run()
    b = Search(SearchConfig.preset("tiny", order=2, **SMALL), out=root / "o2", data=a.data)
    b.run()
    return root / "o1", root / "o2"


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


def test_search_writes_plots_unless_told_not_to(tmp_path, capsys):
    args = ["search", "--steps", "2", "--layers", "3", "--channels", "4", "--batch-size", "16", "--quiet"]
    assert build_parser().parse_args(args + ["--no-plots"]).no_plots is True
    assert main(args + ["--out", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "plots" / "weights.png").exists()
    assert (tmp_path / "run" / "plots" / "alphas.gif").exists()
    assert "plots:" in capsys.readouterr().out
    assert main(args + ["--out", str(tmp_path / "quiet"), "--no-plots"]) == 0
    assert (tmp_path / "quiet" / "history.jsonl").exists() and not (tmp_path / "quiet" / "plots").exists()
