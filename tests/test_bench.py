"""The benchmark scripts run: bench/step.py and bench/cells.py on the CPU, and every command of
bench/gpu_check.sh parses (on a machine without CUDA each stops at the one-line 'CUDA is not available')."""
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
GPU_CHECK = ROOT / "bench" / "gpu_check.sh"


def _gpu_check_commands():
    """(name, argv) of each `run NAME COMMAND...` line of gpu_check.sh, $STEP expanded."""
    text = GPU_CHECK.read_text()
    step = shlex.split(re.search(r'^STEP="(.*)"$', text, re.M).group(1))
    out = []
    for line in text.splitlines():
        if line.startswith("run "):
            name, *argv = shlex.split(line)[1:]
            argv = [a for x in argv for a in (step if x == "$STEP" else [x])]
            out.append((name, argv))
    return out


def test_gpu_check_covers_the_tests_and_every_benchmark():
    names = [n for n, _ in _gpu_check_commands()]
    assert names[0] == "cuda_tests" and len(names) == len(set(names)) >= 8
    argvs = [" ".join(a) for _, a in _gpu_check_commands()]
    for needle in ("--precision bf16", "--precision fp16", '"cuda_graphs": true', "--orders 1 2",
                   "variants_memory.py --device cuda"):
        assert any(needle in a for a in argvs), needle


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA the script runs for many minutes")
def test_gpu_check_records_every_command_and_goes_on_after_failures(tmp_path):
    env = {**os.environ, "LIMIT": "240", "OMP_NUM_THREADS": "1"}
    p = subprocess.run(["bash", str(GPU_CHECK), str(tmp_path / "res")], capture_output=True, text=True,
                       timeout=900, env=env)
    assert p.returncode == 0, p.stderr
    summary = (tmp_path / "res" / "summary.txt").read_text()
    for name, argv in _gpu_check_commands():
        log = (tmp_path / "res" / f"{name}.txt").read_text()
        assert f"== {name}: " in summary and re.search(r"^rc=\d+$", log, re.M), name
        if argv[:2] != ["python", "-m"]:       # each benchmark parsed its flags, then stopped at the device
            assert log == "CUDA is not available on this machine\nrc=1\n", (name, log)
    assert "rc=0" in (tmp_path / "res" / "cuda_tests.txt").read_text()          # cuda tests skip here
    assert summary.rstrip().splitlines()[-1].startswith("done ")


def test_step_bench_times_both_implementations_on_the_cpu():
    p = subprocess.run([sys.executable, "bench/step.py", "--device", "cpu", "--preset", "tiny", "--orders", "1",
                        "--steps", "2", "--warmup", "1", "--threads", "1", "--no-memory"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("# bench/step.py  preset=tiny")
    ref = [l for l in lines if l.startswith("reference order 1:")]
    fast = [l for l in lines if l.startswith("fast      order 1:")]
    assert len(ref) == len(fast) == 1 and "speed-up" in fast[0]
    ms = [float(re.search(r"([\d.]+) ms/step", l).group(1)) for l in ref + fast]
    assert all(m > 0 for m in ms)


def test_cells_bench_times_each_cell_of_both_implementations():
    p = subprocess.run([sys.executable, "bench/cells.py", "--size", "8", "--layers", "4", "--channels", "4",
                        "--batch-size", "4", "--repeats", "1"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    rows = [l.split() for l in p.stdout.splitlines()[2:]]
    # 4 cells: reductions at layers // 3 = 1 and 2 * layers // 3 = 2; the input halves after each
    assert [r[:2] for r in rows[:4]] == [["0", "normal"], ["1", "reduction"], ["2", "reduction"], ["3", "normal"]]
    assert [r[-5] for r in rows[:4]] == ["8,", "8,", "4,", "2,"]           # the input's height
    assert rows[4][:2] == ["all", "cells"]
    ref, fast = (float(r[-3]) for r in rows[4:]), (float(r[-2]) for r in rows[4:])
    assert all(t > 0 for t in list(ref) + list(fast))


def test_suite_time_compares_the_tests_both_logs_have_and_counts_a_twice_run_notebook_once(tmp_path):
    base = ("3.00s call     tests/test_a.py::test_x\n0.50s setup    tests/test_a.py::test_x\n"
            "2.00s call     tests/test_a.py::test_gone\n"
            "10.00s call     tests/test_notebooks.py::test_notebook_runs[01_intro]\n"
            "=== 3 passed in 9.00s ===\n")
    now = ("4.00s call     tests/test_a.py::test_x\n1.00s call     tests/test_b.py::test_new\n"
           "24.00s call     tests/test_notebooks.py::test_notebook_runs_twice_in_the_same_folder[01_intro]\n"
           "6.00s call     tests/test_notebooks.py::test_notebook_runs_twice_in_the_same_folder[02_more]\n"
           "=== 4 passed in 12.00s ===\n")
    (tmp_path / "base.txt").write_text(base)
    (tmp_path / "now.txt").write_text(now)
    p = subprocess.run([sys.executable, "bench/suite_time.py", "--logs", str(tmp_path / "base.txt"),
                        str(tmp_path / "now.txt")], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "tests in both: 1; worker seconds 3.5 -> 4.0 (+14.3 %)" in p.stdout, p.stdout
    assert "only in the baseline: 2 tests, 12.0 s" in p.stdout and "only now:             3 tests, 31.0 s" in p.stdout
    assert "notebooks in both, one run each: 1; 10.0 s -> 12.0 s (+20.0 %); notebooks only now: 02_more" in p.stdout
