"""popnb reports-bilibili: its real-data parameters fit the notebooks, a clear line without ../shared, the index page."""
from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from test_reports import write_notebook

from popnb.reports import runner
from popnb.reports.bilibili import NOTEBOOKS, SHARED, SOURCES, crawl_times, real_data_parameters
from popnb.reports.bilibili_index import write_bilibili_index


@pytest.mark.parametrize("has_covers", [True, False])
@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_real_data_parameters_are_declared_by_their_notebooks(notebook, has_covers):
    (path,) = runner.select_notebooks(runner.NOTEBOOKS_DIR, notebook)
    runner.check_parameters(path, real_data_parameters(notebook, has_covers))  # names declared, types match


def test_uploader_cv_parameters_make_one_five_fold_partition():
    params = real_data_parameters("03", True)
    assert params["split"] == "uploader" and round(1 / params["valid_fraction"]) == len(params["seeds"]) == 5


def test_without_the_shared_data_it_says_so_in_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "popnb", "reports-bilibili", "--shared", str(tmp_path / "none"),
                             "--out", str(out), "--data", str(tmp_path / "data")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "the shared real data are not at" in line and "bilibili_covers, bilibili_stats" in line
    assert result.stdout == "" and not out.exists() and not (tmp_path / "data").exists()


def test_notebook_defaults_take_constant_arithmetic(tmp_path):
    nb = write_notebook(tmp_path / "01_a.ipynb", 'f = 1 / 11  # paper\ng = -2 ** 3\nh = len("x")\nk = 1 / 0', "pass")
    assert runner.notebook_parameters(nb) == {"f": 1 / 11, "g": -8, "h": None, "k": None}


def test_per_notebook_parameters_reach_only_their_notebook(tmp_path):
    nbs = tmp_path / "nbs"
    for name in ("01_a", "02_b"):
        write_notebook(nbs / f"{name}.ipynb", 'reports_dir = "r"\nx = 0',
                       f'open(reports_dir + "/{name}.txt", "w").write(str(x))')
    out = tmp_path / "out"
    assert runner.run_reports(out=out, notebooks_dir=nbs, per_notebook={"02": {"x": 7}}) == 0
    assert (out / "01_a.txt").read_text() == "0" and (out / "02_b.txt").read_text() == "7"


def write_tables(folder, findings: pd.DataFrame) -> None:
    (folder / "tables").mkdir(parents=True)
    findings.to_csv(folder / "tables" / "06_findings.csv", index=False)


def test_the_index_lists_sources_and_significant_findings_and_names_missing_tables(tmp_path):
    findings = pd.DataFrame({
        "finding": ["face on the cover", "digits in the title", "emoji in the title"], "part": ["cover", "title", "title"],
        "n_in": [120, 200, 4], "n_out": [450, 370, 566], "median_diff": [0.05, -0.31, None],
        "ci_low": [-0.2, -0.52, None], "ci_high": [0.3, -0.1, None], "excludes_zero": [False, True, False],
        "verdict": ["interval includes 0", "lower", "too few videos (< 10 on a side)"],
        "cliffs_delta": [0.02, -0.12, None], "target": "beyond_followers"})
    summaries = []
    for source in SOURCES:
        write_tables(tmp_path / source.name, findings)
        summaries.append({**source.__dict__, "read": 10, "kept": 8, "quarantined": 2,
                          "by_reason": {"duplicate video_id": 2}, "notes": [], "crawl_times": None})
    (tmp_path / "sources.json").write_text(json.dumps(summaries), encoding="utf-8")
    page = write_bilibili_index(tmp_path).read_text(encoding="utf-8")
    for source in SOURCES:
        assert f"## {source.name}: 8 videos" in page and source.origin in page and source.licence in page
    assert page.count("**Significant (interval excludes 0):** digits in the title (lower).") == 2
    assert "| digits in the title | -0.310 | [-0.520, -0.100] | 200 | 370 | -0.12 | yes, lower |" in page
    assert "| face on the cover | +0.050 | [-0.200, +0.300] | 120 | 450 | +0.02 | no |" in page
    assert "| emoji in the title |  |  | 4 | 566 |  | too few videos (< 10 on a side) |" in page
    assert page.count("03_best_valid.csv` is missing") == 2 and "duplicate video_id: 2" in page


def test_crawl_times_are_the_first_and_last_day(tmp_path):
    pd.DataFrame({"crawl_time": ["2021/11/25 18:00", "2021/11/23 09:00", ""]}).to_csv(tmp_path / "videos.csv")
    assert crawl_times(tmp_path) == ["2021-11-23", "2021-11-25"]
    pd.DataFrame({"views": [1]}).to_csv(tmp_path / "videos.csv")
    assert crawl_times(tmp_path) is None


@pytest.mark.skipif(not (SHARED / "bilibili_stats").is_dir(), reason=f"{SHARED} absent: the shared real data")
def test_the_stats_crawl_dates_come_from_the_data(tmp_path):
    from popnb.reports.bilibili import import_source

    summary = import_source(SOURCES[1], SHARED, tmp_path)
    assert summary["read"] == 10_933 and summary["kept"] + summary["quarantined"] == summary["read"]
    first, last = summary["crawl_times"]
    assert first.startswith("2021") and first <= last
