import json
import subprocess
import sys

import pytest

from dartsviz.cli import main
from dartsviz.runs import RunDir

FAST = ["--layers", "3", "--channels", "4", "--batch-size", "16", "--no-plots", "--quiet"]


def _run(*args):
    """The installed console entry point in a subprocess: what a user sees."""
    return subprocess.run([sys.executable, "-m", "dartsviz.cli", *args], capture_output=True, text=True, timeout=300)


def test_search_end_to_end_second_order_prints_genotype_and_run_dir(tmp_path):
    out = tmp_path / "run"
    p = _run("search", "--order", "2", "--steps", "3", "--out", str(out), *FAST)
    assert p.returncode == 0, p.stderr
    assert "genotype: Genotype(normal=[" in p.stdout and f"run directory: {out}" in p.stdout
    run = RunDir(out).require()
    steps = [r for r in run.read_history() if r["kind"] == "step"]
    assert len(steps) == 3 and all(r["order"] == 2 for r in steps)
    assert run.read_genotype().to_text() in p.stdout
    assert json.loads((out / "config.json").read_text())["order"] == 2


def test_resume_continues_and_an_existing_run_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", "--steps", "2", "--out", str(out), *FAST]) == 0
    before = (out / "history.jsonl").read_text()
    assert main(["search", "--steps", "2", "--out", str(out), *FAST]) == 1
    assert "already holds a run" in capsys.readouterr().err
    assert (out / "history.jsonl").read_text() == before
    assert main(["search", "--resume", str(out), "--steps", "2", "--no-plots", "--quiet"]) == 0
    steps = [r["step"] for r in RunDir(out).read_history() if r["kind"] == "step"]
    assert steps == [1, 2, 3, 4]


