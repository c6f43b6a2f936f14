"""Peak memory and ms per step of DARTS' successors against DARTS on the same data and batch.

    python bench/variants_memory.py --device cpu --preset tiny --steps 10 --threads 1
    python bench/variants_memory.py --device cuda --preset paper --steps 20
    python bench/variants_memory.py --device cuda --preset paper --batch 256 --orders 1 2
    python bench/variants_memory.py --variants darts darts_ref p_darts --preset tiny --threads 1

Every variant uses the DARTS preset's supernet (cells, channels) and batch (or --batch):
pc_darts adds its paper options, partial channels K (--k, default 4) and edge
normalisation; darts_minus, beta_darts and sdarts_rs their paper settings (they change the
mixing or add a penalty, nothing else). `darts_ref` is DARTS on the reference supernet,
the one P-DARTS runs on. `p_darts` gets a row per stage (s1, s2, s3): the variant's own
depth (the DARTS preset's cells, + add_layers_1, + add_layers_2; paper: 5/11/17 with
--pdarts-layers 5) and op sets (8, keep_1 = 5, keep_2 = 3 ops per edge, chosen at random
with a fixed seed: their cost does not depend on which). Arch updates are on from the
first step.

Time: both searches in one process, their steps interleaved (darts, pc_darts, ...) so a
shared machine slows both alike; the median of the records' `seconds` over --steps
steps after --warmup, steps that end an epoch dropped (they evaluate the test split).

Memory: each variant in a fresh process that loads the data, then builds its search and
runs 4 steps. On CPU the peak RSS (VmHWM, reset through /proc/self/clear_refs once the
data is loaded) and that peak minus the RSS before the search was built ("+search": the
supernet, the optimisers' state and the largest step's activations and gradients). On
CUDA `max_memory_allocated` (reset once the data is loaded) and that peak minus what was
allocated before the search ("+search"). The "+search" ratio is the number to read: the
peak also holds the interpreter, torch and the data.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import resource
import statistics
import subprocess
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from dartsviz.data import load_data                    # noqa: E402
from dartsviz.search import Search, SearchConfig       # noqa: E402
from step import _hwm_mb, _rss_mb                      # noqa: E402  (bench/step.py, this folder)

PAPER_DATA = "synthetic:3x32x32"                       # CIFAR-10's shape, no download
VARIANTS = ("darts", "pc_darts", "darts_minus", "beta_darts", "sdarts_rs", "darts_ref",
            "p_darts:s1", "p_darts:s2", "p_darts:s3")
CHOICES = VARIANTS + ("p_darts",)                      # p_darts: its three stages


def make_config(args, variant: str, order: int) -> SearchConfig:
    """The DARTS preset's config; each variant adds only what it changes (module docstring)."""
    over = dict(order=order, device=args.device, warmup_epochs=0, epochs=1000)
    if args.preset == "paper":
        over["dataset"] = PAPER_DATA
    for name, value in (("batch_size", args.batch), ("channels", args.channels)):
        if value is not None:
            over[name] = value
    cfg = SearchConfig.preset(args.preset, variant="darts", **over)
    name = variant.split(":")[0]
    if name == "pc_darts":
        cfg = dataclasses.replace(cfg, variant="pc_darts",
                                  variant_options={"partial_channels": args.k, "edge_norm": True})
    elif name in ("darts_minus", "beta_darts", "sdarts_rs"):
        cfg = dataclasses.replace(cfg, variant=name)
    elif name == "darts_ref":
        cfg = dataclasses.replace(cfg, impl="reference")
    elif name == "p_darts":
        layers = args.pdarts_layers or cfg.layers
        options = {} if args.preset == "paper" else {"add_layers_1": 1, "add_layers_2": 2}
        cfg = dataclasses.replace(cfg, variant="p_darts", impl="reference", layers=layers,
                                  variant_options=options)
    return cfg


def make_search(cfg: SearchConfig, variant: str, data) -> Search:
    """The search of `variant`; a P-DARTS stage s > 1 is built at once (its depth, op sets)."""
    from dartsviz.methods.p_darts import keep_strongest
    s = Search(cfg, data=data)
    if variant.startswith("p_darts:s") and variant != "p_darts:s1":
        stage = int(variant[-1]) - 1
        gen = torch.Generator().manual_seed(0)
        m = s.method
        m.enter_stage(s, stage, {k: keep_strongest(torch.rand(14, 8, generator=gen), m.ops_kept(stage))
                                 for k in ("normal", "reduce")})
    return s


def expand(variants):
    """`p_darts` stands for its three stages."""
    out = []
    for v in variants:
        out += ["p_darts:s1", "p_darts:s2", "p_darts:s3"] if v == "p_darts" else [v]
    return out


