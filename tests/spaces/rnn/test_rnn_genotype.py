"""The recurrent genotype: text and JSON round trips without eval, one-line refusals, the
edge order and the DARTS derivation rule on hand-made weights."""
import json

import numpy as np
import pytest

from dartsviz import get_space
from dartsviz.spaces.rnn import (DARTS_RNN_V1, DARTS_RNN_V2, ENAS_RNN, GENOTYPES, PRIMITIVES, RNNGenotype, derive,
                                 edges_of, parse_genotype, random_genotype)

V2_TEXT = ("Genotype(recurrent=[('sigmoid', 0), ('relu', 1), ('relu', 1), ('identity', 1), ('tanh', 2), "
           "('sigmoid', 5), ('tanh', 3), ('relu', 5)], concat=range(1, 9))")


def test_the_paper_cells_are_the_reference_values_and_round_trip_through_text_and_json():
    assert DARTS_RNN_V2.recurrent == (("sigmoid", 0), ("relu", 1), ("relu", 1), ("identity", 1),
                                      ("tanh", 2), ("sigmoid", 5), ("tanh", 3), ("relu", 5))
    assert DARTS_RNN_V1.recurrent == (("relu", 0), ("relu", 1), ("tanh", 2), ("relu", 3),
                                      ("relu", 4), ("identity", 1), ("relu", 5), ("relu", 1))
    assert DARTS_RNN_V2.concat == tuple(range(1, 9)) and GENOTYPES["DARTS"] is DARTS_RNN_V2
    assert DARTS_RNN_V2.to_text() == V2_TEXT
    for g in (DARTS_RNN_V1, DARTS_RNN_V2, ENAS_RNN, random_genotype(5)):
        assert parse_genotype(g.to_text()) == g
        assert RNNGenotype.from_dict(json.loads(g.to_json())) == g
    assert ENAS_RNN.to_text().endswith("concat=[2, 5, 6, 9, 10, 11])")
    # the reference's own spellings: a name prefix, positional fields, a list for concat
    assert parse_genotype("DARTS = " + V2_TEXT) == DARTS_RNN_V2
    assert parse_genotype(V2_TEXT.replace("range(1, 9)", str(list(range(1, 9))))) == DARTS_RNN_V2
    assert parse_genotype("Genotype([('tanh', 0)], [1])") == RNNGenotype((("tanh", 0),), (1,))


def test_edges_are_node_by_node_and_a_genotype_keeps_one_per_node():
    assert edges_of()[:6] == [(0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)] and len(edges_of()) == 36
    assert DARTS_RNN_V2.edges("recurrent")[:3] == [(0, 1, "sigmoid"), (1, 2, "relu"), (1, 3, "relu")]
    space = get_space("rnn")
    assert space.concat(DARTS_RNN_V2, "recurrent") == tuple(range(1, 9))
    mask = space.kept_mask(DARTS_RNN_V2, "recurrent", 36)                              # (36, 5)
    assert mask.sum() == 8 and mask[edges_of().index((1, 2)), PRIMITIVES.index("relu")]
    with pytest.raises(ValueError, match="one cell type, 'recurrent'"):
        DARTS_RNN_V2.edges("normal")


@pytest.mark.parametrize("text,message", [
    ("Genotype(recurrent=[('tanh', 0)", "does not parse"),
    ("Genotype(recurrent=[('tanh', 0)])", "lacks concat"),
    ("Genotype(recurrent=[('conv', 0)], concat=[1])", "node 1: unknown op 'conv'; known ops: tanh, relu"),
    ("Genotype(recurrent=[('none', 0)], concat=[1])", "unknown op 'none'"),
    ("Genotype(recurrent=[('tanh', 0), ('relu', 2)], concat=[1, 2])", "node 2: predecessor 2 must be in 0..1"),
    ("Genotype(recurrent=[('tanh', -1)], concat=[1])", "predecessor -1"),
    ("Genotype(recurrent=[('tanh', 0)], concat=[3])", "concat entry 3 is not a node in 1..1"),
    ("Genotype(recurrent=[('tanh', 0)], concat=__import__('os').getcwd())", "unexpected"),
    ("Genotype(normal=[('tanh', 0)], concat=[1])", "unknown field 'normal'"),
    ("print('hi')", "must be a call Genotype"),
    ("Genotype(recurrent=['tanh'], concat=[1])", "pairs"),
])
def test_bad_text_is_refused_in_one_line(text, message):
    with pytest.raises(ValueError, match=message) as e:
        parse_genotype(text)
    assert "\n" not in str(e.value)


def _probs(rows):
    """Softmax-like weights (36, 5) from a dict edge -> row; uniform elsewhere."""
    p = np.full((36, 5), 0.2)
    for edge, row in rows.items():
        p[edges_of().index(edge)] = row
    return p


def test_derivation_picks_the_predecessor_with_the_strongest_non_none_op_then_its_op():
    # node 2: edge (0,2) has `none` strongest (0.9) but its best real op is weak (0.04);
    # edge (1,2) has a mild tanh (0.3): the rule ignores `none` and keeps tanh from node 1
    p = _probs({(0, 1): [0.1, 0.1, 0.1, 0.6, 0.1],
                (0, 2): [0.9, 0.04, 0.02, 0.02, 0.02],
                (1, 2): [0.1, 0.3, 0.2, 0.2, 0.2],
                (0, 3): [0.96, 0.01, 0.01, 0.01, 0.01],     # none everywhere into node 3 ...
                (1, 3): [0.96, 0.01, 0.01, 0.01, 0.01],
                (2, 3): [0.92, 0.01, 0.01, 0.01, 0.05]})    # ... identity from 2 is the best real op
    g = derive(p)
    assert g.recurrent[:3] == (("sigmoid", 0), ("tanh", 1), ("identity", 2))
    assert all(pred == 0 and op == "tanh" for op, pred in g.recurrent[3:])      # uniform rows: first of equals
    assert g.concat == tuple(range(1, 9))
    assert get_space("rnn").derive({"recurrent": p}) == g
    # the reference's paper cell comes back from weights that favour it
    p = np.full((36, 5), 0.1)
    for pred, node, op in DARTS_RNN_V2.edges("recurrent"):
        p[edges_of().index((pred, node)), PRIMITIVES.index(op)] = 0.5
    assert derive(p) == DARTS_RNN_V2
    with pytest.raises(ValueError, match="shape"):
        derive(np.zeros((36, 8)))
    with pytest.raises(ValueError, match="35 edges"):
        derive(np.zeros((35, 5)))


def test_random_genotypes_are_valid_and_seeded():
    assert random_genotype(3) == random_genotype(3) != random_genotype(4)
    assert all(0 <= pred < i for i, (_, pred) in enumerate(random_genotype(0).recurrent, 1))
