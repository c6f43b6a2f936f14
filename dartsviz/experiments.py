"""Experiments: arms x seeds, searched and/or trained by one runner, written by one writer.

An arm is a search config (its cell derived and, with a training config, trained from
scratch) or a training config alone (random cells of the space). Every arm runs once per
seed, the seed replacing the configs' own; random arms draw their cells from
random.Random(seed).

    arms = [Arm("o1", "DARTS (first order)", search=SearchConfig.preset("tiny"), train=TrainConfig.preset("tiny")),
            Arm("random", "random", train=TrainConfig.preset("tiny"), cells=2)]
    result = run_experiment(arms, seeds=(0, 1), out="runs/exp")
    print(format_table(result))

The three experiments of the command line are thin calls of the runner:
`random_baseline` (`dartsviz train --random`), `compare_end_to_end` (`dartsviz compare
--end-to-end`: first order vs second order vs random, the paper's table) and
`compare_variants` (`dartsviz compare --variants`: DARTS and its successors on one seed).

On a CPU each search runs in a fresh process (`isolate`), since a process's peak RSS only
grows: each search's memory is then its own. On a GPU the searches run in this process,
sharing their data, with CUDA's peak statistics reset before each.

Writes into `out`: runs/<arm>-seed<S>/ (each search's run directory), runs/train-<arm>-seed<S>[-<i>]/
(each training's), results.json, table.md, table.csv, comparison.png (with trained cells) and
index.html, the report of the searches (`viz.compare.compare_report`), when there are two or more.
"""
from __future__ import annotations

import csv
import html
import io
import json
import math
import multiprocessing
import random as _random
import re
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from .distributed import resolve_device
from .methods import get_method
from .records import metric_title
from .runs import RunDir, atomic_write_bytes, atomic_write_text
from .search import Search, SearchConfig
from .spaces import get_space, is_builtin
from .summary import collapse_heading, collapse_summary, cost_summary
from .train import Train

METHODS = {1: "DARTS (first order)", 2: "DARTS (second order)", "random": "random"}
# The paper's numbers next to the measured rows: CIFAR-10 test error (%) with cutout, and
# PTB test perplexity (Table 2).
PAPER = {"cnn": ("paper CIFAR-10 error (%)", {"DARTS (first order)": "3.00 ± 0.14",
                                              "DARTS (second order)": "2.76 ± 0.09",
                                              "random": "3.29 ± 0.15"}),
         "rnn": ("paper PTB test perplexity", {"DARTS (first order)": "57.6", "DARTS (second order)": "55.7"}),
         # NAS-Bench-201's published CIFAR-10 test accuracy on the "cifar10" split (all 50k training
         # images); the table shipped here is the cifar10-valid split's (25k): close, not the same
         "nb201": ('published NB-201 test acc (%, "cifar10" split)',
                   {"DARTS (first order)": "54.30 ± 0.00", "DARTS (second order)": "54.30 ± 0.00",
                    "random search": "93.70 ± 0.36", "regularised evolution": "93.92 ± 0.30",
                    "best cell": "94.37"})}
DATA_FIELDS = ("dataset", "data_dir", "train_portion", "device", "dtype", "vocab_size")  # configs sharing these share data
LAYOUTS = ("trained", "search", "truth")   # the table: trained cells first, each search's diagnostics
                                           # first, or the cells' true accuracy (a space with ground truth)


@dataclass(frozen=True)
class Arm:
    """One line of an experiment: `search` (a SearchConfig) and/or `train` (the space's training
    config); without `search`, `cells` random cells per seed are trained."""

    key: str                       # names its run directories: letters, digits, _ . -
    label: str                     # its name in the table
    search: Optional[Any] = None
    train: Optional[Any] = None
    cells: int = 1

    def __post_init__(self):
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.key or ""):
            raise ValueError(f"an arm's key names folders: letters, digits, _ . - only; got {self.key!r}")
        if self.search is None and self.train is None:
            raise ValueError(f"arm {self.key!r} neither searches nor trains")
        if isinstance(self.cells, bool) or not isinstance(self.cells, int) or self.cells <= 0:
            raise ValueError(f"arm {self.key!r}: cells must be a positive number, got {self.cells!r}")

    @property
    def space(self) -> str:
        return (self.search or self.train).space


# -- one search -------------------------------------------------------------------------

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


def run_search(config: dict, out, data=None) -> dict:
    """One search to its end (into run directory `out`, or none): {"seconds", "early_stop"
    (the DARTS-ES line or None)}, and in this process "search". The body of a fresh process
    (picklable arguments; `data` None there)."""
    search = Search(SearchConfig.from_dict(config), out=out, data=data)
    t0 = time.perf_counter()
    search.run()
    stop = search.early_stopped
    return {"seconds": time.perf_counter() - t0, "early_stop": None if stop is None else stop.message(),
            "search": search}


