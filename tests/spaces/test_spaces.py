"""The search-space seam: a toy third space defined here, in under 100 lines with its trainer,
runs through Search (both orders), the records, the run directory, derivation, the dashboard
and replay, and is trained from scratch, random-baselined and compared end to end, without a
change to any file of the package."""
import contextlib
import json
import random
import re
from dataclasses import dataclass, make_dataclass

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from dartsviz import Search, SearchConfig, StepRecord, get_space, space_names
from dartsviz.config import ConfigBase, RunFields, WeightOptimFields
from dartsviz.data import BatchStream, DataSplits
from dartsviz.runs import RunDir
from dartsviz.spaces import SearchSpace, register_space
from dartsviz.spaces.trainer import SpaceTrainer

# ---- the toy space: input node 0, nodes 1 and 2, ops linear | tanh on vectors ------------
TOY_EDGES = [(0, 1), (0, 2), (1, 2)]


@dataclass(frozen=True)
class ToyGenotype:
    choices: tuple                                  # (op, src) for node 1, then node 2

    def edges(self, cell_type):
        return [(src, dst, op) for dst, (op, src) in enumerate(self.choices, 1)]

    def concat(self, cell_type):
        return (1, 2)

    def to_text(self):
        return "Toy(" + ", ".join(f"{op}<-{src}" for op, src in self.choices) + ")"

    def to_dict(self):
        return {"choices": [list(c) for c in self.choices]}


class ToyNet(nn.Module):
    def __init__(self, dim, classes):
        super().__init__()
        self.lins = nn.ModuleList(nn.Linear(dim, dim) for _ in TOY_EDGES)
        self.head = nn.Linear(dim, classes)
        self.alpha = nn.Parameter(1e-3 * torch.randn(len(TOY_EDGES), 2))

    def arch_parameters(self):
        return [self.alpha]

    def named_weight_parameters(self):
        return ((n, p) for n, p in self.named_parameters() if n != "alpha")

    def weight_parameters(self):
        return [p for _, p in self.named_weight_parameters()]

    def probs(self):                                # cell type -> (edges, ops)
        return {"cell": F.softmax(self.alpha.detach(), -1)}

    frozen_bn_stats = staticmethod(contextlib.nullcontext)       # no BatchNorm here

    def forward(self, x):                           # x: (B, D)
        w = F.softmax(self.alpha, -1) if getattr(self, "mixing", None) is None else self.mixing(self.alpha)
        nodes = [x]
        for e, (src, dst) in enumerate(TOY_EDGES):
            out = w[e, 0] * self.lins[e](nodes[src]) + w[e, 1] * torch.tanh(nodes[src])   # (B, D)
            nodes.append(out) if dst == len(nodes) else nodes.__setitem__(dst, nodes[dst] + out)
        return self.head(nodes[1] + nodes[2])       # (B, classes)

    def loss(self, batch):
        logits = self(batch[0])
        return F.nll_loss(F.log_softmax(logits, -1), batch[1]), logits


ToyTrainConfig = make_dataclass("ToyTrainConfig", [("space", str, "toy"), ("dataset", str, "toy")],
                                bases=(ConfigBase, WeightOptimFields, RunFields))   # + the run settings


class ToyTrainer(SpaceTrainer):                     # ToyNet with the genotype's ops weighted 1, the rest 0
    config_class = ToyTrainConfig

    def __init__(self, space, genotype, config, device, dtype, data=None):
        super().__init__(space, genotype, config, device, dtype)
        self.data, self.model = data, ToyNet(data.train[0].shape[1], data.num_classes)
        self.model.mixing = lambda alpha: torch.from_numpy(space.kept_mask(genotype, "cell", len(TOY_EDGES))).float()
        self.stream = BatchStream(data, "train", config.batch_size, config.seed + 1, dtype)


class ToySpace(SearchSpace):
    name, cell_types, ops, parameter_free = "toy", ("cell",), ("linear", "tanh"), ("tanh",)
    trainer_class = ToyTrainer

    def build(self, config, data):
        return ToyNet(data.train[0].shape[1], data.num_classes)

    def derive(self, probs):
        p = np.asarray(probs["cell"], dtype=np.float64)                      # (3, 2)
        src = int(np.argmax([p[1].max(), p[2].max()]))                        # node 2: from 0 or 1
        return ToyGenotype(((self.ops[p[0].argmax()], 0), (self.ops[p[1 + src].argmax()], src)))

    def parse_genotype(self, text):
        pairs = re.findall(r"(\w+)<-(\d)", text)
        if len(pairs) != 2 or any(op not in self.ops for op, _ in pairs):
            raise ValueError(f"not a toy genotype: {text!r}")
        return ToyGenotype(tuple((op, int(src)) for op, src in pairs))

    def genotype_from_dict(self, d):
        return ToyGenotype(tuple((op, int(src)) for op, src in d["choices"]))

    def edges(self, cell_type, n_edges):
        return TOY_EDGES

    def node_labels(self, cell_type, n_nodes):
        return ["x", "n1", "n2"]

    def random_genotype(self, seed=None):
        rng = seed if isinstance(seed, random.Random) else random.Random(seed)
        return ToyGenotype(((rng.choice(self.ops), 0), (rng.choice(self.ops), rng.randrange(2))))
# ---- end of the toy space (the lines above are what a new space costs) -------------------