def memory_child(args) -> None:
    """Subprocess: load the data, then build one search and run 4 steps; print as JSON the
    peak memory and that peak minus the memory before the search was built."""
    torch.set_num_threads(args.threads)
    cfg = make_config(args, args.variants[0], args.orders[0])
    dev = torch.device(args.device)
    data = load_data(cfg.dataset, cfg.data_dir, cfg.download, dev, cfg.train_portion)
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev) / 2 ** 20
    else:
        base = _rss_mb()
        try:                                            # reset the peak (VmHWM) to the current RSS
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
    s = make_search(cfg, args.variants[0], data)
    for _ in range(args.memory_steps):
        s.step()
    s.flush()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated(dev) / 2 ** 20
    else:
        peak = _hwm_mb() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    fast = getattr(s.model, "reference_fallbacks", 0) == 0 and cfg.impl == "fast"
    print(json.dumps({"peak_mb": peak, "search_mb": peak - base, "fast_path": fast, "layers": len(s.model.cells)}))


def measure_memory(args, variant: str, order: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", "--device", args.device,
           "--preset", args.preset, "--variants", variant, "--orders", str(order), "--k", str(args.k),
           "--threads", str(args.threads), "--memory-steps", str(args.memory_steps)]
    if args.pdarts_layers:
        cmd += ["--pdarts-layers", str(args.pdarts_layers)]
    for flag, value in (("--batch", args.batch), ("--channels", args.channels)):
        if value is not None:
            cmd += [flag, str(value)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=1800).stdout
        return json.loads(out.strip().splitlines()[-1])
    except Exception as e:                               # noqa: BLE001 - report, do not die
        return {"error": f"{type(e).__name__}: {str(e)[:200]}"}


def time_steps(args, order: int) -> dict:
    """Median ms per step of each variant, steps interleaved."""
    searches = {}
    for v in args.variants:
        cfg = make_config(args, v, order)
        data = load_data(cfg.dataset, cfg.data_dir, cfg.download, torch.device(args.device), cfg.train_portion)
        searches[v] = make_search(cfg, v, data)
    times = {v: [] for v in args.variants}
    for v, s in searches.items():
        s.subscribe(lambda r, v=v, s=s: times[v].append(r["seconds"])
                    if r["kind"] == "step" and r["step"] > args.warmup and r["step"] % s.steps_per_epoch else None)
    while any(s.step_count < args.warmup + args.steps for s in searches.values()):
        for s in searches.values():
            if s.step_count < args.warmup + args.steps:
                s.step()
    return {v: 1000 * statistics.median(t) if t else float("nan") for v, t in times.items()}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--preset", choices=["tiny", "paper"], default="tiny")
    p.add_argument("--variants", nargs="+", default=["darts", "pc_darts", "darts_minus", "beta_darts", "sdarts_rs",
                                                     "darts_ref", "p_darts"], choices=CHOICES)
    p.add_argument("--pdarts-layers", type=int, default=None,
                   help="p_darts' first-stage cells (default: the DARTS preset's; the paper: 5)")
    p.add_argument("--memory-steps", type=int, default=4, help="steps of each memory measurement")
    p.add_argument("--orders", type=int, nargs="+", default=[1], choices=[1, 2])
    p.add_argument("--batch", type=int, default=None, help="batch size of both (default: the DARTS preset's)")
    p.add_argument("--channels", type=int, default=None, help="initial channels C of both (default: the preset's)")
    p.add_argument("--k", type=int, default=4, help="pc_darts' partial channels K")
    p.add_argument("--steps", type=int, default=10, help="timed steps per variant")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    p.add_argument("--no-time", action="store_true", help="memory only")
    p.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.variants = expand(args.variants)
    if args.memory_child:
        return memory_child(args)
    torch.set_num_threads(args.threads)
    if args.device == "cuda":
        if not torch.cuda.is_available():
            sys.exit("CUDA is not available on this machine")
        torch.backends.cudnn.benchmark = True
    dev = torch.device(args.device)
    base = make_config(args, "darts", 1)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else \
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} torch threads"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# bench/variants_memory.py  preset={args.preset} ({base.layers} cells, C={base.channels}, "
          f"batch {base.batch_size}, {base.dataset})  pc_darts K={args.k} + edge_norm  "
          f"p_darts first stage {args.pdarts_layers or base.layers} cells  device={args.device} "
          f"({name})  torch {torch.__version__}  steps={args.steps} warmup={args.warmup}  load {load:.1f}")
    unit = "max_memory_allocated" if dev.type == "cuda" else "peak RSS"
    for order in args.orders:
        ms = {v: float("nan") for v in args.variants} if args.no_time else time_steps(args, order)
        mem = {v: measure_memory(args, v, order) for v in args.variants}
        for v in args.variants:
            m = mem[v]
            mtxt = (f"{unit} {m['peak_mb']:8.1f} MB (+search {m['search_mb']:8.1f} MB)"
                    + f" {m.get('layers', '?')} cells" + ("" if m.get("fast_path", True) else " [reference]")) \
                if "error" not in m \
                else f"memory n/a ({m['error']})"
            line = f"{v:11s} order {order}: {ms[v]:9.2f} ms/step  {mtxt}"
            d, dm = ms.get("darts"), mem.get("darts", {})
            if v != "darts" and d:
                line += f"  time ratio {ms[v] / d:.3f}"
                if "search_mb" in m and dm.get("search_mb", 0) > 0:
                    line += f", +search memory ratio {m['search_mb'] / dm['search_mb']:.3f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