def _run_search_isolated_body(config: dict, out: str) -> dict:
    done = run_search(config, out)
    del done["search"]
    return done


def run_isolated(config: dict, out) -> dict:
    """`run_search` in a fresh process (spawned: nothing of this one's memory or threads)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_run_search_isolated_body, (config, str(out)))


def search_stats(records: Sequence, config: dict, genotype, seconds: float, early_stop: Optional[str]) -> dict:
    """A search's numbers from its records (`summary.cost_summary` / `collapse_summary`): its
    derived cell, collapse diagnostics, cost and metrics."""
    space = get_space(config["space"])
    metric = space.metric
    cost, collapse = cost_summary(records), collapse_summary(records)
    steps = [r for r in records if r.kind == "step"]
    epochs = [r for r in records if r.kind == "epoch"]
    skip = sum(op == space.skip_op for _, _, op in space.kept_edges(genotype, space.cell_types[0]))
    return {**(space.truth_of(genotype) or {}), "skip_edges": skip,
            "steps": len(steps), "epochs": config.get("epochs"), "param_free_ops": collapse["param_free_ops"],
            "max_none": collapse["max_none"], "max_skip": collapse["max_skip"],
            "lambda_max": collapse["lambda_max"], "lambda_step": collapse["lambda_step"], "early_stop": early_stop,
            "median_s": cost["median_s"], "seconds_total": cost["seconds_total"], "search_seconds": seconds,
            "memory_mb": cost["memory_mb"], "memory_what": cost["memory_what"], "device": cost["device"],
            f"val_{metric}": steps[-1].metrics.get(f"val_{metric}") if steps else None,
            f"supernet_test_{metric}": epochs[-1].metrics.get(f"test_{metric}") if epochs else None,
            "monitors": dict(steps[-1].monitors) if steps else {}, "genotype": genotype.to_text()}


# -- the runner -----------------------------------------------------------------------------

def load_training_data(space, config):
    """The data set a training config names, on its device (loaded once for many cells)."""
    return space.load_data(config, resolve_device(config.device))


def _data_key(config) -> tuple:
    return tuple(getattr(config, k, None) for k in DATA_FIELDS)


def run_experiment(arms: Sequence[Arm], seeds: Sequence[int], out=None, *, layout: str = "trained",
                   data=None, train_data=None, isolate: Optional[bool] = None, overwrite: bool = False,
                   log: Optional[Callable[[str], None]] = None, train_run: Optional[Callable] = None,
                   title: Optional[str] = None, describe: str = "", section: str = "Experiment",
                   write: bool = True) -> dict:
    """Run every arm for every seed; returns {"settings", "runs" (one per search or training),
    "rows" (one per arm, `summarize`), "interrupted"}, and with `out` writes the experiment
    (`write_experiment`; a run directory already there is refused, or with `overwrite`
    replaced). `data` / `train_data`: the searches' and trainings' data, else loaded once per
    data set. `isolate`: each search in a fresh process (default on a CPU, where `out` is given and
    the space is a built-in one, which a fresh process knows).
    `train_run(train, run)` runs one training (default `train.run()`); a training left
    interrupted ends the experiment there, with nothing written but its run directories.
    `write=False`: the caller adds to the result and calls `write_experiment` itself."""
    arms, seeds = list(arms), [int(s) for s in seeds]
    if not arms:
        raise ValueError("an experiment needs at least one arm")
    if not seeds:
        raise ValueError("give at least one seed")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    keys = [a.key for a in arms]
    if len(set(keys)) != len(keys):
        raise ValueError(f"arm keys must differ, got {keys}")
    spaces = {a.space for a in arms}
    if len(spaces) != 1:
        raise ValueError(f"all arms must search one space, got {', '.join(sorted(spaces))}")
    space = get_space(spaces.pop())
    for a in arms:
        if a.search is not None and a.train is not None and a.search.dataset != a.train.dataset:
            raise ValueError(f"search data set {a.search.dataset!r} and training data set {a.train.dataset!r} differ")
    searched = [a for a in arms if a.search is not None]
    out = Path(out) if out is not None else None
    device = resolve_device((searched[0].search if searched else arms[0].train).device)
    if isolate and not is_builtin(space.name):
        raise ValueError(f"a fresh process does not know the {space.name} space registered in this one; "
                         f"use isolate=False")
    isolate = ((device.type == "cpu" and is_builtin(space.name)) if isolate is None else bool(isolate)) \
        and out is not None and bool(searched)

    def rel(name):
        return f"runs/{name}"

    plan = []                                       # (seed, arm, cell index or None, search dir, train dir)
    for seed in seeds:
        for a in arms:
            for i in (range(a.cells) if a.search is None else [None]):
                cell = "" if i is None else f"-{i}"
                plan.append((seed, a, i, rel(f"{a.key}-seed{seed}") if a.search is not None else None,
                             rel(f"train-{a.key}-seed{seed}{cell}") if a.train is not None else None))
    if out is not None:
        dirs = [out / d for _, _, _, s, t in plan for d in (s, t) if d]
        held = [d for d in dirs if (d / "config.json").exists() or (d / "checkpoint.pt").exists()]
        if held and not overwrite:
            raise ValueError(f"{held[0]} already holds a run; choose another --out")
        for d in dirs:                              # only this experiment's run directories go
            if overwrite and d.is_dir():
                shutil.rmtree(d)

    say = log or (lambda msg: None)
    key = f"test_{space.metric}"
    search_data: Dict[tuple, Any] = {}
    train_cache: Dict[tuple, Any] = {}
    runs: List[dict] = []
    memory_reset, interrupted = True, False
    for seed, arm, i, sdir, tdir in plan:
        run: Dict[str, Any] = {"arm": arm.key, "method": arm.label, "seed": seed, "search_seconds": 0.0,
                               "search_dir": sdir, "train_dir": tdir}
        if arm.search is not None:
            config = SearchConfig.from_dict({**arm.search.to_dict(), "seed": seed})
            say(f"search {arm.label}, seed {seed}" + (", in a fresh process" if isolate else ""))
            path = out / sdir if out is not None else None
            if isolate:
                done = run_isolated(config.to_dict(), path)
                run_dir = RunDir(path)
                records, genotype = run_dir.read_records(), run_dir.read_genotype()
            else:
                k = _data_key(config)
                if k not in search_data:
                    search_data[k] = data if data is not None else space.load_data(config, resolve_device(config.device))
                memory_reset &= reset_peak_memory(resolve_device(config.device))
                done = run_search(config.to_dict(), path, data=search_data[k])
                records, genotype = done["search"].history, done["search"].genotype
            run.update(search_stats(records, config.to_dict(), genotype, done["seconds"], done["early_stop"]))
            m = f"val_{space.metric}"
            say(f"  param-free ops {run['param_free_ops']}, val {space.metric} {_fmt(run[m])}")
        else:
            if i == 0:
                rng = _random.Random(seed)              # the arm's cells of this seed
            run["cell"] = i
            genotype = space.random_genotype(rng)
        if arm.train is not None:
            t_config = type(arm.train).from_dict({**arm.train.to_dict(), "seed": seed})
            k = _data_key(t_config)
            if k not in train_cache:
                train_cache[k] = train_data if train_data is not None else load_training_data(space, t_config)
            what = f"random cell {i + 1}/{arm.cells}" if i is not None else f"{arm.label}'s cell"
            say(f"train {what}, seed {seed}")
            train = Train(genotype, t_config, out=out / tdir if out is not None else None, data=train_cache[k])
            if log and not runs and i == 0:
                log(train.network_line())             # the first training's network
            (train_run or (lambda t, r: t.run()))(train, run)
            if train.interrupted:
                interrupted = True
                break
            run.update(train.summary())
            say(f"  {key.replace('_', ' ')} {run[key]:.4f}   {genotype.to_text()}")
        runs.append(run)
    settings = {"seeds": seeds, "space": space.name, "layout": layout, "isolated": isolate,
                "memory_reset": memory_reset, "title": title or f"experiment ({space.name}), seeds {seeds}",
                "describe": describe, "section": section,
                "arms": [{"key": a.key, "label": a.label, "cells": a.cells,
                          "search": a.search.to_dict() if a.search is not None else None,
                          "train": a.train.to_dict() if a.train is not None else None} for a in arms]}
    result = {"settings": settings, "runs": runs, "rows": summarize(runs, space.name), "interrupted": interrupted,
              "report": str(out / "index.html") if out is not None and len(runs) >= 2 and searched else None}
    if out is not None and not interrupted and write:
        write_experiment(result, out)
    return result


# -- summaries --------------------------------------------------------------------------

def _mean_std(values: Sequence[float]):
    values = [float(v) for v in values]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


SEARCH_FIELDS = ("steps", "epochs", "param_free_ops", "max_none", "max_skip", "lambda_max", "lambda_step",
                 "early_stop", "median_s", "seconds_total", "memory_mb", "memory_what", "device", "monitors",
                 "genotype")


def _pooled(values: list):
    """One run's value as it is; the mean of several numbers; else the common value or None."""
    if len(values) == 1:
        return values[0]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return statistics.fmean(values)
    return values[0] if all(v == values[0] for v in values) else None


