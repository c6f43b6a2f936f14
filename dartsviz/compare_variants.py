"""DARTS and its successors side by side: one search per variant on the same data and seed,
one report.

    res = compare_variants(["darts", "pc_darts", "beta_darts"], "runs/variants", epochs=3,
                           monitor_every=10)
    print(format_variants_table(res["rows"]))         # one row per variant

Each variant searches with its own layer of the preset (`SearchConfig.preset(preset,
variant=v)`: PC-DARTS' channels and batch, the regulariser of beta-DARTS, ...), then the
flags given here (epochs, steps per epoch, seed, monitor) for all alike, so every search
draws the same data split and batches from the same seed. The variants run one after
another. On a CPU each search runs in a fresh process (`isolate`), since a process's peak
RSS only grows and its allocator keeps what an earlier search freed: each search's
memory is then its own (peak RSS growth over the idle process, as in every view). On a
GPU they run in this process, sharing the data set, with CUDA's peak statistics reset
before each. With `end_to_end`, each derived cell (the run directory's genotype) is
trained from scratch by the space's trainer (`space.trainer()`).

Writes into `out`: runs/<variant>/ (each search's run directory; runs/train-<variant>/ with
`end_to_end`), index.html with the comparison report (`viz.compare.compare_report`: heat
maps, derived cells, curves, seconds and memory per step, parameter-free ops and lambda_max
over the steps, where the cells differ), variants.md, variants.csv and results.json.
"""
from __future__ import annotations

import csv
import html
import io
import json
import math
import multiprocessing
import shutil
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch

from .baseline import load_training_data
from .distributed import resolve_device
from .methods import get_method
from .runs import RunDir, atomic_write_text
from .search import Search, SearchConfig
from .spaces import get_space
from .summary import collapse_summary, cost_summary
from .train import Train

DATA_FIELDS = ("dataset", "data_dir", "train_portion", "device", "dtype")   # configs sharing these share data


def variant_configs(variants: Sequence[str], preset: str = "tiny", **overrides) -> Dict[str, SearchConfig]:
    """variant -> its SearchConfig: `preset` with the variant's layer, then `overrides` (None
    values left out) for every variant alike. Warm-up epochs that would eat the whole search
    are dropped, so alpha always moves. Unknown or repeated names, and settings a variant
    refuses, raise a one-line ValueError before anything runs."""
    variants = list(variants)
    if len(variants) < 2:
        raise ValueError(f"compare --variants needs two or more variants, got {len(variants)}")
    twice = sorted({v for v in variants if variants.count(v) > 1})
    if twice:
        raise ValueError(f"variant {twice[0]!r} is given twice")
    for v in variants:
        get_method(v)                                   # unknown: one line listing the known ones
    overrides = {k: v for k, v in overrides.items() if v is not None}
    configs = {}
    for v in variants:
        config = SearchConfig.preset(preset, variant=v, **overrides)
        if config.warmup_epochs >= config.epochs:
            config = SearchConfig.from_dict({**config.to_dict(), "warmup_epochs": 0})
        configs[v] = config
    return configs


