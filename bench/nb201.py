"""The nb201 space's speed targets, measured (not tested): a tiny nb201 search step against a tiny
cnn step (same machine, interleaved), one table lookup, and 100 runs of each query search.

    OMP_NUM_THREADS=1 python bench/nb201.py --steps 30          # run it alone on the machine

Targets: the nb201 step costs at most the cnn step; a lookup is under 1 ms; 100 REA runs at
20,000 simulated seconds take under 10 s. Prints one markdown table with the machine.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
import timeit

import torch


def step_ms(space: str, steps: int, warmup: int = 3) -> float:
    from dartsviz import Search, SearchConfig
    config = SearchConfig.preset("tiny", space=space, device="cpu", warmup_epochs=0, epochs=1,
                                 steps_per_epoch=steps + warmup + 1)
    search = Search(config)
    times = []
    for i in range(steps + warmup):
        t0 = time.perf_counter()
        search.step()
        search.flush()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from dartsviz import truth
    from dartsviz.query import run_many
    from dartsviz.spaces.nb201.genotype import random_genotype
    rows = []
    nb, cnn = [], []
    for _ in range(3):                      # interleaved rounds: a noisy machine slows both alike
        nb.append(step_ms("nb201", args.steps))
        cnn.append(step_ms("cnn", args.steps))
    rows.append(("tiny search step, nb201 (median of 3 rounds)", f"{statistics.median(nb):.1f} ms"))
    rows.append(("tiny search step, cnn (median of 3 rounds)", f"{statistics.median(cnn):.1f} ms"))
    truth.table()
    cells = [random_genotype(i) for i in range(1000)]
    n = 20
    per = min(timeit.repeat(lambda: [truth.lookup(c) for c in cells], number=n, repeat=3)) / (n * len(cells))
    rows.append(("truth.lookup(genotype), one cell", f"{per * 1e6:.2f} µs"))
    for algo in ("random", "rea", "ls"):
        t0 = time.perf_counter()
        s = run_many(algo, budget=20000, runs=100)
        rows.append((f"100 runs of {s.name} at 20,000 s", f"{time.perf_counter() - t0:.2f} s"))
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s), "
          f"torch {torch.__version__}, python {platform.python_version()}")
    print("| what | measured |\n|---|---|")
    for what, value in rows:
        print(f"| {what} | {value} |")


if __name__ == "__main__":
    main()
