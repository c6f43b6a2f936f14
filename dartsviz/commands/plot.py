"""`dartsviz plot RUN_DIR`: write every panel (PNG, SVG), the cell graphs and an animation of
a search; the training curves and the trained cells of a training (`dartsviz train`)."""
from __future__ import annotations

from pathlib import Path


def add_parser(sub):
    p = sub.add_parser("plot", help="write the plots of a run directory (PNG, SVG, GIF/HTML animation)")
    p.add_argument("run_dir", metavar="RUN_DIR",
                   help="a run directory written by `dartsviz search`, `dartsviz train` or a notebook")
    p.add_argument("--out", help="output folder (default RUN_DIR/plots)")
    p.add_argument("--formats", default="png,svg", help="comma-separated: png, svg (default png,svg)")
    p.add_argument("--animation", default="gif,html",
                   help="comma-separated: gif, html, or none (default gif,html); searches only")
    p.add_argument("--frames", type=int, default=24, help="at most this many animation frames (default 24)")
    p.add_argument("--dpi", type=int, default=100, help="resolution of the PNGs (default 100)")
    p.set_defaults(func=run)
    return p


def _list(text: str) -> tuple:
    return tuple(x.strip() for x in text.split(",") if x.strip() and x.strip() != "none")


def run(args) -> int:
    from ..viz.export import export_run, run_kind
    from .common import dot_hint
    if args.frames <= 0 or args.dpi <= 0:
        raise ValueError("--frames and --dpi must be positive")
    paths = export_run(args.run_dir, out=args.out, formats=_list(args.formats), animation=_list(args.animation),
                       max_frames=args.frames, dpi=args.dpi)
    folder = Path(args.out) if args.out else Path(args.run_dir) / "plots"
    what = "training curves and cells" if run_kind(args.run_dir) == "train" else "search panels"
    print(f"wrote {len(paths)} files ({what}) to {folder}")
    dot_hint()
    return 0
