"""What the commands share: the flags of `dartsviz search` and `dartsviz train` and their
checks, one-line errors, and the run skeleton (resume or start, progress bar, budget,
interruption)."""
from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Optional

from ..data import DATASETS
from ..records import numbers_by_split
from ..text import TEXT_DATASETS

# the config fields add_run_flags sets (flag destination = field name)
RUN_FIELDS = ("epochs", "dataset", "data_dir", "device", "seed", "batch_size", "layers", "channels",
              "sync_every", "sync_bn")
POSITIVE = ("epochs", "batch_size", "layers", "channels", "nodes", "steps", "sync_every", "threads")


def add_run_flags(p, what: str, presets: str) -> None:
    """Preset, budget, data, device, seed and network-size flags; `what` names the network,
    `presets` is the --preset help (each command has its own presets)."""
    p.add_argument("--preset", default="tiny", help=presets)
    p.add_argument("--epochs", type=int, help="number of epochs (rnn space: passes over the training tokens)")
    p.add_argument("--steps", type=int, help="stop after this many steps (a budget for quick checks)")
    p.add_argument("--dataset", help=f"one of {', '.join(DATASETS)} (synthetic:CxHxW also works); "
                                     f"rnn space: {', '.join(TEXT_DATASETS)}")
    p.add_argument("--data-dir", help="folder holding (or receiving) torchvision data sets")
    p.add_argument("--download", action="store_true", help="download the data set if it is missing")
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int)
    p.add_argument("--batch-size", type=int,
                   help="images per batch (rnn space: parallel columns of the token stream, each BPTT tokens long)")
    p.add_argument("--layers", type=int, help=f"cells in the {what} (not in the rnn space: one recurrent cell)")
    p.add_argument("--channels", type=int, help="initial channels (not in the rnn space: its width is nhid)")
    p.add_argument("--sync-every", type=int, metavar="N",
                   help="read step records from the GPU N steps at a time (default 1)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch CPU threads (default: torch's own; use 1 when two runs share a small CPU)")
    # data parallel: `torchrun --nproc_per_node N -m dartsviz search|train ...` (dartsviz.distributed)
    p.add_argument("--sync-bn", action="store_true", default=None,
                   help="under torchrun on CUDA: SyncBatchNorm, batch statistics over all ranks")
    p.add_argument("--dist-timeout", type=positive_seconds, metavar="SECONDS",
                   help="under torchrun: how long a rank waits for the others before giving up (default 600)")


def positive_seconds(text: str) -> float:
    """An argparse type: a finite number of seconds above 0 (nan, inf, 0 and negatives are refused)."""
    import argparse
    import math
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds above 0, got {text!r}")
    return v


def run_overrides(args, extra_fields=()) -> dict:
    """Config overrides from the flags that were given; bad sizes raise ValueError."""
    for k in POSITIVE:
        v = getattr(args, k, None)
        if v is not None and v <= 0:
            raise ValueError(f"--{k.replace('_', '-')} must be positive, got {v}")
    out = {n: getattr(args, n) for n in RUN_FIELDS + tuple(extra_fields) if getattr(args, n, None) is not None}
    if args.download:
        out["download"] = True
    return out


def refuse_unused_flags(args, space, unused: Dict[str, str]) -> None:
    """A flag the chosen space does not use (`unused`: dest name -> why) is an error, not ignored."""
    given = [k for k in unused if getattr(args, k, None) not in (None, False)]
    if given:
        raise ValueError(f"--{given[0].replace('_', '-')} does not apply to the {space.name} space "
                         f"({unused[given[0]]})")


def fresh_run_dir(args, default: str) -> Path:
    """The run directory for a new run: --out, or runs/DEFAULT-TIME; never one holding a run."""
    out = Path(args.out) if args.out else Path("runs") / f"{default}-{time.strftime('%Y%m%d-%H%M%S')}"
    from .. import distributed
    if not distributed.is_main():              # data parallel: rank 0 checks and writes it
        return out
    for p in (out, *out.parents):              # checked before the search writes anything
        if p.exists():
            if not p.is_dir():
                raise ValueError(f"cannot use {out} as a run directory: {p} is a file, not a folder")
            if not os.access(p, os.W_OK | os.X_OK):
                raise ValueError(f"cannot use {out} as a run directory: {p} is not writable")
            break
    if (out / "config.json").exists() or (out / "checkpoint.pt").exists():
        raise ValueError(f"{out} already holds a run; pass --resume {out} or choose another --out")
    return out


