"""The recurrent space behind the seam: Search runs it with both orders on a slice of the
embedded corpus, records perplexities, round-trips its run directory and resumes
bit-identically (the carried hidden states included)."""
import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from dartsviz import Search, SearchConfig, get_space
from dartsviz.runs import RunDir, load_checkpoint
from dartsviz.spaces.rnn.space import RNN
from dartsviz.spaces.rnn import RNNGenotype, derive
from dartsviz.text import load_text


@pytest.fixture(scope="module")
def small():
    """The first 1,200 tokens of the training and validation splits of pydoc, 320 of the test
    split (the epoch's evaluation), a 300-word vocabulary."""
    data = load_text("pydoc", vocab_size=300).truncated(1200)
    return dataclasses.replace(data, test=data.test[:320], eval_batch_size=16)


def _config(**kw):
    return SearchConfig.preset("tiny_rnn", **{**dict(nhid=8, batch_size=4, bptt=5, epochs=2, steps_per_epoch=3,
                                                     device="cpu", arch_lr=0.05), **kw})


def test_the_presets_validate_and_the_paper_preset_is_the_reference_search():
    tiny = SearchConfig.preset("tiny_rnn")
    assert (tiny.space, tiny.dataset) == ("rnn", "pydoc")
    paper = SearchConfig.preset("paper_rnn")
    assert (paper.dataset, paper.nhid, paper.batch_size, paper.bptt, paper.epochs) == ("ptb", 300, 256, 35, 50)
    assert (paper.lr, paper.lr_min, paper.momentum, paper.weight_decay, paper.grad_clip) == (20, 20, 0, 5e-7, 0.25)
    assert (paper.arch_lr, paper.arch_weight_decay, paper.arch_betas) == (3e-3, 1e-3, (0.9, 0.999))
    assert (paper.dropout, paper.dropouth, paper.dropoutx, paper.dropouti, paper.dropoute, paper.tar_beta) == \
        (0.75, 0.25, 0.75, 0.2, 0.0, 1e-3)
    with pytest.raises(ValueError, match="dropouth must be in"):
        SearchConfig.preset("tiny_rnn", dropouth=1.0)
    with pytest.raises(ValueError, match="bptt must be a positive integer"):
        SearchConfig.preset("tiny_rnn", bptt=0)
    space = get_space("rnn")
    assert (space.metric, space.higher_is_better, space.cell_types) == ("ppl", False, ("recurrent",))
    assert space.node_labels("recurrent", 9)[0].startswith("s0") and space.output_label("recurrent") == "h[t]"


@pytest.mark.parametrize("order,hvp", [(1, "finite"), (2, "finite"), (2, "exact")])
def test_a_search_records_perplexity_with_both_orders(small, tmp_path, order, hvp):
    # lr 1, not tiny_rnn's 20: the virtual step w' = w - lr * dL/dw is not clipped (the reference's
    # RNN architect clips it to grad_clip), and at lr 20 it lands where the perplexity is huge
    search = Search(_config(order=order, hvp=hvp, epochs=1, lr=1.0, lr_min=1.0), out=tmp_path / "run", data=small)
    before = search.snapshot()
    assert before.probs["recurrent"].shape == (36, 5) and isinstance(before.genotype, RNNGenotype)
    search.run()
    steps = [r for r in search.history if r.kind == "step"]
    epoch = search.history[-1]
    assert len(steps) == 3 and all(r.order == order and r.space == "rnn" for r in steps)
    assert set(steps[-1].metrics) == {"train_ppl", "val_ppl"} and epoch.kind == "epoch"
    for r in steps:      # both losses are the plain NLL (TAR adds gradient, not value): ppl = exp(loss)
        assert r.metrics["val_ppl"] == pytest.approx(math.exp(r.losses["val"]), rel=1e-5)
        assert r.metrics["train_ppl"] == pytest.approx(math.exp(r.losses["train"]), rel=1e-5)
        assert 1 < r.metrics["val_ppl"] < 1000
    assert math.isfinite(epoch.metrics["test_ppl"]) and epoch.metrics["test_ppl"] == pytest.approx(
        math.exp(epoch.losses["test"]))
    assert not np.allclose(steps[-1].probs["recurrent"], before.probs["recurrent"])      # alpha moved
    assert steps[-1].genotype == derive(steps[-1].probs["recurrent"]) and search.genotype == search.model.genotype()
    run = RunDir(tmp_path / "run")
    assert run.read_records() == search.history and run.read_genotype() == search.genotype


