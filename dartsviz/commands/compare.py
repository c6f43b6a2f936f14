"""`dartsviz compare RUN_A RUN_B`: a side-by-side report of two searches (PNG/SVG + HTML)."""
from __future__ import annotations

from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("compare", help="compare two run directories: heat maps, cells, curves, cost")
    p.add_argument("runs", nargs="*", metavar="RUN_DIR", help="two run directories (e.g. first vs second order)")
    p.add_argument("--out", help="report folder (default compare-RUN_A-vs-RUN_B next to RUN_A)")
    p.add_argument("--labels", nargs=2, metavar=("LABEL_A", "LABEL_B"), help="names shown for the two runs")
    p.add_argument("--end-to-end", action="store_true",
                   help="search (first and second order) and train from scratch over several seeds, "
                        "plus random cells; writes a table like the paper's")
    from . import compare_e2e
    compare_e2e.add_arguments(p)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    if args.end_to_end:
        if args.runs:
            raise ValueError("--end-to-end runs its own searches; give no run directories")
        from . import compare_e2e
        return compare_e2e.run(args)
    return compare_runs(args)


def compare_runs(args) -> int:
    """The two-run report; other modes (e.g. --end-to-end) can dispatch before calling this."""
    from ..viz.compare import compare_report
    if len(args.runs) != 2:
        raise ValueError(f"compare needs two run directories, got {len(args.runs)}")
    a, b = (Path(r) for r in args.runs)
    out = Path(args.out) if args.out else a.resolve().parent / f"compare-{a.resolve().name}-vs-{b.resolve().name}"
    page = compare_report(a, b, out, labels=args.labels)
    print(f"report: {page}")
    from .common import dot_hint
    dot_hint()
    return 0
