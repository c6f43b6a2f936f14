"""`dartsviz train`: train a genotype's network from scratch (tiny preset on digits by default)."""
from __future__ import annotations

import sys
from pathlib import Path

from .common import add_run_flags, fresh_run_dir, refuse_out_with_resume, run_overrides


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
    p.set_defaults(func=run)
    return p


def _overrides(args) -> dict:
    out = run_overrides(args, ("lr", "drop_path_prob"))
    if args.no_auxiliary:
        out["auxiliary"] = False
    if args.no_cutout:
        out["cutout"] = False
    return out


def progress_printer(train, total: int, quiet: bool, desc: str = "train"):
    """A tqdm bar fed by the training's records."""
    if quiet:
        return None, None
    from tqdm.auto import tqdm
    bar = tqdm(total=total, initial=min(train.step_count, total), unit="step", file=sys.stderr,
               dynamic_ncols=True, desc=desc)

    def on_record(r):
        if r["kind"] == "step":
            bar.update(1)
            bar.set_postfix(ep=r["epoch"], loss=f"{r['train_loss']:.3f}", acc=f"{r['train_acc']:.2f}",
                            lr=f"{r['lr']:.4f}", refresh=False)
        else:
            bar.write(f"epoch {r['epoch']}: train acc {r['train_acc']:.3f}  test acc {r['test_acc']:.3f}  "
                      f"{r['seconds']:.1f}s")
    return bar, on_record


def _train_one(train, steps, quiet, desc="train"):
    remaining = max(0, train.total_steps - train.step_count)
    steps = min(remaining, steps) if steps else remaining
    bar, on_record = progress_printer(train, train.step_count + steps, quiet, desc)
    if on_record:
        train.subscribe(on_record)
    try:
        train.run(steps=steps)
    finally:
        if bar is not None:
            bar.close()
        if on_record:
            train.unsubscribe(on_record)


def _random_baseline(args, config) -> int:
    import random
    from ..data import load_data
    from ..genotype import random_genotype
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
        _train_one(train, None, args.quiet, desc=f"random {i + 1}/{args.random}")
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


def run(args) -> int:
    from ..train import Train, TrainConfig, resolve_genotype
    overrides = _overrides(args)
    refuse_out_with_resume(args)
    if args.resume:
        train = Train.resume(args.resume, **overrides)
    else:
        config = TrainConfig.preset(args.preset, **overrides)
        if args.random is not None:
            return _random_baseline(args, config)
        if not args.genotype:
            raise ValueError("give --genotype RUN_DIR|DARTS_V1|DARTS_V2|TEXT, --random N or --resume RUN_DIR")
        genotype = resolve_genotype(args.genotype)
        train = Train(genotype, config, out=fresh_run_dir(args, f"train-{config.dataset.replace(':', '_')}"))
    print(f"genotype: {train.genotype.to_text()}")
    print(f"network: {train.config.layers} cells, {train.config.channels} channels, "
          f"{train.params:,} parameters, {train.macs:,} multiply-adds")
    _train_one(train, args.steps, args.quiet)
    acc = train.test_acc
    if acc is None:
        _, acc = train.evaluate("test")
    print(f"test accuracy: {acc:.4f}")
    print(f"run directory: {train.run_dir.path}")
    if train.interrupted:
        sys.stderr.write(f"interrupted at step {train.step_count}; continue with: "
                         f"dartsviz train --resume {train.run_dir.path}\n")
        return 130
    return 0
