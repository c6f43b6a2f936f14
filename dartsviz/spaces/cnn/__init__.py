"""The convolutional space of DARTS: ops, the supernet (reference and edge-batched), the
genotype and its derivation, and the evaluation network (CIFAR-10, ImageNet-shaped inputs)."""
from .genotype import DARTS_V1, DARTS_V2, GENOTYPES, Genotype, derive, parse_genotype, random_genotype
from .ops import OPS, PARAMETER_FREE, PRIMITIVES
from .space import CNN, IMPLS, CNNSpace
from .supernet import MixedOp, SearchCell, SearchNetwork
from .fastnet import FastSearchNetwork

__all__ = ["DARTS_V1", "DARTS_V2", "GENOTYPES", "Genotype", "derive", "parse_genotype", "random_genotype",
           "OPS", "PARAMETER_FREE", "PRIMITIVES", "CNN", "IMPLS", "CNNSpace", "MixedOp", "SearchCell",
           "SearchNetwork", "FastSearchNetwork"]
