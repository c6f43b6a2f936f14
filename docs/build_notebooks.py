"""Execute the tutorial notebooks once, with tiny budgets, into docs/tutorials/ for the site.

    python docs/build_notebooks.py              # execute every notebook that changed since its last run here
    python docs/build_notebooks.py --force      # execute all of them again
    python docs/build_notebooks.py --no-execute # copy them without outputs (a quick preview of the site)
    python docs/build_notebooks.py 04_live_search 09_fixing_collapse   # only these
    python docs/build_notebooks.py --from DIR   # take the copies tests/test_notebooks.py executed into DIR
                                                # (DARTSVIZ_EXECUTED_DIR=DIR, as CI does); execute the others

The notebooks in notebooks/ are committed without outputs. The site shows them with outputs, so
each is executed here the way tests/test_notebooks.py runs them: a copy in a temporary working
folder (whatever it writes, runs/ and data/, stays there), a fresh `python3` kernel, the
environment's matplotlib backend dropped (the kernel uses its inline one) and DARTSVIZ_NB_FAST=1,
the notebooks' own switch to tiny budgets. The executed copies go to docs/tutorials/ (ignored by
git), with a note under the title saying how they were run; mkdocs-jupyter renders them without
executing anything (`execute: false` in mkdocs.yml).

Widget outputs (the dashboard) keep the widget state the kernel saved (nbclient's
`store_widget_state`): a browser that can load the Jupyter widgets' HTML manager from its CDN
shows the last state of each widget, without a kernel; without it the page shows their text form.
Images, SVG drawings, tables and printed text are part of the page itself.
"""
import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbclient
import nbformat
from jupyter_client.manager import KernelManager

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "notebooks"
TARGET = ROOT / "docs" / "tutorials"
KEY = "dartsviz_docs"           # notebook metadata: the source's digest and how it was run

NOTE = ("*Executed for this site with `DARTSVIZ_NB_FAST=1` (the notebooks' tiny budgets: a few steps "
        "per search), so the numbers and pictures below come from very short runs. Run the notebook "
        "yourself ([Getting started](../../getting-started/#open-the-notebooks)) for the full budgets.*")
NOTE_UNEXECUTED = ("*This copy was built without executing the notebook (`--no-execute`): it has no "
                   "outputs. `python docs/build_notebooks.py` executes it.*")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def with_note(nb, note: str):
    """The note as a markdown cell after the first cell (the title and the Colab badge)."""
    cell = nbformat.v4.new_markdown_cell(note)
    cell["metadata"] = {KEY: "note"}
    nb.cells.insert(1 if nb.cells else 0, cell)
    return nb


def kernel_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "DARTSVIZ_NB_FAST")}
    env["DARTSVIZ_NB_FAST"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def execute(path: Path, timeout: int) -> "nbformat.NotebookNode":
    with tempfile.TemporaryDirectory(prefix="dartsviz-docs-") as tmp:
        work = Path(tmp)
        shutil.copy(path, work / path.name)
        nb = nbformat.read(work / path.name, as_version=4)
        # local sockets (ipc) instead of TCP ports: nothing listens on the network, and no warning about it
        km = KernelManager(kernel_name="python3", transport="ipc", connection_file=str(work / ".kernel.json"))
        client = nbclient.NotebookClient(nb, km=km, timeout=timeout, allow_errors=False,
                                         resources={"metadata": {"path": str(work)}})
        try:
            client.execute(env=kernel_env(), cwd=str(work))
        finally:
            if km.has_kernel:
                km.shutdown_kernel(now=True)
    return nb


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="notebook names (default: all of notebooks/*.ipynb)")
    parser.add_argument("--force", action="store_true", help="execute even when the copy is up to date")
    parser.add_argument("--no-execute", action="store_true", help="copy without outputs (fast preview)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell (default 600)")
    parser.add_argument("--from", dest="source_dir", metavar="DIR",
                        help="notebooks the test suite executed (DARTSVIZ_EXECUTED_DIR): used when made from "
                             "the same source, instead of executing again")
    args = parser.parse_args(argv)

    paths = sorted(SOURCE.glob("*.ipynb"))
    if args.names:
        wanted = {Path(n).stem for n in args.names}
        unknown = wanted - {p.stem for p in paths}
        if unknown:
            parser.error(f"no such notebook in notebooks/: {', '.join(sorted(unknown))}")
        paths = [p for p in paths if p.stem in wanted]
    TARGET.mkdir(parents=True, exist_ok=True)
    mode = "copied" if args.no_execute else "executed"
    start = time.perf_counter()
    for path in paths:
        out = TARGET / path.name
        source_digest = digest(path)
        if out.is_file() and not args.force:
            old = nbformat.read(out, as_version=4).metadata.get(KEY, {})
            if old.get("source_sha256") == source_digest and old.get("mode") == mode:
                print(f"{path.name}: up to date")
                continue
        t0 = time.perf_counter()
        done = Path(args.source_dir) / path.name if args.source_dir else None
        if done is not None and done.is_file() and not args.no_execute and \
                nbformat.read(done, as_version=4).metadata.get(KEY, {}).get("source_sha256") == source_digest:
            nb = with_note(nbformat.read(done, as_version=4), NOTE)
            nb.metadata[KEY] = {"source_sha256": source_digest, "mode": mode}
            nbformat.write(nb, out)
            print(f"{path.name}: taken from {done.parent} (executed by the tests)")
            continue
        if args.no_execute:
            nb = with_note(nbformat.read(path, as_version=4), NOTE_UNEXECUTED)
        else:
            try:
                nb = with_note(execute(path, args.timeout), NOTE)
            except nbclient.exceptions.CellExecutionError as e:
                print(f"{path.name}: a cell failed:\n{e}", file=sys.stderr)
                return 1
        nb.metadata[KEY] = {"source_sha256": source_digest, "mode": mode}
        nbformat.write(nb, out)
        print(f"{path.name}: {mode} in {time.perf_counter() - t0:.1f} s")
    print(f"{len(paths)} notebooks in {TARGET.relative_to(ROOT)} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