def summarize(runs: List[dict], space: str = "cnn") -> List[dict]:
    """One row per arm: runs, the space's test metric mean ± std where cells were trained
    (accuracy, perplexity, ...), parameters, multiply-adds where counted, mean times, the
    searches' numbers (one run's as they are, several pooled) and the paper's number where the
    paper has one for this space."""
    metric = get_space(space).metric
    paper = PAPER.get(space, ("", {}))[1]
    rows = []
    for arm in dict.fromkeys(r["arm"] for r in runs):
        rs = [r for r in runs if r["arm"] == arm]
        row = {"method": rs[0]["method"], "arm": arm, "runs": len(rs)}
        if all(f"test_{metric}" in r for r in rs):
            mean, std = _mean_std([r[f"test_{metric}"] for r in rs])
            row.update({f"test_{metric}_mean": mean, f"test_{metric}_std": std,
                        "params_mean": statistics.fmean(r["params"] for r in rs)})
            if all("macs" in r for r in rs):
                row["macs_mean"] = statistics.fmean(r["macs"] for r in rs)
        for k in ("true_valid_acc", "true_test_acc"):                    # a space with ground truth
            if all(k in r for r in rs):
                row[f"{k}_mean"], row[f"{k}_std"] = _mean_std([r[k] for r in rs])
        if all("skip_edges" in r for r in rs):
            row["skip_edges_mean"] = statistics.fmean(r["skip_edges"] for r in rs)
        if all("steps" in r and "param_free_ops" in r for r in rs):
            row.update({k: _pooled([r.get(k) for r in rs]) for k in
                        (*SEARCH_FIELDS, f"val_{metric}", f"supernet_test_{metric}")})
        row["search_seconds_mean"] = statistics.fmean(r["search_seconds"] for r in rs)
        if all("train_seconds" in r for r in rs):
            row["train_seconds_mean"] = statistics.fmean(r["train_seconds"] for r in rs)
        if space in PAPER:
            row["paper"] = paper.get(row["method"], "")
        rows.append(row)
    return rows


