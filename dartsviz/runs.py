"""The run directory: config, history, genotype and checkpoint, each written atomically.

    RUN_DIR/config.json      the SearchConfig (or training config) as JSON
    RUN_DIR/history.jsonl    one JSON record per line (step and epoch records)
    RUN_DIR/genotype.json    the latest derived genotype, JSON form
    RUN_DIR/genotype.txt     the same in the reference code's text form
    RUN_DIR/checkpoint.pt    weights, alphas, optimiser and RNG states, step

Readers (replay, compare, the CLI) use this module without importing the search.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
import warnings
from pathlib import Path
from typing import List, Optional, Union

import torch

from .records import LEGACY_SPACE, genotype_reader, record_to_dict

CHECKPOINT_FORMAT = "dartsviz-checkpoint"
PathLike = Union[str, os.PathLike]


class RunDirError(ValueError):
    """A run directory or checkpoint that cannot be read."""


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path: PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_checkpoint(path: PathLike, state: dict, kind: str = "search") -> None:
    state = {"format": CHECKPOINT_FORMAT, "kind": kind, **state}
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def _why_unreadable(path: Path, error: BaseException) -> str:
    """Our own words for a file torch.load refused; torch's text (which advises an unsafe
    `weights_only=False`) and pickle internals are never passed on."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        return f"cannot be read ({e.strerror or type(e).__name__})"
    if not head:
        return "is empty, not a dartsviz checkpoint"
    if head == b"PK\x03\x04":                        # torch.save's zip format
        if isinstance(error, pickle.UnpicklingError):
            return ("holds objects that a safe load refuses, so it is not a dartsviz checkpoint "
                    "(it may come from an untrusted source); dartsviz will not load it")
        return "is damaged (a cut-short or corrupt checkpoint)"
    if head[:1] == b"\x80":                           # a pickle stream
        return ("is a plain pickle, not a checkpoint written by dartsviz; "
                "dartsviz loads checkpoints only in torch's safe mode")
    return "is not a checkpoint (not a file that torch.save wrote)"