def refuse_out_with_resume(args) -> None:
    if args.resume and args.out:
        raise ValueError("--out and --resume do not go together: a resumed run writes to its own directory")


# -- errors: one line on stderr ----------------------------------------------------------
class CliError(Exception):
    """An error to report as one line on stderr."""


def call(command: str, fn: Callable, args) -> int:
    """`fn(args)` as the exit status of `dartsviz COMMAND`: a user's error (a bad value, a
    missing data set, an unusable run directory) becomes one line on stderr and status 1,
    Ctrl-C status 130; anything else is a bug and keeps its traceback."""
    from .. import distributed
    from ..data import DataError
    from ..runs import RunDirError
    try:
        joined = command in DATA_PARALLEL_COMMANDS and distributed.launched() and join_ranks(args)
        rc = int(fn(args) or 0)
        if joined:
            distributed.shutdown()
        return rc
    except KeyboardInterrupt:
        sys.stderr.write("dartsviz: interrupted\n")
        return 130
    except OSError as e:      # the run directory or a data file: a path that cannot be used
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        sys.stderr.write(f"dartsviz {command}: error: cannot use{where}: {e.strerror or e}\n")
        return 1
    except (CliError, DataError, RunDirError, ValueError, distributed.RankLost) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        sys.stderr.write(f"dartsviz {command}: error: {msg}\n")
        return 1


DATA_PARALLEL_COMMANDS = ("search", "train")


def join_ranks(args) -> bool:
    """Under torchrun: join the process group (dartsviz.distributed; True if this call did);
    ranks above 0 print nothing on stdout and show no progress bar (rank 0 reports; errors
    still reach stderr)."""
    from .. import distributed
    timeout = getattr(args, "dist_timeout", None)
    joined = distributed.init(getattr(args, "device", None),
                              distributed.DEFAULT_TIMEOUT_S if timeout is None else timeout)
    if distributed.world_size() > 1 and getattr(args, "random", None) is not None:
        raise ValueError("--random trains its cells on one process; start it without torchrun")
    if not distributed.is_main():
        args.quiet = True
        sys.stdout = open(os.devnull, "w")
    return joined


def resume_command(command: str, run_dir) -> str:
    """The command line that continues a run: under torchrun, through torchrun."""
    from .. import distributed
    w = distributed.world_size()
    launcher = f"torchrun --nproc_per_node {w} -m dartsviz" if w > 1 else "dartsviz"
    return f"{launcher} {command} --resume {run_dir}"


# -- plots ----------------------------------------------------------------------------------
def dot_hint() -> None:
    """The one-line hint on installing Graphviz, on stderr, when `dot` is missing (the cell
    graphs just written were then drawn with matplotlib)."""
    from ..viz.cellgraph import DOT_HINT, dot_available
    if not dot_available():
        sys.stderr.write(DOT_HINT + "\n")


def write_run_plots(loop, args) -> None:
    """The static export of a finished search or training into RUN_DIR/plots, then the dot
    hint when `dot` is missing; a failure is reported, the run is kept."""
    from ..viz.export import export_run
    folder = loop.run_dir.path / "plots"
    try:
        paths = export_run(loop.run_dir.path, out=folder)
    except Exception as e:  # plotting must never lose a finished run
        sys.stderr.write(f"plots not written: {type(e).__name__}: {e}\n")
        return
    print(f"plots: {len(paths)} files in {folder}")
    dot_hint()


