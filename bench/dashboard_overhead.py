"""How much time a subscribed Dashboard adds to a search (target: under 5 % at `tiny`).

    python bench/dashboard_overhead.py                # the tiny preset, 2 repeats
    python bench/dashboard_overhead.py --epochs 2 --repeats 1

Each repeat runs the same search (same seed, same data) twice, once bare and once driven
by `Dashboard.run()` (throttled redraws while running, a full redraw at the end), in
alternating order. Reported: the wall-time overhead (noisy on a shared machine) and the
time the dashboard itself spent in its callbacks and redraws (its own accounting, which
does not depend on what else the machine is doing).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 keeps timings steady)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from dartsviz.search import Search, SearchConfig
    from dartsviz.viz.dashboard import Dashboard

    overrides = {"epochs": args.epochs} if args.epochs else {}
    data = Search(SearchConfig.preset(args.preset, **overrides)).data

    def bare() -> float:
        s = Search(SearchConfig.preset(args.preset, **overrides), data=data)
        t0 = time.perf_counter()
        s.run()
        return time.perf_counter() - t0

    def with_dashboard():
        s = Search(SearchConfig.preset(args.preset, **overrides), data=data)
        dash = Dashboard(s)              # the first drawing is set-up, like building the search
        dash.draw_seconds = 0.0
        t0 = time.perf_counter()
        dash.run()
        return time.perf_counter() - t0, dash.draw_seconds, s.step_count

    plain, dashed, drawn = [], [], []
    for i in range(args.repeats):
        if i % 2 == 0:
            plain.append(bare())
            t, d, steps = with_dashboard()
        else:
            t, d, steps = with_dashboard()
            plain.append(bare())
        dashed.append(t)
        drawn.append(d)
        print(f"repeat {i + 1}: bare {plain[-1]:.2f}s, with dashboard {t:.2f}s "
              f"(dashboard's own time {d:.2f}s), {steps} steps", flush=True)
    p, w, d = statistics.median(plain), statistics.median(dashed), statistics.median(drawn)
    print(f"preset {args.preset}: {steps} steps, torch threads {args.threads}")
    print(f"wall-time overhead: {100 * (w - p) / p:+.1f} % (median bare {p:.2f}s, with dashboard {w:.2f}s)")
    print(f"dashboard's own time: {d:.2f}s = {100 * d / (w - d):.1f} % of the search's time in that run")


if __name__ == "__main__":
    main()
