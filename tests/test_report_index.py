"""popnb.reports.index: reports/README.md from a synthetic reports folder and runner records."""
from __future__ import annotations

import os
import re
import time
from importlib import metadata

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from popnb.data import make_demo_dataset  # noqa: E402
from popnb.reports.index import write_index  # noqa: E402
from popnb.reports import save_figure, save_table  # noqa: E402


def line_figure():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    return fig


@pytest.fixture
def reports_dir(tmp_path):
    """tables and figures of two notebooks (01 ok, 04 failed half-way) and one of a notebook not run (03)."""
    out = tmp_path / "reports"
    save_table(pd.DataFrame({"n": [7, 3]}, index=pd.Index([0, 1], name="class")), "01_class_counts", out)
    save_figure(line_figure(), "01_counts", out)
    save_table(pd.DataFrame({"ours": [0.61], "paper": [0.5471], "constant baseline": [0.52]},
                            index=pd.Index(["vgg_rnn"], name="pair")), "04_table2", out)
    save_figure(line_figure(), "03_old_sweep", out)
    save_table(pd.DataFrame({"loss": range(40)}, index=pd.RangeIndex(40, name="step")), "04_history", out)
    return out


def records(data_dir, started=None):
    return [
        {"name": "01_data_exploration.ipynb", "status": "ok", "seconds": 12.5, "error": None,
         "parameters": {"data_dir": None, "demo_dir": str(data_dir.parent), "demo_n": 40, "seed": 0},
         "started": started},
        {"name": "04_backbone_comparison.ipynb", "status": "FAILED", "seconds": 3.25,
         "error": "ValueError: unknown backbone pair 'vgg_gpt'",
         "parameters": {"data_dir": None, "demo_dir": str(data_dir.parent), "demo_n": 40, "demo_seed": 0,
                        "seeds": [0, 1], "epochs": 2}},
    ]


def test_index_has_every_table_figure_record_and_version(tmp_path, reports_dir):
    data = make_demo_dataset(tmp_path / "demo" / "n40_seed0", n=40, seed=0)
    index = write_index(reports_dir, records(data))
    assert index == reports_dir / "README.md"
    text = index.read_text(encoding="utf-8")
    for table in (reports_dir / "tables").glob("*.md"):  # every saved table, verbatim
        assert table.read_text(encoding="utf-8").strip() in text
    images = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
    assert sorted(images) == sorted(f"figures/{p.name}" for p in (reports_dir / "figures").glob("*.png"))
    assert all((reports_dir / path).is_file() for path in images)  # links resolve from README.md
    assert text.count(f"Data: `{data}`: **SYNTHETIC demo data**") == 2  # both notebooks, from DATASET.json
    assert f"- `{data}`: **SYNTHETIC demo data** (popnb-demo, n=40, seed 0)" in text  # listed once under Data
    failed_row = next(line for line in text.splitlines() if line.startswith("| [04_backbone_comparison]"))
    assert "**FAILED**" in failed_row and "unknown backbone pair 'vgg_gpt'" in failed_row and "3.2" in failed_row
    assert "seeds=[0, 1]" in failed_row
    ok_row = next(line for line in text.splitlines() if line.startswith("| [01_data_exploration]"))
    assert "| ok | 12.5 |" in ok_row and "seed=0" in ok_row
    assert "1 FAILED: 04_backbone_comparison" in text
    assert "03 (not run this time)" in text and "earlier run" in text


def test_paths_under_the_project_root_are_shown_relative(tmp_path, reports_dir):
    data = make_demo_dataset(tmp_path / "demo" / "n40_seed0", n=40, seed=0)
    text = write_index(reports_dir, records(data), root=tmp_path).read_text(encoding="utf-8")
    assert "- `demo/n40_seed0`: **SYNTHETIC demo data**" in text
    assert "| demo_dir | `'demo'` |" in text and str(tmp_path) not in text
    assert f"| torch | {metadata.version('torch')} |" in text
    assert "<details><summary>40 rows</summary>" in text  # a long table folded, not dropped
    assert "| epochs | `2` |" in text  # the parameters each notebook ran with


def test_outputs_older_than_the_run_are_flagged_stale(tmp_path, reports_dir):
    data = make_demo_dataset(tmp_path / "demo" / "n40_seed0", n=40, seed=0)
    old = time.time() - 3600
    for path in (reports_dir / "figures" / "01_counts.png", reports_dir / "tables" / "01_class_counts.md"):
        os.utime(path, (old, old))
    text = write_index(reports_dir, records(data, started=time.time() - 60)).read_text(encoding="utf-8")
    stale = [line for line in text.splitlines() if "stale" in line]
    assert sorted(stale) == ["### 01_class_counts *(stale: not rewritten by this run)*",
                             "### 01_counts *(stale: not rewritten by this run)*"]


def test_real_data_folder_is_not_called_synthetic(tmp_path, reports_dir):
    real = tmp_path / "crawl"
    real.mkdir()
    (real / "videos.csv").write_text("video_id,title,cover\n", encoding="utf-8")
    rec = [{"name": "01_data_exploration.ipynb", "status": "ok", "seconds": 1.0, "parameters": {"data_dir": str(real)}}]
    text = write_index(reports_dir, rec).read_text(encoding="utf-8")
    assert "SYNTHETIC" not in text and "without DATASET.json" in text


def test_record_without_required_field_is_an_error(reports_dir):
    with pytest.raises(ValueError, match="lacks seconds"):
        write_index(reports_dir, [{"name": "01_x.ipynb", "status": "ok"}])