# -- the writer -----------------------------------------------------------------------------

def _fmt(v, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def _metric_of_rows(rows: List[dict]) -> str:
    for r in rows:
        for k in r:
            if k.startswith("test_") and k.endswith("_mean"):
                return k[5:-5]
            if k.startswith("val_"):
                return k[4:]
    return "acc"


def _metric_label(metric: str) -> Tuple[str, float]:
    """(column heading, scale) of a test metric: accuracy in percent, others as they are."""
    return ("test acc (%)", 100.0) if metric == "acc" else (f"test {metric_title(metric)}", 1.0)


def metric_words(space) -> str:
    """"test accuracy", "test perplexity", or "test <metric>"."""
    return f"test {metric_title(space.metric)}"


def table_columns(rows: List[dict], space: str = "cnn", layout: str = "trained") -> List[Tuple[str, Callable]]:
    """(heading, cell of a row) for the columns the rows hold: with layout "trained" the trained
    cells' numbers first (the paper's table), with "search" each search's diagnostics first."""
    metric = _metric_of_rows(rows)
    heading, scale = _metric_label(metric)
    digits = 2 if scale == 100.0 else 1

    def has(k):
        return bool(rows) and all(r.get(k) is not None for r in rows)
    trained = []
    if has(f"test_{metric}_mean"):
        if layout == "search":
            trained = [(f"trained cell test {metric}", lambda r: _fmt(r[f"test_{metric}_mean"])),
                       ("params", lambda r: _fmt(r["params_mean"]))]
        else:
            trained = [(heading, lambda r: f"{scale * r[f'test_{metric}_mean']:.{digits}f} ± "
                                           f"{scale * r[f'test_{metric}_std']:.{digits}f}"),
                       ("params", lambda r: f"{r['params_mean']:,.0f}")]
            if has("macs_mean"):
                trained.append(("MACs", lambda r: f"{r['macs_mean']:,.0f}"))
    if layout == "truth":
        def pm(k):
            return lambda r: "-" if r.get(f"{k}_mean") is None else f"{r[f'{k}_mean']:.2f} ± {r[f'{k}_std']:.2f}"
        cols = [("method", lambda r: r["method"]), ("runs", lambda r: str(r["runs"])),
                ("true acc (%), CIFAR-10 200 ep., validation", pm("true_valid_acc")),
                ("true test acc (%)", pm("true_test_acc")),
                ("skip edges", lambda r: _fmt(r.get("skip_edges_mean"), 2)),
                ("search, this machine (s)", lambda r: f"{r['search_seconds_mean']:.1f}"),
                ("simulated training (s)", lambda r: "-" if r.get("simulated_seconds_mean") is None
                 else f"{r['simulated_seconds_mean']:,.0f}")]
        if rows and all("paper" in r for r in rows):
            cols.append((PAPER[space][0], lambda r: r["paper"] or "-"))
        return cols
    if layout == "search":
        diag = [(collapse_heading(get_space(space)), "param_free_ops"), ("max skip weight", "max_skip"),
                ("last \u03bb_max", "lambda_max"), ("median s/step", "median_s"), ("memory, MB", "memory_mb"),
                (f"supernet val {metric}", f"val_{metric}"), (f"supernet test {metric}", f"supernet_test_{metric}")]
        return ([("method", lambda r: r["method"])] + [(h, lambda r, k=k: _fmt(r.get(k))) for h, k in diag]
                + trained)
    cols = [("method", lambda r: r["method"]), ("runs", lambda r: str(r["runs"]))] + trained
    cols.append(("search (s)", lambda r: f"{r['search_seconds_mean']:.1f}"))
    if has("train_seconds_mean"):
        cols.append(("train (s)", lambda r: f"{r['train_seconds_mean']:.1f}"))
    if rows and all("paper" in r for r in rows) and trained:
        cols.append((PAPER[space][0], lambda r: r["paper"]))
    return cols


def format_table(rows, space: str = "cnn", layout: str = "trained") -> str:
    """The rows (or a result of `run_experiment`) as a markdown table, readable when printed."""
    if isinstance(rows, dict):
        rows, space, layout = rows["rows"], rows["settings"]["space"], rows["settings"]["layout"]
    cols = table_columns(rows, space, layout)
    lines = ["| " + " | ".join(h for h, _ in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(r) for _, cell in cols) + " |" for r in rows]
    return "\n".join(lines)


def table_csv(rows: List[dict]) -> str:
    """Every scalar field of the rows (the monitors are in results.json)."""
    keys = list(dict.fromkeys(k for r in rows for k in r if not isinstance(r[k], dict)))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k) for k in keys})
    return buf.getvalue()


