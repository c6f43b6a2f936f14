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
    (["search", "--precision", "fp16"], "invalid choice", 2),
    (["search", "--sync-every", "0"], "--sync-every must be positive", 1),
    (["frobnicate"], "invalid choice", 2),
])
def test_bad_input_gives_one_line_and_a_non_zero_exit(args, needle, code, tmp_path):
    p = _run(*args, *(["--out", str(tmp_path / "r")] if args[0] == "search" and "--resume" not in args else []))
    assert p.returncode == code
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and needle in lines[0], p.stderr
    assert "Traceback" not in p.stderr


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
    assert p.returncode == 1 and "corrupt or foreign" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


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
