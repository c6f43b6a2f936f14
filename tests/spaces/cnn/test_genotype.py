import json

import numpy as np
import pytest

from dartsviz.spaces.cnn.genotype import (DARTS_V1, DARTS_V2, GENOTYPES, Genotype, count_ops, derive, derive_cell,
                               edges_of, parse_genotype, random_genotype)
from dartsviz.spaces.cnn.ops import PRIMITIVES

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


NETWORKS = ["SearchNetwork", "FastSearchNetwork"]


def _network(name, seed=0):
    """A tiny supernet (3 cells, 2 channels) of class `name`: only its alphas matter here."""
    import torch
    from dartsviz.spaces.cnn.fastnet import FastSearchNetwork
    from dartsviz.spaces.cnn.supernet import SearchNetwork
    torch.manual_seed(seed)
    cls = {"SearchNetwork": SearchNetwork, "FastSearchNetwork": FastSearchNetwork}[name]
    return cls(C=2, num_classes=10, layers=3, in_channels=1)


def _set_alphas(net, normal, reduce):
    import torch
    with torch.no_grad():
        net.alpha_normal.copy_(torch.as_tensor(normal, dtype=net.alpha_normal.dtype))
        net.alpha_reduce.copy_(torch.as_tensor(reduce, dtype=net.alpha_reduce.dtype))


def _logits(rows):
    """(14, 8) logits: zero except {edge: {op: logit}} (op "*" sets every op of that edge)."""
    e = {edge: i for i, edge in enumerate(edges_of(4))}
    z = np.zeros((14, 8))
    for edge, ops in rows.items():
        for op, v in ops.items():
            if op == "*":
                z[e[edge]] += v
            else:
                z[e[edge], OP[op]] = v
    return z


@pytest.mark.parametrize("net_name", NETWORKS)
def test_network_genotype_ranks_by_softmax_weights_not_raw_logits_nor_none(net_name):
    """`genotype()` of a supernet whose alphas are set so that the right genotype is known by
    construction, and ranking edges by raw logits, by weights that include `none`, or picking
    `none` as an op would each give a different one."""
    normal = _logits({
        (0, 2): {"dil_conv_5x5": 1.0}, (1, 2): {"max_pool_3x3": 1.0},
        # node 3: (1,3) has the largest raw logit (3.0) but flat logits, so the lowest softmax
        # weight (0.19); softmax ranks (0,3) (0.9996) and (2,3) (0.28) first
        (0, 3): {"*": -5.0, "sep_conv_3x3": 2.0},
        (1, 3): {"*": 2.5, "sep_conv_3x3": 3.0},
        (2, 3): {"dil_conv_3x3": 1.0},
        # node 4: on (0,4) `none` is by far the largest weight but its strongest real op is the
        # weakest in the node: ignoring `none` keeps (1,4) and (3,4)
        (0, 4): {"none": 5.0, "max_pool_3x3": 0.5},
        (1, 4): {"skip_connect": 1.5}, (3, 4): {"sep_conv_5x5": 0.5},
        (2, 5): {"avg_pool_3x3": 1.0}, (4, 5): {"sep_conv_3x3": 2.0},
    })
    reduce = _logits({
        (0, 2): {"skip_connect": 0.5}, (1, 2): {"sep_conv_3x3": 0.5},
        (1, 3): {"max_pool_3x3": 2.0}, (2, 3): {"dil_conv_5x5": 1.0},
        (2, 4): {"avg_pool_3x3": 1.0}, (3, 4): {"none": 0.5, "dil_conv_3x3": 1.5},
        # node 5: adding 10 to every logit of (1,5) leaves its weights uniform (1/8): not kept
        (0, 5): {"sep_conv_5x5": 1.0}, (1, 5): {"*": 10.0}, (3, 5): {"skip_connect": 0.7},
    })
    expected = Genotype(
        normal=((("dil_conv_5x5", 0), ("max_pool_3x3", 1)), (("sep_conv_3x3", 0), ("dil_conv_3x3", 2)),
                (("skip_connect", 1), ("sep_conv_5x5", 3)), (("avg_pool_3x3", 2), ("sep_conv_3x3", 4))),
        normal_concat=(2, 3, 4, 5),
        reduce=((("skip_connect", 0), ("sep_conv_3x3", 1)), (("max_pool_3x3", 1), ("dil_conv_5x5", 2)),
                (("avg_pool_3x3", 2), ("dil_conv_3x3", 3)), (("sep_conv_5x5", 0), ("skip_connect", 3))),
        reduce_concat=(2, 3, 4, 5))
    net = _network(net_name)
    _set_alphas(net, normal, reduce)
    assert net.genotype() == expected
    _set_alphas(net, reduce, normal)                     # the genotype follows the alphas
    assert net.genotype() == Genotype(expected.reduce, (2, 3, 4, 5), expected.normal, (2, 3, 4, 5))


def _oracle_cell(logits, k=2, tol=1e-6):
    """The DARTS rule written out plainly on a (14, 8) list of logits: softmax every edge; for
    each node keep the k incoming edges whose largest non-`none` weight is largest; on each the
    non-`none` op of largest weight. None when a decision is closer than `tol` (a near tie)."""
    import math
    none = PRIMITIVES.index("none")
    weights = []
    for row in logits:
        m = max(row)
        ex = [math.exp(v - m) for v in row]
        weights.append([v / sum(ex) for v in ex])
    cell, row = [], 0
    for dst in range(2, 6):
        cand = []
        for src in range(dst):
            w = weights[row + src]
            real = sorted(((w[o], o) for o in range(len(PRIMITIVES)) if o != none), reverse=True)
            if real[0][0] - real[1][0] < tol:
                return None
            cand.append((real[0][0], src, PRIMITIVES[real[0][1]]))
        cand.sort(reverse=True)
        if len(cand) > k and cand[k - 1][0] - cand[k][0] < tol:
            return None
        cell.append(tuple((op, src) for _, src, op in sorted(cand[:k], key=lambda c: c[1])))
        row += dst
    return tuple(cell)


@pytest.mark.parametrize("net_name", NETWORKS)
@pytest.mark.parametrize("scale", [1e-3, 1.0, 3.0])
def test_network_genotype_matches_a_plain_implementation_of_the_rule(net_name, scale):
    """`genotype()` on random alphas (near-uniform at the search's start, sharp later) equals
    the rule computed independently from the same alphas."""
    import torch
    net = _network(net_name)
    g = torch.Generator().manual_seed(int(scale * 1000))
    checked = 0
    while checked < 15:
        a = scale * torch.randn(2, 14, 8, generator=g)             # (cells, E, O)
        _set_alphas(net, a[0], a[1])
        logits = [x.double().tolist() for x in (net.alpha_normal.detach(), net.alpha_reduce.detach())]
        normal, reduce = _oracle_cell(logits[0]), _oracle_cell(logits[1])
        if normal is None or reduce is None:
            continue                                               # a near tie: float32 may go either way
        assert net.genotype() == Genotype(normal, (2, 3, 4, 5), reduce, (2, 3, 4, 5)), checked
        checked += 1


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
