"""A real browser: JupyterLab + headless Chromium run 04_live_search.ipynb at 1366x768 and check
that the dashboard fits one screen, that its text is readable, that Step redraws it, that its
tabs keep one height, that cell drawings stay inside their output, and that the projector
mode enlarges its text to 16 px and more while the step button, weights and graph stay in view.

Follows docs/browser-test-notes.md: loopback server with a random token and a free port,
isolated Jupyter config dirs, a copy of the notebook in tmp_path, Debian's chromium via
Playwright's executable_path, every wait bounded, the server always shut down.

Run twice: with the ipywidgets installed here (8), and with ipywidgets 7.7 (what Colab
ships) in a virtual environment that sees what this interpreter sees (a .pth file adds its
site directories behind the new environment's own: `--system-site-packages` alone would see
the base interpreter's, not those of a venv the tests run from), its wheels from the package
index pip is configured with; skipped, saying why, when they cannot be had.

Screenshots and the measured layout go to `test-artifacts/` at the repository root (or
$DARTSVIZ_ARTIFACTS), kept by CI.
"""
import contextlib
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

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "04_live_search.ipynb"
ARTIFACTS = Path(os.environ.get("DARTSVIZ_ARTIFACTS", ROOT / "test-artifacts"))
VIEWPORT = {"width": 1366, "height": 768}
WAIT_MS = 60_000
RUN_MS = 240_000                # Run All: kernel start, imports, the notebook's few steps
MIN_TEXT_PX = 11.0
PROJECTOR_TEXT_PX = 16.0        # what the back of a classroom reads
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
IPYWIDGETS_7 = ["ipywidgets==7.7.5", "jupyterlab_widgets==1.1.11", "widgetsnbextension==3.6.10",
                "ipython_genutils==0.2.0"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, token: str, method: str = "GET", timeout: float = 5.0):
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"token {token}"},
                                 data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def _start_lab(tmp_path: Path, env: dict, port: int, token: str, python: str = sys.executable) -> subprocess.Popen:
    # `-m jupyterlab`, not `-m jupyter lab`: the latter runs the first `jupyter-lab` on PATH,
    # whatever environment `python` is in
    cmd = [python, "-m", "jupyterlab", "--no-browser", "--allow-root",
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


def _needs_browser():
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if shutil.which("jupyter") is None and not (Path(sys.executable).parent / "jupyter").exists():
        pytest.skip("jupyter is not installed")
    pytest.importorskip("jupyterlab")
    return chromium, sync_api


@contextlib.contextmanager
def _lab(tmp_path: Path, python: str = sys.executable, extra_env: dict = None, notebook: Path = NOTEBOOK):
    """A JupyterLab serving a copy of `notebook` from tmp_path: yields (base URL, token)."""
    serve = tmp_path / "serve"
    serve.mkdir(exist_ok=True)
    shutil.copy(notebook, serve / notebook.name)
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
    env.update({"DARTSVIZ_NB_FAST": "1", "OMP_NUM_THREADS": "1",
                "PYTHONPATH": os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])})
    env.update(extra_env or {})

    token = secrets.token_hex(16)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start_lab(tmp_path, env, port, token, python)
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
        yield base, token
    finally:
        _stop_lab(proc, base, token)


