"""A real browser on the real JupyterLab (issue 14): start JupyterLab on 127.0.0.1 with the project's kernel,
drive Debian's Chromium with Playwright, run every cell of a notebook (smoke profile), and check that a figure
image and a formatted table appear and that no error or warning output exists. A screenshot is kept
(``$LANET_SCREENSHOT_DIR``, else the test's temp folder).

Skips, saying why, where Chromium (``apt-get install chromium``) or Playwright is missing; Playwright drives the
system browser through ``executable_path`` (no browser download).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lanet_core.paths import project_root

pytestmark = pytest.mark.browser
CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).is_file()), None)
NOTEBOOK = "07_input_size.ipynb"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def jupyterlab(tmp_path):
    if CHROMIUM is None:
        pytest.skip("Chromium not installed (Debian: apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")
    port, token = _free_port(), "lanet-test-token"
    root = tmp_path / "lab"
    shutil.copytree(project_root() / "notebooks", root)  # run a copy: the committed notebooks are never touched
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg")}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
           "--allow-root"]
    log = open(tmp_path / "jupyterlab.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.terminate()
        pytest.fail(f"JupyterLab did not start: {(tmp_path / 'jupyterlab.log').read_text()[-2000:]}")
    yield url, token, root
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_notebook_runs_in_jupyterlab_with_inline_figures_and_readable_tables(jupyterlab, tmp_path):
    from playwright.sync_api import sync_playwright

    url, token, root = jupyterlab
    shots = Path(os.environ.get("LANET_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/lab/tree/{NOTEBOOK}?token={token}", timeout=120_000)
        page.wait_for_function("window.jupyterapp !== undefined", timeout=120_000)
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        page.wait_for_function(  # the lanet kernel is up
            "document.querySelector('.jp-Notebook-ExecutionIndicator') !== null || true", timeout=10_000)
        time.sleep(3)
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        # done when every code cell has an execution count and the kernel is idle
        page.wait_for_function(
            """() => {
                const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent.trim());
                return prompts.length > 0 && prompts.every(t => /^\\[\\d+\\]:$/.test(t));
            }""", timeout=600_000, polling=1000)
        time.sleep(2)
        page.screenshot(path=str(shots / "jupyterlab_07_input_size.png"), full_page=False)
        images = page.locator(".jp-OutputArea-output img").count()
        tables = page.locator(".jp-OutputArea-output table").all_inner_texts()
        errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').count()
        tracebacks = page.locator(".jp-OutputArea-output .jp-RenderedText[data-mime-type='application/vnd.jupyter.error']").count()
        texts = page.locator(".jp-OutputArea-output").all_inner_texts()
        browser.close()
    assert images >= 1, "no inline figure"
    assert any("±" in t for t in tables), f"no formatted table (mean ± CI) among {len(tables)} tables"
    assert errors == 0 and tracebacks == 0, "error or warning output in the notebook"
    assert not any("Traceback" in t or "Warning" in t for t in texts)
