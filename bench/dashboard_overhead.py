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

    def bare():
        s = Search(SearchConfig.preset(args.preset, **overrides), data=data)
        t0, c0 = time.perf_counter(), time.process_time()
        s.run()
        return time.perf_counter() - t0, time.process_time() - c0

    def with_dashboard():
        s = Search(SearchConfig.preset(args.preset, **overrides), data=data)
        dash = Dashboard(s)              # the first drawing is set-up, like building the search
        dash.draw_seconds = 0.0
        t0, c0 = time.perf_counter(), time.process_time()
        dash.run()
        return time.perf_counter() - t0, time.process_time() - c0, dash.draw_seconds, s.step_count

    rows = []
    for i in range(args.repeats):
        if i % 2 == 0:
            b = bare()
            w = with_dashboard()
        else:
            w = with_dashboard()
            b = bare()
        rows.append((b, w))
        print(f"repeat {i + 1}: bare {b[0]:.2f}s wall / {b[1]:.2f}s CPU; with dashboard {w[0]:.2f}s wall / "
              f"{w[1]:.2f}s CPU (dashboard's own time {w[2]:.2f}s); {w[3]} steps", flush=True)
    pct = lambda new, old: 100 * (new - old) / old
    wall = statistics.median(pct(w[0], b[0]) for b, w in rows)
    cpu = statistics.median(pct(w[1], b[1]) for b, w in rows)
    own = statistics.median(100 * w[2] / (w[0] - w[2]) for _, w in rows)
    print(f"preset {args.preset}: {rows[0][1][3]} steps, torch threads {args.threads}, {args.repeats} repeat(s)")
    print(f"wall-time overhead (median of repeats): {wall:+.1f} %   <- noisy on a shared machine")
    print(f"CPU-time overhead (median of repeats):  {cpu:+.1f} %")
    print(f"dashboard's own time (median):          {own:.1f} % of the search's time")


if __name__ == "__main__":
    main()
