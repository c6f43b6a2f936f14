"""The text corpora: the embedded pydoc corpus (statistics checked loosely: they vary a
little between Python versions), PTB-style files from a data directory, one-line errors,
batchify and the BPTT streams with exact resume, with and without length jitter."""
from types import SimpleNamespace

import pytest
import torch

from dartsviz import SearchConfig
from dartsviz.data import DataError
from dartsviz.spaces.rnn.space import RNN
from dartsviz.text import EOS, UNK, TextStream, batchify, load_text, segments


@pytest.fixture(scope="module")
def pydoc():
    return load_text("pydoc", vocab_size=2000)


def test_the_embedded_corpus_is_deterministic_and_sized_like_a_small_ptb(pydoc):
    assert pydoc.vocab[:2] == (EOS, UNK) and pydoc.ntokens == 2000 == len(set(pydoc.vocab))
    n = {s: len(getattr(pydoc, s)) for s in ("train", "val", "test")}
    assert n["train"] > 50_000 and 5_000 < n["val"] < n["train"] / 4 and 5_000 < n["test"] < n["train"] / 4
    assert all(getattr(pydoc, s).dtype == torch.long and int(getattr(pydoc, s).max()) < 2000 for s in n)
    unk = {s: float((getattr(pydoc, s) == 1).double().mean()) for s in n}
    assert unk["train"] < 0.05 and unk["test"] < 0.1
    assert float((pydoc.train == 0).double().mean()) > 0.03                       # <eos> ends every line
    assert "the" in pydoc.vocab[:20] and "N" in pydoc.vocab                        # numbers as N
    again = load_text("pydoc", vocab_size=2000)
    assert again.vocab == pydoc.vocab and torch.equal(again.test, pydoc.test)
    assert load_text("pydoc", vocab_size=0).ntokens > 3000                        # every word


