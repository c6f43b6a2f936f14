"""Word-level text corpora for the recurrent space: vocabulary, splits, BPTT batch streams.

    data = load_text("pydoc")                       # embedded: Python's own documentation
    data = load_text("ptb", data_dir="./data")      # ptb.train.txt, ptb.valid.txt, ptb.test.txt
    stream = TextStream(data, "train", batch_size=32, bptt=20, name="train")
    x, y, key = next(stream)                        # x, y: (T, B) token ids, y = x shifted by one

`pydoc` is the standard library's `pydoc_data.topics` (the text of `help("topics")`, under
the PSF licence): always present, no download. It is tokenised PTB-style: lowercased
words (identifiers with underscores kept whole), each punctuation character a token,
numbers as `N`, `<eos>` at the end of every line; lines of punctuation only (reStructuredText
underlines, table borders) are dropped. Paragraphs are dealt to the splits in a fixed
pattern (of every 10: 8 train, 1 valid, 1 test). The vocabulary is the `vocab_size - 2`
most frequent training words (ties alphabetical) plus `<eos>` and `<unk>`. About 106k
tokens and 3.5k word types (Python 3.11); the exact numbers vary a little between versions.

`ptb` and `wikitext2` are read from a data directory (never downloaded): whitespace
tokens, `<eos>` per line, the vocabulary of the files in order of first appearance (the
reference code's `data.Corpus`).
"""
from __future__ import annotations

import dataclasses
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, NamedTuple, Sequence, Tuple

import torch

from .data import DataError

TEXT_DATASETS = ("pydoc", "ptb", "wikitext2")
EOS, UNK = "<eos>", "<unk>"

_FILES = {
    "ptb": (("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"), ("", "ptb", "penn")),
    "wikitext2": (("wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"), ("", "wikitext-2", "wikitext2")),
}
_WHERE = ("the Mikolov PTB files ptb.{train,valid,test}.txt (data/penn of getdata.sh in salesforce/awd-lstm-lm, "
          "or simple-examples.tgz)")
_WHERE_WT2 = "wikitext-2-v1.zip (https://wikitext.smerity.com/wikitext-2-v1.zip, or getdata.sh in salesforce/awd-lstm-lm)"



class StreamKey(NamedTuple):
    """What a text batch carries besides (x, y): its stream, its number there, and whether
    it starts a pass over the split (the model's hidden state starts at zero there)."""
    stream: str
    batch: int
    fresh: bool


_TOKEN = re.compile(r"[a-z_][a-z0-9_]*|[0-9]+(?:\.[0-9]+)?|[^\sa-z0-9_]")
_HAS_WORD = re.compile(r"[a-z0-9]")


def check_text_dataset(name) -> str:
    """Raise DataError unless `name` is a text corpus the recurrent space reads."""
    if name not in TEXT_DATASETS:
        raise DataError(f"unknown text data set {name!r} for the rnn space; choose from {', '.join(TEXT_DATASETS)} (pydoc is embedded)")
    return name


@dataclass
class TextData:
    """Token ids of the three splits as 1-d LongTensors on one device, and the vocabulary.

    `train` feeds the weights, `val` the architecture, `test` the epoch's held-out number."""

    name: str
    vocab: Tuple[str, ...]          # id -> word; ids 0 and 1 are <eos> and <unk> for pydoc
    train: torch.Tensor             # (N_train,)
    val: torch.Tensor               # (N_val,)
    test: torch.Tensor              # (N_test,)
    eval_batch_size: int = 10       # columns of an evaluation (the reference's eval_batch_size)

    @property
    def ntokens(self) -> int:
        """The vocabulary size (the embedding's rows)."""
        return len(self.vocab)

    def to(self, device) -> "TextData":
        return dataclasses.replace(self, train=self.train.to(device), val=self.val.to(device), test=self.test.to(device))

    def truncated(self, n: int) -> "TextData":
        """The first n tokens of every split (small tests)."""
        return dataclasses.replace(self, train=self.train[:n], val=self.val[:n], test=self.test[:n])

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.vocab[int(i)] for i in ids)


# -- the embedded corpus -------------------------------------------------------------------

def pydoc_paragraphs() -> List[List[List[str]]]:
    """The tokenised topics of `pydoc_data.topics`: paragraphs of lines of tokens, topics in
    sorted order."""
    from pydoc_data.topics import topics
    paragraphs: List[List[List[str]]] = []
    for key in sorted(topics):
        for para in re.split(r"\n\s*\n", topics[key].lower()):
            lines = [["N" if t[0].isdigit() else t for t in _TOKEN.findall(line)]
                     for line in para.splitlines() if _HAS_WORD.search(line)]
            if lines:
                paragraphs.append(lines)
    return paragraphs


def build_vocab(lines: Sequence[Sequence[str]], size: int) -> Tuple[str, ...]:
    """<eos>, <unk>, then the most frequent words (ties alphabetical); size 0 keeps all."""
    counts = Counter(w for line in lines for w in line)
    words = sorted(counts, key=lambda w: (-counts[w], w))
    if size:
        words = words[:max(0, size - 2)]
    return (EOS, UNK) + tuple(words)


