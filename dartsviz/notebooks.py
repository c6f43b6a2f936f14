"""The project's public home, and the notebooks' Colab badge and install cell that point at it.

`HOME` below is the one value a fork changes. Nobody edits it or its copies by hand:

    python -m dartsviz.notebooks set-home OWNER/REPO   # writes HOME here, pyproject.toml's [project.urls],
                                                       # every notebook's badge and install cell, README and docs/ links
    python -m dartsviz.notebooks check                 # exit 1 when any of them disagrees with HOME

Both run in the project's checkout (or pass `--root`). The install cell installs from the home with
pip's git URL form (no package index entry needed) and never falls back to the package index.
Notebooks are read and written as plain JSON in Jupyter's own layout, so a rewrite changes only
the lines it means to change.
"""
import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional

HOME = "dartsviz/dartsviz"   # OWNER/REPO on GitHub; `set-home` rewrites this line
BRANCH = "main"              # the branch the Colab badges open
NOTEBOOK_DIR = "notebooks"   # where the notebooks live in the repository
INSTALL_MARKER = "# dartsviz: install"

_BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
_HOME_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}/(?!\.\.?$)(?!.*\.git$)[A-Za-z0-9._-]{1,100}")
_LINK_HOME = r"[A-Za-z0-9-]+/[A-Za-z0-9._-]+?"
# [![Open In Colab](badge image)](https://colab.research.google.com/github/OWNER/REPO/blob/BRANCH/PATH)
_BADGE_RE = re.compile(r"\[!\[[^\]]*\]\(" + re.escape(_BADGE_IMAGE) + r"\)\]\([^)\s]*\)")
# links that can only mean this project: a Colab notebook on GitHub, and a pip git URL install
_COLAB_RE = re.compile(r"(https://colab\.research\.google\.com/github/)(" + _LINK_HOME + r")(?=/)")
_END = r"(?=\.git(?![A-Za-z0-9._-])|[/@#\"'\s)]|$)"   # where OWNER/REPO ends in a link
_GIT_RE = re.compile(r"(git\+https://github\.com/)(" + _LINK_HOME + r")" + _END)
_CONST_RE = re.compile(r'^HOME = "([^"\n]*)"', re.M)
_GITHUB_RE = re.compile(r"(https://github\.com/)(" + _LINK_HOME + r")" + _END)


class HomeError(ValueError):
    """A malformed home, or a project whose files cannot be brought to a home; one line for the user."""


# ---- what the home looks like in each place -------------------------------------------------------------

def parse_home(text: str) -> str:
    """`OWNER/REPO` as GitHub spells them, or HomeError."""
    text = str(text).strip()
    if not _HOME_RE.fullmatch(text):
        raise HomeError(f"{text!r} is not OWNER/REPO on GitHub (for example {HOME})")
    return text


def repo_url(home: str = HOME) -> str:
    return f"https://github.com/{home}"


def project_urls(home: str = HOME) -> Dict[str, str]:
    """What pyproject.toml's [project.urls] holds for `home`."""
    return {"Homepage": repo_url(home), "Repository": repo_url(home), "Issues": f"{repo_url(home)}/issues"}


def pip_requirement(home: str = HOME) -> str:
    """pip's git URL install of the project: works without a package index entry."""
    return f"dartsviz @ git+{repo_url(home)}"


def colab_url(home: str, notebook: str) -> str:
    return f"https://colab.research.google.com/github/{home}/blob/{BRANCH}/{NOTEBOOK_DIR}/{notebook}"


def badge_markdown(home: str, notebook: str) -> str:
    """The "Open In Colab" badge of notebook file `notebook` (a name like 04_live_search.ipynb)."""
    return f"[![Open In Colab]({_BADGE_IMAGE})]({colab_url(home, notebook)})"


INSTALL_HINT = ("dartsviz is not installed: upload the wheel that .ci/wheel-check builds and run "
                "!pip install dartsviz-*.whl, or point the notebooks at your fork with "
                "python -m dartsviz.notebooks set-home OWNER/REPO")


