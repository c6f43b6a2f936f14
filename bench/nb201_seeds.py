"""What DARTS finds in the nb201 space on this machine: first and second order and the variants that
apply, over seeds, with the tiny preset on digits; each derived cell's true CIFAR-10 accuracy and
its skip_connect edges after every epoch and at the end; the query searches beside them.

    OMP_NUM_THREADS=1 python bench/nb201_seeds.py --seeds 0 1 2 --out runs/nb201-seeds

Writes the `dartsviz compare --truth` report into --out and prints two markdown tables: the
final cells (the report's table) and the per-epoch true accuracy and skip count of every search.
"""
from __future__ import annotations

import argparse
import platform
import time

import torch


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--variants", nargs="*", default=["beta_darts", "sdarts_rs"])
    p.add_argument("--epochs", type=int, help="search epochs (default: the tiny preset's)")
    p.add_argument("--out", default="runs/nb201-seeds")
    args = p.parse_args(argv)
    from dartsviz import truth
    from dartsviz.experiments import compare_truth, format_table
    from dartsviz.runs import RunDir
    t0 = time.perf_counter()
    res = compare_truth(seeds=args.seeds, orders=(1, 2), variants=args.variants, out=args.out, epochs=args.epochs,
                        overwrite=True, log=print)
    print(f"\nmachine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{time.perf_counter() - t0:.0f} s in all (each search in a fresh process)\n")
    print(format_table(res))
    print("\nper epoch: true accuracy (%) of the derived cell / its skip_connect edges")
    epochs = None
    lines = []
    for run in res["runs"]:
        records = [r for r in RunDir(f"{args.out}/{run['search_dir']}").read_records() if r.kind == "epoch"]
        epochs = epochs or len(records)
        cells = [f"{truth.lookup(r.genotype).valid_acc:.1f} / {sum(op == 'skip_connect' for op in r.genotype.ops)}"
                 for r in records]
        lines.append(f"| {run['method']} | {run['seed']} | " + " | ".join(cells) + " |")
    print("| search | seed | " + " | ".join(f"epoch {e + 1}" for e in range(epochs or 0)) + " |")
    print("|---|---|" + "---|" * (epochs or 0))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
