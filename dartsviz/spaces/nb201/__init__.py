"""The NAS-Bench-201 search space: genotype (text form, derivation), networks, space, trainer."""
