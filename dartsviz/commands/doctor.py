"""`dartsviz doctor`: versions and capabilities that explain most setup problems."""
from __future__ import annotations

import platform
import shutil
import subprocess
from importlib import metadata


def add_parser(sub):
    p = sub.add_parser("doctor", help="print versions of Python, torch, widgets, graphviz; check dot and CUDA")
    p.set_defaults(func=run)
    return p


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


FIX_TORCH_PAIR = ("reinstall torch and torchvision together, as a matching pair from one index "
                  "(e.g. pip install --force-reinstall torch torchvision)")


def check_torch_pair() -> tuple:
    """(ok, one line): import torch and torchvision and run one torchvision op (nms), which
    fails when torchvision was built for another torch, as version numbers alone do not show."""
    try:
        import torch
    except Exception as e:  # doctor must report, not crash
        return False, f"broken: torch does not import ({type(e).__name__}: {_first_line(e)}); {FIX_TORCH_PAIR}"
    try:
        import torchvision
        from torchvision.ops import nms
        boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])     # (2, 4)
        kept = nms(boxes, torch.tensor([1.0, 0.5]), 0.5)
        if kept.tolist() != [0]:
            return False, f"broken: torchvision's nms gave {kept.tolist()}, not [0]; {FIX_TORCH_PAIR}"
    except Exception as e:
        return False, (f"broken: torchvision does not work with torch {torch.__version__} "
                       f"({type(e).__name__}: {_first_line(e)}); {FIX_TORCH_PAIR}")
    return True, f"works: torch {torch.__version__} with torchvision {torchvision.__version__} (nms check)"


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return (text.splitlines()[0] if text else type(e).__name__)[:160]


def report() -> list:
    lines = [("python", platform.python_version())]
    for dist in ("dartsviz", "torch", "torchvision", "numpy", "ipywidgets", "jupyterlab_widgets",
                 "widgetsnbextension", "ipykernel", "jupyterlab", "matplotlib", "graphviz", "scikit-learn"):
        lines.append((dist, _version(dist)))
    dot = shutil.which("dot")
    if dot:
        try:
            out = subprocess.run([dot, "-V"], capture_output=True, text=True, timeout=10)
            lines.append(("dot", f"{dot} ({(out.stderr or out.stdout).strip()})"))
        except (OSError, subprocess.SubprocessError) as e:
            lines.append(("dot", f"{dot} (does not run: {e})"))
    else:
        lines.append(("dot", "not found: install graphviz (apt-get install graphviz, brew install graphviz, "
                             "or conda install -c conda-forge python-graphviz); cell graphs fall back to matplotlib"))
    try:
        import torch
        if torch.cuda.is_available():
            x = torch.ones(2, device="cuda")
            cuda = f"works: {torch.cuda.get_device_name(0)} (sum check {float(x.sum()):.0f})"
        else:
            cuda = "not available (CPU only)"
    except Exception as e:  # doctor must report, not crash
        cuda = f"error: {e}"
    lines.append(("cuda", cuda))
    return lines


def run(args) -> int:
    ok, pair = check_torch_pair()       # first: a broken pair would break the CUDA check too
    for name, value in report():
        print(f"{name:20s} {value}")
    print(f"{'torch+torchvision':20s} {pair}")
    if not ok:
        import sys
        sys.stderr.write(f"dartsviz doctor: error: {pair[len('broken: '):]}\n")
        return 1
    return 0
