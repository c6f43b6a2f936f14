"""`dartsviz compare RUN ... RUN`: a side-by-side report of two or more searches (PNG/SVG +
HTML); `dartsviz compare --variants darts pc_darts ...`: one search per variant on the same
data and seed, and their report (`dartsviz.compare_variants`)."""
from __future__ import annotations

import sys
import time
from pathlib import Path


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
    from . import compare_e2e
    compare_e2e.add_arguments(p)
    p.set_defaults(func=run)
    return p


VARIANT_FLAGS = {"preset": "--search-preset", "seed": "--seeds", "epochs": "--search-epochs",
                 "monitor_every": None, "monitor_iters": None}


def run(args) -> int:
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
        from . import compare_e2e
        return compare_e2e.run(args)
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
    from ..compare_variants import compare_variants as run_variants, format_variants_table
    for flag in ("epochs", "search_epochs", "train_epochs", "steps_per_epoch", "monitor_iters"):
        v = getattr(args, flag, None)
        if v is not None and v <= 0:
            raise ValueError(f"--{flag.replace('_', '-')} must be positive, got {v}")
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
    print(format_variants_table(result["rows"]))
    print(f"report: {result['report']}")
    from .common import dot_hint
    dot_hint()
    return 0
