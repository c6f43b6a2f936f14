"""dartsviz: learn, teach and run DARTS (Differentiable Architecture Search)."""
from .genotype import DARTS_V1, DARTS_V2, GENOTYPES, Genotype, derive, parse_genotype, random_genotype
from .ops import OPS, PRIMITIVES
from .search import PRESETS, Search, SearchConfig
from .supernet import MixedOp, SearchCell, SearchNetwork

__version__ = "0.1.0"

__all__ = [
    "DARTS_V1", "DARTS_V2", "GENOTYPES", "Genotype", "derive", "parse_genotype", "random_genotype",
    "OPS", "PRIMITIVES", "PRESETS", "Search", "SearchConfig", "MixedOp", "SearchCell", "SearchNetwork",
]