@pytest.fixture
def toy():
    register_space(ToySpace())
    g = torch.Generator().manual_seed(0)
    centres = 2 * torch.randn(3, 6, generator=g)                               # (classes, D)

    def split(n):
        y = torch.randint(0, 3, (n,), generator=g)
        return centres[y] + 0.5 * torch.randn(n, 6, generator=g), y           # (n, D), (n,)
    data = DataSplits("toy", split(64), split(64), split(32), 3, torch.zeros(()), torch.ones(()))
    config = SearchConfig.preset("tiny", space="toy", dataset="toy", batch_size=16, epochs=2, steps_per_epoch=4,
                                 warmup_epochs=0, arch_lr=0.05)
    return config, data


def test_unknown_space_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown search space 'rnnn'; known spaces: .*cnn"):
        SearchConfig.preset("tiny", space="rnnn")
    assert "cnn" in space_names() and get_space("cnn").cell_types == ("normal", "reduce")


@pytest.mark.parametrize("order,hvp", [(1, "finite"), (2, "finite"), (2, "exact")])
def test_a_toy_space_searches_with_both_orders_and_derives(toy, tmp_path, order, hvp):
    config, data = toy
    search = Search(SearchConfig.from_dict({**config.to_dict(), "order": order, "hvp": hvp}),
                    out=tmp_path / "run", data=data)
    before = search.snapshot()
    assert before.step == 0 and before.losses == {} and before.space == "toy"
    search.run()
    steps = [r for r in search.history if r.kind == "step"]
    assert len(steps) == 8 and all(r.order == order for r in steps)
    assert set(steps[-1].metrics) == {"train_acc", "val_acc"} and "test_acc" in search.history[-1].metrics
    assert not np.allclose(steps[-1].probs["cell"], before.probs["cell"])        # alpha moved
    assert steps[-1].genotype == ToySpace().derive(steps[-1].probs)
    assert search.genotype == ToySpace().derive(search.model.probs())
    # the run directory round-trips records and genotype through text
    run = RunDir(tmp_path / "run")
    assert run.read_records() == search.history
    assert run.read_genotype() == search.genotype
    assert json.loads((tmp_path / "run" / "config.json").read_text())["space"] == "toy"
    assert StepRecord.from_dict(json.loads(steps[0].to_json())) == steps[0]


def test_a_toy_space_resumes_exactly(toy, tmp_path):
    config, data = toy
    whole = Search(config, data=data)
    whole.run()
    part = Search(config, out=tmp_path / "run", data=data)
    part.run(steps=3)
    resumed = Search.resume(tmp_path / "run", data=data)
    resumed.run()
    assert torch.equal(whole.model.alpha, resumed.model.alpha)
    assert [r.losses for r in whole.history] == [r.losses for r in resumed.history]


def test_a_toy_space_is_drawn_live_and_replayed(toy, tmp_path):
    from dartsviz import Dashboard, Replay
    config, data = toy
    search = Search(config, out=tmp_path / "run", data=data)
    dash = Dashboard(search)
    dash.step(3)
    assert [r.step for r in dash.records if r.kind == "step"] == [1, 2, 3]
    assert "toy" in repr(dash.records[-1]) and dash.records[-1].genotype == search.genotype
    dash.set_order(2)
    dash.step(1)
    steps = [r for r in dash.records if r.kind == "step"]
    assert search.config.order == 2 and steps[-1].order == 2 and steps[-1].step == 4
    assert all(len(w.value) > 0 for w in dash.images.values())           # every panel drew
    search.run()
    replay = Replay(tmp_path / "run")
    assert [r.step for r in replay.steps] == list(range(1, 9))
    assert replay.steps[-1].genotype == search.genotype


TOY_TRAIN = ToyTrainConfig(batch_size=16, epochs=2, lr=0.1, lr_min=0.0, device="cpu")


def test_a_toy_space_is_trained_random_baselined_and_compared_end_to_end(toy, tmp_path):
    from dartsviz import compare_end_to_end, random_baseline
    from dartsviz.records import TrainEpochRecord
    from dartsviz.train import Train
    config, data = toy
    search = Search(config, data=data)
    search.run()
    train = Train(search.genotype, TOY_TRAIN, out=tmp_path / "train", data=data)
    train.run()
    epochs = [r for r in train.history if r.kind == "epoch"]
    assert [type(r) for r in epochs] == [TrainEpochRecord] * 2 and epochs[-1].space == "toy"
    assert train.summary()["test_acc"] == epochs[-1].metrics["test_acc"] > 0.5       # chance: 1/3
    assert RunDir(tmp_path / "train").read_records() == train.history
    resumed = Train.resume(tmp_path / "train", data=data)                            # the toy config class
    assert isinstance(resumed.config, ToyTrainConfig) and resumed.done
    base = random_baseline(2, TOY_TRAIN, seed=1, data=data, space="toy")
    assert len(base["runs"]) == 2 and 0 <= base["test_acc_mean"] <= 1
    res = compare_end_to_end(seeds=(0,), random=1, orders=(1,), search_config=config,
                             train_config=TOY_TRAIN, data=data, out=tmp_path / "e2e")
    assert [r["method"] for r in res["rows"]] == ["DARTS (first order)", "random"]
    table = (tmp_path / "e2e" / "table.md").read_text()
    assert table.startswith("| method | runs | test acc (%) | params | search (s) | train (s) |\n")