def plot_comparison(result: dict):
    """Four panels: the trained cells' test metric, search time, training time, parameters.
    Bars (squares for the metric) are the means with one standard deviation; dots the single runs."""
    from matplotlib.figure import Figure
    runs, rows = result["runs"], result["rows"]
    space = result["settings"]["space"]
    sp = get_space(space)
    heading, scale = _metric_label(sp.metric)
    first = (f"test_{sp.metric}", heading + ("" if sp.higher_is_better else " (lower is better)"), scale)
    panels = [first, ("search_seconds", "search time (s)", 1.0),
              ("train_seconds", "training time (s)", 1.0), ("params", "parameters", 1.0)]
    fig = Figure(figsize=(13, 3.4), layout="constrained")
    axes = fig.subplots(1, 4)
    arms = [r["arm"] for r in rows]
    colors = ["tab:blue", "tab:orange", "tab:gray", "tab:green", "tab:red"]
    for ax, (key, label, scale) in zip(axes, panels):
        for i, arm in enumerate(arms):
            vals = [scale * r[key] for r in runs if r["arm"] == arm and key in r]
            if not vals:
                continue
            mean, std = _mean_std(vals)
            color = colors[i % len(colors)]
            if key == first[0]:        # points, not bars: the y axis zooms in on the differences
                ax.errorbar(i, mean, yerr=std, fmt="s", color=color, ms=8, capsize=5)
            else:
                ax.bar(i, mean, yerr=std, color=color, alpha=0.6, capsize=4)
            ax.plot([i] * len(vals), vals, "k.", ms=5)
        ax.set_xticks(range(len(rows)), [r["method"].replace("DARTS ", "").strip("()") for r in rows], rotation=20)
        ax.set_title(label, fontsize=10)
        if key == first[0]:
            ax.set_xlim(-0.5, len(rows) - 0.5)
    fig.suptitle(result["settings"]["title"], fontsize=11)
    return fig


