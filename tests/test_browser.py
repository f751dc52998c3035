"""A real browser on the real JupyterLab (issues 14, 31): JupyterLab on 127.0.0.1 with the project's kernel, Debian's
Chromium driven by Playwright.

* A study notebook opened and run as it is renders the committed cpu results (no training): inline figure, readable
  table, no error or warning output; saved, it leaves ``git status`` clean and no run is created. It runs in a
  temporary clone of the repository (the real checkout is never touched; uncommitted code and notebooks of this
  checkout are committed into the clone first, so the test sees the working tree).
* The explorer (``notebooks/00_explorer``): changing the image and the method changes the figure and the numbers
  on the page to the right ones (read back from the page, compared with the records and with the figure the
  explorer module draws for the same choice in this process).

Screenshots are kept in ``$LANET_SCREENSHOT_DIR`` and their paths printed; without it they go to the test's temp
folder, which pytest removes when the test passes (``tmp_path_retention_policy = "failed"``). Skips,
saying why, where Chromium (``apt-get install chromium``; ``make browser``) or Playwright is missing; Playwright
drives the system browser through ``executable_path`` (no browser download). Every wait is bounded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from lanet_core.paths import project_root

pytestmark = pytest.mark.browser
CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).is_file()), None)
NOTEBOOK = "07_input_size"
TOKEN = "lanet-test-token"
RUN_ALL_TIMEOUT_MS = 540_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _need_browser() -> None:
    if CHROMIUM is None:
        pytest.skip("Chromium not installed (Debian: apt-get install chromium; `make browser`)")
    pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")


def _data_root() -> Path | None:
    from lanet_core.paths import DataRootNotFound, find_data_root

    try:
        return find_data_root(required=["BUSI"])
    except DataRootNotFound:
        return None


@contextmanager
def _jupyterlab(root: Path, tmp_path: Path, env: dict[str, str]):
    """JupyterLab serving ``root``; yields its URL. The server is stopped however the test ends."""
    port = _free_port()
    settings = tmp_path / "settings"  # no "official Jupyter news?" pop-up over the screenshots
    news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True, exist_ok=True)
    news.write_text(json.dumps({"fetchNews": "false"}))
    env = {**env, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTERLAB_SETTINGS_DIR": str(settings)}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
           f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
           "--allow-root"]
    log_path = tmp_path / "jupyterlab.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            for _ in range(240):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    if proc.poll() is not None:
                        break
                    time.sleep(0.5)
            else:
                pytest.fail(f"JupyterLab did not start: {log_path.read_text()[-2000:]}")
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited: {log_path.read_text()[-2000:]}")
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@contextmanager
def _page(url: str, notebook: str):
    """Chromium on ``notebook`` (path relative to the server root), once its cells and kernel are up."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/lab/tree/{notebook}?token={TOKEN}", timeout=120_000)
            page.wait_for_function("window.jupyterapp !== undefined", timeout=120_000)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
            page.wait_for_function(  # the kernel is idle (started)
                "() => { const s = document.querySelector('.jp-Notebook-ExecutionIndicator'); "
                "return s === null || s.getAttribute('data-status') === 'idle'; }", timeout=120_000)
            time.sleep(2)
            yield page
        finally:
            browser.close()


def _run_all(page) -> None:
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(  # every code cell has an execution count
        """() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent.trim());
            return prompts.length > 0 && prompts.every(t => /^\\[\\d+\\]:$/.test(t));
        }""", timeout=RUN_ALL_TIMEOUT_MS, polling=1000)
    time.sleep(2)


