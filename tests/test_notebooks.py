"""The tutorial notebooks run top to bottom (with tiny budgets) and are committed clean."""
import os
import shutil
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 7, NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs(path, tmp_path):
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    work = tmp_path / "work"
    work.mkdir()
    copy = work / path.name
    shutil.copy(path, copy)
    nb = nbformat.read(copy, as_version=4)
    # the kernel gets its own backend (inline), fast budgets, and a tmp working directory
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["DARTSVIZ_NB_FAST"] = "1"
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(work)}}, allow_errors=False)
    t0 = time.perf_counter()
    client.execute(env=env, cwd=str(work))
    seconds = time.perf_counter() - t0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", out
    print(f"{path.name}: {seconds:.1f} s")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_committed_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert "widgets" not in nb.metadata, "widget state saved in the notebook metadata"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.get("outputs") == [], f"cell {i} has outputs"
            assert cell.get("execution_count") is None, f"cell {i} has an execution count"
        assert "widgets" not in cell.get("metadata", {}), f"cell {i} holds widget state"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_conventions(path):
    """Colab badge, a Colab-only install cell, the FAST/GPU settings cell, and an import of dartsviz."""
    nb = nbformat.read(path, as_version=4)
    text = [c.source for c in nb.cells]
    url = f"https://colab.research.google.com/github/dartsviz/dartsviz/blob/main/notebooks/{path.name}"
    assert url in text[0]
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert '"google.colab" in sys.modules' in code[0] and "pip install -q dartsviz" in code[0]
    pip_line = next(line for line in code[0].splitlines() if "pip install" in line)
    for banned in ("torch", "numpy", "ipykernel", "--upgrade", "-U "):
        assert banned not in pip_line
    assert any('FAST = os.environ.get("DARTSVIZ_NB_FAST") == "1"' in c and "GPU = False" in c for c in code[:3])
    assert any("dartsviz" in c and "import" in c for c in code[1:])