@pytest.mark.parametrize("order", [1, 2])
def test_stop_and_resume_ends_bit_identical(small, tmp_path, order):
    config = _config(order=order, steps_per_epoch=2)
    whole = Search(config, data=small)
    whole.run()
    part = Search(config, out=tmp_path / "run", data=small)
    part.run(steps=3)                                            # inside the second epoch
    assert set(part.model.get_extra_state()) == {"train", "val"}
    del part
    resumed = Search.resume(tmp_path / "run", data=small)
    assert resumed.step_count == 3
    resumed.run()
    for (n, a), (_, b) in zip(whole.model.state_dict().items(), resumed.model.state_dict().items()):
        if n != "_extra_state":
            assert torch.equal(a, b), n
    for name, st in whole.model.get_extra_state().items():
        assert torch.equal(st["next"], resumed.model.get_extra_state()[name]["next"])
    assert [r.losses for r in whole.history] == [r.losses for r in resumed.history]


def test_a_run_directory_written_before_space_options_resumes_to_the_same_settings(small, tmp_path):
    """Older versions wrote the rnn space's fields at the top level of the config (checkpoint and
    config.json), with PC-DARTS' two fields; such a run resumes with the same settings."""
    config = _config(steps_per_epoch=2, bptt_jitter=True)
    whole = Search(config, data=small)
    whole.run()
    part = Search(config, out=tmp_path / "run", data=small)
    part.run(steps=3)
    del part
    run = RunDir(tmp_path / "run")
    state = load_checkpoint(run.path, kind="search")
    old = {k: v for k, v in state["config"].items() if k != "space_options"}
    old.update(nhid=8, bptt=5, dropout=0.2, dropouth=0.1, dropoutx=0.2, dropouti=0.1, dropoute=0.0, tar_beta=1e-3,
               vocab_size=2000, eval_batch_size=64, bptt_jitter=True, partial_channels=1, edge_norm=False)
    run.save_checkpoint({**state, "config": old})
    (run.path / "config.json").write_text(json.dumps(old))
    loaded = SearchConfig.from_dict(run.read_config())
    assert RNN.options(loaded) == RNN.options(config) and loaded.space_options == RNN.options(config)
    assert dataclasses.replace(loaded, space_options=config.space_options) == config
    resumed = Search.resume(run.path, data=small)
    assert resumed.step_count == 3 and RNN.options(resumed.config) == RNN.options(config)
    resumed.run()
    assert [r.losses for r in whole.history] == [r.losses for r in resumed.history]


def test_the_spaces_settings_are_its_own_and_checked_in_one_line():
    assert RNN.search_fields == dict(nhid=300, bptt=35, dropout=0.75, dropouth=0.25, dropoutx=0.75, dropouti=0.2,
                                     dropoute=0.0, tar_beta=1e-3, vocab_size=10000, eval_batch_size=10,
                                     bptt_jitter=False)
    tiny = SearchConfig.preset("tiny_rnn", nhid=16)
    assert tiny.space_options["nhid"] == 16 and tiny.space_options["bptt"] == 20 and tiny.nhid == 16
    assert RNN.options(tiny)["tar_beta"] == 1e-3                       # unset: the space's default
    for name in ("dropout", "dropouth", "dropoutx", "dropouti", "dropoute", "tar_beta"):
        for bad in (float("nan"), float("inf"), -1.0):
            with pytest.raises(ValueError, match=name) as e:
                SearchConfig.preset("tiny_rnn", **{name: bad})
            assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"unknown option\(s\) 'nhidd' for the rnn space"):
        RNN.check_search_options({"nhidd": 3})


def test_the_space_loads_its_corpus_from_the_config():
    search = Search(SearchConfig.preset("tiny_rnn", device="cpu", nhid=8, batch_size=8, bptt=4))
    assert search.data.name == "pydoc" and search.data.ntokens == 2000 and search.data.eval_batch_size == 64
    record = search.step()
    assert record.metrics["train_ppl"] > 100                     # a 2,000-word vocabulary, untrained