def _shots(tmp_path: Path) -> Path:
    shots = Path(os.environ.get("LANET_SCREENSHOT_DIR", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def _shot(page, shots: Path, name: str) -> None:
    path = shots / name
    page.screenshot(path=str(path), full_page=False)
    print(f"screenshot: {path}")


# --------------------------------------------------------------------------------- a study notebook, clean tree
def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout


def _clone_with_working_tree(dest: Path) -> bool:
    """A clone of this repository at HEAD, with this checkout's uncommitted code and notebooks committed on top
    (the results stay HEAD's). Returns whether the code differs from HEAD (then re-rendered tables and figures
    may legitimately differ from the committed ones)."""
    root = project_root()
    _git(root.parent, "clone", "--quiet", "--local", str(root), str(dest))
    paths = ("lanet_core", "notebooks", "configs", "data_manifests", "Makefile", "pyproject.toml")
    changed = [p for p in _git(root, "diff", "--name-only", "HEAD", "--", *paths).splitlines() if p]
    changed += [p for p in _git(root, "ls-files", "--others", "--exclude-standard", "--", *paths).splitlines() if p]
    for rel in changed:
        src, dst = root / rel, dest / rel
        if src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        elif dst.exists():
            dst.unlink()
    if changed:
        _git(dest, "add", "-A", "--", *paths)
        _git(dest, "-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "--quiet", "-m",
             "working tree of the checkout under test")
    return any(p.startswith("lanet_core/") for p in changed)


def test_study_notebook_renders_committed_results_and_saving_leaves_the_tree_clean(tmp_path):
    _need_browser()
    from lanet_core import jupyter_hooks

    if not jupyter_hooks.installed():
        pytest.skip("JupyterLab's save hook is not configured in this environment: run `make install`")
    data = _data_root()
    if data is None:
        pytest.skip("data root absent: the study notebook's oracle ceilings need the masks (../shared/data)")
    clone = tmp_path / "clone"
    code_differs = _clone_with_working_tree(clone)
    if not (clone / "results" / "runs").is_dir():
        pytest.skip("no committed run records to render")
    runs_before = sorted(p.name for p in (clone / "results" / "runs").iterdir())
    env = {k: v for k, v in os.environ.items() if k != "LANET_RESULTS_DIR"}  # the clone's own results/
    env.update(PYTHONPATH=str(clone), LANET_DATA_ROOT=str(data))  # the clone's lanet_core (kernel and server)
    shots = _shots(tmp_path)
    with _jupyterlab(clone / "notebooks", tmp_path, env) as url, _page(url, f"{NOTEBOOK}.ipynb") as page:
        _run_all(page)
        _shot(page, shots, f"jupyterlab_{NOTEBOOK}.png")
        images = page.locator(".jp-OutputArea-output img").count()
        tables = page.locator(".jp-OutputArea-output table").all_inner_texts()
        errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]').count()
        tracebacks = page.locator(".jp-OutputArea-output .jp-RenderedText[data-mime-type='application/vnd.jupyter.error']").count()
        texts = page.locator(".jp-OutputArea-output").all_inner_texts()
        saved = clone / "notebooks" / f"{NOTEBOOK}.ipynb"
        mtime = saved.stat().st_mtime_ns
        page.evaluate("window.jupyterapp.commands.execute('docmanager:save')")
        for _ in range(120):  # the save went through (both files of the pair are written)
            if saved.stat().st_mtime_ns != mtime:
                break
            time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not save the notebook within 60 s")
        time.sleep(2)
    assert images >= 1, "no inline figure"
    assert any("±" in t or "[" in t for t in tables), f"no formatted table (mean ± CI) among {len(tables)} tables"
    assert errors == 0 and tracebacks == 0, "error or warning output in the notebook"
    assert not any("Traceback" in t or "Warning" in t for t in texts)
    assert any("profile 'cpu' (render only)" in t for t in texts), "the notebook did not render the cpu records"
    assert any("input_size:" in t and "runs finished" in t for t in texts)
    # no training: no run folder appeared, none gained a checkpoint
    assert sorted(p.name for p in (clone / "results" / "runs").iterdir()) == runs_before
    assert not list((clone / "results" / "runs").glob("*/checkpoints"))
    # saved: the notebook pair is byte-identical to the commit, and nothing else outside the rendered results moved
    status = [line[3:] for line in _git(clone, "status", "--porcelain", "--untracked-files=all").splitlines()]
    assert not [p for p in status if p.startswith("notebooks/")], f"saving changed the notebook: {status}"
    outside = [p for p in status if not p.startswith(("results/tables/", "results/figures/"))]
    assert outside == [], f"files changed by opening, running and saving {NOTEBOOK}: {outside}"
    if code_differs:
        print(f"note: this checkout's code differs from HEAD; re-rendered results not compared: {status}")
    else:
        assert status == [], f"re-rendering unchanged records changed committed results: {status}"


# ---------------------------------------------------------------------------------------------- the explorer
def _figure_state(page) -> dict:
    return page.evaluate("""() => {
        const img = document.querySelector('.lanet-figure');
        const nums = {};
        for (const td of document.querySelectorAll('.lanet-numbers .lanet-num')) {
            nums[td.dataset.view + ':' + td.dataset.key] = td.textContent.trim();
        }
        return img ? {shows: img.dataset.shows, sha: img.dataset.sha256, nums: nums} : null;
    }""")


def _wait_for_change(page, before: dict) -> dict:
    page.wait_for_function(
        "(old) => { const img = document.querySelector('.lanet-figure'); "
        "return img && img.dataset.shows !== old; }", arg=before["shows"], timeout=120_000, polling=500)
    time.sleep(1)
    return _figure_state(page)


def _expected(records, choice: str, image_id: str) -> tuple[dict, str]:
    from lanet_core import explorer as ex

    rec = records.record("fully_labelled", choice, 0)
    view = ex.image_view(rec, image_id)
    png = ex.figure_png(ex.draw_views([view]))
    return view.numbers, hashlib.sha256(png).hexdigest()


def test_explorer_follows_the_chosen_image_and_method(tmp_path):
    _need_browser()
    import dataclasses

    from lanet_core import explorer as ex
    from lanet_core.study.profiles import load_profile

    root = project_root()
    if not (root / "results" / "runs").is_dir():
        pytest.skip("no committed run records")
    lab = tmp_path / "lab"
    shutil.copytree(root / "notebooks", lab)  # a copy: the committed notebooks are never touched
    env = {k: v for k, v in os.environ.items() if k != "LANET_RESULTS_DIR"}  # the committed records
    data = _data_root()
    if data is not None:
        env["LANET_DATA_ROOT"] = str(data)
    records = ex.Records(dataclasses.replace(load_profile("cpu"), output=root / "results"))
    shots = _shots(tmp_path)
    with _jupyterlab(lab, tmp_path, env) as url, _page(url, "00_explorer.ipynb") as page:
        _run_all(page)
        page.wait_for_selector(".lanet-explorer .lanet-figure", timeout=180_000)
        first = _figure_state(page)
        _shot(page, shots, "jupyterlab_explorer_first.png")
        assert first["shows"].startswith("R18+LA-Net seed 0 / ")
        # another image
        page.locator(".lanet-image select").select_option(index=5)
        second = _wait_for_change(page, first)
        image_id = second["shows"].split(" / ", 1)[1]
        assert second["shows"] == f"R18+LA-Net seed 0 / {image_id}" and second["sha"] != first["sha"]
        page.locator(".lanet-image").scroll_into_view_if_needed()
        _shot(page, shots, "jupyterlab_explorer_image.png")
        # another method, same image
        page.locator(".lanet-method-a select").select_option(label="R18+RMTL")
        third = _wait_for_change(page, second)
        page.locator(".lanet-figure").scroll_into_view_if_needed()
        _shot(page, shots, "jupyterlab_explorer_method.png")
        names = page.locator(".lanet-method-a select option").all_inner_texts()
        # a second method beside it, on the same image
        page.locator(".lanet-method-b select").select_option(label="U-Net")
        fourth = _wait_for_change(page, third)
        page.locator(".lanet-figure").scroll_into_view_if_needed()
        _shot(page, shots, "jupyterlab_explorer_beside.png")
    assert "U-Net" in names and "R18+LA-Net" in names
    assert third["shows"] == f"R18+RMTL seed 0 / {image_id}" and third["sha"] != second["sha"]
    images = records.record("fully_labelled", "R18+LA-Net", 0).images()
    ordered = ex.select_images(images)
    assert image_id == ordered["image_id"].iloc[5]  # the sixth in the list (default: all, by image id)
    # the numbers and the figure on the page are the records' for that image and method
    for state, choice in ((second, "R18+LA-Net"), (third, "R18+RMTL")):
        numbers, sha = _expected(records, choice, image_id)
        raw = records.record("fully_labelled", choice, 0).images().set_index("image_id").loc[image_id]
        assert state["nums"]["0:p_malignant"] == f"{round(float(raw['p_malignant']), 4):.4g}"
        assert state["nums"]["0:true label"] == raw["label"]
        assert state["nums"]["0:decision"] == ex.LABELS[int(raw["y_pred"])]
        assert state["nums"]["0:IoU @0.5"] == f"{round(float(raw['iou']), 4):.4g}"
        assert state["sha"] == sha, f"{choice}: the page's figure is not the one drawn for {image_id}"
    assert json.dumps(third["nums"]) != json.dumps(second["nums"])
    assert fourth["shows"] == f"R18+RMTL seed 0 / {image_id}; U-Net seed 0 / {image_id}"
    unet = records.record("fully_labelled", "U-Net", 0)
    raw = unet.images().set_index("image_id").loc[image_id]
    assert fourth["nums"]["1:IoU @0.5"] == f"{round(float(raw['iou']), 4):.4g}" and fourth["nums"].get("1:p_malignant", "") == ""  # no class output
    assert fourth["nums"]["0:p_malignant"] == third["nums"]["0:p_malignant"]
    views = [ex.image_view(records.record("fully_labelled", c, 0), image_id) for c in ("R18+RMTL", "U-Net")]
    assert fourth["sha"] == hashlib.sha256(ex.figure_png(ex.draw_views(views))).hexdigest()
