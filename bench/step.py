"""Benchmark one bilevel search step: reference supernet vs fast path, same run.

    python bench/step.py --device cpu --preset tiny --orders 1 2 --steps 10
    python bench/step.py --device cuda --preset paper --orders 1 2 --steps 20
    python bench/step.py --space rnn --device cpu --preset tiny --orders 1 2 --steps 10
    python bench/step.py --device cpu --preset tiny --orders 1 2 --steps 10 --threads 1 \
        --dataset synthetic:3x32x32 --layers 5 --channels 8 --batch-size 32

--dataset, --layers, --channels and --batch-size override the preset's shape (the same as
--extra '{"dataset": ..., "layers": ...}').

The recurrent space (`--space rnn`) has one implementation: a line per order. Its `paper`
shape (300 wide, batch 256, BPTT 35, a 10,000-word vocabulary) runs on random tokens
(PTB's shape, no data needed); `tiny` is the tiny_rnn preset on the embedded corpus.

Each (impl, order) gets its own `Search` (same config, same seed); their steps are
interleaved (reference, fast, reference, fast, ...) so that a noisy, shared machine
slows both alike. A line per (impl, order): median ms per step over --steps steps
after --warmup steps, peak memory, and the ratio reference/fast ("speed-up") with
fast/reference (time ratio).

Timing is the records' `seconds` (the whole bilevel step: arch gradient, Adam,
weight step, record; on CUDA it ends with the record's host read, so it includes the
GPU work; with --sync-every N the steps run in bursts of N, each record carrying the
burst's time divided by N, so only one host sync per N steps is paid). Steps that end an epoch are dropped (they would time the
test-set evaluation). Peak memory: on CUDA `torch.cuda.max_memory_allocated` during
a step (max over steps); on CPU the peak RSS of a fresh process over 3 steps
(after one untimed step, with the peak reset through /proc/self/clear_refs), and
that peak minus the RSS before those steps ("+step", the step's own memory).
"""
from __future__ import annotations

import argparse
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
from dartsviz.search import PRECISIONS, Search, SearchConfig   # noqa: E402

PAPER_DATA = "synthetic:3x32x32"
PAPER_TEXT = dict(vocab=10000, tokens=256 * 35 * 40)      # PTB's vocabulary, 40 segments of the paper's shape


def make_config(preset: str, impl: str, order: int, device: str, hvp: str, extra: dict,
                space: str = "cnn") -> SearchConfig:
    over = dict(impl=impl, order=order, hvp=hvp, device=device, warmup_epochs=0, epochs=1000, space=space)
    if preset == "paper":
        over["dataset"] = PAPER_DATA if space == "cnn" else "pydoc"
    over.update(extra)
    return SearchConfig.preset(preset, **over)


def load_bench_data(cfg: SearchConfig, preset: str, device):
    """The data of a benchmark: the config's data set, or for the recurrent space's paper
    shape random tokens with PTB's vocabulary size (seeded)."""
    if cfg.space == "cnn":
        return load_data(cfg.dataset, cfg.data_dir, cfg.download, device, cfg.train_portion)
    from dartsviz.text import TextData, load_text
    if preset != "paper":
        return load_text(cfg.dataset, cfg.data_dir, cfg.vocab_size, device)
    g = torch.Generator().manual_seed(0)
    tokens = lambda n: torch.randint(PAPER_TEXT["vocab"], (n,), generator=g)   # (n,)
    vocab = tuple(f"w{i}" for i in range(PAPER_TEXT["vocab"]))
    n = PAPER_TEXT["tokens"]
    return TextData("random", vocab, tokens(n), tokens(n), tokens(10 * 35 * 4), cfg.eval_batch_size).to(device)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def _hwm_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def cpu_memory_child(args) -> None:
    """Subprocess: build one search, run 3 steps, print peak RSS and the step's share of it."""
    torch.set_num_threads(args.threads)
    cfg = make_config(args.preset, args.impls[0], args.orders[0], "cpu", args.hvp, json.loads(args.extra), args.space)
    s = Search(cfg, data=load_bench_data(cfg, args.preset, torch.device("cpu")))
    s.step()                                            # first step: lazy allocations, caches
    base = _rss_mb()
    try:                                                # reset the peak (VmHWM) to the current RSS
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    for _ in range(3):
        s.step()
    peak = _hwm_mb() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"peak_rss_mb": peak, "step_mb": peak - base}))


