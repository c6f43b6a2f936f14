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
    for name, value in report():
        print(f"{name:20s} {value}")
    return 0
