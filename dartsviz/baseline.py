"""The random baseline and the end-to-end comparison: first order vs second order vs random.

    res = compare_end_to_end(seeds=(0, 1), random=1)      # tiny presets on digits
    print(format_table(res["rows"]))
    res = compare_end_to_end(search_config=SearchConfig.preset("tiny_rnn"))   # the recurrent space

The space is the search config's: its trainer (`space.trainer()`) trains the cells and
its metric (accuracy, or perplexity for the recurrent space) fills the table.

For each seed: search with first order and with second order (same search budget),
derive each cell, train it from scratch (same training budget); draw random cells from
the same space and train them the same way. The rows follow the paper's table:
test accuracy mean ± std over runs, parameters, search and training time.
"""
from __future__ import annotations

import csv
import io
import json
import random as _random
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .distributed import resolve_device
from .records import metric_title
from .runs import atomic_write_bytes, atomic_write_text
from .search import Search, SearchConfig
from .spaces import get_space
from .train import Train, TrainConfig

METHODS = {1: "DARTS (first order)", 2: "DARTS (second order)", "random": "random"}
# The paper's numbers next to the measured rows: CIFAR-10 test error (%) with cutout, and
# PTB test perplexity (Table 2).
PAPER = {"cnn": ("paper CIFAR-10 error (%)", {"DARTS (first order)": "3.00 ± 0.14",
                                              "DARTS (second order)": "2.76 ± 0.09",
                                              "random": "3.29 ± 0.15"}),
         "rnn": ("paper PTB test perplexity", {"DARTS (first order)": "57.6", "DARTS (second order)": "55.7"})}


def load_training_data(space, config):
    """The data set a training config names, on its device (loaded once for many cells)."""
    return space.load_data(config, resolve_device(config.device))


def _mean_std(values: Sequence[float]):
    values = [float(v) for v in values]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def random_baseline(n: int, config=None, seed: int = 0, data=None,
                    log: Optional[Callable[[str], None]] = None, space="cnn", out=None,
                    run: Optional[Callable] = None) -> dict:
    """Train `n` random genotypes of `space` (drawn from random.Random(seed)) with the same config.

    Returns {"n", "seed", "space", "runs": [summary per genotype], "test_METRIC_mean",
    "test_METRIC_std", "interrupted"} (METRIC: the space's, e.g. acc or ppl); the std is the
    sample standard deviation (0 for one run). With `out`: each cell's run directory
    (`out/random<i>`) and `out/baseline.json`. `run(train, i)` runs one training (default
    `train.run()`; the command line's adds a progress bar); a training left interrupted ends
    the baseline there (`interrupted` True, nothing written)."""
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"the random baseline needs a positive number of genotypes, got {n!r}")
    space = get_space(space) if isinstance(space, str) else space
    config_cls = space.trainer().config_class
    config = config if config is not None else config_cls.preset("tiny")
    data = data if data is not None else load_training_data(space, config)   # loaded once for every cell
    key = f"test_{space.metric}"
    rng = _random.Random(seed)
    out = Path(out) if out is not None else None
    runs = []
    for i in range(n):
        train = Train(space.random_genotype(rng), config_cls.from_dict(config.to_dict()), data=data,
                      out=out / f"random{i}" if out is not None else None)
        if log and i == 0:
            log(train.network_line())
        (run or (lambda t, i: t.run()))(train, i)
        if train.interrupted:
            return {"n": n, "seed": seed, "space": space.name, "runs": runs, "interrupted": True}
        runs.append({"index": i, **train.summary()})
        if log:
            log(f"random cell {i + 1}: {metric_words(space)} {runs[-1][key]:.4f}   {train.genotype.to_text()}")
    mean, std = _mean_std([r[key] for r in runs])
    result = {"n": n, "seed": seed, "space": space.name, "runs": runs, f"{key}_mean": mean, f"{key}_std": std,
              "interrupted": False}
    if out is not None:
        atomic_write_text(out / "baseline.json", json.dumps(
            {"n": n, "seed": seed, "space": space.name, f"{key}s": [r[key] for r in runs],
             f"{key}_mean": mean, f"{key}_std": std, "config": config.to_dict()}, indent=1) + "\n")
    return result


def metric_words(space) -> str:
    """"test accuracy", "test perplexity", or "test <metric>"."""
    return f"test {metric_title(space.metric)}"


