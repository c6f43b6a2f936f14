"""A real browser: JupyterLab + headless Chromium run 04_live_search.ipynb and click the dashboard's Step.

Follows docs/browser-test-notes.md: loopback server with a random token and a free port,
isolated Jupyter config dirs, a copy of the notebook in tmp_path, Debian's chromium via
Playwright's executable_path, every wait bounded, the server always shut down.
"""
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "04_live_search.ipynb"
WAIT_MS = 60_000
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, token: str, method: str = "GET", timeout: float = 5.0):
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"token {token}"},
                                 data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def _start_lab(tmp_path: Path, env: dict, port: int, token: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path / 'serve'}",
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly"]
    log = open(tmp_path / "lab.log", "wb")
    return subprocess.Popen(cmd, cwd=tmp_path / "serve", env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop_lab(proc: subprocess.Popen, base: str, token: str) -> None:
    try:
        _request(f"{base}/api/shutdown", token, method="POST")
    except Exception:
        pass
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_dashboard_in_jupyterlab(tmp_path):
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if shutil.which("jupyter") is None and not (Path(sys.executable).parent / "jupyter").exists():
        pytest.skip("jupyter is not installed")
    pytest.importorskip("jupyterlab")

    serve = tmp_path / "serve"
    serve.mkdir()
    shutil.copy(NOTEBOOK, serve / NOTEBOOK.name)
    dirs = {k: tmp_path / d for k, d in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                                        ("IPYTHONDIR", "ipython"), ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
                                        ("JUPYTERLAB_SETTINGS_DIR", "settings")]}
    for d in dirs.values():
        d.mkdir()
    settings = {
        "@jupyterlab/apputils-extension:notification.jupyterlab-settings": {"fetchNews": "false",
                                                                             "checkForUpdates": False},
        "@jupyterlab/docmanager-extension:plugin.jupyterlab-settings": {"autosave": False},
    }
    for name, value in settings.items():
        plugin, file = name.split(":")
        (dirs["JUPYTERLAB_SETTINGS_DIR"] / plugin).mkdir(parents=True, exist_ok=True)
        (dirs["JUPYTERLAB_SETTINGS_DIR"] / plugin / file).write_text(json.dumps(value))
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env.update({k: str(v) for k, v in dirs.items()})
    env["DARTSVIZ_NB_FAST"] = "1"

    token = secrets.token_hex(16)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start_lab(tmp_path, env, port, token)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail("jupyter lab exited:\n" + (tmp_path / "lab.log").read_text(errors="replace")[-3000:])
            try:
                if _request(f"{base}/api/status", token)[0] == 200:
                    break
            except Exception:
                pass
            if time.monotonic() > deadline:
                pytest.fail("jupyter lab did not start within 60 s")
            time.sleep(0.5)

        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(WAIT_MS)
                page.goto(f"{base}/lab/tree/{NOTEBOOK.name}?token={token}", timeout=WAIT_MS)
                kernel = page.locator('.jp-StatusBar-TextItem[title^="Change kernel"]')
                kernel.filter(has_text="| Idle").first.wait_for(timeout=WAIT_MS)

                page.locator('.lm-MenuBar-itemLabel:text-is("Run")').click()
                page.locator('.lm-Menu-itemLabel:text-is("Run All Cells")').click()

                step = page.locator("button.widget-button", has_text="Step").filter(has_not_text="\u00d7").first
                step.wait_for(state="visible", timeout=WAIT_MS)
                # the last cell has run when the kernel is idle again after the run
                page.wait_for_function(
                    """() => [...document.querySelectorAll('.jp-InputArea-prompt')]
                              .every(e => !e.textContent.includes('*'))""", timeout=WAIT_MS)
                kernel.filter(has_text="| Idle").first.wait_for(timeout=WAIT_MS)
                counter = page.locator(".widget-html-content", has_text="step").filter(has_text="epoch").first
                counter.wait_for(timeout=WAIT_MS)
                before_counter = counter.inner_text()
                images = page.locator(".widget-image")
                images.first.wait_for(timeout=WAIT_MS)
                before_src = images.evaluate_all("els => els.map(e => e.src)")

                step.click()
                page.wait_for_function(
                    """([before]) => {
                        const imgs = [...document.querySelectorAll('img.widget-image')];
                        return imgs.some((e, i) => e.src !== before[i] && e.complete && e.naturalWidth > 0);
                    }""", arg=[before_src], timeout=WAIT_MS)
                page.wait_for_function(
                    """([before]) => [...document.querySelectorAll('.widget-html-content')]
                        .some(e => e.textContent.includes('epoch') && e.textContent.includes('step')
                                   && e.textContent !== before)""",
                    arg=[before_counter], timeout=WAIT_MS)
                after_counter = counter.inner_text()
                assert after_counter != before_counter
                errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]',
                                      has_text="Traceback")
                assert errors.count() == 0, errors.first.inner_text()
                page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            finally:
                browser.close()
    finally:
        _stop_lab(proc, base, token)
