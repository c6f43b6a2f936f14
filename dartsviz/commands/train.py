"""`dartsviz train`: train a genotype's network from scratch (tiny preset on digits by default)."""
from __future__ import annotations

from pathlib import Path

from .common import (add_run_flags, fresh_run_dir, open_loop, run_loop, run_overrides, run_steps,
                     write_run_plots)


def add_parser(sub):
    p = sub.add_parser("train", help="train a found cell (or DARTS_V1/DARTS_V2, or random ones) from scratch")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--genotype", metavar="RUN_DIR|DARTS_V1|DARTS_V2|TEXT",
                   help="a search run directory, a genotype .json/.txt file, DARTS_V1, DARTS_V2, "
                        "random[:SEED] or Genotype(normal=[...], ...) text")
    g.add_argument("--random", type=int, metavar="N",
                   help="random baseline: train N random cells (seeded by --seed), report mean ± std")
    g.add_argument("--resume", metavar="RUN_DIR", help="continue the training saved in RUN_DIR")
    add_run_flags(p, "network")
    p.add_argument("--lr", type=float, help="initial learning rate")
    p.add_argument("--drop-path-prob", type=float, help="final drop-path probability")
    p.add_argument("--no-auxiliary", action="store_true", help="no auxiliary head")
    p.add_argument("--no-cutout", action="store_true", help="no cutout")
    p.add_argument("--out", help="run directory (default runs/train-DATASET-TIME)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--no-plots", action="store_true",
                   help="do not write the training curves and cells to RUN_DIR/plots at the end")
    p.set_defaults(func=run)
    return p


def _overrides(args) -> dict:
    out = run_overrides(args, ("lr", "drop_path_prob"))
    if args.no_auxiliary:
        out["auxiliary"] = False
    if args.no_cutout:
        out["cutout"] = False
    return out


def _random_baseline(args, config) -> int:
    import random
    from ..data import load_data
    from ..spaces.cnn.genotype import random_genotype
    from ..search import resolve_device
    from ..train import Train
    from ..baseline import _mean_std
    if args.random <= 0:
        raise ValueError(f"--random must be positive, got {args.random}")
    if args.steps:
        raise ValueError("--steps does not go with --random: every cell trains the full budget (use --epochs)")
    data = load_data(config.dataset, config.data_dir, config.download, resolve_device(config.device))
    rng = random.Random(config.seed)
    accs = []
    for i in range(args.random):
        out = Path(args.out) / f"random{i}" if args.out else None
        train = Train(random_genotype(rng), config, out=out, data=data)
        if i == 0:
            print(f"network: {train.params:,} parameters, {train.macs:,} multiply-adds")
        run_steps(train, None, args.quiet, f"random {i + 1}/{args.random}", _lr)
        accs.append(train.test_acc)
        print(f"random cell {i + 1}: test accuracy {train.test_acc:.4f}   {train.genotype.to_text()}")
        if train.interrupted:
            return 130
    mean, std = _mean_std(accs)
    print(f"random baseline ({args.random} cells, seed {config.seed}): "
          f"test accuracy {100 * mean:.2f} ± {100 * std:.2f} %")
    if args.out:
        import json
        from ..runs import atomic_write_text
        atomic_write_text(Path(args.out) / "baseline.json", json.dumps(
            {"n": args.random, "seed": config.seed, "test_accs": accs, "test_acc_mean": mean,
             "test_acc_std": std, "config": config.to_dict()}, indent=1) + "\n")
        print(f"written: {Path(args.out) / 'baseline.json'}")
    return 0


def _lr(r) -> dict:
    return {"lr": f"{r['lr']:.4f}"}


def run(args) -> int:
    from ..train import Train, TrainConfig, resolve_genotype
    overrides = _overrides(args)
    if args.random is not None:               # --random excludes --resume (one argparse group)
        return _random_baseline(args, TrainConfig.preset(args.preset, **overrides))

    def new(config):
        if not args.genotype:
            raise ValueError("give --genotype RUN_DIR|DARTS_V1|DARTS_V2|TEXT, --random N or --resume RUN_DIR")
        return Train(resolve_genotype(args.genotype), config,
                     out=fresh_run_dir(args, f"train-{config.dataset.replace(':', '_')}"))

    def report(train):
        acc = train.test_acc
        if acc is None:
            _, acc = train.evaluate("test")
        print(f"test accuracy: {acc:.4f}")
        if not getattr(args, "no_plots", False) and not train.interrupted:
            write_run_plots(train, args)
        print(f"run directory: {train.run_dir.path}")

    train = open_loop(args, Train, TrainConfig, overrides, new)
    print(f"genotype: {train.genotype.to_text()}")
    print(f"network: {train.config.layers} cells, {train.config.channels} channels, "
          f"{train.params:,} parameters, {train.macs:,} multiply-adds")
    return run_loop(train, args, "train", extra=_lr, report=report)
