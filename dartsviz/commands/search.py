"""`dartsviz search`: run a DARTS search and write a run directory."""
from __future__ import annotations

from ..bilevel import HVP_MODES, ORDERS
from ..methods import method_names
from ..search import PRECISIONS, SearchConfig
from ..spaces import space_names
from ..spaces.cnn import IMPLS
from .common import (add_run_flags, fresh_run_dir, open_loop, refuse_unused_flags, run_loop, run_overrides,
                     write_run_plots)


def add_parser(sub):
    p = sub.add_parser("search", help="run a DARTS search (digits, tiny preset by default)")
    add_run_flags(p, "supernet", "tiny (digits on a CPU, the default), classroom (CIFAR-10 on a Colab GPU in a "
                                 "lesson), paper (the paper's CIFAR-10 search); with --space rnn: tiny (the "
                                 "embedded corpus), paper (PTB), collapse (a longer search that collapses)")
    p.add_argument("--space", help=f"search space: {', '.join(space_names())} (default {SearchConfig.space})")
    p.add_argument("--variant", help=f"method: {', '.join(method_names())} (default {SearchConfig.variant})")
    p.add_argument("--variant-option", action="append", metavar="KEY=VALUE", dest="variant_option",
                   help="a setting of the variant, e.g. --variant-option eps_max=0.1 or, for pc_darts, "
                        "partial_channels=2 / edge_norm=false (repeatable)")
    p.add_argument("--order", type=int, choices=ORDERS, help="1 = first order, 2 = second order")
    p.add_argument("--hvp", choices=HVP_MODES, help="second order: Hessian-vector product")
    p.add_argument("--impl", choices=IMPLS, help="convolutional supernet implementation (default fast; not in the rnn space)")
    p.add_argument("--nodes", type=int, metavar="N",
                   help="intermediate nodes per convolutional cell (default 4, the paper's); all are concatenated")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="bf16 or fp16: autocast forward passes (fp16 with gradient scalers, for T4s; alphas stay fp32)")
    p.add_argument("--cuda-graphs", action="store_true", default=None,
                   help="CUDA: capture the first-order step as CUDA graphs (fewer kernel launches; "
                        "darts and pc_darts, fp32 or bf16, one process)")
    p.add_argument("--monitor-every", type=int, metavar="N",
                   help="measure lambda_max, the Hessian's dominant eigenvalue in alpha, every N steps (0: off)")
    p.add_argument("--early-stop", action="store_true", default=None,
                   help="DARTS-ES: stop when lambda_max grows more than 1.3x over 5 epochs and keep the genotype "
                        "of 5 epochs before")
    p.add_argument("--early-stop-window", type=int, metavar="K",
                   help="DARTS-ES: compare lambda_max with its value K epochs earlier (default 5)")
    p.add_argument("--early-stop-ratio", type=float, metavar="R", help="DARTS-ES: stop above this growth (default 1.3)")
    p.add_argument("--early-stop-smooth", type=int, metavar="N",
                   help="DARTS-ES: compare means of N epochs' lambda_max (default 1; the authors: 5)")
    p.add_argument("--early-stop-start", type=int, metavar="E",
                   help="DARTS-ES: the earlier side starts at epoch E or later (default 0; the authors: 10)")
    p.add_argument("--out", help="run directory (default runs/search-DATASET-oORDER-TIME)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the search saved in RUN_DIR")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--no-plots", action="store_true", help="do not write RUN_DIR/plots at the end")
    p.set_defaults(func=run)
    return p


def _overrides(args) -> dict:
    if not args.resume:            # a resumed search keeps its own space (and refuses new sizes)
        from ..spaces import get_space
        space = get_space(args.space or SearchConfig.space)
        refuse_unused_flags(args, space, space.unused_search_flags)
    out = run_overrides(args, ("space", "variant", "order", "hvp", "impl", "precision", "monitor_every", "nodes",
                               "early_stop", "early_stop_window", "early_stop_ratio", "early_stop_smooth",
                               "early_stop_start", "cuda_graphs"))
    if getattr(args, "variant_option", None):
        out["variant_options"] = parse_variant_options(args.variant_option)
    return out


def parse_variant_options(items) -> dict:
    """["eps_max=0.1", "edge_norm=false", ...] -> {"eps_max": 0.1, "edge_norm": False}: numbers,
    true or false (never evaluated); a bad item is a one-line ValueError. The variant checks the
    keys and ranges."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--variant-option takes KEY=VALUE, got {item!r}")
        if value.strip().lower() in ("true", "false"):
            out[key] = value.strip().lower() == "true"
            continue
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"--variant-option {key} needs a number, true or false, got {value!r}") from None
        out[key] = int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number
    return out


def write_plots(search, args) -> None:
    """The static export into RUN_DIR/plots (and the dot hint when `dot` is missing); a
    failure is reported, the search is kept."""
    write_run_plots(search, args)


def run(args) -> int:
    from ..search import Search

    def new(config):
        return Search(config, out=fresh_run_dir(args, f"search-{config.dataset.replace(':', '_')}-o{config.order}"))

    def report(search):
        hook = getattr(args, "after_search", None)
        if hook is None and not getattr(args, "no_plots", False):
            hook = write_plots
        if hook is not None and not search.interrupted:
            hook(search, args)
        if search.early_stopped is not None:
            print(search.early_stopped.message())
        print(f"genotype: {search.genotype.to_text()}")
        for line in search.space.genotype_notes(search.genotype, search.config.dataset):
            print(line)
        print(f"run directory: {search.run_dir.path}")

    search = open_loop(args, Search, SearchConfig, _overrides(args), new)
    return run_loop(search, args, "search", desc=f"search o{search.config.order}",
                    extra=_postfix, report=report)


def _postfix(r) -> dict:
    """The progress bar's extra numbers: the order, and lambda_max on monitored steps."""
    return {"o": r.order, **({"lam": f"{r.lambda_max:.3g}"} if r.lambda_max is not None else {})}
