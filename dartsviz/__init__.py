"""dartsviz: learn, teach and run DARTS (Differentiable Architecture Search)."""
from .genotype import DARTS_V1, DARTS_V2, GENOTYPES, Genotype, derive, parse_genotype, random_genotype
from .ops import OPS, PRIMITIVES
from .search import PRESETS, Search, SearchConfig
from .supernet import MixedOp, SearchCell, SearchNetwork

__version__ = "0.1.0"

_VIEWS = {"Dashboard": "dashboard", "Compare": "compare", "Replay": "replay"}


def __getattr__(name):
    """Dashboard, Compare and Replay load ipywidgets only when first used."""
    if name in _VIEWS:
        import importlib
        return getattr(importlib.import_module(f".viz.{_VIEWS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DARTS_V1", "DARTS_V2", "GENOTYPES", "Genotype", "derive", "parse_genotype", "random_genotype",
    "OPS", "PRIMITIVES", "PRESETS", "Search", "SearchConfig", "MixedOp", "SearchCell", "SearchNetwork",
    "Dashboard", "Compare", "Replay",
]

# training from scratch, random baseline, end-to-end comparison (issue 5)
from .evaluate import NetworkEval, count_macs  # noqa: E402
from .train import TRAIN_PRESETS, Train, TrainConfig, resolve_genotype  # noqa: E402
from .baseline import compare_end_to_end, random_baseline  # noqa: E402

__all__ += ["NetworkEval", "count_macs", "TRAIN_PRESETS", "Train", "TrainConfig", "resolve_genotype",
            "compare_end_to_end", "random_baseline"]

# the edge-batched supernet, the default implementation (issue 4)
from .fastnet import FastSearchNetwork  # noqa: E402

__all__ += ["FastSearchNetwork"]