# In the page: every visible piece of text under `root` and the size it is drawn at, in CSS px.
# HTML text: its computed font size times its CSS zoom (the projector's); inline SVG (the cell
# graphs): font size times the SVG's scale on screen; SVG pictures in <img> (the figures): the
# file's font sizes times the image's shown width over its viewBox width.
TEXT_SIZES_JS = """
async (root) => {
  const shown = e => { const r = e.getBoundingClientRect(); const s = getComputedStyle(e);
                       return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'; };
  const out = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!n.textContent.trim() || !el || el.closest('svg') || ['STYLE', 'OPTION'].includes(el.tagName) || !shown(el))
      continue;
    out.push({kind: 'html', text: n.textContent.trim().slice(0, 40),
              px: parseFloat(getComputedStyle(el).fontSize) * (el.currentCSSZoom || 1)});
  }
  for (const t of root.querySelectorAll('svg text')) {
    if (!t.textContent.trim() || !shown(t)) continue;
    const m = t.getScreenCTM();
    out.push({kind: 'svg', text: t.textContent.trim().slice(0, 40),
              px: parseFloat(getComputedStyle(t).fontSize) * Math.hypot(m.a, m.b)});
  }
  for (const img of root.querySelectorAll('img')) {
    if (!shown(img) || !img.src) continue;
    const body = await (await fetch(img.src)).text();
    const doc = new DOMParser().parseFromString(body, 'image/svg+xml');
    const svg = doc.querySelector('svg');
    if (!svg) { out.push({kind: 'img', text: 'not an SVG: ' + img.className, px: 0}); continue; }
    const scale = img.getBoundingClientRect().width / parseFloat(svg.getAttribute('viewBox').split(/[ ,]+/)[2]);
    for (const t of doc.querySelectorAll('text')) {
      const m = /font-size:\\s*([\\d.]+)px/.exec(t.getAttribute('style') || '') ;
      const px = m ? parseFloat(m[1]) : parseFloat(t.getAttribute('font-size') || '0');
      out.push({kind: 'img', text: (t.textContent || '').trim().slice(0, 40), px: px * scale});
    }
  }
  return out;
}
"""

BOX_JS = """
(el) => { const r = el.getBoundingClientRect();
          return {x: r.x, y: r.y, width: r.width, height: r.height, bottom: r.bottom, right: r.right}; }
"""


def _small_text(page, root, at_least: int = 20, min_px: float = MIN_TEXT_PX) -> list:
    """The text under `min_px` under `root` (which shows at least `at_least` pieces)."""
    sizes = root.evaluate(TEXT_SIZES_JS)
    assert len(sizes) >= at_least, sizes
    return sorted((round(s["px"], 2), s["kind"], s["text"]) for s in sizes if s["px"] < min_px - 0.05)


def _text_px(page, root) -> float:
    """The smallest text under `root`, in CSS px on screen."""
    return round(min(s["px"] for s in root.evaluate(TEXT_SIZES_JS)), 2)


def _in_first_screen(boxes: dict, view: dict, names, tag: str) -> None:
    for name in names:
        b = boxes[name]
        assert b["width"] > 0 and b["height"] > 0, name
        inside = (b["y"] >= view["y"] - 1 and b["bottom"] <= min(view["bottom"], VIEWPORT["height"]) + 1
                  and b["x"] >= view["x"] - 1 and b["right"] <= min(view["right"], VIEWPORT["width"]) + 1)
        assert inside, f"{name} {b} is not inside the first screen {view} ({tag})"


def _main_boxes(page, step, window) -> dict:
    return {"dashboard": page.locator(".dartsviz-dashboard").evaluate(BOX_JS), "step": step.evaluate(BOX_JS),
            "weights": page.locator("img.dartsviz-weights").evaluate(BOX_JS),
            "graph": page.locator(".dartsviz-graph svg").first.evaluate(BOX_JS),
            "notebook_window": window.evaluate(BOX_JS)}


# The recurrent cell as JupyterLab shows `display(SVG(cell_svg(...)))` (notebooks 08 and 09): an
# <img> of the SVG in a .jp-RenderedSVG, which JupyterLab does not constrain; put in an output area
# of the page, its box.
SVG_OUTPUT_JS = """
([svg]) => {
  const output = document.querySelector('.jp-OutputArea-output');
  const child = document.createElement('div');
  child.className = 'lm-Widget jp-OutputArea-child';
  const prompt = document.createElement('div');
  prompt.className = 'lm-Widget jp-OutputPrompt jp-OutputArea-prompt';
  const host = document.createElement('div');
  host.className = 'lm-Widget jp-RenderedSVG jp-OutputArea-output';
  const img = new Image();
  host.appendChild(img);
  child.append(prompt, host);
  output.closest('.jp-OutputArea').appendChild(child);
  return new Promise(done => {
    img.onload = () => { const r = img.getBoundingClientRect(), a = output.getBoundingClientRect();
                         child.remove();
                         done({width: r.width, x: r.x, right: r.right, area_x: a.x, area_right: a.right}); };
    img.src = 'data:image/svg+xml,' + encodeURIComponent(svg);
  });
}
"""


