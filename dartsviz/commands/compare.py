"""`dartsviz compare RUN ... RUN`: a side-by-side report of two or more searches (PNG/SVG +
HTML); `--variants darts pc_darts ...`: one search per variant on the same data and seed;
`--end-to-end`: first order vs second order vs random, searched and trained over seeds. Both
experiments are thin calls of `dartsviz.experiments`."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from ..bilevel import ORDERS


def add_parser(sub):
    from ..methods import method_names
    p = sub.add_parser("compare", help="compare run directories, or search with several variants and compare them: "
                                       "heat maps, cells, curves, cost, collapse diagnostics")
    p.add_argument("runs", nargs="*", metavar="RUN_DIR",
                   help="two or more run directories (e.g. first vs second order)")
    p.add_argument("--out", help="report folder (default compare-RUN_A-vs-RUN_B next to RUN_A; with --variants "
                                 "runs/compare-variants-TIME)")
    p.add_argument("--labels", nargs="+", metavar="LABEL", help="names shown for the runs, one per run")
    p.add_argument("--end-to-end", action="store_true",
                   help="without --variants: search (first and second order) and train from scratch over several "
                        "seeds, plus random cells, for a table like the paper's; with --variants: also train each "
                        "variant's derived cell from scratch")
    g = p.add_argument_group("variants (--variants NAME ...: one search per variant, same data and seed)")
    g.add_argument("--variants", nargs="+", metavar="NAME", help=f"variants to search: {', '.join(method_names())}")
    g.add_argument("--preset", help="search preset, each variant with its own layer of it (default tiny)")
    g.add_argument("--seed", type=int, help="the seed of every search (default the preset's)")
    g.add_argument("--epochs", type=int, help="search epochs of every variant (default the variant's preset)")
    g.add_argument("--monitor-every", type=int, metavar="N", help="measure lambda_max every N steps (0: off)")
    g.add_argument("--monitor-iters", type=int, metavar="N",
                   help="cap of the power iteration's Hessian-vector products")
    e = p.add_argument_group("end-to-end (--end-to-end: first order vs second order vs random)")
    e.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds (each: one search per order)")
    e.add_argument("--random", type=int, default=1, metavar="N", help="random cells per seed (default 1)")
    e.add_argument("--orders", type=int, nargs="+", choices=ORDERS, default=list(ORDERS), help="search orders")
    e.add_argument("--search-preset", default="tiny", help="search preset (tiny or paper)")
    e.add_argument("--train-preset", default="tiny", help="training preset (tiny or paper)")
    e.add_argument("--search-epochs", type=int, help="search epochs (same for every search)")
    e.add_argument("--train-epochs", type=int, help="training epochs (same for every network)")
    t = p.add_argument_group("ground truth (--truth: the nb201 space, searched cells and query searches by true accuracy)")
    t.add_argument("--truth", action="store_true",
                   help="search the nb201 space with DARTS (--orders) and any --variants over --seeds, run the query "
                        "searches over its table, and report every cell's true CIFAR-10 accuracy beside the published rows")
    t.add_argument("--budget", type=float, default=20000.0, metavar="SECONDS",
                   help="query searches: simulated training seconds per run (default 20000)")
    t.add_argument("--query-runs", type=int, default=100, metavar="N", help="query searches: runs each (default 100)")
    c = p.add_argument_group("the experiments")
    c.add_argument("--steps-per-epoch", type=int, help="cap the steps per epoch of searches and trainings")
    c.add_argument("--space", help="search space: cnn (default) or rnn (the tiny presets: the embedded corpus)")
    c.add_argument("--dataset", help="data set for search and training")
    c.add_argument("--data-dir", help="folder holding torchvision data sets")
    c.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    c.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)
    return p


VARIANT_FLAGS = {"preset": "--search-preset", "seed": "--seeds", "epochs": "--search-epochs",
                 "monitor_every": None, "monitor_iters": None}


def run(args) -> int:
    if args.truth:
        if args.runs:
            raise ValueError("--truth runs its own searches; give no run directories")
        return compare_truth(args)
    if args.variants is not None:
        if args.runs:
            raise ValueError("--variants runs its own searches; give no run directories")
        return compare_variants(args)
    given = [k for k in VARIANT_FLAGS if getattr(args, k, None) is not None]
    if given:
        flag = f"--{given[0].replace('_', '-')}"
        instead = VARIANT_FLAGS[given[0]] if args.end_to_end else None
        raise ValueError(f"{flag} goes with --variants" + (f"; --end-to-end takes {instead}" if instead else ""))
    if args.end_to_end:
        if args.runs:
            raise ValueError("--end-to-end runs its own searches; give no run directories")
        return compare_end_to_end(args)
    return compare_runs(args)


def compare_runs(args) -> int:
    """The report of two or more run directories; other modes (e.g. --end-to-end) can
    dispatch before calling this."""
    from ..viz.compare import compare_report
    if len(args.runs) < 2:
        raise ValueError(f"compare needs two run directories (or more), got {len(args.runs)}")
    if args.labels and len(args.labels) != len(args.runs):
        raise ValueError(f"--labels gives {len(args.labels)} names for {len(args.runs)} runs; give one per run")
    runs = [Path(r) for r in args.runs]
    name = "compare-" + "-vs-".join(r.resolve().name for r in runs)
    out = Path(args.out) if args.out else runs[0].resolve().parent / name
    page = compare_report(*runs, out=out, labels=args.labels)
    print(f"report: {page}")
    from .common import dot_hint
    dot_hint()
    return 0


def compare_variants(args) -> int:
    """`--variants`: one search per variant (and with --end-to-end a training of each cell),
    the variants table on stdout, the report in --out."""
    from ..experiments import compare_variants as run_variants, format_table
    _refuse_non_positive(args, "epochs", "search_epochs", "train_epochs", "steps_per_epoch", "monitor_iters")
    if args.monitor_every is not None and args.monitor_every < 0:
        raise ValueError(f"--monitor-every must be 0 (off) or positive, got {args.monitor_every}")
    if args.labels:
        raise ValueError("--labels names run directories; the variants are named by themselves")
    out = Path(args.out) if args.out else Path("runs") / f"compare-variants-{time.strftime('%Y%m%d-%H%M%S')}"
    log = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    result = run_variants(args.variants, out, preset=args.preset or args.search_preset, seed=args.seed,
                          epochs=args.epochs or args.search_epochs, steps_per_epoch=args.steps_per_epoch,
                          monitor_every=args.monitor_every, monitor_iters=args.monitor_iters,
                          end_to_end=args.end_to_end, train_preset=args.train_preset, train_epochs=args.train_epochs,
                          space=args.space, dataset=args.dataset, data_dir=args.data_dir, device=args.device, log=log)
    print(format_table(result))
    print(f"report: {result['report']}")
    from .common import dot_hint
    dot_hint()
    return 0


def compare_end_to_end(args) -> int:
    """`--end-to-end`: the paper's table, first order vs second order vs random, in --out."""
    from ..experiments import compare_end_to_end as run_e2e, format_table
    from ..search import SearchConfig
    from ..spaces import get_space
    _refuse_non_positive(args, "search_epochs", "train_epochs", "steps_per_epoch")
    if args.random < 0:
        raise ValueError(f"--random must be >= 0, got {args.random}")
    common = {k: getattr(args, k) for k in ("dataset", "data_dir", "device", "steps_per_epoch")
              if getattr(args, k, None) is not None}
    space = get_space(args.space or "cnn")
    search_config = SearchConfig.preset(args.search_preset, space=space.name, **common)
    train_config = space.trainer().config_class.preset(args.train_preset, **common)
    out = Path(args.out) if args.out else Path("runs") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
    log = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    result = run_e2e(seeds=args.seeds, random=args.random, orders=args.orders, search_config=search_config,
                     train_config=train_config, search_epochs=args.search_epochs, train_epochs=args.train_epochs,
                     out=out, log=log)
    print(format_table(result))
    written = [out / n for n in ("table.md", "table.csv", "results.json", "comparison.png", "index.html")]
    print("written: " + ", ".join(str(p) for p in written if p.exists()))
    return 0


