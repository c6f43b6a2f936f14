"""Classroom-ready: one public home (dartsviz.notebooks.HOME) that every notebook's Colab badge and install
cell, and pyproject.toml's URLs, agree with; `set-home` rewrites them all; the wheel holds the whole package.
The wheel itself is built, installed and run by .ci/wheel-check (CI), not here."""
import hashlib
import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dartsviz import notebooks as nbh

ROOT = Path(__file__).resolve().parent.parent
FORK = "a-teacher/dartsviz-class"


def _project_copy(tmp_path):
    """The files that hold the home, copied: notebooks, pyproject.toml, README.md, dartsviz/notebooks.py."""
    root = tmp_path / "project"
    shutil.copytree(ROOT / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    (root / "dartsviz").mkdir()
    (root / "docs").mkdir()
    for rel in ("pyproject.toml", "README.md", "dartsviz/notebooks.py", "docs/getting-started.md", "docs/tutorials.md"):
        shutil.copy(ROOT / rel, root / rel)
    return root


def _digests(root):
    return {p.relative_to(root): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _install_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code" and nbh.INSTALL_MARKER in "".join(c["source"])]


def _colab_links(nb):
    text = "".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    return [m.group(0) for m in nbh._BADGE_RE.finditer(text)]


def test_set_home_rewrites_every_badge_and_install_cell_and_a_second_run_changes_nothing(tmp_path, capsys):
    root = _project_copy(tmp_path)
    before = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in (root / "notebooks").glob("*.ipynb")}
    assert before

    assert nbh.main(["set-home", FORK, "--root", str(root)]) == 0
    assert f"everything points at {FORK}" in capsys.readouterr().out
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        text = path.read_text(encoding="utf-8")
        nb = json.loads(text)
        assert text == json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"   # Jupyter's layout
        (cell,) = _install_cells(nb)
        assert "".join(cell["source"]) == nbh.install_cell_source(FORK)
        assert nb["cells"].index(cell) == [c["cell_type"] for c in nb["cells"]].index("code"), "install cell moved"
        assert _colab_links(nb) and all(b == nbh.badge_markdown(FORK, path.name) for b in _colab_links(nb))
        # nothing else changed: same cells, same ids, same code apart from the install cell
        old = before[path.name]
        assert [c.get("id") for c in nb["cells"]] == [c.get("id") for c in old["cells"]]
        assert [c for c in nb["cells"] if c["cell_type"] == "code" and c is not cell] == \
               [c for c in old["cells"] if c["cell_type"] == "code" and not nbh._is_install_cell(c)]
        assert nb["metadata"] == old["metadata"]
    tomllib = pytest.importorskip("tomllib")
    urls = tomllib.loads((root / "pyproject.toml").read_text())["project"]["urls"]
    assert urls == nbh.project_urls(FORK)
    assert f'HOME = "{FORK}"' in (root / "dartsviz" / "notebooks.py").read_text()
    # the site's pages: the clone command, the git install and every Colab badge point at the fork
    start, tutorials = ((root / "docs" / n).read_text() for n in ("getting-started.md", "tutorials.md"))
    assert f"git clone https://github.com/{FORK} " in start and f"git+https://github.com/{FORK}" in start
    assert tutorials.count(f"colab.research.google.com/github/{FORK}/blob/main/notebooks/") == len(before)
    assert nbh.HOME not in start + tutorials and "{{" not in start + tutorials
    assert nbh.check(root) == [] and nbh.check(root, home=FORK) == []

    digests = _digests(root)
    assert nbh.main(["set-home", FORK, "--root", str(root)]) == 0
    assert "nothing to change" in capsys.readouterr().out
    assert _digests(root) == digests


def test_the_install_cell_is_tiny_and_never_touches_colab_s_own_packages():
    src = nbh.install_cell_source(FORK)
    assert src.startswith(nbh.INSTALL_MARKER) and len(src.splitlines()) <= 6
    assert '"google.colab" in sys.modules' in src
    assert f'"dartsviz @ git+https://github.com/{FORK}"' in src and f'|| echo "{nbh.INSTALL_HINT}"' in src
    assert src.count("pip install -q") == 1                  # no fallback to the index: the name is not ours
    pip_line = next(line for line in src.splitlines() if "pip install" in line)
    for banned in ("torch", "numpy", "ipykernel", "--upgrade", "-U "):
        assert banned not in pip_line


@pytest.mark.parametrize("git_ok", [True, False], ids=["from-the-home", "says-how-to-install"])
def test_the_install_cell_installs_from_the_home_or_says_in_one_line_how_to_install(tmp_path, git_ok):
    """The cell run by IPython as Colab would run it (google.colab imported), with a stand-in `pip`."""
    pytest.importorskip("IPython")
    log = tmp_path / "pip.log"
    pip = tmp_path / "bin" / "pip"
    pip.parent.mkdir()
    pip.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        echo "GIT_TERMINAL_PROMPT=$GIT_TERMINAL_PROMPT $*" >> "{log}"
        case "$*" in *git+*) exit {0 if git_ok else 1};; esac
        exit 0
        """))
    pip.chmod(0o755)
    script = textwrap.dedent("""\
        import sys, types
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance()
        shell.run_cell(sys.argv[1]).raise_error()            # outside Colab: nothing runs
        sys.modules["google.colab"] = types.ModuleType("google.colab")
        shell.run_cell(sys.argv[1]).raise_error()            # in Colab
        """)
    env = {"PATH": f"{pip.parent}:/usr/bin:/bin", "HOME": str(tmp_path)}
    p = subprocess.run([sys.executable, "-c", script, nbh.install_cell_source(FORK)],
                       capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    calls = log.read_text().splitlines()
    first = f"GIT_TERMINAL_PROMPT=0 install -q dartsviz @ git+https://github.com/{FORK}"
    assert calls == [first]                                   # never the package index
    hint = [line for line in p.stdout.splitlines() if "dartsviz is not installed" in line]
    assert hint == ([] if git_ok else [nbh.INSTALL_HINT])


def test_check_names_each_file_that_disagrees(tmp_path, capsys):
    root = _project_copy(tmp_path)
    assert nbh.set_home(FORK, root)
    paths = sorted((root / "notebooks").glob("*.ipynb"))
    # a badge that points elsewhere, and an install cell edited by hand
    badge = paths[0]
    badge.write_text(badge.read_text(encoding="utf-8").replace(f"/github/{FORK}/", "/github/someone/else/"),
                     encoding="utf-8")
    cell = paths[-1]
    nb = json.loads(cell.read_text(encoding="utf-8"))
    _install_cells(nb)[0]["source"][-1] = "    %pip install -q dartsviz"
    cell.write_text(nbh.dumps_notebook(nb), encoding="utf-8")

    problems = nbh.check(root)
    assert len(problems) == 2
    assert problems[0].startswith(f"notebooks/{badge.name}:") and problems[1].startswith(f"notebooks/{cell.name}:")
    assert nbh.main(["check", "--root", str(root)]) == 1
    assert f"python -m dartsviz.notebooks set-home {FORK}" in capsys.readouterr().out
    # and against another home, every file that holds the home disagrees
    named = {line.split(":")[0] for line in nbh.check(root, home="someone/else")}
    assert {"dartsviz/notebooks.py", "pyproject.toml", *(f"notebooks/{p.name}" for p in paths)} <= named


@pytest.mark.parametrize("bad", ["dartsviz", "a/b/c", "a b/c", "-a/b", "a-/b", "a/..", "a/b.git", "a/b?x", "", "a/"])
def test_a_malformed_home_is_refused_in_one_line_and_nothing_is_written(tmp_path, capsys, bad):
    root = _project_copy(tmp_path)
    digests = _digests(root)
    assert nbh.main(["set-home", "--root", str(root), "--", bad]) == 2
    out = capsys.readouterr()
    assert out.out == "" and len(out.err.strip().splitlines()) == 1 and "OWNER/REPO" in out.err
    assert _digests(root) == digests


def test_a_notebook_without_its_install_cell_stops_set_home_before_anything_is_written(tmp_path, capsys):
    root = _project_copy(tmp_path)
    path = sorted((root / "notebooks").glob("*.ipynb"))[-1]
    nb = json.loads(path.read_text(encoding="utf-8"))
    nb["cells"] = [c for c in nb["cells"] if not nbh._is_install_cell(c)]
    path.write_text(nbh.dumps_notebook(nb), encoding="utf-8")
    digests = _digests(root)
    assert nbh.main(["set-home", FORK, "--root", str(root)]) == 2
    err = capsys.readouterr().err
    assert path.name in err and "install cell" in err and len(err.strip().splitlines()) == 1
    assert _digests(root) == digests
    assert nbh.main(["set-home", FORK, "--root", str(tmp_path)]) == 2   # not a checkout
    assert "not a dartsviz checkout" in capsys.readouterr().err


def test_pyproject_urls_are_the_home():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["urls"] == nbh.project_urls(nbh.HOME)
    assert "build" in project["optional-dependencies"]["test"] and "twine" in project["optional-dependencies"]["test"]


def test_the_wheel_holds_the_whole_package():
    """setuptools' packages.find skips a folder without __init__.py, and ships no data file unless told:
    either would leave the wheel without something the source tree has."""
    pkg = ROOT / "dartsviz"
    for folder in [pkg, *(p for p in pkg.rglob("*") if p.is_dir() and p.name != "__pycache__")]:
        if any(folder.glob("*.py")) or any(q.is_dir() and q.name != "__pycache__" for q in folder.iterdir()):
            assert (folder / "__init__.py").is_file(), f"{folder.relative_to(ROOT)} has no __init__.py"
    tomllib = pytest.importorskip("tomllib")
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"].get(
        "package-data", {}).get("dartsviz", [])
    data = [p.relative_to(ROOT) for p in pkg.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts
            and not any(p.relative_to(pkg).match(glob) for glob in declared)]
    assert data == [], f"declare these as package data in pyproject.toml: {data}"
    manifest = (ROOT / "MANIFEST.in").read_text()                  # and the sdist carries them too
    assert all(f"recursive-include dartsviz/{g.split('/')[0]}" in manifest for g in declared if "/" in g)


def test_committed_notebooks_agree_with_HOME__fix_with_set_home():
    """If this fails: python -m dartsviz.notebooks set-home <HOME> (see dartsviz/notebooks.py), then commit."""
    problems = nbh.check(ROOT)
    assert problems == [], "\n".join(problems + [f"fix: python -m dartsviz.notebooks set-home {nbh.HOME}"])


def test_the_sites_pages_link_repository_files_relatively_and_the_site_gives_their_address():
    """A page of docs/ links a file outside docs/ as `../PATH` (which GitHub follows, no raw
    placeholder there); the site's hook turns it into the file's address at the home, and warns
    of a file that does not exist."""
    import importlib.util
    import logging
    from types import SimpleNamespace
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    page = SimpleNamespace(file=SimpleNamespace(src_uri="speed.md"))
    home = f"https://github.com/{nbh.HOME}/blob/main"
    text = "see [`bench`](../bench/README.md), [the glossary](glossary.md) and [x](../no/such.md)."
    warnings = []
    handler = logging.Handler()
    handler.emit = lambda record: warnings.append(record.getMessage())
    hooks.log.addHandler(handler)
    try:
        out = hooks._fill(text, page)
    finally:
        hooks.log.removeHandler(handler)
    assert out == (f"see [`bench`]({home}/bench/README.md), [the glossary](glossary.md) "
                   f"and [x]({home}/no/such.md).")
    assert warnings == ["speed.md: link to ../no/such.md: no such file in the repository"]
    pages = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs").glob("*.md"))
    assert "{{ source" not in pages


def test_the_readme_is_a_first_visit_and_its_test_command_is_the_one_ci_runs():
    """README: at most 150 lines, a picture of the dashboard that exists, and the test command
    that .ci/run runs (CI only adds where to keep the notebooks and the slowest tests' list)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    pictures = [p for p in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", readme) if not p.startswith("http")]
    assert pictures and all((ROOT / p).is_file() for p in pictures), pictures
    (command,) = re.findall(r'^pip install -e "\.\[test\]" && (.+)$', readme, re.M)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert any(command in line for line in ci.splitlines() if "pytest" in line), command
