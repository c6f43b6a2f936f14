"""Make docs/images/dashboard.png, the picture of the dashboard in the README and on the site.

    python docs/dashboard_picture.py [OUT.png]      # about two minutes on a 2-core CPU

A real screenshot, not a drawing of it: JupyterLab (on 127.0.0.1, a random port and token, its
config folders in a temporary folder) runs a notebook that searches the `tiny` preset on digits to
its end (`dartsviz search`'s default run) inside a `Dashboard`, and headless Chromium, driven by
Playwright (the test extras), photographs the dashboard's main view at 1366 px wide: the controls,
the softmax weights of the normal cell and its live cell graph. Needs `pip install -e ".[test]"`
and Chromium (`apt-get install chromium`). Run it again when the dashboard's look changes.
"""
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "images" / "dashboard.png"
VIEWPORT = {"width": 1366, "height": 1000}
CELLS = [
    "import torch\ntorch.set_num_threads(1)\nfrom dartsviz import Dashboard",
    'dash = Dashboard(preset="tiny")\ndash.run(epochs=dash.search.config.epochs)   # the whole default search',
    "dash.widget",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(base: str, token: str) -> int:
    req = urllib.request.Request(f"{base}/api/status", headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status


def main(out: Path = OUT) -> int:
    chromium = shutil.which("chromium")
    if chromium is None:
        print("chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="dartsviz-picture-") as tmp:
        tmp = Path(tmp)
        serve = tmp / "serve"
        serve.mkdir()
        nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {},
                         "outputs": [], "source": src} for i, src in enumerate(CELLS)],
              "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
              "nbformat": 4, "nbformat_minor": 5}
        (serve / "dashboard.ipynb").write_text(json.dumps(nb))
        env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "DARTSVIZ_NB_FAST")}
        for key in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "JUPYTERLAB_WORKSPACES_DIR",
                    "JUPYTERLAB_SETTINGS_DIR"):
            env[key] = str(tmp / key.lower())
            Path(env[key]).mkdir()
        env["OMP_NUM_THREADS"] = "1"
        token, port = secrets.token_hex(16), _free_port()
        base = f"http://127.0.0.1:{port}"
        lab = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
             f"--ServerApp.root_dir={serve}", "--LabApp.news_url=None",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
            cwd=serve, env=env, stdout=open(tmp / "lab.log", "wb"), stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if _status(base, token) == 200:
                        break
                except Exception:
                    pass
                if lab.poll() is not None or time.monotonic() > deadline:
                    print((tmp / "lab.log").read_text(errors="replace")[-2000:], file=sys.stderr)
                    return 1
                time.sleep(0.5)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, headless=True,
                                            args=["--headless", "--no-sandbox", "--disable-gpu"])
                page = browser.new_page(viewport=VIEWPORT)
                page.set_default_timeout(60_000)
                page.goto(f"{base}/lab/tree/dashboard.ipynb?token={token}")
                kernel = page.locator('.jp-StatusBar-TextItem[title^="Change kernel"]')
                kernel.filter(has_text="| Idle").first.wait_for()
                if page.locator("#filebrowser").is_visible():      # the notebook at full width
                    page.locator('.jp-SideBar [data-id="filebrowser"]').first.click()
                page.locator('.lm-MenuBar-itemLabel:text-is("Run")').click()
                page.locator('.lm-Menu-itemLabel:text-is("Run All Cells")').click()
                page.locator(".dartsviz-dashboard button.dartsviz-step").wait_for(state="visible", timeout=600_000)
                kernel.filter(has_text="| Idle").first.wait_for(timeout=600_000)
                dash = page.locator(".dartsviz-dashboard")
                dash.evaluate("e => e.scrollIntoView({block: 'start'})")
                page.wait_for_timeout(1500)
                top = dash.bounding_box()
                graph = page.locator(".dartsviz-graph svg").first.bounding_box()
                bottom = graph["y"] + graph["height"] + 8
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out), clip={"x": top["x"], "y": top["y"], "width": top["width"],
                                                     "height": bottom - top["y"]})
                browser.close()
        finally:
            try:
                os.killpg(lab.pid, signal.SIGTERM)
                lab.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(lab.pid, signal.SIGKILL)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
