"""dartsviz: learn, teach and run DARTS (Differentiable Architecture Search)."""
from .records import EpochRecord, StepRecord
from .spaces import SearchSpace, get_space, register_space, space_names
from .methods import Method, get_method, method_names, register_method
from .spaces.cnn import (DARTS_V1, DARTS_V2, GENOTYPES, OPS, PRIMITIVES, FastSearchNetwork, Genotype, MixedOp,
                         SearchCell, SearchNetwork, derive, parse_genotype, random_genotype)
from .spaces.cnn.network import NetworkEval, count_macs
from .spaces.rnn import DARTS_RNN_V1, DARTS_RNN_V2, RNNGenotype
from .search import PRESETS, Search, SearchConfig
from .train import TRAIN_PRESETS, Train, TrainConfig, resolve_genotype
from .experiments import compare_end_to_end, random_baseline

__version__ = "0.1.0"

_VIEWS = {"Dashboard": "dashboard", "Compare": "compare", "Replay": "replay"}


def __getattr__(name):
    """Dashboard, Compare and Replay load ipywidgets only when first used."""
    if name in _VIEWS:
        import importlib
        return getattr(importlib.import_module(f".viz.{_VIEWS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "StepRecord", "EpochRecord", "SearchSpace", "get_space", "register_space", "space_names",
    "Method", "get_method", "method_names", "register_method",
    "DARTS_V1", "DARTS_V2", "GENOTYPES", "Genotype", "derive", "parse_genotype", "random_genotype",
    "OPS", "PRIMITIVES", "PRESETS", "Search", "SearchConfig", "MixedOp", "SearchCell", "SearchNetwork",
    "FastSearchNetwork", "NetworkEval", "count_macs", "TRAIN_PRESETS", "Train", "TrainConfig",
    "resolve_genotype", "compare_end_to_end", "random_baseline", "Dashboard", "Compare", "Replay",
    "DARTS_RNN_V1", "DARTS_RNN_V2", "RNNGenotype",
]
