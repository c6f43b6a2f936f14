"""Training a recurrent cell from scratch: the reference's SGD-to-ASGD switch, the averaged
weights, jittered BPTT with its learning-rate scaling, perplexities, bit-exact resume, the
random baseline and the command line."""
import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from dartsviz import Search, SearchConfig
from dartsviz.cli import main
from dartsviz.spaces.rnn import DARTS_RNN_V2
from dartsviz.spaces.rnn.train import RNNTrainConfig
from dartsviz.train import Train, resolve_genotype
from dartsviz.text import load_text


@pytest.fixture(scope="module")
def small():
    data = load_text("pydoc", vocab_size=300).truncated(2400)
    return dataclasses.replace(data, test=data.test[:400])


def _config(**kw):
    return RNNTrainConfig.preset("tiny", **{**dict(nhid=8, batch_size=4, bptt=6, epochs=3, steps_per_epoch=4,
                                                   device="cpu", eval_batch_size=8), **kw})


def test_the_presets_are_the_reference_final_training():
    paper = RNNTrainConfig.preset("paper")
    assert (paper.dataset, paper.nhid, paper.batch_size, paper.bptt, paper.lr, paper.momentum) == \
        ("ptb", 850, 64, 35, 20.0, 0.0)
    assert (paper.weight_decay, paper.grad_clip, paper.dropoute, paper.nonmono, paper.bptt_jitter) == \
        (8e-7, 0.25, 0.1, 5, True)
    for bad in (dict(nonmono=-1), dict(nhid=0), dict(dataset="cifar10"), dict(dropout=1.0), dict(space="cnn")):
        with pytest.raises(ValueError):
            RNNTrainConfig.preset("tiny", **bad)


def resolve_rnn_genotype(spec):
    return resolve_genotype(spec, "rnn")


def test_genotypes_resolve_from_names_text_and_run_directories_and_bad_ones_are_one_line(tmp_path):
    assert resolve_rnn_genotype("darts_rnn_v2") == DARTS_RNN_V2
    assert resolve_rnn_genotype(DARTS_RNN_V2.to_text()) == DARTS_RNN_V2
    assert resolve_rnn_genotype("random:3") == resolve_rnn_genotype("random:3") != resolve_rnn_genotype("random:4")
    for bad in ("DARTS_V2", "Genotype(recurrent=[('relu', 5)], concat=range(1, 2))", str(tmp_path / "nothing.json")):
        with pytest.raises(Exception) as e:
            resolve_rnn_genotype(bad)
        assert len(str(e.value).splitlines()) == 1


def test_sgd_switches_to_asgd_when_validation_stops_improving(small):
    """The rule, against a list written out by hand: switch once the loss is worse than the
    best of all epochs but the last `nonmono` (never before nonmono + 1 epochs)."""
    train = Train(DARTS_RNN_V2, _config(nonmono=2), data=small)
    losses = [5.0, 4.0, 3.0, 3.5, 3.6, 3.7, 3.8]
    switched = [train._maybe_switch(v) for v in losses]
    # epoch 3 (3.5) against min(5) = 5: no; epoch 4 (3.6) against min(5, 4) = 4: no;
    # epoch 5 (3.7) against min(5, 4, 3) = 3: switch; epoch 6: already ASGD
    assert switched == [False, False, False, False, False, True, False]
    assert isinstance(train.optimizer, torch.optim.ASGD) and train.optimiser_name == "asgd"
    never = Train(DARTS_RNN_V2, _config(nonmono=0), data=small)
    assert not any(never._maybe_switch(v) for v in losses)


def test_under_asgd_evaluation_uses_the_mean_of_the_iterates_since_the_switch(small):
    train = Train(DARTS_RNN_V2, _config(bptt_jitter=False), data=small)
    train.optimizer = train._asgd()
    iterates = []
    for _ in range(4):
        train.step()
        iterates.append([p.detach().clone() for p in train.model.parameters()])
    now = [p.detach().clone() for p in train.model.parameters()]
    with train.averaged():
        # torch's ASGD with t0 = 0 (the reference's setting) starts its mean at the second
        # iterate: mu = 1 / max(1, step - t0) is 1 for the first two steps
        for p, *its in zip(train.model.parameters(), *iterates):
            torch.testing.assert_close(p, torch.stack(its[1:]).mean(0), rtol=1e-5, atol=1e-6)
            assert not torch.allclose(p, its[-1])
    for p, q in zip(train.model.parameters(), now):          # the block gives the weights back
        assert torch.equal(p, q)


def test_jittered_segments_scale_the_learning_rate_by_their_length(small):
    train = Train(DARTS_RNN_V2, _config(bptt=10, steps_per_epoch=40, epochs=1, bptt_jitter=True), data=small)
    records = train.run()
    steps = [r for r in records if r["kind"] == "step"]
    lengths = {r["seq_len"] for r in steps}
    assert len(lengths) > 3 and min(lengths) >= 5                    # N(bptt, 5), at least 5 tokens
    for r in steps:
        assert r["lr"] == pytest.approx(train.config.lr * r["seq_len"] / 10)


def test_a_search_with_bptt_jitter_scales_the_weight_steps_learning_rate(small):
    search = Search(SearchConfig.preset("tiny_rnn", nhid=8, batch_size=4, bptt=8, epochs=1, steps_per_epoch=30,
                                        device="cpu", bptt_jitter=True, lr=2.0, lr_min=2.0), data=small)
    steps = [r for r in search.run() if r["kind"] == "step"]
    assert {r["lr"] for r in steps} == {2.0, 2.0 * 4 / 8}           # 8 tokens, or 4 with probability 0.05
    assert SearchConfig.preset("paper_rnn").bptt_jitter and not SearchConfig.preset("tiny_rnn").bptt_jitter