def _encode(lines: Sequence[Sequence[str]], index: dict) -> torch.Tensor:
    unk = index.get(UNK)
    ids = [index.get(w, unk) for line in lines for w in (*line, EOS)]
    return torch.tensor(ids, dtype=torch.long)


def load_pydoc(vocab_size: int = 10000) -> TextData:
    """The embedded corpus (see the module docstring)."""
    splits = {"train": [], "val": [], "test": []}
    for n, para in enumerate(pydoc_paragraphs()):
        splits["val" if n % 10 == 8 else "test" if n % 10 == 9 else "train"].extend(para)
    vocab = build_vocab(splits["train"], vocab_size)
    index = {w: i for i, w in enumerate(vocab)}
    return TextData("pydoc", vocab, *(_encode(splits[s], index) for s in ("train", "val", "test")))


# -- corpora from files --------------------------------------------------------------------

def _find_files(name: str, data_dir) -> List[Path]:
    files, subdirs = _FILES[name]
    for sub in subdirs:
        paths = [Path(data_dir) / sub / f for f in files]
        if all(p.is_file() for p in paths):
            return paths
    where = _WHERE if name == "ptb" else _WHERE_WT2
    raise DataError(f"{name} needs {', '.join(files)} in {str(data_dir)!r} (or a {subdirs[1]}/ folder there); "
                    f"nothing is downloaded: get {where}")


def load_files(name: str, data_dir) -> TextData:
    """PTB or WikiText-2 from their token files: `<eos>` per line, the files' vocabulary."""
    paths = _find_files(name, data_dir)
    split_lines = []
    for p in paths:
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"could not read {p}: {e}") from None
        split_lines.append([line.split() for line in text.splitlines()])
    index: dict = {}
    for lines in split_lines:
        for line in lines:
            for w in (*line, EOS):
                index.setdefault(w, len(index))
    vocab = tuple(index)
    return TextData(name, vocab, *(_encode(lines, index) for lines in split_lines))


def load_text(name: str = "pydoc", data_dir="./data", vocab_size: int = 10000, device="cpu") -> TextData:
    """A text corpus by name: pydoc (embedded), ptb or wikitext2 (from data_dir)."""
    check_text_dataset(name)
    data = load_pydoc(vocab_size) if name == "pydoc" else load_files(name, data_dir)
    for split in ("train", "val", "test"):
        if len(getattr(data, split)) < 2:
            raise DataError(f"the {split} split of {name} holds fewer than 2 tokens")
    return data.to(device)


# -- batches ---------------------------------------------------------------------------------

def batchify(tokens: torch.Tensor, batch_size: int) -> torch.Tensor:
    """(N,) -> (N // B, B): B contiguous columns, the tail that does not fill a row dropped."""
    rows = len(tokens) // batch_size
    return tokens[:rows * batch_size].view(batch_size, rows).t().contiguous()       # (rows, B)


class TextStream:
    """An endless stream of BPTT segments of one split, in order, wrapping around.

    The split is batchified to `batch_size` columns; a pass yields the full segments
    x = rows[i : i + T], y = rows[i + 1 : i + 1 + T] for i = 0, T, 2T, ... (each (T, B)),
    with a `StreamKey(name, n, fresh)`: n counts the stream's batches, `fresh` marks the
    first segment of a pass (the model starts its hidden state from zero there). The
    position is the whole state: `state_dict()` / `load_state_dict()` resume exactly.
    """

    def __init__(self, data: TextData, split: str, batch_size: int, bptt: int, name: str = ""):
        tokens = getattr(data, split)
        self.batch_size = min(batch_size, max(1, (len(tokens) - 1) // 2))
        self.bptt = bptt
        self.rows = batchify(tokens, self.batch_size)                                 # (rows, B)
        if self.rows.shape[0] < 2:
            raise DataError(f"the {split} split of {data.name} is too short for batches of {batch_size}")
        self.bptt = min(bptt, self.rows.shape[0] - 1)
        self.name = name or split
        self.pos = 0                 # the next segment's first row
        self.count = 0               # batches taken

    def __len__(self) -> int:
        """Full segments per pass."""
        return (self.rows.shape[0] - 1) // self.bptt

    def __iter__(self):
        return self

    def __next__(self) -> Tuple[torch.Tensor, torch.Tensor, StreamKey]:
        if self.pos + self.bptt + 1 > self.rows.shape[0]:
            self.pos = 0
        i, T = self.pos, self.bptt
        key = StreamKey(self.name, self.count, i == 0)
        self.pos += T
        self.count += 1
        return self.rows[i:i + T], self.rows[i + 1:i + 1 + T], key                 # (T, B), (T, B)

    def state_dict(self) -> dict:
        return {"pos": self.pos, "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.pos, self.count = int(state["pos"]), int(state["count"])


def segments(tokens: torch.Tensor, batch_size: int, bptt: int) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """Every segment of a split in order, the last one shorter (evaluation): (x, y), each (T, B)."""
    rows = batchify(tokens, min(batch_size, max(1, (len(tokens) - 1) // 2)))           # (rows, B)
    for i in range(0, rows.shape[0] - 1, bptt):
        T = min(bptt, rows.shape[0] - 1 - i)
        yield rows[i:i + T], rows[i + 1:i + 1 + T]