def compare_truth(args) -> int:
    """`--truth`: the nb201 space's searched cells and query searches by their true accuracy."""
    import math
    from ..experiments import compare_truth as run_truth, format_table
    _refuse_non_positive(args, "search_epochs", "epochs", "steps_per_epoch", "query_runs")
    if not (math.isfinite(args.budget) and args.budget > 0):
        raise ValueError(f"--budget must be a positive number of seconds, got {args.budget}")
    if args.space not in (None, "nb201"):
        raise ValueError(f"--truth searches the nb201 space (the one with a table of true accuracies), not {args.space}")
    out = Path(args.out) if args.out else Path("runs") / f"compare-truth-{time.strftime('%Y%m%d-%H%M%S')}"
    log = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    result = run_truth(seeds=args.seeds, orders=args.orders, variants=args.variants or (), out=out,
                       preset=args.preset or args.search_preset, epochs=args.epochs or args.search_epochs,
                       steps_per_epoch=args.steps_per_epoch, dataset=args.dataset, data_dir=args.data_dir,
                       device=args.device, budget=args.budget, query_runs=args.query_runs, log=log)
    print(format_table(result))
    print("true accuracy: NAS-Bench-201's CIFAR-10 numbers, 200 epochs, cifar10-valid split; the published "
          "column is the \"cifar10\" split's test set")
    print(f"report: {out / 'index.html'}" if (out / "index.html").exists() else f"written: {out / 'table.md'}")
    return 0


def _refuse_non_positive(args, *names) -> None:
    """A count flag given as 0 or less is one line: "--NAME must be positive, got V"."""
    for name in names:
        v = getattr(args, name, None)
        if v is not None and v <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive, got {v}")