def install_cell_source(home: str = HOME) -> str:
    """The notebooks' first code cell. A no-op outside Colab; on Colab it installs from the home, and
    if that fails (no such repository, no network to GitHub) says in one line how to install instead.
    It never falls back to the package index, where the name is not the project's to control, and
    never names torch, numpy or ipykernel, so Colab keeps its own. GIT_TERMINAL_PROMPT=0 makes a
    missing repository fail at once instead of waiting for a password."""
    return (
        f"{INSTALL_MARKER} (Colab only): from {repo_url(home)}.\n"
        "# torch, numpy and ipykernel stay as Colab ships them. `python -m dartsviz.notebooks set-home` writes this cell.\n"
        "import sys\n"
        "if \"google.colab\" in sys.modules:\n"
        f"    !GIT_TERMINAL_PROMPT=0 pip install -q \"{pip_requirement(home)}\" || echo \"{INSTALL_HINT}\""
    )


# ---- rewriting text and notebooks -----------------------------------------------------------------------

def _links_to(text: str, home: str) -> str:
    """`text` with every Colab-on-GitHub link and pip git URL pointing at `home`."""
    text = _COLAB_RE.sub(lambda m: m.group(1) + home, text)
    return _GIT_RE.sub(lambda m: m.group(1) + home, text)


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _lines(text: str) -> List[str]:
    return text.splitlines(keepends=True)


def _is_install_cell(cell) -> bool:
    if cell.get("cell_type") != "code":
        return False
    src = _source(cell)
    if any(line.startswith(INSTALL_MARKER) for line in src.splitlines()):
        return True
    # the form before the marker existed: a Colab-only pip install of dartsviz
    return '"google.colab" in sys.modules' in src and "pip install" in src and "dartsviz" in src


def notebook_for_home(nb: dict, name: str, home: str) -> dict:
    """A copy of notebook `nb` (file name `name`) whose badges, install cell and links point at `home`.
    HomeError when it has no badge, or not exactly one install cell."""
    install = [i for i, c in enumerate(nb.get("cells", [])) if _is_install_cell(c)]
    if len(install) != 1:
        raise HomeError(f"{name}: {len(install)} install cells, want 1 (a code cell starting {INSTALL_MARKER!r})")
    out = json.loads(json.dumps(nb))
    badges = 0
    for i, cell in enumerate(out["cells"]):
        if i == install[0]:
            new = install_cell_source(home)
        elif cell.get("cell_type") == "markdown":
            text = _source(cell)
            badges += len(_BADGE_RE.findall(text))
            new = _links_to(_BADGE_RE.sub(lambda m: badge_markdown(home, name), text), home)
        else:
            continue
        if new != _source(cell):
            cell["source"] = _lines(new)
    if badges == 0:
        raise HomeError(f"{name}: no Open In Colab badge ({badge_markdown(home, name)})")
    return out