def test_a_space_picks_its_own_preset_and_the_cli_searches_it(tmp_path, capsys):
    from dartsviz import SearchConfig
    from dartsviz.cli import main
    assert SearchConfig.preset("tiny", space="rnn") == SearchConfig.preset("tiny_rnn")
    assert SearchConfig.preset("paper", space="rnn").dataset == "ptb"
    assert SearchConfig.preset("tiny", space="cnn").dataset == "digits"
    out = tmp_path / "run"
    assert main(["search", "--space", "rnn", "--steps", "2", "--out", str(out), "--quiet", "--no-plots"]) == 0
    assert "genotype: Genotype(recurrent=[" in capsys.readouterr().out
    assert main(["search", "--space", "rnn", "--dataset", "digits", "--steps", "1", "--quiet",
                 "--out", str(tmp_path / "bad")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "digits" in err and not (tmp_path / "bad").exists()


def test_a_space_names_its_default_data_set():
    assert SearchConfig(space="rnn").dataset == "pydoc"          # the embedded corpus: no download
    assert SearchConfig().dataset == "cifar10"
    assert SearchConfig(space="rnn", dataset="ptb").dataset == "ptb"
    with pytest.raises(ValueError, match="unknown text data set 'cifar10'"):
        SearchConfig(space="rnn", dataset="cifar10")


def test_the_tiny_preset_makes_the_weights_separate_within_its_budget():
    """The teaching preset must show something: at the end the strongest op of an edge is
    clearly above uniform (1/5) on average and above the runner-up on most edges, and
    the test perplexity has fallen."""
    search = Search(SearchConfig.preset("tiny_rnn"))
    search.run()
    steps = [r for r in search.history if r["kind"] == "step"]
    first, last = (np.array(r["probs"]["recurrent"]) for r in (steps[0], steps[-1]))      # (36, 5) each
    top2 = np.sort(last, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    assert last.max(1).mean() > 0.28 and last.max(1).mean() > 1.3 * first.max(1).mean()
    assert (margin > 0.05).mean() >= 0.4
    epochs = [r for r in search.history if r["kind"] == "epoch"]
    assert epochs[-1]["test_ppl"] < 0.8 * epochs[0]["test_ppl"]
    assert len(epochs[-1].genotype.recurrent) == 8


def test_the_collapse_preset_is_tiny_rnn_with_lambda_max_at_each_epochs_end():
    """`collapse` with space="rnn" picks `collapse_rnn`: the tiny_rnn search (the one that ends with
    `identity` on most nodes within a minute) with lambda_max every 40 steps; it validates with
    every variant that works in the recurrent space, and refuses the others in one line."""
    c = SearchConfig.preset("collapse", space="rnn")
    assert c == SearchConfig.preset("collapse_rnn")
    assert dataclasses.replace(c, monitor_every=0) == SearchConfig.preset("tiny_rnn")
    assert (c.space, c.dataset, c.seed, c.epochs, c.steps_per_epoch) == ("rnn", "pydoc", 2, 4, 40)
    assert c.monitor_every == c.steps_per_epoch and not c.early_stop
    for variant in ("darts", "beta_darts", "sdarts_rs"):
        assert SearchConfig.preset("collapse", space="rnn", variant=variant).validate().variant == variant
    for variant in ("pc_darts", "darts_minus"):
        with pytest.raises(ValueError, match=f"variant '{variant}' works in the cnn space"):
            SearchConfig.preset("collapse", space="rnn", variant=variant)
    with pytest.raises(ValueError, match="unknown preset 'collapse'"):
        SearchConfig.preset("collapse")                 # no convolutional collapse preset: digits does not collapse


def test_a_fresh_supernet_evaluates_with_batch_statistics_and_keeps_its_buffers(small):
    # with the initial running statistics (0, 1) the search cell's sums grow without bound in
    # eval mode; before any training step the evaluation normalises with batch statistics
    search = Search(_config(nhid=16), data=small)
    model = search.model
    buffers = {k: v.clone() for k, v in model.state_dict().items() if torch.is_tensor(v)}
    fresh = search.evaluate("test")
    assert math.isfinite(fresh["loss"]) and fresh["ppl"] < 2 * 300        # about uniform over 300 words
    assert model.training and model.cell.bn.training and model.cell.bn.track_running_stats
    assert all(torch.equal(buffers[k], v) for k, v in model.state_dict().items() if torch.is_tensor(v))
    # the oracle: the same evaluation written out with a BatchNorm that uses batch statistics
    from dartsviz.spaces.rnn.space import EVAL_BPTT
    from dartsviz.text import segments
    model.eval()
    model.cell.bn.train()
    model.cell.bn.track_running_stats = False
    total, count, hidden = 0.0, 0, None
    with torch.no_grad():
        for x, y in segments(small.test, small.eval_batch_size, EVAL_BPTT):
            log_probs, hidden = model(x, hidden)
            total += torch.nn.functional.nll_loss(log_probs.reshape(-1, log_probs.shape[-1]).double(),
                                                  y.reshape(-1), reduction="sum").item()
            count += y.numel()
    model.cell.bn.track_running_stats = True
    model.train()
    assert fresh["loss"] == pytest.approx(total / count, rel=1e-9)
    # once a step has run, the running statistics are used (a different number)
    search.step()
    assert int(model.cell.bn.num_batches_tracked) > 0
    after = search.evaluate("test")
    assert math.isfinite(after["loss"]) and after["loss"] != fresh["loss"]
