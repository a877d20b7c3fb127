"""Notebook 05 in a real browser: JupyterLab on localhost, headless Debian Chromium driven by Playwright.

A person's path: open the notebook, run all cells, then in candidate A pick a data set cover, type a title and
upload a cover through the file chooser, seeing the probabilities change each time and a heatmap appear; then
switch on candidate B and see the two ranked. A screenshot goes to the test's tmp dir (try_a_cover.png;
failure.png when a step fails).
The same on the real model: the default recipe (EfficientNet-Lite0 + e5-small + ridge heads) trained by
ensure_real_run on the real covers of ../shared (skipped with a reason when absent): the percentile among the
training videos, the followers input, OCR and face boxes, the heatmap, title character importance, three
candidates ranked with P(first beats second) and the note for pairs within the cross-validated error, and a
non-image upload that stays a message (try_a_cover_real.png; copied to /tmp/popnb_real_screenshot.png when
POPNB_SCREENSHOT_COPY is set).
Skips when /usr/bin/chromium (.ci/browser-deps.sh installs it) or the playwright package is absent.
"""
from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest
from PIL import Image
from scipy.special import ndtr

from popnb.app.widget import CLOSE, MARKERS, ensure_real_run
from popnb.analysis.explore import COVERS_KEY
from popnb.data import make_demo_dataset
from popnb.reports import NOTEBOOKS_DIR
from popnb.train.loop import TrainConfig, train

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]
TIMEOUT_MS = 90_000  # one step on a busy 2-core machine (kernel start imports torch)
PROBS_A = ".popnb-candidate-A .popnb-p"
SCREENSHOT_COPY = Path("/tmp/popnb_real_screenshot.png")  # outside the project, for a person to look at

if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} absent: install Debian's chromium (bash .ci/browser-deps.sh)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is absent "
                               "(pip install playwright; it drives /usr/bin/chromium, no browser download)")