def read_notebook(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def dumps_notebook(nb: dict) -> str:
    """Jupyter's own layout (what nbformat writes), so a rewrite leaves other lines untouched."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def pyproject_for_home(text: str, home: str) -> str:
    """pyproject.toml text whose [project.urls] GitHub links point at `home`."""
    m = re.search(r"^\[project\.urls\][ \t]*\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
    if not m or not _GITHUB_RE.search(m.group(1)):
        raise HomeError("pyproject.toml: no [project.urls] table with a https://github.com/OWNER/REPO link")
    body = _GITHUB_RE.sub(lambda g: g.group(1) + home, m.group(1))
    return text[:m.start(1)] + body + text[m.end(1):]


def module_for_home(text: str, home: str) -> str:
    """This file's text with HOME set to `home`."""
    if len(_CONST_RE.findall(text)) != 1:
        raise HomeError('dartsviz/notebooks.py: no single line HOME = "OWNER/REPO"')
    return _CONST_RE.sub(f'HOME = "{home}"', text)


def readme_for_home(text: str, old: str, home: str) -> str:
    """README text with Colab and pip git links, and plain links to the old home, pointing at `home`."""
    text = _links_to(text, home)
    return re.sub(r"(https://github\.com/)" + re.escape(old) + _END,
                  lambda m: m.group(1) + home, text)


# ---- the project on disk --------------------------------------------------------------------------------

def _project(root: Path) -> Dict[str, Path]:
    root = Path(root)
    files = {"pyproject": root / "pyproject.toml", "module": root / "dartsviz" / "notebooks.py"}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise HomeError(f"{root}: not a dartsviz checkout ({', '.join(missing)} missing); "
                        "run this in the project's folder or pass --root")
    return files


def _home_of(module_file: Path) -> str:
    found = _CONST_RE.findall(module_file.read_text(encoding="utf-8"))
    if len(found) != 1:
        raise HomeError(f'{module_file}: no single line HOME = "OWNER/REPO"')
    return found[0]


def planned_files(root, home: str, notebook_dir=None) -> Dict[Path, tuple]:
    """{path: (current text, text for `home`)} for every file that holds the home. HomeError when
    some file cannot be brought to `home`; nothing is written here."""
    root = Path(root)
    files = _project(root)
    old = _home_of(files["module"])
    plan = {}

    def add(path, make):
        text = path.read_text(encoding="utf-8")
        plan[path] = (text, make(text))

    add(files["module"], lambda t: module_for_home(t, home))
    add(files["pyproject"], lambda t: pyproject_for_home(t, home))
    for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        if page.is_file():                      # the README and the site's pages: the same links
            add(page, lambda t: readme_for_home(t, old, home))
    nb_dir = Path(notebook_dir) if notebook_dir is not None else root / NOTEBOOK_DIR
    notebooks = sorted(nb_dir.glob("*.ipynb"))
    if not notebooks:
        raise HomeError(f"{nb_dir}: no notebooks")
    problems = []
    for path in notebooks:
        text = path.read_text(encoding="utf-8")
        try:
            new = dumps_notebook(notebook_for_home(json.loads(text), path.name, home))
        except HomeError as e:
            problems.append(str(e))
            continue
        except ValueError as e:
            problems.append(f"{path.name}: not a notebook ({e})")
            continue
        plan[path] = (text, new)
    if problems:
        raise HomeError("; ".join(problems))
    return plan


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


def set_home(home: str, root=".", notebook_dir=None) -> List[Path]:
    """Point every file of the project at `home`; the files it changed (none when they already do).
    Everything is checked before anything is written."""
    home = parse_home(home)
    plan = planned_files(root, home, notebook_dir)
    changed = [p for p, (old, new) in plan.items() if old != new]
    for path in changed:
        _write(path, plan[path][1])
    return changed


def check(root=".", home: Optional[str] = None, notebook_dir=None) -> List[str]:
    """What disagrees with `home` (default: the HOME written in ROOT/dartsviz/notebooks.py); [] when all agree."""
    root = Path(root)
    home = parse_home(home if home is not None else _home_of(_project(root)["module"]))
    try:
        plan = planned_files(root, home, notebook_dir)
    except HomeError as e:
        return [str(e)]
    what = {"notebooks.py": f"HOME is not {home!r}", "pyproject.toml": f"[project.urls] not pointing at {home}",
            ".md": f"Colab or GitHub links not pointing at {home}",
            ".ipynb": f"Colab badge or install cell not pointing at {home}"}
    return [f"{_rel(path, root)}: {what.get(path.name) or what[path.suffix]}"
            for path, (old, new) in plan.items() if old != new]


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


# ---- command line ---------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):   # one line, like every other refusal here
        self.exit(2, f"{self.prog}: {message}\n")


def main(argv: Optional[List[str]] = None) -> int:
    parser = _Parser(
        prog="python -m dartsviz.notebooks",
        description="The project's public home (GitHub OWNER/REPO) in the notebooks' Colab badges and install "
                    "cells, pyproject.toml, README and docs/ links.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    p = sub.add_parser("set-home", help="point every badge, install cell and project link at OWNER/REPO")
    p.add_argument("home", metavar="OWNER/REPO")
    c = sub.add_parser("check", help="exit 1 when a notebook or project link disagrees with HOME")
    c.add_argument("--home", metavar="OWNER/REPO", help="the home to check against (default: HOME)")
    for q in (p, c):
        q.add_argument("--root", default=".", help="the project's checkout (default: the current folder)")
        q.add_argument("--dir", default=None, help=f"the notebooks' folder (default: ROOT/{NOTEBOOK_DIR})")
    args = parser.parse_args(argv)
    try:
        if args.command == "set-home":
            changed = set_home(args.home, args.root, args.dir)
            root = Path(args.root)
            for path in changed:
                print(f"rewrote {_rel(path, root)}")
            print(f"{len(changed)} files changed; everything points at {args.home}" if changed
                  else f"nothing to change: everything already points at {args.home}")
            return 0
        problems = check(args.root, args.home, args.dir)
    except HomeError as e:
        print(f"dartsviz.notebooks: {e}", file=sys.stderr)
        return 2
    home = args.home or _home_of(Path(args.root) / "dartsviz" / "notebooks.py")
    for line in problems:
        print(line)
    if problems:
        print(f"fix: python -m dartsviz.notebooks set-home {home}")
        return 1
    print(f"ok: notebooks, pyproject.toml, README and docs/ point at {home}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