def experiment_html(result: dict) -> str:
    """The table as HTML, with each search's own last numbers and what was measured how."""
    rows, s = result["rows"], result["settings"]
    cols = table_columns(rows, s["space"], s["layout"])
    own = any(r.get("monitors") for r in rows)
    head = "".join(f"<th>{html.escape(h)}</th>" for h, _ in cols) + (
        "<th>the method's own numbers (last step)</th>" if own else "")
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell(r))}</td>" for _, cell in cols)
                   + (f"<td>{html.escape(', '.join(f'{n} {_fmt(x, 3)}' for n, x in (r.get('monitors') or {}).items()) or '-')}</td>"
                      if own else "") + "</tr>" for r in rows)
    where = ("each search in a fresh process, so each one's memory is its own" if s["isolated"] else
             "the searches one after another in one process, " +
             ("the peak memory reset before each" if s["memory_reset"] else
              "so a later one's peak memory includes the earlier ones'"))
    how = " ".join(x for x in (s["describe"], f"Seeds {', '.join(map(str, s['seeds']))}; {where}.") if x)
    stops = "".join(f"<p>{html.escape(r['method'])}: {html.escape(r['early_stop'])}</p>"
                    for r in rows if r.get("early_stop"))
    return (f"<table style='border-collapse:collapse' border='1' cellpadding='3'><tr>{head}</tr>{body}</table>"
            f"<p class='caption' style='font-size:90%;color:#444'>{html.escape(how)}</p>{stops}")


def _anytime_of(q: dict):
    """A query search's anytime curve from its JSON form (`QuerySummary.to_dict`), as `draw_anytime` reads it."""
    from types import SimpleNamespace
    import numpy as np
    arr = lambda xs: np.array([np.nan if x is None else x for x in xs], dtype=float)   # noqa: E731
    c = q["curve"]
    return SimpleNamespace(name=q["name"], grid=arr(c["seconds"]), runs=range(q["runs"]),
                           valid_curve=(arr(c["valid_mean"]), arr(c["valid_std"])))


def write_experiment(result: dict, out) -> Dict[str, Path]:
    """results.json, table.md, table.csv; comparison.png where cells were trained; index.html
    (the searches' report, with the table) where two or more searches ran into `out`."""
    from .viz.compare import compare_report
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "md": out / "table.md", "csv": out / "table.csv"}
    atomic_write_text(paths["json"], json.dumps(result, indent=1, default=str) + "\n")
    atomic_write_text(paths["md"], format_table(result) + "\n")
    atomic_write_text(paths["csv"], table_csv(result["rows"]))
    if any("train_seconds" in r for r in result["runs"]):
        buf = io.BytesIO()
        plot_comparison(result).savefig(buf, format="png", dpi=100)
        paths["png"] = out / "comparison.png"
        atomic_write_bytes(paths["png"], buf.getvalue())
    if result.get("query"):                              # query searches over a space's table
        from .viz.anytime import draw_anytime
        buf = io.BytesIO()
        draw_anytime([_anytime_of(q) for q in result["query"]], result.get("references")).savefig(
            buf, format="png", dpi=100)
        paths["anytime"] = out / "anytime.png"
        atomic_write_bytes(paths["anytime"], buf.getvalue())
    searched = [r for r in result["runs"] if r["search_dir"]]
    if len(searched) >= 2:
        one_seed = len(result["settings"]["seeds"]) == 1
        labels = [r["arm"] if one_seed else f"{r['arm']} seed {r['seed']}" for r in searched]
        paths["html"] = compare_report(*(out / r["search_dir"] for r in searched), out=out, labels=labels,
                                       title=result["settings"]["title"],
                                       sections=[(result["settings"]["section"], experiment_html(result))])
    return paths


# -- the experiments of the command line ----------------------------------------------------

def random_baseline(n: int, config=None, seed: int = 0, data=None,
                    log: Optional[Callable[[str], None]] = None, space="cnn", out=None,
                    run: Optional[Callable] = None) -> dict:
    """Train `n` random genotypes of `space` (drawn from random.Random(seed)) with `config`
    (default the space's tiny training preset), its seed replaced by `seed`.

    Returns {"n", "seed", "space", "runs" (one summary per cell), "test_METRIC_mean",
    "test_METRIC_std", "interrupted"} (METRIC: the space's, e.g. acc or ppl; the std is the
    sample standard deviation, 0 for one cell). With `out`, the experiment's files
    (`write_experiment`). `run(train, i)` runs one training (default `train.run()`); a training
    left interrupted ends the baseline there (`interrupted` True, no summary written)."""
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"the random baseline needs a positive number of genotypes, got {n!r}")
    space = get_space(space)
    config = config if config is not None else space.trainer().config_class.preset("tiny")
    arm = Arm("random", "random", train=config, cells=n)
    res = run_experiment([arm], [seed], out, train_data=data, log=log,
                         train_run=None if run is None else (lambda t, r: run(t, r["cell"])),
                         title=f"random baseline ({space.name}), {n} cells, seed {seed}")
    key = f"test_{space.metric}"
    base = {"n": n, "seed": seed, "space": space.name, "runs": res["runs"], "interrupted": res["interrupted"]}
    if not res["interrupted"]:
        base.update({f"{key}_mean": res["rows"][0][f"{key}_mean"], f"{key}_std": res["rows"][0][f"{key}_std"]})
    return base


