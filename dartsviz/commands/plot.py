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
    p.add_argument("--follow", action="store_true",
                   help="keep the plots up to date while the run is written (by this machine or another, "
                        "through a shared folder); ends at the run's last epoch or Ctrl-C")
    p.add_argument("--interval", type=float, default=10.0, help="--follow: seconds between looks (default 10)")
    p.set_defaults(func=run)
    return p


def _list(text: str) -> tuple:
    return tuple(x.strip() for x in text.split(",") if x.strip() and x.strip() != "none")


def run(args) -> int:
    from ..runs import RunDir
    from ..viz.export import export_run
    from .common import dot_hint
    if args.frames <= 0 or args.dpi <= 0:
        raise ValueError("--frames and --dpi must be positive")
    if args.follow:
        return follow(args)
    paths = export_run(args.run_dir, out=args.out, formats=_list(args.formats), animation=_list(args.animation),
                       max_frames=args.frames, dpi=args.dpi)
    folder = Path(args.out) if args.out else Path(args.run_dir) / "plots"
    what = "training curves and cells" if RunDir(args.run_dir).loop == "train" else "search panels"
    print(f"wrote {len(paths)} files ({what}) to {folder}")
    dot_hint()
    return 0


def finished(run_dir) -> bool:
    """Whether the run's history holds the epoch record of its last configured epoch."""
    from ..runs import RunDir
    d = RunDir(run_dir)
    epochs = d.read_config().get("epochs")
    return epochs is not None and any(r.kind == "epoch" and r.epoch == epochs - 1 for r in d.read_records())


def follow(args) -> int:
    """Re-write the plots whenever the run's history has grown, until its last epoch (or Ctrl-C)."""
    import sys
    import time
    from ..runs import RunDir
    from ..viz.export import export_run
    if args.interval <= 0:
        raise ValueError("--interval must be positive")
    run_dir = RunDir(args.run_dir).require()
    folder = Path(args.out) if args.out else Path(args.run_dir) / "plots"
    offset, steps = 0, 0
    try:
        while True:
            new, offset, reset = run_dir.tail_history(offset)
            steps = (0 if reset else steps) + sum(1 for r in new if r.get("kind") == "step")
            if new or reset:
                if steps:
                    paths = export_run(args.run_dir, out=args.out, formats=_list(args.formats), animation=(),
                                       max_frames=args.frames, dpi=args.dpi)
                    print(f"{time.strftime('%H:%M:%S')}  {steps} steps: wrote {len(paths)} files to {folder}",
                          flush=True)
                if finished(args.run_dir):
                    print("the run has written its last epoch")
                    return 0
            time.sleep(args.interval)
    except KeyboardInterrupt:
        sys.stderr.write("stopped following\n")
        return 0
