"""Is the test suite slower than at an earlier commit, for the same tests?

Runs the README's test command with `--durations=0` on a clean copy of REV (imported through
PYTHONPATH, so its subprocesses and notebook kernels use REV's code too) and on this checkout,
one after the other, then compares the worker seconds (setup + call + teardown) of the tests
both have, the notebooks per run, and what only one of them has.

    python bench/suite_time.py --baseline 335fe4e            # both suites, about 20 min on 2 cores
    python bench/suite_time.py --logs base.txt now.txt       # compare two saved logs only

Run it alone on the machine: two suites at once slow each other down.
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMAND = [sys.executable, "-m", "pytest", "-n", "2", "-q", "-p", "no:cacheprovider", "--durations=0"]
LINE = re.compile(r"^([\d.]+)s (setup|call|teardown)\s+(\S+)$")
NOTEBOOK = re.compile(r"^tests/test_notebooks\.py::test_notebook_runs(_twice_in_the_same_folder)?\[(\w+)\]$")


def durations(log: str) -> dict:
    """test id -> seconds (setup + call + teardown) from a `--durations=0` log."""
    out = collections.defaultdict(float)
    for line in log.splitlines():
        m = LINE.match(line.strip())
        if m:
            out[m.group(3)] += float(m.group(1))
    return dict(out)


def wall(log: str) -> str:
    found = re.findall(r"^=*\s*(\d+ passed.*in [\d.]+s.*?)\s*=*$", log, re.M)
    return found[-1] if found else "?"


def notebooks(times: dict) -> dict:
    """notebook -> seconds of one run (a test that runs it twice counts half)."""
    out = {}
    for test, s in times.items():
        m = NOTEBOOK.match(test)
        if m:
            out[m.group(2)] = s / (2 if m.group(1) else 1)
    return out


def compare(base_log: str, now_log: str) -> str:
    a, b = durations(base_log), durations(now_log)
    if not a or not b:
        raise SystemExit("suite_time: a log holds no --durations=0 lines")
    both = sorted(set(a) & set(b))
    sa, sb = sum(a[t] for t in both), sum(b[t] for t in both)
    na, nb = notebooks(a), notebooks(b)
    nboth = sorted(set(na) & set(nb))
    lines = [f"baseline: {wall(base_log)}",
             f"now:      {wall(now_log)}",
             f"tests in both: {len(both)}; worker seconds {sa:.1f} -> {sb:.1f} ({(sb / sa - 1) * 100:+.1f} %)",
             f"only in the baseline: {len(set(a) - set(b))} tests, {sum(a[t] for t in set(a) - set(b)):.1f} s",
             f"only now:             {len(set(b) - set(a))} tests, {sum(b[t] for t in set(b) - set(a)):.1f} s"]
    if nboth:
        x, y = sum(na[n] for n in nboth), sum(nb[n] for n in nboth)
        lines.append(f"notebooks in both, one run each: {len(nboth)}; {x:.1f} s -> {y:.1f} s "
                     f"({(y / x - 1) * 100:+.1f} %); notebooks only now: {', '.join(sorted(set(nb) - set(na))) or '-'}")
    by_file = collections.defaultdict(lambda: [0.0, 0.0])
    for t in both:
        f = by_file[t.split("::")[0]]
        f[0] += a[t]
        f[1] += b[t]
    lines.append("files whose shared tests changed most (s):")
    for name, (x, y) in sorted(by_file.items(), key=lambda kv: -abs(kv[1][1] - kv[1][0]))[:8]:
        lines.append(f"  {name:55s} {x:7.1f} -> {y:7.1f}")
    return "\n".join(lines)


def run_suite(root: Path, pythonpath: str = None) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([pythonpath] + [p for p in [env.get("PYTHONPATH")] if p])
    p = subprocess.run(COMMAND, cwd=root, env=env, capture_output=True, text=True)
    return p.stdout + p.stderr


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", help="the commit to compare with (run both suites)")
    ap.add_argument("--logs", nargs=2, metavar=("BASE", "NOW"), help="compare two saved --durations=0 logs")
    ap.add_argument("--keep", help="a folder to save both logs in")
    args = ap.parse_args(argv)
    if args.logs:
        print(compare(*(Path(f).read_text() for f in args.logs)))
        return 0
    if not args.baseline:
        ap.error("give --baseline REV or --logs BASE NOW")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(base)], check=True)
        subprocess.run(["git", "checkout", "-q", args.baseline], cwd=base, check=True)
        base_log = run_suite(base, pythonpath=str(base))
    now_log = run_suite(ROOT)
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
        (Path(args.keep) / "base.txt").write_text(base_log)
        (Path(args.keep) / "now.txt").write_text(now_log)
    print(compare(base_log, now_log))
    return 0


if __name__ == "__main__":
    sys.exit(main())
