"""`dartsviz train`: train a genotype's network from scratch (tiny preset on digits by default)."""
from __future__ import annotations

from pathlib import Path

from ..spaces import space_names
from .common import (add_run_flags, fresh_run_dir, open_loop, refuse_unused_flags, run_loop, run_overrides,
                     run_steps, write_run_plots)


def add_parser(sub):
    p = sub.add_parser("train", help="train a found cell (or DARTS_V1/DARTS_V2, or random ones) from scratch")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--genotype", metavar="RUN_DIR|DARTS_V1|DARTS_V2|TEXT",
                   help="a search run directory, a genotype .json/.txt file, DARTS_V1, DARTS_V2 "
                        "(rnn: DARTS_RNN_V1, DARTS_RNN_V2), random[:SEED] or Genotype(...) text")
    g.add_argument("--random", type=int, metavar="N",
                   help="random baseline: train N random cells (seeded by --seed), report mean ± std")
    g.add_argument("--resume", metavar="RUN_DIR", help="continue the training saved in RUN_DIR")
    add_run_flags(p, "network", "tiny (digits on a CPU, the default), paper (the paper's CIFAR-10 evaluation: "
                                "20 cells, 36 channels, 600 epochs), imagenet (the paper's ImageNet transfer; "
                                "--dataset imagenet picks it), imagenet_tiny; with --space rnn: tiny (the embedded "
                                "corpus), paper (PTB)")
    p.add_argument("--space", choices=space_names(),
                   help="the space of the genotype: cnn (default; an image classifier) or rnn (a language "
                        "model; --preset tiny trains on the embedded corpus); a run directory names its own")
    p.add_argument("--nhid", type=int, help="rnn: embedding and hidden width")
    p.add_argument("--lr", type=float, help="initial learning rate")
    p.add_argument("--drop-path-prob", type=float, help="final drop-path probability")
    p.add_argument("--no-auxiliary", action="store_true", help="no auxiliary head")
    p.add_argument("--no-cutout", action="store_true", help="no cutout")
    p.add_argument("--workers", type=int, metavar="N",
                   help="--dataset imagenet: DataLoader worker processes reading the image folders")
    p.add_argument("--out", help="run directory (default runs/train-DATASET-TIME)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--no-plots", action="store_true",
                   help="do not write the training curves and cells to RUN_DIR/plots at the end")
    p.set_defaults(func=run)
    return p


def _space(args) -> str:
    """The space trained: --space, else the resumed run directory's, else cnn."""
    if args.resume and not args.space:
        from ..runs import RunDir
        if Path(args.resume).exists():
            return RunDir(Path(args.resume) if Path(args.resume).is_dir() else Path(args.resume).parent).space_name
    return args.space or "cnn"


def _overrides(args, space) -> dict:
    refuse_unused_flags(args, space, space.unused_train_flags)
    out = run_overrides(args, ("lr", "drop_path_prob", "nhid", "workers"))
    if out.get("nhid", 1) <= 0:
        raise ValueError(f"--nhid must be positive, got {out['nhid']}")
    if args.no_auxiliary:
        out["auxiliary"] = False
    if args.no_cutout:
        out["cutout"] = False
    return out


def _random_baseline(args, space, config) -> int:
    """`dartsviz train --random N`: `experiments.random_baseline` with a progress bar per cell."""
    from ..experiments import metric_words, random_baseline
    if args.random <= 0:
        raise ValueError(f"--random must be positive, got {args.random}")
    if args.steps:
        raise ValueError("--steps does not go with --random: every cell trains the full budget (use --epochs)")
    result = random_baseline(
        args.random, config, seed=config.seed, space=space, out=args.out, log=print,
        run=lambda train, i: run_steps(train, None, args.quiet, f"random {i + 1}/{args.random}", _lr))
    if result["interrupted"]:
        return 130
    metric = f"test_{space.metric}"
    mean, std = result[f"{metric}_mean"], result[f"{metric}_std"]
    scale = 100 if space.metric == "acc" else 1
    print(f"random baseline ({args.random} cells, seed {config.seed}): "
          f"{metric_words(space)} {scale * mean:.2f} ± {scale * std:.2f}{' %' if scale == 100 else ''}")
    if args.out:
        print(f"written: {Path(args.out) / 'results.json'}, {Path(args.out) / 'table.md'}")
    return 0


def _lr(r) -> dict:
    return {"lr": f"{r['lr']:.4f}"}


def run(args) -> int:
    from ..spaces import get_space
    space = get_space(_space(args))
    from ..train import Train
    config_cls = space.trainer().config_class
    overrides = _overrides(args, space)
    if args.random is not None:               # --random excludes --resume (one argparse group)
        return _random_baseline(args, space, config_cls.preset(args.preset, **overrides))
    names = "|".join(space.paper_genotypes)

    def new(config):
        from ..train import resolve_genotype
        if not args.genotype:
            raise ValueError(f"give --genotype RUN_DIR|{names}|TEXT, --random N or --resume RUN_DIR")
        return Train(resolve_genotype(args.genotype, space), config,
                         out=fresh_run_dir(args, f"train-{config.dataset.replace(':', '_')}"))

    from ..experiments import metric_words

    def report(train):
        summary = train.summary()
        value = summary.get(f"test_{space.metric}")
        if value is None:
            value = train.evaluate("test")[space.metric]
        print(f"{metric_words(space)}: {value:.4f}")
        for line in train.trainer.report_lines(summary):
            print(line)
        if not getattr(args, "no_plots", False) and not train.interrupted:
            write_run_plots(train, args)
        print(f"run directory: {train.run_dir.path}")

    train = open_loop(args, Train, config_cls, overrides, new)
    print(f"genotype: {train.genotype.to_text()}")
    for line in space.genotype_notes(train.genotype, train.config.dataset):
        print(line)
    print(train.network_line())
    return run_loop(train, args, "train", extra=_lr, report=report)
