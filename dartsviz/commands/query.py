"""`dartsviz query`: random search, regularised evolution and local search over the NAS-Bench-201
table, with the benchmark's rules (dartsviz/query.py): mean ± std over runs, the anytime curves."""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from .common import positive_seconds

PLOT_FORMATS = (".png", ".svg")


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text!r}")
    return v


def add_parser(sub):
    from ..query import ALGOS, NAMES
    p = sub.add_parser(
        "query", help="search the NAS-Bench-201 table: random search, regularised evolution, local search",
        description="Query searches over the 15,625 cells of NAS-Bench-201. A search sees only each cell's "
                    "12-epoch validation accuracy (CIFAR-10, cifar10-valid split), pays its simulated "
                    "training time, and is judged by its chosen cell's 200-epoch accuracy.")
    p.add_argument("--algo", default="all", choices=(*ALGOS, "all"),
                   help="; ".join(f"{k}: {v}" for k, v in NAMES.items()) + "; all: the three (default all)")
    p.add_argument("--budget", type=positive_seconds, default=20000.0, metavar="SECONDS",
                   help="simulated seconds per run (default 20000): each new cell costs its 12-epoch training "
                        "time, taken as the table's 200-epoch seconds x 12/200 (the table has no 12-epoch "
                        "time); a cell queried again costs nothing; the last cell may pass the budget")
    p.add_argument("--runs", type=positive_int, default=100, help="runs per algorithm (default 100)")
    p.add_argument("--seed", type=int, default=0, help="the seed of the runs (default 0)")
    p.add_argument("--plot", metavar="FILE.png|FILE.svg", help="write the anytime curves figure there")
    p.add_argument("--json", metavar="FILE", help="write the summaries, curves and chosen cells there")
    p.set_defaults(func=run)
    return p


def _writable(path: str, what: str) -> Path:
    """The path, once its folder exists and is writable (checked before the searches run)."""
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"cannot write {what} {p}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or p.is_dir() or (p.exists() and not os.access(p, os.W_OK)):
        raise ValueError(f"cannot write {what} {p}: not writable")
    return p


def run(args) -> int:
    from .. import truth
    from ..query import ALGOS, SIGNAL, run_many
    plot = _writable(args.plot, "the plot") if args.plot else None
    if plot is not None and plot.suffix.lower() not in PLOT_FORMATS:
        raise ValueError(f"--plot must end in {' or '.join(PLOT_FORMATS)}, got {plot.name}")
    out_json = _writable(args.json, "the JSON") if args.json else None
    algos = ALGOS if args.algo == "all" else (args.algo,)
    summaries = [run_many(a, budget=args.budget, runs=args.runs, seed=args.seed) for a in algos]
    best, median = truth.best(), truth.median()

    print(f"NAS-Bench-201 query searches: {args.runs} runs each, budget {args.budget:,.0f} simulated seconds "
          f"per run, seed {args.seed}")
    print(f"search signal: {truth.LABELS[SIGNAL]}; a new cell costs its 200-epoch seconds x 12/200")
    print("chosen cell (best signal so far): its 200-epoch accuracy, mean ± std over runs")
    print(f"  {'':23s} {'validation':>16s} {'test':>16s}   cells queried")
    for s in summaries:
        print(f"  {s.name:23s} {s.valid_mean:7.2f} ± {s.valid_std:4.2f} % {s.test_mean:7.2f} ± {s.test_std:4.2f} %"
              f"   {s.queries_mean:7.1f}")
    for label, c in (("best cell", best), ("median cell", median)):
        print(f"  {label:23s} {c.valid_acc:14.2f} % {c.test_acc:14.2f} %   rank {c.rank:,} of {truth.CELLS:,}")
    print(f"validation: {truth.LABELS['valid_acc']}; test: {truth.LABELS['test_acc']}")
    print('(published NAS-Bench-201 rows, e.g. REA 93.92 ± 0.30, are "cifar10"-split test accuracies, '
          'trained on all 50k images: not this table\'s numbers)')

    if out_json is not None:
        doc = {"summaries": [s.to_dict() for s in summaries],
               "best": best.to_dict(), "median": median.to_dict(), "labels": truth.LABELS}
        out_json.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {out_json}")
    if plot is not None:
        from ..viz.anytime import draw_anytime
        fig = draw_anytime(summaries, {"best cell": best.valid_acc, "median cell": median.valid_acc})
        fig.savefig(plot, dpi=120)
        print(f"wrote {plot}")
    return 0