def load_checkpoint(path: PathLike, map_location="cpu", kind: Optional[str] = None) -> dict:
    """Load with `weights_only=True`; a missing, corrupt, foreign or unsafe file raises
    RunDirError with one line of our own (never torch's advice to load unsafely)."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise RunDirError(f"no checkpoint at {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")              # e.g. torch's two lines on the pickle protocol
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:                              # torch raises many kinds; all mean "not ours"
        raise RunDirError(f"{path} {_why_unreadable(path, e)}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise RunDirError(f"{path} is not a dartsviz checkpoint (foreign file)")
    if kind is not None and state.get("kind") != kind:
        raise RunDirError(f"{path} is a {state.get('kind')} checkpoint, expected a {kind} checkpoint")
    return state


class RunDir:
    """Reads and writes one run directory."""

    def __init__(self, path: PathLike):
        self.path = Path(path)
        self._history_mark = (None, None)      # (records, bytes) of history.jsonl as last written here

    def __repr__(self):
        return f"RunDir({str(self.path)!r})"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.pt"

    def exists(self) -> bool:
        return (self.path / "config.json").is_file() or (self.path / "history.jsonl").is_file()

    def require(self) -> "RunDir":
        """Raise RunDirError unless this looks like a run directory."""
        if not self.path.is_dir():
            raise RunDirError(f"run directory {self.path} does not exist")
        if not self.exists():
            raise RunDirError(f"{self.path} is not a dartsviz run directory (no config.json or history.jsonl)")
        return self

    # -- writers -------------------------------------------------------------
    def write_config(self, config: dict) -> None:
        atomic_write_text(self.path / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")

    def write_history(self, records: List[dict]) -> None:
        """Make history.jsonl hold exactly `records`, one JSON line each.

        When this RunDir wrote the file last and `records` only grew since, the new lines
        are appended (and fsynced) instead of rewriting the whole file: a long search
        saves every epoch. Otherwise the file is rewritten atomically. A crash during an
        append can leave a partial last line, which `read_history` drops."""
        p = self.path / "history.jsonl"
        n, size = self._history_mark
        append = n is not None and len(records) >= n and p.is_file() and p.stat().st_size == size
        new = records[n:] if append else records
        text = "".join(json.dumps(record_to_dict(r), separators=(",", ":")) + "\n" for r in new)
        if append:
            with open(p, "ab") as f:
                f.write(text.encode())
                f.flush()
                os.fsync(f.fileno())
        else:
            atomic_write_text(p, text)
        self._history_mark = (len(records), p.stat().st_size)

    def write_genotype(self, genotype) -> None:
        """The genotype in JSON (`to_dict()`) and text (`to_text()`) form."""
        atomic_write_text(self.path / "genotype.json", json.dumps(genotype.to_dict(), indent=1) + "\n")
        atomic_write_text(self.path / "genotype.txt", genotype.to_text() + "\n")

    def save_checkpoint(self, state: dict, kind: str = "search") -> None:
        save_checkpoint(self.checkpoint_path, state, kind)

    # -- readers -------------------------------------------------------------
    def read_config(self) -> dict:
        p = self.path / "config.json"
        if not p.is_file():
            raise RunDirError(f"{self.path} has no config.json")
        try:
            return json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RunDirError(f"{p} is not valid JSON: {e}") from None

    def tail_history(self, offset: int = 0):
        """The records of the complete lines of history.jsonl from byte `offset` on, the
        offset after them, and whether the file was rewritten since (then the records are
        the whole file, read from its start). A last line still being written is left for
        the next call; no file yet reads as nothing. Follows a run that another process
        (another machine, through a shared folder) is writing."""
        p = self.path / "history.jsonl"
        try:
            size = p.stat().st_size
        except FileNotFoundError:
            return [], 0, offset > 0
        reset = size < offset
        start = 0 if reset else offset
        with open(p, "rb") as f:
            f.seek(start)
            chunk = f.read(size - start)
        end = chunk.rfind(b"\n") + 1                   # only whole lines
        records = []
        for i, line in enumerate(chunk[:end].decode("utf-8").splitlines()):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise RunDirError(f"{p}: a line after byte {start} is not valid JSON: {e.msg}") from None
        return records, start + end, reset

    def read_history(self) -> List[dict]:
        p = self.path / "history.jsonl"
        if not p.is_file():
            raise RunDirError(f"{self.path} has no history.jsonl")
        out = []
        text = p.read_text()
        lines = text.splitlines()
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                if i == len(lines) and not text.endswith("\n"):
                    break                  # an append cut short by a crash: never fully written
                raise RunDirError(f"{p} line {i} is not valid JSON: {e.msg}") from None
            if not isinstance(rec, dict):
                raise RunDirError(f"{p} line {i} is not a record")
            out.append(rec)
        return out

    @property
    def space_name(self) -> str:
        """The search space of this run (files from before spaces existed: the CNN space)."""
        try:
            return self.read_config().get("space", LEGACY_SPACE)
        except RunDirError:
            return LEGACY_SPACE

    def read_records(self) -> list:
        """The history as typed records, a search's or a training's (files of earlier
        versions too): the one way to load a history file."""
        from .records import record_from_dict
        space = self.space_name
        return [record_from_dict(r, space=space) for r in self.read_history()]

    @property
    def loop(self) -> str:
        """"search" or "train": what wrote this run directory. Told by its first record,
        else by its checkpoint; "search" when nothing tells."""
        from .records import record_from_dict
        try:
            first = self.read_history()[:1]                # only the first record is made typed
        except RunDirError:
            first = []
        if first:
            return record_from_dict(first[0], space=self.space_name).run
        if self.checkpoint_path.is_file():
            try:
                return self.load_checkpoint().get("kind", "search")
            except RunDirError:
                pass
        return "search"

    def read_genotype(self, space=None):
        """The saved genotype, as the genotype object of the run's space (or of `space`, a
        SearchSpace whose readers to use)."""
        if space is not None:
            parse_text, from_dict = space.parse_genotype, space.genotype_from_dict
        else:
            parse_text, from_dict = genotype_reader(self.space_name)
        p = self.path / "genotype.json"
        if p.is_file():
            try:
                d = json.loads(p.read_text())
            except json.JSONDecodeError as e:
                raise ValueError(f"genotype JSON does not parse: {e}") from None
            return from_dict(d)
        t = self.path / "genotype.txt"
        if t.is_file():
            return parse_text(t.read_text())
        raise RunDirError(f"{self.path} has no genotype.json or genotype.txt")

    def load_checkpoint(self, map_location="cpu", kind: Optional[str] = None) -> dict:
        return load_checkpoint(self.checkpoint_path, map_location, kind)
