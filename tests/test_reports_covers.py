"""reports/ holds no real cover: every saved figure says which covers it draws, and none draws a real one.

save_figure writes the PNG text field `popnb-covers` (none / synthetic / real) from explore.mark_covers, which every
figure that draws covers calls (the sample grid of notebook 01, the heatmaps of explain). The committed reports/ is
then checked file by file: only tables, pages, records and PNG figures, every PNG marked, none marked real, and no
file equal to a shared real cover.
"""
from __future__ import annotations

import hashlib
import json
import shutil

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from popnb.analysis.explore import COVERS_KEY, cover_grid  # noqa: E402
from popnb.data import load_dataset, make_demo_dataset  # noqa: E402
from popnb.paths import PROJECT_ROOT  # noqa: E402
from popnb.reports import save_figure  # noqa: E402

REPORTS = PROJECT_ROOT / "reports"
SHARED_COVERS = PROJECT_ROOT.parent / "shared" / "data" / "bilibili_covers" / "covers"
ALLOWED = {".md", ".csv", ".png", ".json"}  # tables, pages, runs.json / sources.json, figures
IGNORED = {".ipynb", ".log"}  # executed notebooks and logs: git-ignored (.gitignore), never committed


def covers_field(path) -> str | None:
    with Image.open(path) as im:
        return im.text.get(COVERS_KEY)


def test_save_figure_records_which_covers_a_figure_draws(tmp_path):
    demo = make_demo_dataset(tmp_path / "demo", n=6, seed=0, size=(48, 27))
    synthetic = save_figure(cover_grid(load_dataset(demo), "demo", n=4), "01_grid", tmp_path / "a")
    assert covers_field(synthetic) == "synthetic"

    real = tmp_path / "real"  # the same covers in a folder not marked synthetic: the data of some crawl
    shutil.copytree(demo, real)
    (real / "DATASET.json").unlink()
    drawn = save_figure(cover_grid(load_dataset(real), "crawl", n=4), "01_grid", tmp_path / "b")
    assert covers_field(drawn) == "real"

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    assert covers_field(save_figure(fig, "02_line", tmp_path / "c")) == "none"


def test_a_grid_with_no_cover_to_draw_is_not_marked(tmp_path):
    demo = make_demo_dataset(tmp_path / "demo", n=4, seed=0, size=(48, 27))
    videos = pd.read_csv(demo / "videos.csv", dtype="string", keep_default_na=False)
    videos.assign(cover="").to_csv(demo / "videos.csv", index=False)  # titles and counts only, as bilibili_stats
    ds = load_dataset(demo)
    assert not ds.has_covers
    assert covers_field(save_figure(cover_grid(ds, "no covers"), "01_grid", tmp_path)) == "none"


def committed_files():
    return sorted(p for p in REPORTS.rglob("*") if p.is_file() and p.suffix not in IGNORED)


def test_reports_hold_only_tables_pages_and_marked_figures_none_of_a_real_cover():
    files = committed_files()
    assert any(p.suffix == ".png" for p in files)  # the check reads something
    for path in files:
        assert path.suffix in ALLOWED, f"{path.relative_to(PROJECT_ROOT)}: not a table, page or figure"
        if path.suffix == ".png":
            field = covers_field(path)
            assert field in {"none", "synthetic"}, (
                f"{path.relative_to(PROJECT_ROOT)}: popnb-covers is {field!r} (real covers, or a PNG not written "
                f"by save_figure)")
        if path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))  # a record, not an image under another name


@pytest.mark.skipif(not SHARED_COVERS.is_dir(), reason=f"{SHARED_COVERS} absent: no real covers to compare with")
def test_no_file_in_reports_is_a_shared_real_cover():
    real = {hashlib.sha256(p.read_bytes()).hexdigest() for p in SHARED_COVERS.iterdir() if p.is_file()}
    assert len(real) > 100
    found = [p for p in committed_files() if hashlib.sha256(p.read_bytes()).hexdigest() in real]
    assert not found, f"real covers in reports/: {found}"