def _wait_images_ready(page, scope: str) -> None:
    page.wait_for_function(
        """(scope) => [...document.querySelectorAll(scope + ' img')]
             .filter(e => e.getBoundingClientRect().width > 0)
             .every(e => e.src && e.complete && e.naturalWidth > 0)""", arg=scope, timeout=WAIT_MS)


@contextlib.contextmanager
def _open_notebook(sync_api, chromium: str, base: str, token: str, name: str):
    """Headless Chromium at VIEWPORT with `name` open in the JupyterLab at `base`, its kernel idle:
    yields (page, the kernel's status-bar item); the browser is always closed."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(WAIT_MS)
            page.goto(f"{base}/lab/tree/{name}?token={token}", timeout=WAIT_MS)
            kernel = page.locator('.jp-StatusBar-TextItem[title^="Change kernel"]')
            kernel.filter(has_text="| Idle").first.wait_for(timeout=WAIT_MS)
            yield page, kernel
        finally:
            browser.close()


def _run_all(page, kernel, shown) -> None:
    """Run All Cells, wait for `shown` to appear and for the last cell to finish (the kernel idle
    again), dismiss the news toast, and fail on any traceback in the outputs."""
    page.locator('.lm-MenuBar-itemLabel:text-is("Run")').click()
    page.locator('.lm-Menu-itemLabel:text-is("Run All Cells")').click()
    shown.wait_for(state="visible", timeout=RUN_MS)
    page.wait_for_function(
        """() => [...document.querySelectorAll('.jp-InputArea-prompt')]
                  .every(e => !e.textContent.includes('*'))""", timeout=RUN_MS)
    kernel.filter(has_text="| Idle").first.wait_for(timeout=WAIT_MS)
    no = page.locator(".jp-toast-button", has_text="No")          # "get notified about news?"
    if no.count():
        no.first.click()
    errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]',
                          has_text="Traceback")
    assert errors.count() == 0, errors.first.inner_text()


def _drive_dashboard(chromium, sync_api, base: str, token: str, tag: str, tmp_path: Path) -> dict:
    """Open the notebook at 1366x768 with the file browser open, Run All, and check the dashboard."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    found = {"viewport": VIEWPORT, "environment": tag}
    with _open_notebook(sync_api, chromium, base, token, NOTEBOOK.name) as (page, kernel):
        # default zoom, the file browser open (JupyterLab's default; opened if a workspace closed it)
        if not page.locator("#filebrowser").is_visible():
            page.locator('.jp-SideBar [data-id="filebrowser"]').first.click()
            page.locator("#filebrowser").wait_for(state="visible")
        found["file_browser_width"] = page.locator("#filebrowser").evaluate(BOX_JS)["width"]

        step = page.locator("button.dartsviz-step")
        _run_all(page, kernel, step)

        # -- one screen: the dashboard's top at the top of the notebook's window ----------------
        dash = page.locator(".dartsviz-dashboard")
        dash.evaluate("e => e.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(500)
        _wait_images_ready(page, ".dartsviz-dashboard")
        window = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer").first
        if not window.count():
            window = page.locator(".jp-NotebookPanel .jp-Notebook").first
        boxes = _main_boxes(page, step, window)
        view = boxes["notebook_window"]
        found.update(boxes)
        found["dashboard_height"] = round(boxes["dashboard"]["height"])
        found["main_view_height"] = round(boxes["graph"]["bottom"] - boxes["dashboard"]["y"])
        found["text_px"] = _text_px(page, dash)
        page.screenshot(path=str(ARTIFACTS / f"dashboard-1366x768-{tag}.png"))
        (ARTIFACTS / f"dashboard-layout-{tag}.json").write_text(json.dumps(found, indent=1))
        _in_first_screen(boxes, view, ("step", "weights", "graph"), tag)
        small = _small_text(page, page.locator(".dartsviz-dashboard"))
        assert not small, f"text under {MIN_TEXT_PX} px ({tag}): {small[:10]}"

        # -- Step: the weights and the live graph redraw; the graph's nodes stay where they were --
        node_places = """() => [...document.querySelectorAll('.dartsviz-graph g.node text')]
                               .map(t => { const r = t.getBoundingClientRect();
                                           return [t.textContent, Math.round(r.x), Math.round(r.y)]; })"""
        counter = page.locator(".widget-html-content", has_text="step").filter(has_text="epoch").first
        before = {"counter": counter.inner_text(), "weights": page.locator("img.dartsviz-weights").get_attribute("src"),
                  "graph": page.locator(".dartsviz-graph").inner_html(), "nodes": page.evaluate(node_places)}
        assert len(before["nodes"]) >= 7
        step.click()
        page.wait_for_function(
            """([src]) => { const e = document.querySelector('img.dartsviz-weights');
                            return e.src !== src && e.complete && e.naturalWidth > 0; }""",
            arg=[before["weights"]], timeout=WAIT_MS)
        page.wait_for_function(
            """([before]) => [...document.querySelectorAll('.widget-html-content')]
                .some(e => e.textContent.includes('epoch') && e.textContent.includes('step')
                           && e.textContent !== before)""", arg=[before["counter"]], timeout=WAIT_MS)
        page.wait_for_function("([g]) => document.querySelector('.dartsviz-graph').innerHTML !== g",
                               arg=[before["graph"]], timeout=WAIT_MS)
        assert page.evaluate(node_places) == before["nodes"]

        # -- every tab: drawn when shown, nothing empty, nothing small, one height ---------------
        tabs = page.locator(".dartsviz-tabs")
        found["tab_heights"] = {}
        for title in ("Heat map", "Trajectories", "Curves & cost", "Collapse", "Cells & genotype", "Training",
                      "Setup"):
            tabs.get_by_text(title, exact=True).first.click()
            page.wait_for_timeout(300)
            kernel.filter(has_text="| Idle").first.wait_for(timeout=WAIT_MS)
            _wait_images_ready(page, ".dartsviz-tabs")
            found["tab_heights"][title] = round(tabs.evaluate(BOX_JS)["height"], 1)
            small = _small_text(page, tabs, at_least=8)
            assert not small, f"text under {MIN_TEXT_PX} px in tab {title} ({tag}): {small[:10]}"
            if title == "Training":
                assert tabs.get_by_text("nothing trained yet").first.is_visible()
                assert all(not i.is_visible() for i in tabs.locator("img").all())   # no broken image
            if title == "Cells & genotype":    # taller than the tab: it scrolls inside; drawings inside it
                contents = tabs.locator(".widget-tab-contents").first
                scroll = contents.evaluate("e => [e.scrollHeight, e.clientHeight]")
                assert scroll[0] > scroll[1] + 50, scroll
                inner = contents.evaluate(BOX_JS)
                for svg in tabs.locator(".dartsviz-cell svg").all():
                    b = svg.evaluate(BOX_JS)
                    assert inner["x"] - 1 <= b["x"] and b["right"] <= inner["right"] + 1, (b, inner)
        heights = found["tab_heights"]
        assert max(heights.values()) - min(heights.values()) <= 2, f"the tabs' heights differ ({tag}): {heights}"
        tabs.get_by_text("Heat map", exact=True).first.click()
        broken = page.evaluate("""() => [...document.querySelectorAll('.dartsviz-dashboard img')]
                                   .filter(e => e.getBoundingClientRect().width > 0 && !(e.naturalWidth > 0)).length""")
        assert broken == 0

        # -- a cell drawing as a notebook shows it: inside the output area --------------------------
        from dartsviz import DARTS_RNN_V2
        from dartsviz.viz import cell_svg
        shown = page.evaluate(SVG_OUTPUT_JS, [cell_svg(DARTS_RNN_V2, "recurrent")])
        found["recurrent_cell_svg"] = shown
        assert shown["right"] <= shown["area_right"] + 1, f"the recurrent cell overflows its output: {shown}"

        # -- projector: text 16 px and more; the step button, weights and graph still on screen ------
        weights_src = page.locator("img.dartsviz-weights").get_attribute("src")
        page.locator("button", has_text="projector").first.click()
        page.wait_for_function("() => document.querySelector('.dartsviz-dashboard.dartsviz-zoom-150') !== null",
                               timeout=WAIT_MS)
        page.wait_for_function(                                    # redrawn for the zoom
            """([src]) => { const e = document.querySelector('img.dartsviz-weights');
                            return e.src !== src && e.complete && e.naturalWidth > 0; }""",
            arg=[weights_src], timeout=WAIT_MS)
        kernel.filter(has_text="| Idle").first.wait_for(timeout=WAIT_MS)
        page.wait_for_timeout(500)
        dash.evaluate("e => e.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(300)
        _wait_images_ready(page, ".dartsviz-dashboard")
        big = _main_boxes(page, step, window)
        found["projector"] = big
        found["projector_step_height_ratio"] = round(big["step"]["height"] / boxes["step"]["height"], 2)
        found["projector_text_px"] = _text_px(page, dash)
        found["projector_main_view_height"] = round(big["graph"]["bottom"] - big["dashboard"]["y"])
        page.screenshot(path=str(ARTIFACTS / f"dashboard-1366x768-{tag}-projector.png"))
        (ARTIFACTS / f"dashboard-layout-{tag}.json").write_text(json.dumps(found, indent=1))
        assert found["projector_step_height_ratio"] >= 1.4
        _in_first_screen(big, big["notebook_window"], ("step", "weights", "graph"), f"{tag}, projector")
        small = _small_text(page, dash, min_px=PROJECTOR_TEXT_PX)
        assert not small, f"text under {PROJECTOR_TEXT_PX} px in projector mode ({tag}): {small[:10]}"
        page.locator("button", has_text="projector").first.click()
        page.wait_for_function("() => document.querySelector('.dartsviz-dashboard.dartsviz-zoom-100') !== null",
                               timeout=WAIT_MS)
    (ARTIFACTS / f"dashboard-layout-{tag}.json").write_text(json.dumps(found, indent=1))
    print(f"\n{tag}: dashboard {found['dashboard_height']} px tall, controls + weights + cell graph "
          f"{found['main_view_height']} px, in a notebook window of {round(view['height'])} px at 1366x768; "
          f"tabs {sorted(set(found['tab_heights'].values()))} px tall; smallest text {found['text_px']} px, "
          f"{found['projector_text_px']} px in projector mode (main view {found['projector_main_view_height']} px)")
    return found


def test_dashboard_in_jupyterlab(tmp_path):
    chromium, sync_api = _needs_browser()
    import ipywidgets
    with _lab(tmp_path) as (base, token):
        _drive_dashboard(chromium, sync_api, base, token, f"ipywidgets{ipywidgets.__version__.split('.')[0]}", tmp_path)


def _site_dirs() -> list:
    """This interpreter's site directories, in its order: a venv's own (and, made with
    --system-site-packages, its base interpreter's), and the user's where enabled."""
    import site
    import sysconfig
    paths = sysconfig.get_paths()
    dirs = [*site.getsitepackages(), paths["purelib"], paths["platlib"]]
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]


def _ipywidgets7_python(tmp_path: Path) -> str:
    """A virtual environment with ipywidgets 7.7 and its JupyterLab extension (jupyterlab_widgets
    1.x) in its own site-packages, seeing behind them everything this interpreter sees: its python.
    A venv made from a venv's python with `--system-site-packages` sees the *base* interpreter's
    packages, not the outer venv's (no ipykernel, no jupyterlab there when the tests run from a
    venv made by the README's commands); so a .pth file adds this interpreter's site directories
    (`site.addsitedir`, which reads their .pth files too: editable installs). Skips the test
    when the wheels cannot be had."""
    venv = tmp_path / "ipyw7"
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
    except (subprocess.SubprocessError, OSError) as e:
        pytest.skip(f"cannot make a virtual environment for ipywidgets 7.7: {e}")
    python = str(venv / "bin" / "python")
    try:
        out = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--disable-pip-version-check",
                              *IPYWIDGETS_7], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.skip("pip could not install ipywidgets 7.7 within 5 minutes (no package index?)")
    if out.returncode != 0:
        pytest.skip("ipywidgets 7.7 / jupyterlab_widgets 1.x wheels are not available from the package index "
                    f"pip uses here: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}")
    # after pip (so that it never touches this interpreter's ipywidgets 8): what this interpreter sees
    own = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    (Path(own) / "_dartsviz_outer_env.pth").write_text(
        "import site; " + "; ".join(f"site.addsitedir({d!r})" for d in _site_dirs()) + "\n")
    check = subprocess.run([python, "-c", "import ipywidgets, jupyterlab_widgets, ipykernel, jupyterlab, dartsviz; "
                                          "print(ipywidgets.__version__, jupyterlab_widgets.__version__)"],
                           capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert check.returncode == 0, check.stderr
    assert check.stdout.split()[0].startswith("7.7") and check.stdout.split()[1].startswith("1."), check.stdout
    return python


def test_dashboard_in_jupyterlab_with_ipywidgets_7(tmp_path):
    """The same checks with ipywidgets 7.7 (Colab's) in the kernel and its extension in JupyterLab."""
    chromium, sync_api = _needs_browser()
    python = _ipywidgets7_python(tmp_path)
    from jupyterlab.commands import get_app_dir
    # JupyterLab's own page comes from this installation; the widget extension from the venv
    with _lab(tmp_path, python=python, extra_env={"JUPYTERLAB_DIR": get_app_dir()}) as (base, token):
        status, body = _request(f"{base}/lab/api/extensions", token)
        manager = [e for e in json.loads(body) if e.get("name") == "@jupyter-widgets/jupyterlab-manager"]
        assert manager and manager[0]["installed_version"].startswith("3."), manager   # jupyterlab_widgets 1.x
        _drive_dashboard(chromium, sync_api, base, token, "ipywidgets7", tmp_path)


def _truth_notebook(folder: Path) -> Path:
    """A two-cell notebook: a tiny nb201 search in a Dashboard with the Truth tab open, then 4 steps."""
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
                    "from dartsviz import Search, SearchConfig\nfrom dartsviz.viz import Dashboard\n"
                    "search = Search(SearchConfig.preset('tiny', space='nb201', device='cpu', epochs=1, "
                    "steps_per_epoch=6, warmup_epochs=0))\n"
                    "dash = Dashboard(search)\ndash.panels.select_tab('Truth')\ndisplay(dash.widget)"),
                nbformat.v4.new_code_cell("dash.step(4);")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "truth_panel.ipynb"
    nbformat.write(nb, str(path))
    return path


