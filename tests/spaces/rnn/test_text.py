"""The text corpora: the embedded pydoc corpus (statistics checked loosely: they vary a
little between Python versions), PTB-style files from a data directory, one-line errors,
batchify and the BPTT streams with exact resume."""
import pytest
import torch

from dartsviz import SearchConfig
from dartsviz.data import DataError
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
    with pytest.raises(DataError, match=f"{name} needs {files} in .*nothing is downloaded: get .*awd-lstm-lm") as e:
        load_text(name, data_dir=tmp_path)
    assert "\n" not in str(e.value)


def test_an_unknown_data_set_for_the_rnn_space_is_one_line():
    for bad in ("cifar10", "penn", "digits"):
        with pytest.raises(ValueError, match=f"unknown text data set '{bad}' for the rnn space; "
                                             "choose from pydoc, ptb, wikitext2") as e:
            SearchConfig.preset("tiny_rnn", dataset=bad)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="unknown data set 'pydoc'"):
        SearchConfig.preset("tiny", dataset="pydoc")                 # the image space does not read text