def test_batchify_makes_contiguous_columns_and_streams_shift_targets_by_one(pydoc):
    rows = batchify(torch.arange(23), 4)                                          # (5, 4)
    assert rows.shape == (5, 4) and rows[:, 1].tolist() == [5, 6, 7, 8, 9]
    stream = TextStream(pydoc, "train", batch_size=8, bptt=5, name="train")
    assert len(stream) == (len(pydoc.train) // 8 - 1) // 5
    x, y, key = next(stream)
    assert x.shape == y.shape == (5, 8) and torch.equal(x[1:], y[:-1]) and key == ("train", 0, True)
    x2, _, key2 = next(stream)
    assert torch.equal(x2[0], y[-1]) and key2 == ("train", 1, False)              # segments continue
    for _ in range(len(stream) - 2):
        next(stream)
    x3, _, key3 = next(stream)                                                    # a new pass
    assert torch.equal(x3, x) and key3 == ("train", len(stream), True)
    ev = list(segments(pydoc.test, 10, 35))
    assert sum(y.numel() for _, y in ev) == (len(pydoc.test) // 10 - 1) * 10      # every target once


def test_a_stream_resumes_exactly(pydoc):
    a = TextStream(pydoc, "val", 4, 7)
    for _ in range(30):
        next(a)
    b = TextStream(pydoc, "val", 4, 7)
    b.load_state_dict(a.state_dict())
    for _ in range(len(a) + 3):                                                   # across a wrap
        (xa, ya, ka), (xb, yb, kb) = next(a), next(b)
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and ka == kb


def test_ptb_files_from_a_data_directory(tmp_path):
    folder = tmp_path / "penn"
    folder.mkdir()
    for split, text in (("train", " the cat sat \n the dog <unk> \n"), ("valid", " the cat \n"),
                        ("test", " a dog sat \n")):
        (folder / f"ptb.{split}.txt").write_text(text)
    data = load_text("ptb", data_dir=tmp_path)
    assert data.vocab[:4] == ("the", "cat", "sat", EOS) and "a" in data.vocab
    assert data.decode(data.train) == "the cat sat <eos> the dog <unk> <eos>"
    assert data.decode(data.test) == "a dog sat <eos>"


@pytest.mark.parametrize("name,files", [("ptb", "ptb.train.txt, ptb.valid.txt, ptb.test.txt"),
                                        ("wikitext2", "wiki.train.tokens, wiki.valid.tokens, wiki.test.tokens")])
def test_missing_corpus_files_are_one_line_naming_them_and_where_to_get_them(tmp_path, name, files):
    with pytest.raises(DataError, match=f"{name} needs {files} in .*pass --download .* or get .*awd-lstm-lm") as e:
        load_text(name, data_dir=tmp_path)
    assert "\n" not in str(e.value)


def test_an_unknown_data_set_for_the_rnn_space_is_one_line():
    for bad in ("cifar10", "penn", "digits"):
        with pytest.raises(ValueError, match=f"unknown text data set '{bad}' for the rnn space; "
                                             "choose from pydoc, ptb, wikitext2, shakespeare") as e:
            SearchConfig.preset("tiny_rnn", dataset=bad)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="unknown data set 'pydoc'"):
        SearchConfig.preset("tiny", dataset="pydoc")                 # the image space does not read text


# -- BPTT length jitter ------------------------------------------------------------------------

def _lengths_and_continuity(stream, n):
    """Segment lengths of n batches; every segment starts where the last one ended (or a pass)."""
    lengths, last_y = [], None
    for _ in range(n):
        x, y, key = next(stream)
        assert x.shape == y.shape and torch.equal(x[1:], y[:-1])
        if last_y is not None and not key.fresh:
            assert torch.equal(x[0], last_y[-1])
        lengths.append(x.shape[0])
        last_y = y
    return lengths


def test_jittered_segments_are_bptt_long_or_half_about_one_time_in_twenty(pydoc):
    stream = TextStream(pydoc, "train", 8, 20, jitter_seed=13)
    lengths = _lengths_and_continuity(stream, 4000)
    assert set(lengths) == {20, 10}
    assert 0.035 < lengths.count(10) / len(lengths) < 0.065                       # short_p = 0.05
    assert _lengths_and_continuity(TextStream(pydoc, "train", 8, 20, jitter_seed=13), 4000) == lengths
    assert _lengths_and_continuity(TextStream(pydoc, "train", 8, 20, jitter_seed=14), 4000) != lengths
    odd = _lengths_and_continuity(TextStream(pydoc, "train", 8, 35, jitter_seed=0, short_p=0.5), 200)
    assert set(odd) == {35, 17}                                                   # int(35 / 2), as the reference


def test_the_final_training_jitter_is_normal_around_the_drawn_base_and_bounded(pydoc):
    lengths = _lengths_and_continuity(TextStream(pydoc, "train", 8, 35, jitter_seed=3, jitter_sigma=5.0), 3000)
    assert min(lengths) >= 5 and max(lengths) <= 35 + 20 and len(set(lengths)) > 15
    mean = sum(lengths) / len(lengths)
    assert 31.0 < mean < 35.0                                                     # 0.95 * 35 + 0.05 * 17.5 - 0.5


def test_a_jittered_stream_resumes_exactly_across_a_wrap(pydoc):
    a = TextStream(pydoc, "val", 4, 7, jitter_seed=5, short_p=0.3)
    for _ in range(40):
        next(a)
    state = a.state_dict()
    assert set(state) == {"pos", "count", "jitter"}
    b = TextStream(pydoc, "val", 4, 7, jitter_seed=99, short_p=0.3)              # the saved state wins
    b.load_state_dict(state)
    fresh = 0
    for _ in range(2 * len(a) + 3):                                               # across a wrap
        (xa, ya, ka), (xb, yb, kb) = next(a), next(b)
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and ka == kb
        fresh += ka.fresh
    assert fresh >= 1


def test_without_jitter_the_stream_is_the_fixed_length_one(pydoc):
    plain = TextStream(pydoc, "train", 8, 9)
    assert plain.state_dict() == {"pos": 0, "count": 0}                           # old checkpoints still load
    rows = batchify(pydoc.train, 8)                                               # (rows, 8)
    for n in range(len(plain) + 2):
        x, y, key = next(plain)
        i = (n % len(plain)) * 9
        assert torch.equal(x, rows[i:i + 9]) and torch.equal(y, rows[i + 1:i + 10]) and key.fresh == (i == 0)
    never_short = TextStream(pydoc, "train", 8, 9, jitter_seed=1, short_p=0.0)
    plain = TextStream(pydoc, "train", 8, 9)
    for _ in range(len(plain) + 2):
        (xa, _, ka), (xb, _, kb) = next(plain), next(never_short)
        assert torch.equal(xa, xb) and ka == kb


def test_a_bad_short_probability_is_one_line(pydoc):
    with pytest.raises(ValueError, match=r"short_p must be in \[0, 1\], got 1.5"):
        TextStream(pydoc, "train", 8, 9, jitter_seed=1, short_p=1.5)


@pytest.mark.parametrize("jitter", [False, True])
def test_the_space_jitters_only_the_training_stream_and_only_when_asked(pydoc, jitter):
    config = SimpleNamespace(batch_size=8, seed=2, space_options=dict(bptt=12, bptt_jitter=jitter))
    train, val = RNN.streams(pydoc, config, torch.float32)
    train_lengths = {next(train)[0].shape[0] for _ in range(300)}
    assert {next(val)[0].shape[0] for _ in range(300)} == {12}
    assert train_lengths == ({12, 6} if jitter else {12})