def test_a_training_reports_perplexities_and_the_test_number_of_the_best_validation_epoch(small, tmp_path):
    train = Train(DARTS_RNN_V2, _config(epochs=4, nonmono=1), out=tmp_path / "t", data=small)
    train.run()
    epochs = [r for r in train.history if r["kind"] == "epoch"]
    assert len(epochs) == 4
    for r in epochs:
        assert math.isclose(r["val_ppl"], math.exp(r["val_loss"]), rel_tol=1e-9)
        assert 1 < r["test_ppl"] < small.ntokens * 2
    best = min(epochs, key=lambda r: r["val_ppl"])
    assert train.test_ppl == best["test_ppl"]
    assert epochs[-1]["val_ppl"] < epochs[0]["val_ppl"] * 1.5
    summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert summary["test_ppl"] == train.test_ppl and summary["genotype"] == DARTS_RNN_V2.to_text()
    assert json.loads((tmp_path / "t" / "config.json").read_text())["space"] == "rnn"


def test_stop_and_resume_across_the_switch_ends_bit_identical(small, tmp_path):
    cfg = _config(epochs=6, nonmono=1, lr=60.0, lr_min=60.0)      # a large lr: validation gets worse, ASGD
    whole = Train(DARTS_RNN_V2, cfg, data=small)
    whole.run()
    switch = next(r["epoch"] for r in whole.history if r["kind"] == "epoch" and r["switched_to_asgd"])
    assert 1 <= switch <= 3 and whole.optimiser_name == "asgd"
    assert {r["optimizer"] for r in whole.history if r["kind"] == "step" and r["epoch"] > switch} == {"asgd"}
    part = Train(DARTS_RNN_V2, cfg, out=tmp_path / "r", data=small)
    part.run(steps=4 * switch + 6)         # mid-epoch, after the switch: ASGD's averages are saved
    resumed = Train.resume(tmp_path / "r", data=small)
    resumed.run()
    for p, q in zip(whole.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)
    strip = lambda h: [{k: v for k, v in r.items() if k not in ("seconds", "peak_mem_mb")} for r in h]
    assert strip(whole.history) == strip(resumed.history)


def _main(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_cli_trains_a_recurrent_cell_and_refuses_what_does_not_apply(tmp_path, capsys):
    code, out, err = _main(["train", "--space", "rnn", "--genotype", "DARTS_RNN_V1", "--epochs", "1", "--steps", "3",
                            "--nhid", "8", "--batch-size", "4", "--quiet", "--no-plots", "--out", str(tmp_path / "a")],
                           capsys)
    assert code == 0, err
    assert "genotype: Genotype(recurrent=" in out and "8 wide" in out and "test perplexity" in out
    code, out, err = _main(["train", "--resume", str(tmp_path / "a"), "--quiet", "--no-plots"], capsys)
    assert code == 0, err                   # the run directory names its space
    for argv, message in ((["--genotype", "DARTS_V2"], "is not a run directory"),
                          (["--genotype", "DARTS_RNN_V1", "--layers", "3"], "--layers does not apply to the rnn space"),
                          (["--genotype", "DARTS_RNN_V1", "--dataset", "cifar10"], "unknown text data set"),
                          (["--genotype", "DARTS_RNN_V1", "--nhid", "0"], "--nhid must be positive")):
        code, out, err = _main(["train", "--space", "rnn", "--quiet", "--out", str(tmp_path / "x"), *argv], capsys)
        assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x").exists()
    code, out, err = _main(["train", "--genotype", "DARTS_V2", "--nhid", "8", "--quiet"], capsys)
    assert code == 1 and "--nhid does not apply to the cnn space" in err


def test_the_cli_random_baseline_trains_random_recurrent_cells(tmp_path, capsys):
    code, out, err = _main(["train", "--space", "rnn", "--random", "2", "--epochs", "1", "--nhid", "8",
                            "--batch-size", "4", "--quiet", "--out", str(tmp_path / "b")], capsys)
    assert code == 0, err
    result = json.loads((tmp_path / "b" / "results.json").read_text())
    ppls = [r["test_ppl"] for r in result["runs"]]
    assert result["settings"]["space"] == "rnn" and len(ppls) == 2
    assert result["rows"][0]["test_ppl_mean"] == pytest.approx(np.mean(ppls))
    assert "random baseline (2 cells" in out and "test perplexity" in out


def test_compare_end_to_end_runs_the_recurrent_space(tmp_path, capsys):
    code, out, err = _main(["compare", "--end-to-end", "--space", "rnn", "--seeds", "0", "--orders", "1",
                            "--random", "1", "--search-epochs", "1", "--train-epochs", "1", "--steps-per-epoch", "3",
                            "--quiet", "--out", str(tmp_path / "c")], capsys)
    assert code == 0, err
    result = json.loads((tmp_path / "c" / "results.json").read_text())
    assert result["settings"]["space"] == "rnn"
    assert [r["method"] for r in result["rows"]] == ["DARTS (first order)", "random"]
    assert all(r["test_ppl_mean"] > 1 for r in result["rows"])
    assert "test perplexity" in (tmp_path / "c" / "table.md").read_text()
    assert (tmp_path / "c" / "comparison.png").stat().st_size > 1000