def compare_end_to_end(seeds: Sequence[int] = (0, 1), random: int = 1, orders: Sequence[int] = (1, 2),
                       search_config: Optional[SearchConfig] = None, train_config: Optional[TrainConfig] = None,
                       search_epochs: Optional[int] = None, train_epochs: Optional[int] = None,
                       out=None, data: Optional[DataSplits] = None,
                       log: Optional[Callable[[str], None]] = None) -> dict:
    """First-order, second-order and random cells over `seeds`, with equal budgets.

    `search_config` / `train_config` default to the tiny presets; `search_epochs` and
    `train_epochs` override their epochs. Warm-up epochs that would eat the whole search
    budget are dropped, so alpha always moves. `random` random cells are drawn per seed.
    With `out`, writes results.json, table.md, table.csv, comparison.png and each run's
    search and training run directories. Returns {"settings", "runs", "rows"}.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("give at least one seed")
    if random < 0:
        raise ValueError(f"random must be >= 0, got {random}")
    if any(o not in (1, 2) for o in orders):
        raise ValueError(f"orders must be 1 and/or 2, got {list(orders)}")
    s_base = (search_config or SearchConfig.preset("tiny")).to_dict()
    space = get_space(s_base["space"])
    train_cls, config_cls = Train, space.trainer().config_class
    t_base = (train_config or config_cls.preset("tiny")).to_dict()
    if search_epochs is not None:
        s_base["epochs"] = search_epochs
    if train_epochs is not None:
        t_base["epochs"] = train_epochs
    if s_base.get("warmup_epochs", 0) >= s_base["epochs"]:
        s_base["warmup_epochs"] = 0
    SearchConfig.from_dict(s_base)            # validate early, before any training
    t_config = config_cls.from_dict(t_base)
    if t_base.get("space", "cnn") != space.name:
        raise ValueError(f"the search space is {space.name} but the training config is for {t_base.get('space', 'cnn')}")
    if t_base["dataset"] != s_base["dataset"]:
        raise ValueError(f"search data set {s_base['dataset']!r} and training data set "
                         f"{t_base['dataset']!r} differ")
    say = log or (lambda msg: None)
    out = Path(out) if out is not None else None
    key = f"test_{space.metric}"
    train_data = data if data is not None else load_training_data(space, t_config)   # loaded once for all cells
    if data is None:
        data = space.load_data(SearchConfig.from_dict(s_base), resolve_device(s_base["device"]))

    def run_dir(name):
        return out / "runs" / name if out is not None else None

    runs: List[dict] = []
    for seed in seeds:
        for order in orders:
            name = f"o{order}-seed{seed}"
            say(f"search {METHODS[order]}, seed {seed}")
            search = Search(SearchConfig.from_dict({**s_base, "order": order, "seed": seed}),
                            out=run_dir(f"search-{name}"), data=data)
            t0 = time.perf_counter()
            search.run()
            search_seconds = time.perf_counter() - t0
            genotype = search.genotype
            say(f"train {METHODS[order]}, seed {seed}")
            train = train_cls(genotype, config_cls.from_dict({**t_base, "seed": seed}),
                              out=run_dir(f"train-{name}"), data=train_data)
            train.run()
            runs.append({"method": METHODS[order], "seed": seed, "search_seconds": search_seconds,
                         **train.summary()})
            say(f"  {key.replace('_', ' ')} {runs[-1][key]:.4f}")
        rng = _random.Random(seed)
        for i in range(random):
            genotype = space.random_genotype(rng)
            say(f"train random cell {i + 1}/{random}, seed {seed}")
            train = train_cls(genotype, config_cls.from_dict({**t_base, "seed": seed}),
                              out=run_dir(f"train-random{i}-seed{seed}"), data=train_data)
            train.run()
            runs.append({"method": "random", "seed": seed, "search_seconds": 0.0, **train.summary()})
            say(f"  {key.replace('_', ' ')} {runs[-1][key]:.4f}")
    result = {"settings": {"seeds": seeds, "random": random, "orders": list(orders), "space": space.name,
                           "search": s_base, "train": t_base},
              "runs": runs, "rows": summarize(runs, space.name)}
    if out is not None:
        write_comparison(result, out)
    return result


def summarize(runs: List[dict], space: str = "cnn") -> List[dict]:
    """One row per method: runs, the space's test metric mean ± std (accuracy, perplexity,
    ...), parameters, multiply-adds where the trainings counted them, mean times, and the
    paper's number where the paper has one for this space."""
    metric = get_space(space).metric
    paper = PAPER.get(space, ("", {}))[1]
    rows = []
    for method in dict.fromkeys(r["method"] for r in runs):
        rs = [r for r in runs if r["method"] == method]
        mean, std = _mean_std([r[f"test_{metric}"] for r in rs])
        row = {"method": method, "runs": len(rs), f"test_{metric}_mean": mean, f"test_{metric}_std": std,
               "params_mean": statistics.fmean(r["params"] for r in rs)}
        if all("macs" in r for r in rs):
            row["macs_mean"] = statistics.fmean(r["macs"] for r in rs)
        row.update({"search_seconds_mean": statistics.fmean(r["search_seconds"] for r in rs),
                    "train_seconds_mean": statistics.fmean(r["train_seconds"] for r in rs)})
        if space in PAPER:
            row["paper"] = paper.get(method, "")
        rows.append(row)
    return rows


