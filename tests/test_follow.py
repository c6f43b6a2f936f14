"""Following a run that is still being written: the history grows between epochs, a tail
reader takes only whole lines, Replay(follow=True) and `dartsviz plot --follow` catch up."""
import json

import pytest

from dartsviz import Search, SearchConfig
from dartsviz.cli import main
from dartsviz.loop import StepLoop
from dartsviz.runs import RunDir


def _config(**kw):
    return SearchConfig.preset("tiny", **{**dict(layers=2, channels=4, batch_size=8, epochs=2, steps_per_epoch=3,
                                                 device="cpu", warmup_epochs=0), **kw})


@pytest.fixture
def every_flush(monkeypatch):
    monkeypatch.setattr(StepLoop, "HISTORY_EVERY_S", 0.0)


def test_the_tail_reader_takes_whole_lines_and_notices_a_rewrite(tmp_path):
    d = RunDir(tmp_path)
    assert d.tail_history(0) == ([], 0, False)
    p = tmp_path / "history.jsonl"
    p.write_text('{"a":1}\n{"b":2}\n{"c":')
    records, offset, reset = d.tail_history(0)
    assert records == [{"a": 1}, {"b": 2}] and offset == len('{"a":1}\n{"b":2}\n') and not reset
    with open(p, "a") as f:
        f.write('3}\n')
    assert d.tail_history(offset) == ([{"c": 3}], p.stat().st_size, False)
    p.write_text('{"z":0}\n')                                   # rewritten shorter: read again from the start
    assert d.tail_history(p.stat().st_size + 5) == ([{"z": 0}], 8, True)


def test_a_search_writes_its_history_between_epochs(tmp_path, every_flush):
    search = Search(_config(), out=tmp_path / "run")
    search.step()
    search.step()                                               # mid-epoch: no save yet
    lines = (tmp_path / "run" / "history.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2]
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_replay_follows_a_growing_run(tmp_path, every_flush):
    from dartsviz.viz import Replay
    search = Search(_config(steps_per_epoch=5), out=tmp_path / "run")
    for _ in range(2):
        search.step()
    rp = Replay(tmp_path / "run", follow=True, interval=3600)     # its thread waits; poll() by hand
    try:
        assert rp.slider.max == 2 and rp.slider.value == 2
        for _ in range(2):
            search.step()
        assert rp.poll() == 2
        assert rp.slider.max == 4 and rp.slider.value == 4 and rp.record.step == 4
        rp.show(step=1)
        search.step()                                           # ends epoch 0: a step and an epoch record
        assert rp.poll() == 2 and rp.slider.max == 5 and rp.record.step == 1      # the view stays where it was
        with open(tmp_path / "run" / "history.jsonl", "a") as f:
            f.write('{"kind": "step", "st')                     # a line being written
        assert rp.poll() == 0
    finally:
        rp.stop()


def test_plot_follow_rewrites_the_plots_until_the_last_epoch(tmp_path, monkeypatch, capsys, every_flush):
    search = Search(_config(epochs=1), out=tmp_path / "run")
    search.step()
    import time as _time

    def sleep(_):                                               # the "other machine" takes a step per look
        if not search.done:
            search.step()
    monkeypatch.setattr(_time, "sleep", sleep)
    code = main(["plot", str(tmp_path / "run"), "--follow", "--interval", "1", "--animation", "none",
                 "--formats", "png"])
    out = capsys.readouterr().out
    assert code == 0 and "last epoch" in out
    assert out.count("steps: wrote") == 3 and "3 steps: wrote" in out
    assert (tmp_path / "run" / "plots").is_dir()
    code = main(["plot", str(tmp_path / "run"), "--follow", "--interval", "0"])
    assert code == 1