def compare_end_to_end(seeds: Sequence[int] = (0, 1), random: int = 1, orders: Sequence[int] = (1, 2),
                       search_config: Optional[SearchConfig] = None, train_config=None,
                       search_epochs: Optional[int] = None, train_epochs: Optional[int] = None,
                       out=None, data=None, log: Optional[Callable[[str], None]] = None,
                       isolate: Optional[bool] = None) -> dict:
    """First-order, second-order and random cells over `seeds`, with equal budgets: each search's
    cell and `random` random cells per seed trained from scratch alike (the paper's table).

    `search_config` / `train_config` default to the tiny presets; `search_epochs` and
    `train_epochs` override their epochs. Warm-up epochs that would eat the whole search
    budget are dropped, so alpha always moves. `data`: the data set of searches and trainings
    alike (else loaded once). Returns `run_experiment`'s result."""
    if random < 0:
        raise ValueError(f"random must be >= 0, got {random}")
    if any(o not in (1, 2) for o in orders):
        raise ValueError(f"orders must be 1 and/or 2, got {list(orders)}")
    s_base = (search_config or SearchConfig.preset("tiny")).to_dict()
    space = get_space(s_base["space"])
    config_cls = space.trainer().config_class
    t_base = (train_config or config_cls.preset("tiny")).to_dict()
    if search_epochs is not None:
        s_base["epochs"] = search_epochs
    if train_epochs is not None:
        t_base["epochs"] = train_epochs
    if s_base.get("warmup_epochs", 0) >= s_base["epochs"]:
        s_base["warmup_epochs"] = 0
    if t_base.get("space", "cnn") != space.name:
        raise ValueError(f"the search space is {space.name} but the training config is for {t_base.get('space', 'cnn')}")
    s_config, t_config = SearchConfig.from_dict(s_base), config_cls.from_dict(t_base)   # checked before any run
    arms = [Arm(f"o{o}", METHODS[o], search=SearchConfig.from_dict({**s_base, "order": o}), train=t_config)
            for o in orders]
    if random:
        arms.append(Arm("random", METHODS["random"], train=t_config, cells=random))
    return run_experiment(arms, seeds, out, data=data, train_data=data, log=log, isolate=isolate,
                          title=f"end-to-end comparison ({space.name}), seeds {[int(s) for s in seeds]}",
                          describe=f"Searches on {s_config.dataset} ({s_config.epochs} epochs), cells trained "
                                   f"from scratch alike ({t_config.epochs} epochs).")


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


def compare_variants(variants: Sequence[str], out, *, preset: str = "tiny", seed: Optional[int] = None,
                     epochs: Optional[int] = None, steps_per_epoch: Optional[int] = None,
                     monitor_every: Optional[int] = None, monitor_iters: Optional[int] = None,
                     end_to_end: bool = False, train_preset: str = "tiny", train_epochs: Optional[int] = None,
                     space: Optional[str] = None, dataset: Optional[str] = None, data_dir: Optional[str] = None,
                     device: Optional[str] = None, isolate: Optional[bool] = None,
                     log: Optional[Callable[[str], None]] = None, overwrite: bool = False) -> dict:
    """Search with each variant (its own layer of `preset`, then these settings for all alike)
    on the same data and seed, with `end_to_end` train each derived cell from scratch, and write
    the report into `out`. Returns `run_experiment`'s result (layout "search": one row per
    variant, its diagnostics first)."""
    common = {"dataset": dataset, "data_dir": data_dir, "device": device, "space": space}
    configs = variant_configs(variants, preset, seed=seed, epochs=epochs, steps_per_epoch=steps_per_epoch,
                              monitor_every=monitor_every, monitor_iters=monitor_iters, **common)
    first = next(iter(configs.values()))
    t_config = None
    if end_to_end:                                      # checked before any search runs
        t_over = {k: v for k, v in dict(dataset=first.dataset, data_dir=data_dir, device=device,
                                        steps_per_epoch=steps_per_epoch, epochs=train_epochs).items()
                  if v is not None}
        t_config = get_space(first.space).trainer().config_class.preset(train_preset, **t_over)
    arms = [Arm(v, v, search=c, train=t_config) for v, c in configs.items()]
    return run_experiment(arms, [first.seed], out, layout="search", isolate=isolate, log=log, overwrite=overwrite,
                          title=f"DARTS variants: {', '.join(configs)} ({first.dataset}, seed {first.seed})",
                          describe=f"Each variant searched with its own layer of the {preset} preset on "
                                   f"{first.dataset}.", section="Variants")