def _metric_of_rows(rows: List[dict]) -> str:
    return next((k[5:-5] for k in (rows[0] if rows else {}) if k.startswith("test_") and k.endswith("_mean")), "acc")


def _metric_label(metric: str) -> Tuple[str, float]:
    """(column heading, scale) of a test metric: accuracy in percent, others as they are."""
    return ("test acc (%)", 100.0) if metric == "acc" else (f"test {metric_title(metric)}", 1.0)


def _columns(rows: List[dict], space: str) -> List[Tuple[str, Callable[[dict], str]]]:
    """(heading, cell of a row) for the columns the rows hold."""
    metric = _metric_of_rows(rows)
    heading, scale = _metric_label(metric)
    digits = 2 if scale == 100.0 else 1
    cols = [("method", lambda r: r["method"]), ("runs", lambda r: str(r["runs"])),
            (heading, lambda r: f"{scale * r[f'test_{metric}_mean']:.{digits}f} ± "
                                f"{scale * r[f'test_{metric}_std']:.{digits}f}"),
            ("params", lambda r: f"{r['params_mean']:,.0f}")]
    if rows and all("macs_mean" in r for r in rows):
        cols.append(("MACs", lambda r: f"{r['macs_mean']:,.0f}"))
    cols += [("search (s)", lambda r: f"{r['search_seconds_mean']:.1f}"),
             ("train (s)", lambda r: f"{r['train_seconds_mean']:.1f}")]
    if rows and all("paper" in r for r in rows):
        cols.append((PAPER[space][0], lambda r: r["paper"]))
    return cols


def format_table(rows: List[dict], space: str = "cnn") -> str:
    """The rows as a markdown table (also readable when printed)."""
    cols = _columns(rows, space)
    lines = ["| " + " | ".join(h for h, _ in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(r) for _, cell in cols) + " |" for r in rows]
    return "\n".join(lines)


def table_csv(rows: List[dict]) -> str:
    keys = list(rows[0]) if rows else []
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r[k] for k in keys})
    return buf.getvalue()


def plot_comparison(result: dict):
    """A figure with four panels: the test metric, search time, training time, parameters.

    Bars (squares for the metric) are the means with one standard deviation; dots are the single runs.
    """
    from matplotlib.figure import Figure
    runs, rows = result["runs"], result["rows"]
    space = result["settings"].get("space", "cnn")
    sp = get_space(space)
    heading, scale = _metric_label(sp.metric)
    first = (f"test_{sp.metric}", heading + ("" if sp.higher_is_better else " (lower is better)"), scale)
    panels = [first, ("search_seconds", "search time (s)", 1.0),
              ("train_seconds", "training time (s)", 1.0), ("params", "parameters", 1.0)]
    fig = Figure(figsize=(13, 3.4), layout="constrained")
    axes = fig.subplots(1, 4)
    methods = [r["method"] for r in rows]
    colors = ["tab:blue", "tab:orange", "tab:gray", "tab:green", "tab:red"]
    for ax, (key, label, scale) in zip(axes, panels):
        for i, m in enumerate(methods):
            vals = [scale * r[key] for r in runs if r["method"] == m]
            mean, std = _mean_std(vals)
            color = colors[i % len(colors)]
            if key == first[0]:        # points, not bars: the y axis zooms in on the differences
                ax.errorbar(i, mean, yerr=std, fmt="s", color=color, ms=8, capsize=5)
            else:
                ax.bar(i, mean, yerr=std, color=color, alpha=0.6, capsize=4)
            ax.plot([i] * len(vals), vals, "k.", ms=5)
        ax.set_xticks(range(len(methods)), [m.replace("DARTS ", "").strip("()") for m in methods],
                      rotation=20)
        ax.set_title(label, fontsize=10)
        if key == first[0]:
            ax.set_xlim(-0.5, len(methods) - 0.5)
    fig.suptitle(f"end-to-end comparison ({space}), seeds {result['settings']['seeds']}", fontsize=11)
    return fig


def write_comparison(result: dict, out) -> Dict[str, Path]:
    """Write results.json, table.md, table.csv and comparison.png into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "md": out / "table.md", "csv": out / "table.csv",
             "png": out / "comparison.png"}
    atomic_write_text(paths["json"], json.dumps(result, indent=1) + "\n")
    atomic_write_text(paths["md"], format_table(result["rows"], result["settings"].get("space", "cnn")) + "\n")
    atomic_write_text(paths["csv"], table_csv(result["rows"]))
    buf = io.BytesIO()
    plot_comparison(result).savefig(buf, format="png", dpi=100)
    atomic_write_bytes(paths["png"], buf.getvalue())
    return paths