def cpu_memory(args, impl: str, order: int) -> str:
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", "--device", "cpu", "--space", args.space,
           "--preset", args.preset, "--impls", impl, "--orders", str(order), "--hvp", args.hvp,
           "--threads", str(args.threads), "--extra", args.extra]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=1800).stdout
        d = json.loads(out.strip().splitlines()[-1])
        return f"peak RSS {d['peak_rss_mb']:7.1f} MB (+step {d['step_mb']:6.1f} MB)"
    except Exception as e:                               # noqa: BLE001 - report, do not die
        return f"peak RSS n/a ({type(e).__name__})"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--space", choices=["cnn", "rnn"], default="cnn", help="search space (rnn: one implementation)")
    p.add_argument("--preset", choices=["tiny", "paper"], default="tiny")
    p.add_argument("--orders", type=int, nargs="+", default=[1, 2], choices=[1, 2])
    p.add_argument("--impls", nargs="+", default=["reference", "fast"], choices=["reference", "fast"])
    p.add_argument("--steps", type=int, default=10, help="timed steps per (impl, order)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--hvp", choices=["finite", "exact"], default="finite")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    p.add_argument("--precision", choices=list(PRECISIONS), default="fp32",
                   help="autocast precision (fp16: with a gradient scaler per optimiser)")
    p.add_argument("--sync-every", type=int, default=1, help="steps whose records are read together")
    p.add_argument("--dataset", help="data set (e.g. synthetic:3x32x32); default: the preset's")
    p.add_argument("--layers", type=int, help="cells; default: the preset's")
    p.add_argument("--channels", type=int, help="initial channels C; default: the preset's")
    p.add_argument("--batch-size", type=int, help="batch size; default: the preset's")
    p.add_argument("--extra", default="{}", help="JSON of further SearchConfig overrides")
    p.add_argument("--no-memory", action="store_true", help="CPU: skip the per-impl memory subprocesses")
    p.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.memory_child:
        return cpu_memory_child(args)
    torch.set_num_threads(args.threads)
    if args.device == "cuda":
        if not torch.cuda.is_available():
            sys.exit("CUDA is not available on this machine")
        torch.backends.cudnn.benchmark = True            # fixed shapes: let cuDNN pick its kernels
    if args.space == "rnn":
        args.impls = ["fast"]                            # one implementation: the line per order
    shape_over = {k: v for k, v in (("dataset", args.dataset), ("layers", args.layers),
                                    ("channels", args.channels), ("batch_size", args.batch_size)) if v is not None}
    extra = {"precision": args.precision, "sync_every": args.sync_every, **shape_over, **json.loads(args.extra)}
    args.extra = json.dumps(extra)                       # the memory subprocesses see them too
    dev = torch.device(args.device)
    base = make_config(args.preset, args.impls[0], 1, args.device, args.hvp, extra, args.space)
    data = load_bench_data(base, args.preset, dev)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else \
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} torch threads"
    shape = (f"{base.layers} cells, C={base.channels}, batch {base.batch_size}, "
             f"{base.dataset}" if args.space == "cnn" else
             f"rnn: {base.nhid} wide, batch {base.batch_size}, BPTT {base.bptt}, {data.name}, vocabulary {data.ntokens}")
    print(f"# bench/step.py  preset={args.preset} ({shape})  device={args.device} ({name})  "
          f"torch {torch.__version__}  steps={args.steps} warmup={args.warmup} hvp={args.hvp} "
          f"precision={args.precision} sync_every={args.sync_every}")
    results = {}
    k = extra.get("sync_every", 1)
    for order in args.orders:
        searches = {impl: Search(make_config(args.preset, impl, order, args.device, args.hvp, extra, args.space),
                                 data=data)
                    for impl in args.impls}
        times = {impl: [] for impl in args.impls}
        mems = {impl: 0.0 for impl in args.impls}
        for impl, s in searches.items():
            def collect(r, impl=impl, s=s):
                if r["kind"] != "step" or r["step"] <= args.warmup or r["step"] % s.steps_per_epoch == 0:
                    return
                times[impl].append(r["seconds"])
                mems[impl] = max(mems[impl], r["peak_mem_mb"])
            s.subscribe(collect)
        # interleaved in bursts of sync_every steps: a burst's flush waits only for its own work
        while any(s.step_count < args.warmup + args.steps for s in searches.values()):
            for s in searches.values():
                for _ in range(k):
                    if s.step_count < args.warmup + args.steps:
                        s.step()
                s.flush()
        for impl in args.impls:
            ms = 1000 * statistics.median(times[impl]) if times[impl] else float("nan")
            if args.device == "cuda":
                mem = f"peak {mems[impl]:8.1f} MB (max_memory_allocated)"
            elif args.no_memory:
                mem = "peak RSS skipped"
            else:
                mem = cpu_memory(args, impl, order)
            results[(impl, order)] = ms
            label = impl if args.space == "cnn" else "rnn"
            line = f"{label:9s} order {order}: {ms:9.2f} ms/step  {mem}"
            ref = results.get(("reference", order))
            if impl != "reference" and ref:
                line += f"  speed-up {ref / ms:5.2f}x (time ratio fast/reference {ms / ref:.3f})"
            print(line, flush=True)


if __name__ == "__main__":
    main()