# -- the run skeleton of `dartsviz search` and `dartsviz train` --------------------------
def open_loop(args, cls, config_cls, overrides: dict, make: Callable):
    """The search or training to run: `cls.resume(--resume RUN_DIR)`, or `make(config)` with
    the config from --preset and the flags (`make` picks a fresh run directory)."""
    refuse_out_with_resume(args)
    from .. import distributed
    if distributed.world_size() > 1 and not getattr(cls, "DATA_PARALLEL", False):
        raise ValueError(f"{cls.__name__} runs on one process only; start it without torchrun")
    if getattr(args, "threads", None):
        import torch
        torch.set_num_threads(args.threads)
    if args.resume:
        return cls.resume(args.resume, **overrides)
    return make(config_cls.preset(args.preset, **overrides))


def step_postfix(r, extra: Optional[Callable] = None) -> Dict[str, object]:
    """The progress bar's numbers for a step record: epoch, the train split's loss and
    metrics unprefixed, the others prefixed (val_loss, val_acc), then `extra(r)`."""
    out: Dict[str, object] = {"ep": r["epoch"]}
    for split, numbers in numbers_by_split(r).items():
        for name, v in numbers.items():
            out[name if split == "train" else f"{split}_{name}"] = f"{v:.3f}" if name == "loss" else f"{v:.2f}"
    out.update(extra(r) if extra else {})
    return out


def epoch_line(r) -> str:
    """One line per epoch record: its metrics by split (losses left out), and its seconds."""
    parts = [f"{split} {name} {v:.3f}" for split, numbers in numbers_by_split(r).items()
             for name, v in numbers.items() if name != "loss"]
    return f"epoch {r['epoch']}: {'  '.join(parts)}  {r['seconds']:.1f}s"


@contextlib.contextmanager
def progress(loop, total: int, quiet: bool, desc: str, extra: Optional[Callable] = None):
    """A tqdm bar on stderr fed by `loop`'s records while the block runs (the loop knows
    nothing of it): a step record moves it, an epoch record writes `epoch_line`. `extra(r)`
    adds numbers of the caller's choosing to the bar. Nothing when `quiet`."""
    if quiet:
        yield None
        return
    from tqdm.auto import tqdm
    bar = tqdm(total=total, initial=min(loop.step_count, total), unit="step", file=sys.stderr,
               dynamic_ncols=True, desc=desc)

    def on_record(r):
        if r["kind"] == "step":
            bar.update(1)
            bar.set_postfix(step_postfix(r, extra), refresh=False)
        else:
            bar.write(epoch_line(r))
    loop.subscribe(on_record)
    try:
        yield bar
    finally:
        bar.close()
        loop.unsubscribe(on_record)


def run_steps(loop, steps: Optional[int], quiet: bool, desc: str, extra: Optional[Callable] = None) -> None:
    """Run `steps` more steps of `loop` (None or 0: to its end) under a progress bar."""
    remaining = max(0, loop.total_steps - loop.step_count)
    steps = min(remaining, steps) if steps else remaining
    with progress(loop, loop.step_count + steps, quiet, desc, extra):
        loop.run(steps=steps)


def run_loop(loop, args, command: str, desc: Optional[str] = None, extra: Optional[Callable] = None,
             report: Optional[Callable] = None) -> int:
    """The body of `dartsviz search` and `dartsviz train`: run `loop` for --steps (or to its
    end) with a progress bar unless --quiet, then `report(loop)` (the command's own lines),
    then the exit status: 0, or 130 with the --resume line that continues an interrupted run.
    Under torchrun only rank 0 reports; a lost rank ends the run with one line saying how to go on."""
    from .. import distributed
    if not distributed.is_main():              # data parallel: the other ranks only step
        if not loop.done:
            run_steps(loop, args.steps, True, desc or command)
        return 130 if loop.interrupted else 0
    if loop.done:
        sys.stderr.write(f"{loop.run_dir.path} already finished its {loop.total_steps} steps; nothing to run "
                         f"(start a new run, or resume with more --epochs)\n")
    else:
        try:
            run_steps(loop, args.steps, args.quiet, desc or command, extra)
        except distributed.RankLost as e:
            raise distributed.RankLost(f"{e}; continue with: {resume_command(command, loop.run_dir.path)}") from None
    if report is not None:
        report(loop)
    if loop.interrupted:
        sys.stderr.write(f"interrupted at step {loop.step_count}; continue with: "
                         f"{resume_command(command, loop.run_dir.path)}\n")
        return 130
    return 0
