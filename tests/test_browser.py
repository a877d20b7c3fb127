"""Notebook 05 in a real browser: JupyterLab on localhost, headless Debian Chromium driven by Playwright.

A person's path: open the notebook, run all cells, then in candidate A pick a data set cover, type a title and
upload a cover through the file chooser, seeing the probabilities change each time and a heatmap appear; then
switch on candidate B and see the two ranked. A screenshot goes to the test's tmp dir (try_a_cover.png;
failure.png when a step fails).
Skips when /usr/bin/chromium (.ci/browser-deps.sh installs it) or the playwright package is absent.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from PIL import Image

from popnb.data import make_demo_dataset
from popnb.reports import NOTEBOOKS_DIR
from popnb.train.loop import TrainConfig, train

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]
TIMEOUT_MS = 90_000  # one step on a busy 2-core machine (kernel start imports torch)
PROBS_A = ".popnb-candidate-A .popnb-p"

if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} absent: install Debian's chromium (bash .ci/browser-deps.sh)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is absent "
                               "(pip install playwright; it drives /usr/bin/chromium, no browser download)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(base url with token, folder): JupyterLab serving a folder that holds notebook 05 parameterised to a
    tiny trained run; the server (and its kernels) stop after the module."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    base = tmp_path_factory.mktemp("lab")
    demo = make_demo_dataset(base / "demo", n=40, seed=0, size=(224, 126))
    env = {**os.environ, "POPNB_CACHE": str(base / "cache"), "JUPYTER_RUNTIME_DIR": str(base / "runtime")}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POPNB_CACHE", env["POPNB_CACHE"])
        train(TrainConfig(str(demo), str(base / "runs" / "demo"), vision="vit_tiny_patch16_224", text="gru",
                          image_size=64, epochs=1, max_steps=2, batch_size=8, lr=1e-3, max_len=32, threads=1))
    root = base / "root"
    root.mkdir()
    nb = parameterize_notebook(load_notebook_node(str(NOTEBOOKS_DIR / "05_try_a_cover.ipynb")), {
        "runs_root": str(base / "runs"), "reports_dir": str(base / "reports"), "n_explain": 2})
    nbformat.write(nb, root / "05_try_a_cover.ipynb")
    news = base / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))

    port, token = free_port(), secrets.token_hex(16)
    log = open(base / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         "--LabApp.extension_manager=readonly", "--LabApp.news_url=", "--LabApp.check_for_updates_class="
         "jupyterlab.NeverCheckForUpdate",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         f"--LabApp.user_settings_dir={base / 'settings'}", f"--LabApp.workspaces_dir={base / 'workspaces'}"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start: {(base / 'server.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield f"{url}/lab/tree/05_try_a_cover.ipynb?token={token}", base
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def shown(page) -> list[str]:
    return page.locator(PROBS_A).all_inner_texts()


def wait_for_change(page, before: list[str]) -> list[str]:
    page.wait_for_function(
        """([sel, before]) => { const now = [...document.querySelectorAll(sel)].map(e => e.innerText);
                                return now.length === 5 && JSON.stringify(now) !== JSON.stringify(before); }""",
        arg=[PROBS_A, before], timeout=TIMEOUT_MS)
    return shown(page)


def test_try_a_cover_in_jupyterlab(lab, tmp_path):
    url, base = lab
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 2000})
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            page.locator(".jp-Notebook .jp-Cell").first.wait_for()
            # the kernel is connected and idle (Run All before that is dropped): the status bar says so
            page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"popnb \(\.venv\) \| Idle")).wait_for()
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).click()
            page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Run All Cells$")).click()

            page.locator(PROBS_A).first.wait_for()
            first = wait_for_change(page, [])
            assert all(re.fullmatch(r"[01]\.\d{3}", p) for p in first)

            page.locator(".popnb-candidate-A .popnb-cover select").select_option(index=4)
            picked = wait_for_change(page, first)
            assert page.locator(".popnb-candidate-A").get_by_text("cover of DEMO000004").is_visible()

            title = page.locator(".popnb-candidate-A .popnb-title input")
            title.fill("揭秘！为什么黑洞会这样？10个冷知识")
            typed = wait_for_change(page, picked)
            assert typed != picked

            heat = page.locator(".popnb-candidate-A img.popnb-heatmap")
            heat.wait_for(state="visible")
            assert heat.evaluate("img => img.complete && img.naturalWidth > 0")
            assert page.locator(".popnb-candidate-A .popnb-message").inner_text() == ""

            mine = tmp_path / "my cover.png"  # an upload through the file chooser
            Image.new("RGB", (320, 180), (30, 160, 60)).save(mine)
            with page.expect_file_chooser() as chooser:
                page.locator(".popnb-candidate-A .popnb-upload").click()
            chooser.value.set_files(str(mine))
            page.locator(".popnb-candidate-A").get_by_text("uploaded my cover.png").wait_for()
            wait_for_change(page, typed)
            heat.wait_for(state="visible")

            page.locator(".popnb-candidate-B input[type=checkbox]").check()  # A against B
            ranking = page.locator(".popnb-ranking")
            ranking.wait_for()
            assert re.search(r"ranked by expected class: [AB] \(\d\.\d\d\) > [AB]", ranking.inner_text())
            page.locator(".popnb-candidate-B img.popnb-heatmap").wait_for(state="visible")
            page.locator(".popnb-try-a-cover").scroll_into_view_if_needed()
            page.screenshot(path=str(tmp_path / "try_a_cover.png"))
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)  # what the browser showed
            raise
        finally:
            browser.close()
    assert (base / "reports" / "figures" / "05_heatmaps.png").is_file()
