"""`dartsviz search`: run a DARTS search and write a run directory."""
from __future__ import annotations

import sys

from ..search import IMPLS, PRECISIONS
from .common import add_run_flags, fresh_run_dir, refuse_out_with_resume, run_overrides


def add_parser(sub):
    p = sub.add_parser("search", help="run a DARTS search (digits, tiny preset by default)")
    add_run_flags(p, "supernet")
    p.add_argument("--order", type=int, choices=(1, 2), help="1 = first order, 2 = second order")
    p.add_argument("--hvp", choices=("finite", "exact"), help="second order: Hessian-vector product")
    p.add_argument("--impl", choices=IMPLS, help="supernet implementation (default fast)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="bf16: autocast forward passes (alphas stay fp32); for GPUs")
    p.add_argument("--out", help="run directory (default runs/search-DATASET-oORDER-TIME)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the search saved in RUN_DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--no-plots", action="store_true", help="do not write RUN_DIR/plots at the end")
    p.set_defaults(func=run)
    return p


def _overrides(args) -> dict:
    return run_overrides(args, ("order", "hvp", "impl", "precision"))


def progress_printer(search, total: int, quiet: bool):
    """A tqdm bar fed by the search's records (the search itself knows nothing of it)."""
    if quiet:
        return None, None
    from tqdm.auto import tqdm
    bar = tqdm(total=total, initial=min(search.step_count, total), unit="step", file=sys.stderr,
               dynamic_ncols=True, desc=f"search o{search.config.order}")

    def on_record(r):
        if r["kind"] == "step":
            bar.update(1)
            bar.set_postfix(ep=r["epoch"], loss=f"{r['train_loss']:.3f}", acc=f"{r['train_acc']:.2f}",
                            val_loss=f"{r['val_loss']:.3f}", val_acc=f"{r['val_acc']:.2f}",
                            o=r["order"], refresh=False)
        else:
            bar.write(f"epoch {r['epoch']}: train acc {r['train_acc']:.3f}  val acc {r['val_acc']:.3f}  "
                      f"test acc {r['test_acc']:.3f}  {r['seconds']:.1f}s")
    return bar, on_record


def write_plots(search, args) -> None:
    """The static export into RUN_DIR/plots; a failure is reported, the search is kept."""
    from ..viz.export import export_run
    try:
        paths = export_run(search.run_dir.path, out=search.run_dir.path / "plots")
    except Exception as e:  # plotting must never lose a finished search
        sys.stderr.write(f"plots not written: {type(e).__name__}: {e}\n")
        return
    print(f"plots: {len(paths)} files in {search.run_dir.path / 'plots'}")


def run(args) -> int:
    from ..search import Search, SearchConfig
    overrides = _overrides(args)
    refuse_out_with_resume(args)
    if args.resume:
        search = Search.resume(args.resume, **overrides)
    else:
        config = SearchConfig.preset(args.preset, **overrides)
        out = fresh_run_dir(args, f"search-{config.dataset.replace(':', '_')}-o{config.order}")
        search = Search(config, out=out)
    remaining = max(0, search.total_steps - search.step_count)
    steps = min(remaining, args.steps) if args.steps else remaining
    bar, on_record = progress_printer(search, search.step_count + steps, args.quiet)
    if on_record:
        search.subscribe(on_record)
    try:
        search.run(steps=steps)
    finally:
        if bar is not None:
            bar.close()
    hook = getattr(args, "after_search", None)
    if hook is None and not getattr(args, "no_plots", False):
        hook = write_plots
    if hook is not None and not search.interrupted:
        hook(search, args)
    print(f"genotype: {search.genotype.to_text()}")
    print(f"run directory: {search.run_dir.path}")
    if search.interrupted:
        sys.stderr.write(f"interrupted at step {search.step_count}; continue with: "
                         f"dartsviz search --resume {search.run_dir.path}\n")
        return 130
    return 0