def test_search_with_bf16_and_deferred_records_writes_every_step(tmp_path):
    out = tmp_path / "run"
    assert main(["search", "--precision", "bf16", "--sync-every", "3", "--steps", "4",
                 "--out", str(out), *FAST]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["precision"] == "bf16" and config["sync_every"] == 3
    steps = [r["step"] for r in RunDir(out).read_history() if r["kind"] == "step"]
    assert steps == [1, 2, 3, 4]                  # the last, unflushed step is written too


@pytest.mark.parametrize("args,needle,code", [
    (["search", "--order", "3"], "invalid choice", 2),
    (["search", "--bogus"], "unrecognized arguments", 2),
    (["search", "--epochs", "abc"], "invalid int value", 2),
    (["search", "--epochs", "0"], "--epochs must be positive", 1),
    (["search", "--dataset", "imagenet"], "unknown data set 'imagenet'", 1),
    (["search", "--preset", "huge"], "unknown preset 'huge'", 1),
    (["search", "--device", "tpu"], "device", 1),
    (["search", "--resume", "/nonexistent/run"], "no checkpoint", 1),
    (["search", "--precision", "fp8"], "invalid choice", 2),
    (["search", "--sync-every", "0"], "--sync-every must be positive", 1),
    (["search", "--nodes", "0"], "--nodes must be positive", 1),
    (["search", "--space", "rnn", "--nodes", "3"], "the recurrent cell has 8 nodes", 1),
    (["search", "--cuda-graphs", "--device", "cpu"], "cuda_graphs needs a CUDA device", 1),
    (["search", "--cuda-graphs", "--device", "cuda", "--order", "2"], "first-order step only", 1),
    (["frobnicate"], "invalid choice", 2),
])
def test_bad_input_gives_one_line_and_a_non_zero_exit(args, needle, code, tmp_path, capsys):
    """In-process, as `main` runs them (argparse's errors exit 2 through SystemExit); one
    subprocess run below shows that the console entry point prints the same."""
    argv = [*args, *(["--out", str(tmp_path / "r")] if args[0] == "search" and "--resume" not in args else [])]
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    err = capsys.readouterr().err
    assert rc == code
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and needle in lines[0], err
    assert not (tmp_path / "r").exists()


def test_the_console_entry_point_prints_the_same_one_line_errors(tmp_path):
    p = _run("search", "--epochs", "0", "--out", str(tmp_path / "r"))
    assert p.returncode == 1 and p.stderr == "dartsviz search: error: --epochs must be positive, got 0\n"
    p = _run("search", "--order", "3")
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1 and "invalid choice" in p.stderr


def test_missing_data_set_says_how_to_get_it(tmp_path):
    p = _run("search", "--dataset", "cifar10", "--data-dir", str(tmp_path / "none"), "--out", str(tmp_path / "r"))
    assert p.returncode == 1
    assert "cifar10 not found" in p.stderr and "--download" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_corrupt_checkpoint_on_resume_is_one_line(tmp_path):
    out = tmp_path / "run"
    assert main(["search", "--steps", "1", "--out", str(out), *FAST]) == 0
    (out / "checkpoint.pt").write_bytes(b"garbage")
    p = _run("search", "--resume", str(out))
    assert p.returncode == 1 and "not a checkpoint" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


class _Payload:
    """A pickle that would create a file if it were ever unpickled."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        import os
        return (os.system, (f"touch {self.target}",))


@pytest.mark.parametrize("command", ["search", "train"])
def test_a_refused_checkpoint_gets_one_line_of_our_own(tmp_path, capsys, command):
    import pickle
    import warnings

    import torch
    pwned = tmp_path / "pwned"
    bad = {}
    for name in ("malicious", "plain_pickle", "notes"):
        (tmp_path / name).mkdir()
    torch.save({"format": "dartsviz-checkpoint", "x": _Payload(pwned)}, tmp_path / "malicious" / "checkpoint.pt")
    bad["malicious"] = tmp_path / "malicious"
    with open(tmp_path / "plain_pickle" / "checkpoint.pt", "wb") as f:
        pickle.dump({"format": "dartsviz-checkpoint"}, f)                    # pickle protocol 4: torch warns
    bad["plain_pickle"] = tmp_path / "plain_pickle"
    (tmp_path / "notes.txt").write_text("notes of the lesson\n")
    bad["notes"] = tmp_path / "notes.txt"
    for name, path in bad.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert main([command, "--resume", str(path), "--no-plots", "--quiet"]) == 1, name
        err = capsys.readouterr().err
        assert caught == [], (name, [str(w.message) for w in caught])
        assert len(err.strip().splitlines()) == 1, (name, err)
        for leak in ("weights_only", "Unsupported", "GLOBAL", "operand", "Weights only"):
            assert leak not in err, (name, err)
    assert not pwned.exists()


def test_doctor_reports_versions_dot_and_cuda():
    p = _run("doctor")
    assert p.returncode == 0
    for name in ("python", "torch", "torchvision", "ipywidgets", "jupyterlab_widgets", "matplotlib",
                 "graphviz", "dot", "cuda"):
        assert any(line.split()[0] == name for line in p.stdout.splitlines() if line.strip()), name


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_resume_refuses_a_history_damaged_in_the_middle_and_changes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", "--steps", "3", "--out", str(out), *FAST]) == 0
    lines = (out / "history.jsonl").read_text().splitlines(keepends=True)
    lines[1] = lines[1][: len(lines[1]) // 2] + "\n"            # a damaged line, not the last
    (out / "history.jsonl").write_text("".join(lines))
    before = _snapshot(out)
    assert main(["search", "--resume", str(out), "--steps", "2", "--no-plots", "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "history.jsonl line 2" in err
    assert _snapshot(out) == before


def test_resume_drops_a_last_line_cut_short_by_a_crash(tmp_path):
    out = tmp_path / "run"
    assert main(["search", "--steps", "3", "--out", str(out), *FAST]) == 0
    text = (out / "history.jsonl").read_text()
    (out / "history.jsonl").write_text(text + '{"kind": "step", "st')   # append cut short
    assert main(["search", "--resume", str(out), "--steps", "1", "--no-plots", "--quiet"]) == 0
    steps = [r["step"] for r in RunDir(out).read_history() if r["kind"] == "step"]
    assert steps == [1, 2, 3, 4]


@pytest.mark.parametrize("shape", ["synthetic:-3x8x8", "synthetic:0x8x8", "synthetic:3x0x8", "synthetic:3x8"])
def test_bad_synthetic_shapes_are_one_line_and_write_nothing(tmp_path, capsys, shape):
    out = tmp_path / "run"
    assert main(["search", "--dataset", shape, "--steps", "1", "--out", str(out), *FAST]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad synthetic data set" in err
    assert not out.exists()
    assert main(["search", "--dataset", "synthetic:1x4x4", "--steps", "1", "--out", str(out), *FAST]) == 0


def test_out_below_a_file_is_one_line(tmp_path):
    (tmp_path / "afile").write_text("keep me")
    p = _run("search", "--steps", "1", "--out", str(tmp_path / "afile" / "sub"), *FAST)
    assert p.returncode == 1
    assert len(p.stderr.strip().splitlines()) == 1 and "is a file" in p.stderr and "Traceback" not in p.stderr
    assert (tmp_path / "afile").read_text() == "keep me"


def test_os_errors_on_a_run_directory_are_one_line(tmp_path, capsys, monkeypatch):
    import dartsviz.runs as runs

    def fail(*a, **k):
        raise NotADirectoryError(20, "Not a directory", str(tmp_path / "x"))
    monkeypatch.setattr(runs, "atomic_write_bytes", fail)
    assert main(["search", "--steps", "1", "--out", str(tmp_path / "run"), *FAST]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Not a directory" in err


@pytest.mark.parametrize("flag,known", [("--space", "space_names"), ("--variant", "method_names")])
def test_unknown_space_or_variant_is_one_line_listing_the_known_ones_and_writes_nothing(
        flag, known, tmp_path, capsys):
    from dartsviz.methods import method_names
    from dartsviz.spaces import space_names
    names = {"space_names": space_names, "method_names": method_names}[known]()
    out = tmp_path / "run"
    assert main(["search", flag, "no-such-thing", "--steps", "1", "--out", str(out), *FAST]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "'no-such-thing'" in lines[0], lines
    assert all(name in lines[0] for name in names)
    assert not out.exists()


def test_search_with_space_cnn_and_variant_darts_works(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", "--space", "cnn", "--variant", "darts", "--steps", "2", "--out", str(out), *FAST]) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["space"], config["variant"]) == ("cnn", "darts")
    steps = [r for r in RunDir(out).read_records() if r.kind == "step"]
    assert [r.step for r in steps] == [1, 2] and {(r.space, r.variant) for r in steps} == {("cnn", "darts")}
    assert set(steps[0].metrics) == {"train_acc", "val_acc"} and set(steps[0].losses) == {"train", "val"}


def test_nodes_flag_builds_cells_of_that_many_nodes_and_resumes(tmp_path):
    out = tmp_path / "run"
    assert main(["search", "--nodes", "3", "--steps", "2", "--out", str(out), *FAST]) == 0
    assert json.loads((out / "config.json").read_text())["nodes"] == 3
    steps = [r for r in RunDir(out).read_records() if r.kind == "step"]
    assert steps[-1].probs["normal"].shape == (2 + 3 + 4, 8)           # edges into nodes 2, 3, 4
    g = RunDir(out).read_genotype()
    assert tuple(g.normal_concat) == (2, 3, 4) and len(g.normal) == 3
    assert main(["search", "--resume", str(out), "--steps", "1", "--no-plots", "--quiet"]) == 0
    assert [r.step for r in RunDir(out).read_records() if r.kind == "step"] == [1, 2, 3]


def test_space_and_variant_flags_list_the_registries(capsys):
    from dartsviz.cli import build_parser
    from dartsviz.methods import method_names
    from dartsviz.spaces import space_names
    with pytest.raises(SystemExit):
        build_parser().parse_args(["search", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"search space: {', '.join(space_names())}" in text and f"method: {', '.join(method_names())}" in text


class _FakeLoop:
    """Just enough of a StepLoop for the run skeleton: emits a text space's records
    (perplexity, not accuracy) and stops early as if Ctrl-C had been pressed."""

    def __init__(self, run_dir):
        from dartsviz.records import EpochRecord, StepRecord
        self.step_count, self.total_steps, self.interrupted, self.subscribers = 0, 4, False, []
        self.run_dir = RunDir(run_dir)
        self.records = [
            StepRecord(step=1, epoch=0, space="text", probs={}, genotype=None, losses={"train": 4.5, "val": 4.75},
                       metrics={"train_ppl": 90.0, "val_ppl": 115.5}, order=2),
            EpochRecord(step=1, epoch=0, space="text", losses={"train": 4.5, "val": 4.75, "test": 4.8},
                        metrics={"train_ppl": 90.0, "val_ppl": 115.5, "test_ppl": 121.5}, seconds=2.0)]

    @property
    def done(self):
        return self.step_count >= self.total_steps

    def subscribe(self, fn):
        self.subscribers.append(fn)

    def unsubscribe(self, fn):
        self.subscribers.remove(fn)

    def run(self, steps):
        assert steps == 3
        for r in self.records:
            for fn in self.subscribers:
                fn(r)
        self.step_count, self.interrupted = 1, True


def test_run_skeleton_shows_the_spaces_own_metrics_and_says_how_to_resume(tmp_path, capsys):
    import argparse
    from dartsviz.commands.common import run_loop
    loop = _FakeLoop(tmp_path / "run")
    reported = []
    rc = run_loop(loop, argparse.Namespace(steps=3, quiet=False), "search",
                  extra=lambda r: {"o": r.order}, report=reported.append)
    out, err = capsys.readouterr()
    assert rc == 130 and reported == [loop] and loop.subscribers == []
    assert "loss=4.500" in err and "ppl=90.00" in err and "val_loss=4.750" in err and "val_ppl=115.50" in err
    assert "o=2" in err and "acc" not in err
    assert "epoch 0: train ppl 90.000  val ppl 115.500  test ppl 121.500  2.0s" in out   # tqdm.write
    assert f"interrupted at step 1; continue with: dartsviz search --resume {tmp_path / 'run'}" in err


def test_resuming_a_finished_run_says_so_and_changes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", "--epochs", "1", "--steps", "999", "--out", str(out), *FAST]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    assert main(["search", "--resume", str(out), "--no-plots", "--quiet"]) == 0
    assert "already finished" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_threads_flag_sets_torchs_threads(tmp_path):
    code = ("import torch, sys; from dartsviz.cli import main; "
            f"rc = main(['search', '--threads', '1', '--steps', '1', '--out', {str(tmp_path / 'r')!r}, "
            "'--layers', '3', '--channels', '4', '--batch-size', '16', '--no-plots', '--quiet']); "
            "print('threads', torch.get_num_threads()); sys.exit(rc)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "OMP_NUM_THREADS": "2"})
    assert p.returncode == 0, p.stderr
    assert "threads 1" in p.stdout
    assert _run("search", "--threads", "0").returncode == 1


@pytest.mark.parametrize("command", ["search", "train"])
@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "0", "-5", "soon"])
def test_dist_timeout_must_be_finite_seconds_above_zero(command, bad, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--dist-timeout", bad])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--dist-timeout" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 0.0])
def test_the_process_group_refuses_a_timeout_that_is_not_finite_seconds(bad):
    from dartsviz import distributed
    with pytest.raises(ValueError, match="timeout"):
        distributed.init("cpu", bad)


@pytest.mark.parametrize("command,flag,value", [
    ("search", "--layers", "3"), ("search", "--channels", "8"), ("search", "--impl", "reference"),
    ("search", "--nodes", "3"), ("train", "--layers", "3"), ("train", "--channels", "8"),
    ("train", "--no-cutout", None)])
def test_a_flag_the_rnn_space_does_not_use_is_refused(command, flag, value, tmp_path, capsys):
    args = [command, "--space", "rnn", flag, *([value] if value else []), "--out", str(tmp_path / "r"), "--steps", "1"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"dartsviz {command}: error: {flag} does not apply to the rnn space (")
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_flags_that_mean_another_thing_in_the_rnn_space_say_so_in_help(capsys):
    for command in ("search", "train"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "rnn space: parallel columns of the token stream" in text
        assert "not in the rnn space: one recurrent cell" in text


@pytest.mark.parametrize("space", ["cnn", "rnn"])
@pytest.mark.parametrize("name,text", [("notes.txt", "notes of the lesson\n"), ("cell.json", '{"a": 1}\n')])
def test_a_genotype_file_that_does_not_parse_is_named_in_the_error(space, name, text, tmp_path, capsys):
    path = tmp_path / name
    path.write_text(text)
    assert main(["train", "--space", space, "--genotype", str(path), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"dartsviz train: error: {path}: genotype ") and len(err.splitlines()) == 1, err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("init,ops", [
    ('raise RuntimeError("operator torchvision::nms does not exist")', None),   # built for another torch
    ('__version__ = "0.0"', 'def nms(*a):\n    raise RuntimeError("Couldn\'t load custom C++ ops")')])
def test_doctor_runs_a_torchvision_op_and_says_in_one_line_how_to_fix_it(init, ops, tmp_path):
    pkg = tmp_path / "torchvision"                 # a broken torchvision ahead of the real one
    pkg.mkdir()
    (pkg / "__init__.py").write_text(init + "\n")
    if ops:
        (pkg / "ops.py").write_text(ops + "\n")
    import os
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    p = subprocess.run([sys.executable, "-m", "dartsviz.cli", "doctor"], capture_output=True, text=True,
                       timeout=300, env=env)
    assert p.returncode == 1
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dartsviz doctor: error: torchvision does not work with torch")
    assert "reinstall torch and torchvision together" in err[0]
    assert "torch+torchvision    broken:" in p.stdout


def test_each_command_lists_its_own_presets_in_help(capsys):
    from dartsviz.search import PRESETS
    from dartsviz.train import TRAIN_PRESETS
    helps = {}
    for command in ("search", "train"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        start = text.rindex("--preset PRESET")                  # the option's entry, not the usage line
        helps[command] = text[start:text.index("--epochs", start)]
    for name in PRESETS:          # paper_rnn is "paper" with --space rnn
        assert name.split("_")[0] in helps["search"], name
    for name in TRAIN_PRESETS:
        assert name in helps["train"], name
    assert "classroom" not in helps["train"] and "collapse" not in helps["train"]