def compare_truth(seeds: Sequence[int] = (0, 1, 2), orders: Sequence[int] = (1, 2),
                  variants: Sequence[str] = (), out=None, *, preset: str = "tiny", epochs: Optional[int] = None,
                  steps_per_epoch: Optional[int] = None, dataset: Optional[str] = None,
                  data_dir: Optional[str] = None, device: Optional[str] = None, budget: float = 20000.0,
                  query_runs: int = 100, query_algos: Sequence[str] = ("random", "rea", "ls"),
                  isolate: Optional[bool] = None, overwrite: bool = False,
                  log: Optional[Callable[[str], None]] = None) -> dict:
    """Weight-sharing searches (DARTS in `orders`, then each of `variants` first order) in the nb201
    space over `seeds`, and query searches over the table (`query.run_many`, `query_runs` runs of
    `budget` simulated seconds), in one table by their cells' true accuracy (CIFAR-10, 200 epochs,
    cifar10-valid split), beside NAS-Bench-201's published rows ("cifar10" split) and the best cell.
    Returns `run_experiment`'s result with the query rows added; writes it into `out`."""
    from . import truth
    from .query import NAMES, run_many
    if any(o not in (1, 2) for o in orders):
        raise ValueError(f"orders must be 1 and/or 2, got {list(orders)}")
    bad = [a for a in query_algos if a not in NAMES]
    if bad:
        raise ValueError(f"unknown query search {bad[0]!r}; known: {', '.join(NAMES)}")
    over = {k: v for k, v in dict(epochs=epochs, steps_per_epoch=steps_per_epoch, dataset=dataset,
                                   data_dir=data_dir, device=device).items() if v is not None}
    arms = []
    for o in orders:
        config = SearchConfig.preset(preset, space="nb201", order=o, **over)
        if config.warmup_epochs >= config.epochs:
            config = SearchConfig.from_dict({**config.to_dict(), "warmup_epochs": 0})
        arms.append(Arm(f"o{o}", METHODS[o], search=config))
    for v, config in (variant_configs(["darts", *variants], preset, space="nb201", **over).items()
                      if variants else ()):
        if v != "darts":
            arms.append(Arm(v, v, search=config))
    seeds = [int(s) for s in seeds]
    result = run_experiment(arms, seeds, out, layout="truth", isolate=isolate, overwrite=overwrite, log=log,
                            write=False, title=f"true accuracy of the searched cells (nb201), seeds {seeds}",
                            describe=f"Weight-sharing searches with the {preset} preset on "
                                     f"{arms[0].search.dataset}; query searches over the table with a budget "
                                     f"of {budget:g} simulated seconds. True accuracy: NAS-Bench-201's "
                                     "CIFAR-10 numbers (200 epochs, cifar10-valid split).",
                            section="True accuracy")
    paper = PAPER["nb201"][1]
    result["query"] = []
    for algo in query_algos:
        (log or (lambda m: None))(f"query search: {NAMES[algo]}, {query_runs} runs of {budget:g} s")
        t0 = time.perf_counter()
        s = run_many(algo, budget=budget, runs=query_runs, seed=seeds[0])
        result["query"].append(s.to_dict())
        result["rows"].append({"method": NAMES[algo], "arm": algo, "runs": query_runs,
                               "true_valid_acc_mean": s.valid_mean, "true_valid_acc_std": s.valid_std,
                               "true_test_acc_mean": s.test_mean, "true_test_acc_std": s.test_std,
                               "search_seconds_mean": (time.perf_counter() - t0) / query_runs,
                               "simulated_seconds_mean": statistics.fmean(r.spent for r in s.runs),
                               "paper": paper.get(NAMES[algo], "")})
    best = truth.best()
    result["rows"].append({"method": "best cell", "arm": "best", "runs": 1, "true_valid_acc_mean": best.valid_acc,
                           "true_valid_acc_std": 0.0, "true_test_acc_mean": best.test_acc, "true_test_acc_std": 0.0,
                           "search_seconds_mean": 0.0, "paper": paper["best cell"]})
    result["references"] = {"best cell": best.valid_acc, "median cell": truth.median().valid_acc}
    if out is not None and not result["interrupted"]:
        write_experiment(result, out)
    return result