sync_api.expect.set_options(timeout=TIMEOUT_MS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def private_cache(base: Path):
    """POPNB_CACHE set to base/cache (the feature store the lab's kernels use too) while training here."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POPNB_CACHE", str(base / "cache"))
        yield


@contextmanager
def serve_notebook_05(base: Path, params: dict):
    """The url (with token) of JupyterLab serving base/root, a folder holding notebook 05 parameterised with
    params; its kernels use the feature store base/cache; the server (and its kernels) stop on exit."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    env = {**os.environ, "POPNB_CACHE": str(base / "cache"), "JUPYTER_RUNTIME_DIR": str(base / "runtime")}
    root = base / "root"
    root.mkdir()
    nb = parameterize_notebook(load_notebook_node(str(NOTEBOOKS_DIR / "05_try_a_cover.ipynb")), params)
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
        yield f"{url}/lab/tree/05_try_a_cover.ipynb?token={token}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(base url with token, folder): JupyterLab serving notebook 05 parameterised to a tiny trained run."""
    base = tmp_path_factory.mktemp("lab")
    demo = make_demo_dataset(base / "demo", n=40, seed=0, size=(224, 126))
    with private_cache(base):
        train(TrainConfig(str(demo), str(base / "runs" / "demo"), vision="vit_tiny_patch16_224", text="gru",
                          image_size=64, epochs=1, max_steps=2, batch_size=8, lr=1e-3, max_len=32, threads=1))
    with serve_notebook_05(base, {"runs_root": str(base / "runs"), "reports_dir": str(base / "reports"),
                                  "n_explain": 2}) as url:
        yield url, base


@pytest.fixture
def real_lab(bilibili_covers_src, tmp_path_factory):
    """(base url with token, the real run folder): JupyterLab serving notebook 05 opening runs/covers, the default
    recipe trained by ensure_real_run on the 570 real covers of ../shared, imported into the tmp folder (never
    into the project). All of them: 20-60 s on 2 cores; on 100-120 of them the ridge head over followers shrinks
    to ~0 (its GCV picks the largest alpha), so the followers input would not move the prediction."""
    base = tmp_path_factory.mktemp("real_lab")
    with private_cache(base):
        run = ensure_real_run(bilibili_covers_src, base / "runs")
    params = {"runs_root": str(base / "runs"), "run": run.name, "train_demo": False,
              "reports_dir": str(base / "reports"), "n_explain": 1}
    with serve_notebook_05(base, params) as url:
        yield url, run


@contextmanager
def notebook_page(url: str, tmp_path: Path):
    """A headless Chromium page on the notebook at url, all its cells run; failure.png in tmp_path (what the
    browser showed) when the body fails."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 2000})
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            try:
                page.goto(url)
                page.locator(".jp-Notebook .jp-Cell").first.wait_for()
                # the kernel is connected and idle (Run All before that is dropped): the status bar says so
                page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"popnb \(\.venv\) \| Idle")).wait_for()
                page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).click()
                page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Run All Cells$")).click()
                yield page
            except Exception:
                page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
                raise
        finally:
            browser.close()


def texts(page, selector: str) -> list[str]:
    return page.locator(selector).all_inner_texts()


def wait_for_change(page, before: list[str], selector: str = PROBS_A, count: int = 5) -> list[str]:
    """The inner texts of the `count` elements matching selector, once they differ from before."""
    page.wait_for_function(
        """([sel, before, count]) => {
            const now = [...document.querySelectorAll(sel)].map(e => e.innerText);
            return now.length === count && JSON.stringify(now) !== JSON.stringify(before); }""",
        arg=[selector, before, count], timeout=TIMEOUT_MS)
    return texts(page, selector)


def choose_file(page, button: str, path: Path) -> None:
    with page.expect_file_chooser() as chooser:
        page.locator(button).click()
    chooser.value.set_files(str(path))


def test_try_a_cover_in_jupyterlab(lab, tmp_path):
    url, base = lab
    with notebook_page(url, tmp_path) as page:
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
        choose_file(page, ".popnb-candidate-A .popnb-upload", mine)
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
    assert (base / "reports" / "figures" / "05_heatmaps.png").is_file()


PERCENTILE = re.compile(r"predicted log views score (\d+\.\d\d) \(≈ ([\d,]+) views\): above (\d+)% of the (\d+) "
                        r"training videos")
COUNT_COLOUR = """(img, rgb) => {  // pixels of the image within 2 of colour rgb in every channel
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    const g = canvas.getContext('2d');
    g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4)
        if (Math.abs(d[i] - rgb[0]) <= 2 && Math.abs(d[i + 1] - rgb[1]) <= 2 && Math.abs(d[i + 2] - rgb[2]) <= 2) n++;
    return n; }"""
BOX_PIXELS = 60  # a 2-px outline of even a 15 x 15 px box at 320 px wide; a JPEG cover has ~none of these colours


def rgb(colour: str) -> list[int]:
    return [int(colour[i:i + 2], 16) for i in (1, 3, 5)]


def box_pixels(page, candidate: str, marker: str) -> int:
    """Pixels of the candidate's "text and faces" image in the colour MARKERS draws marker's boxes in."""
    img = page.locator(f".popnb-candidate-{candidate} img.popnb-marks")
    img.wait_for(state="visible")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=img.element_handle())
    return img.evaluate(COUNT_COLOUR, rgb(MARKERS[marker][1]))


def test_the_real_model_in_jupyterlab(real_lab, tmp_path):
    url, run = real_lab
    config = json.loads((run / "config.json").read_text())
    sigma = json.loads((run / "heads.json").read_text())["sigma"]
    percentile_a = ".popnb-candidate-A .popnb-percentile"
    with notebook_page(url, tmp_path) as page:
        page.locator(PROBS_A).first.wait_for()
        picker = page.locator(".popnb-try-a-cover select").first  # the real run is the one the app opened
        assert picker.evaluate("s => s.options[s.selectedIndex].text") == run.name
        sync_api.expect(page.locator(".popnb-status")).to_contain_text(re.compile(r"^covers: target log_views"))
        unknown = wait_for_change(page, [], percentile_a, 1)
        score, views, above, n = PERCENTILE.fullmatch(unknown[0]).groups()
        assert int(n) == config["n_train"]  # among the run's training videos
        assert int(views.replace(",", "")) == pytest.approx(math.expm1(float(score)), rel=0.01)

        heat = page.locator(".popnb-candidate-A img.popnb-heatmap")
        heat.wait_for(state="visible")
        assert heat.evaluate("img => img.complete && img.naturalWidth > 0")
        title = page.locator(".popnb-candidate-A .popnb-title input").input_value()
        shades = page.locator(".popnb-candidate-A .popnb-title-importance span")
        assert shades.count() == len(title.replace(" ", ""))  # one shaded span per title character
        values = [float(v) for v in shades.evaluate_all("spans => spans.map(s => s.title)")]
        assert any(v != 0 for v in values)

        followers = page.locator(".popnb-followers input")  # 0: unknown (the train median)
        assert followers.is_visible() and followers.input_value() == "0"
        followers.fill("2000000")
        followers.press("Enter")
        known = wait_for_change(page, unknown, percentile_a, 1)
        moved, _, moved_above, _ = PERCENTILE.fullmatch(known[0]).groups()
        assert moved != score  # the followers branch moves the prediction, and the percentile follows it
        assert (float(moved) - float(score)) * (int(moved_above) - int(above)) >= 0

        marks = page.locator(".popnb-candidate-A img.popnb-marks")
        assert marks.is_hidden()
        page.locator(".popnb-try-a-cover .widget-checkbox", has_text="show text and faces").locator("input").check()
        assert box_pixels(page, "A", "cover-ocr") >= BOX_PIXELS  # the first data set cover holds a caption

        for name in "BC":
            page.locator(f".popnb-candidate-{name} input[type=checkbox]").check()
        ranking = page.locator(".popnb-ranking")
        sync_api.expect(ranking).to_contain_text(re.compile(r"ranked by predicted score: [ABC] \(\d+\.\d\d\) > "
                                                            r"[ABC] \(\d+\.\d\d\) > [ABC] \(\d+\.\d\d\)"))
        assert "P(first beats second)" in ranking.inner_text()
        rows = ranking.locator("tr").all_inner_texts()[1:]
        assert len(rows) == 3
        for row in rows:  # "A vs B", delta, P(first beats second), the note
            pair, delta, p_beats, *note = [cell.strip() for cell in row.split("\t")]
            assert re.fullmatch(r"[ABC] vs [ABC]", pair) and float(delta) >= 0
            assert float(p_beats) == pytest.approx(ndtr(float(delta) / (sigma * math.sqrt(2))), abs=0.011)
            if abs(float(delta) - sigma) > 0.01:  # shown to 2 decimals: the note says whether it is under sigma
                assert (CLOSE in note) == (float(delta) < sigma)
        # the third data set cover (C's) holds a caption and faces
        assert box_pixels(page, "C", "cover-ocr") >= BOX_PIXELS and box_pixels(page, "C", "cover-faces") >= BOX_PIXELS
        page.locator(".popnb-candidate-C img.popnb-heatmap").wait_for(state="visible")

        junk = tmp_path / "notes.txt"  # bad input stays a message in the app
        junk.write_text("not a picture\n")
        choose_file(page, ".popnb-candidate-B .popnb-upload", junk)
        message = page.locator(".popnb-candidate-B .popnb-message")
        sync_api.expect(message).to_contain_text("the upload notes.txt cannot be used as a cover")
        assert page.locator(".popnb-candidate-B .popnb-p").count() == 0
        sync_api.expect(ranking).not_to_contain_text(re.compile(r"\bB \("))  # ranked without B
        assert re.fullmatch(r"ranked by predicted score: [AC] \(\d+\.\d\d\) > [AC] \(\d+\.\d\d\)",
                            ranking.inner_text().splitlines()[0].strip())

        page.locator(".popnb-candidate-A .popnb-title input").fill(title + "！")  # the kernel keeps working
        wait_for_change(page, known, percentile_a, 1)
        assert "cannot be used as a cover" in message.inner_text()
        sync_api.expect(page.locator(".popnb-status")).to_contain_text("updated in")  # no spinner in the picture
        page.locator(".popnb-try-a-cover").evaluate("app => app.scrollIntoView({block: 'start'})")  # all of it
        page.screenshot(path=str(tmp_path / "try_a_cover_real.png"))
        heatmaps = run.parent.parent / "reports" / "figures" / "05_heatmaps.png"  # the notebook's last cell
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while not heatmaps.is_file() and time.monotonic() < deadline:
            time.sleep(0.5)
    with Image.open(heatmaps) as im:  # a figure of real covers says so: it never belongs in a committed report
        assert im.text[COVERS_KEY] == "real"
    if os.environ.get("POPNB_SCREENSHOT_COPY"):
        shutil.copyfile(tmp_path / "try_a_cover_real.png", SCREENSHOT_COPY)
