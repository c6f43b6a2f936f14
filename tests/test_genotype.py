import json

import numpy as np
import pytest

from dartsviz.genotype import (DARTS_V1, DARTS_V2, GENOTYPES, Genotype, count_ops, derive, derive_cell,
                               edges_of, parse_genotype, random_genotype)
from dartsviz.ops import PRIMITIVES

OP = {name: i for i, name in enumerate(PRIMITIVES)}


def _probs(hot):
    """Softmax-like weights: 14 edges, near-uniform except the (edge, op, weight) entries in `hot`."""
    p = np.full((14, 8), 0.1)
    for edge, op, w in hot:
        p[edge, OP[op]] = w
    return p / p.sum(1, keepdims=True)


def test_edges_are_ordered_node_by_node():
    assert edges_of(4)[:5] == [(0, 2), (1, 2), (0, 3), (1, 3), (2, 3)]
    assert len(edges_of(4)) == 14


def test_derivation_keeps_two_strongest_edges_and_best_non_none_op():
    e = {edge: i for i, edge in enumerate(edges_of(4))}
    hot = [
        (e[(0, 3)], "sep_conv_5x5", 0.9), (e[(2, 3)], "max_pool_3x3", 0.8), (e[(1, 3)], "skip_connect", 0.3),
        # node 4: `none` is the largest weight on edge (0, 4); it must be ignored for both the
        # ranking (edge strength = strongest non-none op) and the op choice
        (e[(0, 4)], "none", 5.0), (e[(0, 4)], "avg_pool_3x3", 3.0),
        (e[(3, 4)], "dil_conv_3x3", 0.7), (e[(1, 4)], "sep_conv_3x3", 0.3),
    ]
    cell = derive_cell(_probs(hot))
    assert cell[1] == (("sep_conv_5x5", 0), ("max_pool_3x3", 2))
    assert cell[2] == (("avg_pool_3x3", 0), ("dil_conv_3x3", 3))
    assert all(op != "none" for node in cell for op, _ in node)
    assert [len(node) for node in cell] == [2, 2, 2, 2]


def test_derivation_ranks_by_softmax_weights_not_raw_logits():
    # Edge A has one large logit among negatives; edge B has a larger logit but its softmax
    # weight is lower because its other logits are large too. Softmax ranks A first.
    logits = np.zeros((14, 8))
    logits[0] = [-5, -5, -5, -5, 2.0, -5, -5, -5]     # (0,2): strong relative preference
    logits[1] = [2.5, 2.5, 2.5, 2.5, 3.0, 2.5, 2.5, 2.5]  # (1,2): larger raw max, flat weights
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    node2 = derive_cell(probs)[0]
    assert node2 == (("sep_conv_3x3", 0), ("sep_conv_3x3", 1))  # both kept: node 2 has only two edges
    logits2 = np.zeros((14, 8))
    logits2[2] = [-5, -5, -5, -5, 2.0, -5, -5, -5]    # (0,3)
    logits2[3] = [2.5, 2.5, 2.5, 2.5, 3.0, 2.5, 2.5, 2.5]  # (1,3)
    logits2[4] = [0, 0, 0, 0, 0, 0, 1.0, 0]           # (2,3)
    probs2 = np.exp(logits2) / np.exp(logits2).sum(1, keepdims=True)
    assert [src for _, src in derive_cell(probs2)[1]] == [0, 2]


def test_derive_gives_both_cells_and_concat():
    rng = np.random.default_rng(0)
    pn, pr = rng.dirichlet(np.ones(8), 14), rng.dirichlet(np.ones(8), 14)
    g = derive(pn, pr)
    assert g.normal == derive_cell(pn) and g.reduce == derive_cell(pr)
    assert g.normal_concat == g.reduce_concat == (2, 3, 4, 5)


@pytest.mark.parametrize("g", [DARTS_V1, DARTS_V2])
def test_paper_genotypes_round_trip_through_text_and_json(g):
    assert parse_genotype(g.to_text()) == g
    assert Genotype.from_json(g.to_json()) == g
    assert Genotype.from_dict(json.loads(json.dumps(g.to_dict()))) == g


def test_paper_cells_match_the_reference_text():
    text = ("DARTS_V2 = Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
            "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
            "('dil_conv_3x3', 2)], normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), "
            "('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), "
            "('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=range(2, 6))")
    assert parse_genotype(text) == DARTS_V2 == GENOTYPES["DARTS_V2"]
    assert DARTS_V1.normal[3] == (("sep_conv_3x3", 0), ("skip_connect", 2))
    assert count_ops(DARTS_V1.reduce)["max_pool_3x3"] == 4


@pytest.mark.parametrize("text,msg", [
    ("Genotype(normal=[('sep_conv_3x3', 1)", "does not parse"),
    ("Genome(normal=[], normal_concat=[], reduce=[], reduce_concat=[])", "must be a call Genotype"),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('conv_9x9', 1)], normal_concat=[2], "
     "reduce=[('skip_connect', 0), ('skip_connect', 1)], reduce_concat=[2])", "unknown op 'conv_9x9'"),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 5)], normal_concat=[2], "
     "reduce=[('skip_connect', 0), ('skip_connect', 1)], reduce_concat=[2])", "input 5"),
    ("Genotype(normal=[('sep_conv_3x3', 0)], normal_concat=[2], reduce=[], reduce_concat=[2])", "pairs"),
    ("Genotype(normal=[('none', 0), ('skip_connect', 1)], normal_concat=[2], "
     "reduce=[('skip_connect', 0), ('skip_connect', 1)], reduce_concat=[2])", "unknown op 'none'"),
    ("Genotype(normal=__import__('os').system('true'), normal_concat=[2], reduce=[], reduce_concat=[2])",
     "unexpected"),
    ("Genotype(normal=[('skip_connect', 0), ('skip_connect', 1)], normal_concat=[2])", "lacks reduce"),
    ("", "does not parse"),
])
def test_malformed_text_raises_a_clear_value_error(text, msg):
    with pytest.raises(ValueError, match=msg):
        parse_genotype(text)


def test_malformed_json_raises_value_error():
    with pytest.raises(ValueError, match="does not parse"):
        Genotype.from_json("{not json")
    with pytest.raises(ValueError, match="lacks"):
        Genotype.from_json('{"normal": []}')


def test_random_genotypes_are_valid_seeded_and_varied():
    a, b = random_genotype(3), random_genotype(3)
    assert a == b
    assert len({random_genotype(s).to_text() for s in range(20)}) == 20
    for s in range(20):
        g = random_genotype(s)
        for cell in (g.normal, g.reduce):
            for i, node in enumerate(cell):
                srcs = [src for _, src in node]
                assert len(set(srcs)) == 2 and all(0 <= src < i + 2 for src in srcs)