def test_truth_panel_in_jupyterlab(tmp_path):
    """The nb201 space's Truth tab at 1366x768: drawn, redrawn by Step, its text readable, its
    figure inside the notebook's width."""
    chromium, sync_api = _needs_browser()
    notebook = _truth_notebook(tmp_path)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with _lab(tmp_path, notebook=notebook) as (base, token), \
            _open_notebook(sync_api, chromium, base, token, notebook.name) as (page, kernel):
        truth = page.locator("img.dartsviz-truth")
        _run_all(page, kernel, truth)
        truth.evaluate("e => e.scrollIntoView({block: 'center'})")
        _wait_images_ready(page, ".dartsviz-tabs")
        box = truth.evaluate(BOX_JS)
        output = page.locator(".jp-OutputArea-output").first.evaluate(BOX_JS)
        assert box["width"] > 400 and box["height"] > 100, box
        assert box["x"] >= output["x"] - 1 and box["right"] <= output["right"] + 1, (box, output)
        assert box["y"] >= 0 and box["bottom"] <= VIEWPORT["height"], box      # the whole figure in view
        small = _small_text(page, page.locator(".dartsviz-tabs"), at_least=8)
        assert not small, f"text under {MIN_TEXT_PX} px in the Truth tab: {small[:10]}"
        before = truth.get_attribute("src")
        page.locator("button.dartsviz-step").first.click()
        page.wait_for_function(
            """([src]) => { const e = document.querySelector('img.dartsviz-truth');
                            return e.src !== src && e.complete && e.naturalWidth > 0; }""",
            arg=[before], timeout=WAIT_MS)
        page.screenshot(path=str(ARTIFACTS / "truth-panel-1366x768.png"))
