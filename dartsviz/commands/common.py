"""Flags that `dartsviz search` and `dartsviz train` share, and their checks."""
from __future__ import annotations

import os
import time
from pathlib import Path

from ..data import DATASETS

# the config fields add_run_flags sets (flag destination = field name)
RUN_FIELDS = ("epochs", "dataset", "data_dir", "device", "seed", "batch_size", "layers", "channels",
              "sync_every")
POSITIVE = ("epochs", "batch_size", "layers", "channels", "steps", "sync_every")


def add_run_flags(p, what: str) -> None:
    """Preset, budget, data, device, seed and network-size flags; `what` names the network."""
    p.add_argument("--preset", default="tiny", help="tiny (digits, CPU, about a minute) or paper (CIFAR-10 settings)")
    p.add_argument("--epochs", type=int, help="number of epochs")
    p.add_argument("--steps", type=int, help="stop after this many steps (a budget for quick checks)")
    p.add_argument("--dataset", help=f"one of {', '.join(DATASETS)} (synthetic:CxHxW also works)")
    p.add_argument("--data-dir", help="folder holding (or receiving) torchvision data sets")
    p.add_argument("--download", action="store_true", help="download the data set if it is missing")
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--layers", type=int, help=f"cells in the {what}")
    p.add_argument("--channels", type=int, help="initial channels")
    p.add_argument("--sync-every", type=int, metavar="N",
                   help="read step records from the GPU N steps at a time (default 1)")


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


def fresh_run_dir(args, default: str) -> Path:
    """The run directory for a new run: --out, or runs/DEFAULT-TIME; never one holding a run."""
    out = Path(args.out) if args.out else Path("runs") / f"{default}-{time.strftime('%Y%m%d-%H%M%S')}"
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
