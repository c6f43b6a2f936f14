"""End-to-end comparison: first-order vs second-order vs random cells, searched and trained.

Not a subcommand of its own: `add_arguments(parser)` and `run(args)` are meant for
`dartsviz compare --end-to-end`. Writes table.md, table.csv, results.json, comparison.png.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from ..bilevel import ORDERS


def add_arguments(p):
    """Add the end-to-end options to `p`; options `p` already has (e.g. --out) are kept as they are."""
    g = p.add_argument_group("end-to-end comparison (first order vs second order vs random)")

    def add(flag, **kw):
        if flag not in p._option_string_actions:
            g.add_argument(flag, **kw)
    add("--seeds", type=int, nargs="+", default=[0, 1], help="seeds (each: one search per order)")
    add("--random", type=int, default=1, metavar="N", help="random cells per seed (default 1)")
    add("--orders", type=int, nargs="+", choices=ORDERS, default=list(ORDERS), help="search orders")
    add("--search-preset", default="tiny", help="search preset (tiny or paper)")
    add("--train-preset", default="tiny", help="training preset (tiny or paper)")
    add("--search-epochs", type=int, help="search epochs (same for every search)")
    add("--train-epochs", type=int, help="training epochs (same for every network)")
    add("--steps-per-epoch", type=int, help="cap the steps per epoch of searches and trainings")
    add("--space", help="search space: cnn (default) or rnn (the tiny presets: the embedded corpus)")
    add("--dataset", help="data set for search and training")
    add("--data-dir", help="folder holding torchvision data sets")
    add("--device", help="auto, cpu, cuda or cuda:N")
    add("--out", help="output folder (default runs/compare-TIME)")
    add("--quiet", action="store_true", help="no progress lines")
    return p


def run(args) -> int:
    from ..baseline import compare_end_to_end, format_table
    from ..search import SearchConfig
    from ..spaces import get_space
    for name in ("search_epochs", "train_epochs", "steps_per_epoch"):
        v = getattr(args, name, None)
        if v is not None and v <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got {v}")
    if args.random < 0:
        raise ValueError(f"--random must be >= 0, got {args.random}")
    common = {k: getattr(args, k) for k in ("dataset", "data_dir", "device", "steps_per_epoch")
              if getattr(args, k, None) is not None}
    space = get_space(getattr(args, "space", None) or "cnn")
    search_config = SearchConfig.preset(args.search_preset, space=space.name, **common)
    train_config = space.trainer().config_class.preset(args.train_preset, **common)
    out = Path(args.out) if args.out else Path("runs") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    log = None if getattr(args, "quiet", False) else (lambda msg: print(msg, file=sys.stderr, flush=True))
    result = compare_end_to_end(seeds=args.seeds, random=args.random, orders=args.orders,
                                search_config=search_config, train_config=train_config,
                                search_epochs=args.search_epochs, train_epochs=args.train_epochs,
                                out=out, log=log)
    print(format_table(result["rows"], result["settings"]["space"]))
    print(f"written: {out / 'table.md'}, {out / 'table.csv'}, {out / 'results.json'}, {out / 'comparison.png'}")
    return 0


def main(argv=None) -> int:
    """Stand-alone entry point: python -m dartsviz.commands.compare_e2e --seeds 0 1."""
    import argparse
    from .common import call
    parser = argparse.ArgumentParser(prog="dartsviz compare --end-to-end",
                                     description="first order vs second order vs random, searched and trained")
    return call("compare", run, add_arguments(parser).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