def reset_peak_memory(device: torch.device) -> bool:
    """Start a new peak-memory measurement: CUDA's peak statistics, or the process's peak RSS
    (Linux, /proc/self/clear_refs). False where it cannot be reset."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return True
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def run_search(config: dict, out: str, data=None) -> dict:
    """One search to its end into run directory `out`: {"seconds", "early_stop" (the DARTS-ES
    line or None)}. The body of a fresh process (picklable arguments; `data` None there)."""
    search = Search(SearchConfig.from_dict(config), out=out, data=data)
    t0 = time.perf_counter()
    search.run()
    stop = search.early_stopped
    return {"seconds": time.perf_counter() - t0, "early_stop": None if stop is None else stop.message()}


def run_isolated(config: dict, out: str) -> dict:
    """`run_search` in a fresh process (spawned: nothing of this one's memory or threads)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(run_search, (config, str(out)))


def variant_row(variant: str, path, seconds: float, early_stop: Optional[str] = None) -> dict:
    """One variant's row from its run directory: its derived cell, collapse diagnostics, cost
    and metrics, all from the records (`summary.cost_summary` / `collapse_summary`)."""
    run_dir = RunDir(path)
    records, config = run_dir.read_records(), run_dir.read_config()
    metric = get_space(run_dir.space_name).metric
    cost, collapse = cost_summary(records), collapse_summary(records)
    steps = [r for r in records if r.kind == "step"]
    epochs = [r for r in records if r.kind == "epoch"]
    return {"variant": variant, "seed": config.get("seed"), "steps": len(steps),
            "epochs": config.get("epochs"), "param_free_ops": collapse["param_free_ops"],
            "max_none": collapse["max_none"], "max_skip": collapse["max_skip"],
            "lambda_max": collapse["lambda_max"], "lambda_step": collapse["lambda_step"], "early_stop": early_stop,
            "median_s": cost["median_s"], "seconds_total": cost["seconds_total"], "search_seconds": seconds,
            "memory_mb": cost["memory_mb"], "memory_what": cost["memory_what"], "device": cost["device"],
            f"val_{metric}": steps[-1].metrics.get(f"val_{metric}") if steps else None,
            f"supernet_test_{metric}": epochs[-1].metrics.get(f"test_{metric}") if epochs else None,
            "monitors": dict(steps[-1].monitors) if steps else {},
            "genotype": run_dir.read_genotype().to_text()}


def compare_variants(variants: Sequence[str], out, *, preset: str = "tiny", seed: Optional[int] = None,
                     epochs: Optional[int] = None, steps_per_epoch: Optional[int] = None,
                     monitor_every: Optional[int] = None, monitor_iters: Optional[int] = None,
                     end_to_end: bool = False, train_preset: str = "tiny", train_epochs: Optional[int] = None,
                     space: Optional[str] = None, dataset: Optional[str] = None, data_dir: Optional[str] = None,
                     device: Optional[str] = None, isolate: Optional[bool] = None,
                     log: Optional[Callable[[str], None]] = None, overwrite: bool = False) -> dict:
    """Search with each variant on the same data and seed, train the cells with
    `end_to_end`, write the report into `out` (see the module's docstring). `isolate`: each
    search in a fresh process (default: on a CPU). Returns {"settings", "rows", "report"}:
    one row per variant (`variant_row`, plus the trained cell's `trained_test_<metric>`,
    `params` and `train_seconds` with `end_to_end`). A run already in `out` is refused, or with
    `overwrite` replaced (what a notebook run a second time wants)."""
    common = {"dataset": dataset, "data_dir": data_dir, "device": device, "space": space}
    configs = variant_configs(variants, preset, seed=seed, epochs=epochs, steps_per_epoch=steps_per_epoch,
                              monitor_every=monitor_every, monitor_iters=monitor_iters, **common)
    first = next(iter(configs.values()))
    sp = get_space(first.space)
    dev = resolve_device(first.device)
    isolate = dev.type == "cpu" if isolate is None else bool(isolate)
    train_cls = t_config = None
    if end_to_end:                                      # checked before any search runs
        train_cls, config_cls = Train, sp.trainer().config_class
        t_over = {k: v for k, v in dict(dataset=first.dataset, data_dir=data_dir, device=device, seed=first.seed,
                                        steps_per_epoch=steps_per_epoch, epochs=train_epochs).items()
                  if v is not None}
        t_config = config_cls.preset(train_preset, **t_over)
    out = Path(out)
    runs = {v: out / "runs" / v for v in configs}
    for path in runs.values():
        if (path / "config.json").exists() or (path / "checkpoint.pt").exists():
            if not overwrite:
                raise ValueError(f"{path} already holds a run; choose another --out")
    if overwrite:                                       # only this experiment's run directories go
        for path in [*runs.values(), *(out / "runs" / f"train-{v}" for v in configs)]:
            if path.is_dir():
                shutil.rmtree(path)
    say = log or (lambda msg: None)
    data_cache: Dict[tuple, object] = {}
    rows, memory_reset = [], True
    metric = sp.metric
    for i, (v, config) in enumerate(configs.items()):
        say(f"search {v} ({i + 1}/{len(configs)}), seed {config.seed}" + (", in a fresh process" if isolate else ""))
        if isolate:
            done = run_isolated(config.to_dict(), runs[v])
        else:
            key = tuple(getattr(config, k) for k in DATA_FIELDS)
            if key not in data_cache:
                data_cache[key] = sp.load_data(config, resolve_device(config.device))
            memory_reset &= reset_peak_memory(resolve_device(config.device))
            done = run_search(config.to_dict(), runs[v], data=data_cache[key])
        row = variant_row(v, runs[v], done["seconds"], done["early_stop"])
        say(f"  param-free ops {row['param_free_ops']}, val {metric} {_fmt(row[f'val_{metric}'])}")
        if end_to_end:
            say(f"train {v}'s cell")
            if "train" not in data_cache:
                data_cache["train"] = load_training_data(sp, t_config)
            train = train_cls(RunDir(runs[v]).read_genotype(), t_config, out=out / "runs" / f"train-{v}",
                              data=data_cache["train"])
            train.run()
            summary = train.summary()
            row.update({f"trained_test_{metric}": summary.get(f"test_{metric}"), "params": summary.get("params"),
                        "train_seconds": summary.get("train_seconds")})
            say(f"  trained test {metric} {_fmt(row[f'trained_test_{metric}'])}")
        rows.append(row)
    settings = {"variants": list(configs), "preset": preset, "seed": first.seed, "space": sp.name,
                "dataset": first.dataset, "end_to_end": end_to_end, "isolated": isolate,
                "memory_reset": memory_reset, "search": {v: c.to_dict() for v, c in configs.items()},
                "train": t_config.to_dict() if t_config is not None else None}
    result = {"settings": settings, "rows": rows, "report": str(out / "index.html")}
    write_variants_report(result, runs, out)
    return result


def _fmt(v, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def table_columns(rows: List[dict]) -> List[tuple]:
    """(heading, row key) of the variants table; the trained cell's column with end-to-end rows."""
    metric = next((k[4:] for k in (rows[0] if rows else {}) if k.startswith("val_")), "acc")
    cols = [("variant", "variant"), ("parameter-free ops (normal cell)", "param_free_ops"),
            ("max skip weight", "max_skip"), ("last \u03bb_max", "lambda_max"), ("median s/step", "median_s"),
            ("memory, MB", "memory_mb"), (f"supernet val {metric}", f"val_{metric}"),
            (f"supernet test {metric}", f"supernet_test_{metric}")]
    if rows and f"trained_test_{metric}" in rows[0]:
        cols += [(f"trained cell test {metric}", f"trained_test_{metric}"), ("params", "params")]
    return cols


def format_variants_table(rows: List[dict]) -> str:
    """The rows as a markdown table, one row per variant."""
    cols = table_columns(rows)
    lines = ["| " + " | ".join(h for h, _ in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(_fmt(r.get(k)) for _, k in cols) + " |" for r in rows]
    return "\n".join(lines)


def variants_csv(rows: List[dict]) -> str:
    """Every scalar field of the rows (the monitors are in results.json)."""
    keys = [k for k in (rows[0] if rows else {}) if k != "monitors"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k) for k in keys})
    return buf.getvalue()


def variants_html(result: dict) -> str:
    """The variants table as HTML, with the variants' own last numbers and what was measured how."""
    rows = result["rows"]
    cols = table_columns(rows)
    head = "".join(f"<th>{html.escape(h)}</th>" for h, _ in cols) + "<th>the variant's own numbers (last step)</th>"
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(k)))}</td>" for _, k in cols)
                   + f"<td>{html.escape(', '.join(f'{n} {_fmt(x, 3)}' for n, x in r['monitors'].items()) or '-')}</td>"
                   + "</tr>" for r in rows)
    s = result["settings"]
    where = ("each in a fresh process, so each one's memory is its own" if s["isolated"] else
             "one after another in one process, " + ("the peak memory reset before each" if s["memory_reset"] else
                                                     "so a later one's peak memory includes the earlier ones'"))
    how = (f"Each variant searched with its own layer of the {html.escape(s['preset'])} preset on "
           f"{html.escape(str(s['dataset']))}, seed {s['seed']}, {where}.")
    stops = "".join(f"<p>{html.escape(r['variant'])}: {html.escape(r['early_stop'])}</p>"
                    for r in rows if r["early_stop"])
    return (f"<table style='border-collapse:collapse' border='1' cellpadding='3'><tr>{head}</tr>{body}</table>"
            f"<p class='caption' style='font-size:90%;color:#444'>{how}</p>{stops}")


def write_variants_report(result: dict, runs: Dict[str, Path], out) -> Path:
    """results.json, variants.md, variants.csv and the comparison report (index.html) in `out`."""
    from .viz.compare import compare_report
    out = Path(out)
    s = result["settings"]
    page = compare_report(*runs.values(), out=out, labels=list(runs),
                          title=f"DARTS variants: {', '.join(runs)} ({s['dataset']}, seed {s['seed']})",
                          sections=[("Variants", variants_html(result))])
    atomic_write_text(out / "results.json", json.dumps(result, indent=1, default=str) + "\n")
    atomic_write_text(out / "variants.md", format_variants_table(result["rows"]) + "\n")
    atomic_write_text(out / "variants.csv", variants_csv(result["rows"]))
    return page
