"""The recurrent space of DARTS: the genotype and its derivation, the search cell and a
genotype's cell, the language models around them (supernet and final network)."""
from .genotype import (ACTIVATIONS, DARTS_RNN_V1, DARTS_RNN_V2, ENAS_RNN, GENOTYPES, PRIMITIVES, STEPS,
                       RNNGenotype, derive, edges_of, parse_genotype, random_genotype)
from .cell import Cell, SearchCell
from .model import LanguageModel, RNNModel, RNNSearchModel, count_parameters
from .space import RNN, RNNSpace

__all__ = ["ACTIVATIONS", "DARTS_RNN_V1", "DARTS_RNN_V2", "ENAS_RNN", "GENOTYPES", "PRIMITIVES", "STEPS",
           "RNNGenotype", "derive", "edges_of", "parse_genotype", "random_genotype", "Cell", "SearchCell",
           "LanguageModel", "RNNModel", "RNNSearchModel", "count_parameters", "RNN", "RNNSpace"]
