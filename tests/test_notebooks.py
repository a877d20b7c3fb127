"""The real notebooks 03 and 04, run by papermill through popnb's report runner on a tiny synthetic data set."""
from __future__ import annotations

import json
import shutil

import nbformat
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from popnb.analysis.backbones import BASELINE_LABELS
from popnb.analysis.explore import NO_COVERS
from popnb.baselines import BASELINES
from popnb.reports import runner as reports
from popnb.data import load_dataset
from popnb.data.demo import make_demo_dataset
from popnb.paper import load_table1

TINY = {"seeds": [0], "epochs": 1, "image_size": 32, "batch_size": 4}  # one seed, one epoch, 32 px covers
REPO_REPORTS = reports.PROJECT_ROOT / "reports"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """60 synthetic videos with 48x27 covers, and an embeddings cache shared by this module's notebooks."""
    root = tmp_path_factory.mktemp("tiny")
    return make_demo_dataset(root / "data", n=60, seed=0, size=(48, 27)), root / "cache"


def snapshot(folder):
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*")}


def run_tiny(only: str, tiny, tmp_path, monkeypatch, **parameters):
    """Run one real notebook through popnb's runner on the tiny set into tmp_path/reports -> (out, its record);
    checks it ran ok and left the repository's reports/ as it was."""
    data, cache = tiny
    monkeypatch.setenv("POPNB_CACHE", str(cache))  # the kernel inherits it: no embeddings in ~/.cache
    before, out = snapshot(REPO_REPORTS), tmp_path / "reports"
    (path,) = reports.select_notebooks(reports.NOTEBOOKS_DIR, only)
    declared = reports.notebook_parameters(path)  # TINY's settings where the notebook has them; the others strict
    tiny_settings = {k: v for k, v in {**TINY, "runs_dir": str(tmp_path / "runs")}.items() if k in declared}
    code = reports.run_reports(data_dir=data, only=only, out=out, parameters={**tiny_settings, **parameters})
    (record,) = json.loads((out / reports.RECORDS).read_text(encoding="utf-8")).values()
    assert code == 0 and record["status"] == "ok", record["error"]
    assert snapshot(REPO_REPORTS) == before
    return out, record


def table(out, name: str, **kwargs) -> pd.DataFrame:
    return pd.read_csv(out / "tables" / f"{name}.csv", **kwargs)


def assert_drawn(out, names) -> None:
    for name in names:
        with Image.open(out / "figures" / f"{name}.png") as im:  # a real drawing, not a blank canvas
            assert im.width > 300 and im.height > 200 and np.asarray(im.convert("L")).std() > 10, name


def assert_accuracies(history: pd.DataFrame, n_videos: int) -> None:
    for column in ("ordinal_accuracy", "exact_accuracy", "constant_baseline_accuracy"):
        assert history[column].between(0, 1).all(), column
    assert (history["ordinal_accuracy"] >= history["exact_accuracy"]).all()  # a neighbour counts half
    per_run = history.groupby([c for c in history.columns if c in ("pair", "vision_weight", "text_weight")])["n"]
    assert (per_run.sum() == n_videos).all()  # train + valid: every video, once


def test_notebook_03_fusion_sweep_on_a_tiny_set(tiny, tmp_path, monkeypatch):
    weights = [(0.75, 0.25), (1.0, 0.0), (0.0, 1.0)]
    out, record = run_tiny("03", tiny, tmp_path, monkeypatch, weights=weights)
    assert record["parameters"]["weights"] == [list(w) for w in weights] and record["parameters"]["epochs"] == 1
    rows = ["0.75 / 0.25", "1.0 / 0.0", "0.0 / 1.0"]

    history = table(out, "03_sweep_history")
    assert len(history) == len(weights) * 2  # one seed, one epoch, train and valid
    assert_accuracies(history, len(load_dataset(tiny[0]).videos))
    ours = table(out, "03_table1", index_col=0)
    assert list(ours.index) == rows and list(ours.columns) == ["e1 train", "e1 valid"]
    valid = history[history["split"] == "valid"]
    assert np.allclose(ours["e1 valid"], valid["ordinal_accuracy"].round(4))  # one seed: the mean is that run
    paper = load_table1().query("vision_weight == 0.75 and text_weight == 0.25 and epoch == 1")
    both = table(out, "03_table1_vs_paper", index_col=0)
    assert both.loc["0.75 / 0.25", "e1 valid (paper)"] == paper["valid_acc"].item()
    assert len(both) == 7  # our three pairs, then the paper's four others
    shares = table(out, "03_vision_share", index_col=0)["vision share (trained)"]
    assert shares["1.0 / 0.0"] == 1.0 and shares["0.0 / 1.0"] == 0.0 and 0 < shares["0.75 / 0.25"] < 1
    best = table(out, "03_best_valid", index_col=0)
    assert list(best.index) == rows and best["ours spearman"].between(-1, 1).all()
    check = table(out, "03_absorption_check", index_col=0)["max abs difference"]
    contrast = check.index.str.contains("contrast")
    assert (check[~contrast] < 1e-5).all() and (check[contrast] > 1e-4).all()
    assert_drawn(out, ["03_best_valid", "03_valid_curves"])


def test_notebook_04_backbone_comparison_on_a_tiny_set(tiny, tmp_path, monkeypatch):
    pairs = ["vit_bert", "coatnet_bert"]  # cheap at 32 px; VGG's 130M parameters take most of a minute on 2 cores
    out, _ = run_tiny("04", tiny, tmp_path, monkeypatch, pairs=pairs, cost_steps=1, baselines=True, baseline_k=3)

    assert list(table(out, "04_pairs", index_col="pair").index) == pairs
    history = table(out, "04_history")
    assert len(history) == len(pairs) * 2 and (history["image_size"] == 32).all()
    assert_accuracies(history, len(load_dataset(tiny[0]).videos))
    vs_paper = table(out, "04_table2_vs_paper", index_col="pair")
    paper = load_table1().query("vision_weight == 0.75 and text_weight == 0.25 and epoch == 1")
    labels = [BASELINE_LABELS[name] for name in BASELINES]
    assert list(vs_paper.index) == ["ViT + BERT", "CoAtNet + BERT", *labels]
    assert vs_paper.loc["ViT + BERT", "e1 valid (paper)"] == paper["valid_acc"].item()
    assert np.isnan(vs_paper.loc["CoAtNet + BERT", "e1 valid (paper)"])  # the paper has no CoAtNet numbers
    assert vs_paper.loc[labels, "e1 valid"].isna().all() and vs_paper.loc[labels, "best valid"].notna().all()
    best = table(out, "04_best_valid_and_cost", index_col="pair")
    valid = history[history["split"] == "valid"].set_index("pair")["ordinal_accuracy"]
    assert list(best.index) == [*pairs, *BASELINES] and np.allclose(best.loc[pairs, "best valid"], valid[pairs])
    assert (best.loc[pairs, "params"] > 1e5).all() and (best.loc[pairs, "finetune images/s"] > 0).all()
    scores = table(out, "04_baselines")
    assert len(scores) == len(BASELINES) and (scores["n_folds"] == 3).all()  # one seed, 3 folds
    assert np.allclose(best.loc[list(BASELINES), "best valid"], scores["ordinal_accuracy"])
    recall = table(out, "04_per_class_recall", index_col="class")
    assert list(recall.index) == [0, 1, 2, 3, 4]
    assert recall["n_true"].sum() == history.query("split == 'valid'")["n"].iloc[0]  # the first seed's valid split
    assert recall["recall"].dropna().between(0, 1).all()
    assert_drawn(out, ["04_best_valid", "04_confusion", "04_figure1_architecture", "04_per_class_recall"])
    nb = nbformat.read(out / "04_backbone_comparison.ipynb", as_version=4)
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]



@pytest.fixture(scope="module")
def coverless(tiny, tmp_path_factory):
    """The tiny set without its covers (titles and counts only, as bilibili_stats), sharing its cache."""
    data, cache = tiny
    root = tmp_path_factory.mktemp("coverless") / "data"
    shutil.copytree(data, root, ignore=shutil.ignore_patterns("covers"))
    videos = pd.read_csv(root / "videos.csv", dtype="string", keep_default_na=False)
    videos.assign(cover="").to_csv(root / "videos.csv", index=False)
    return root, cache


def printed(out, notebook: str) -> str:
    nb = nbformat.read(out / notebook, as_version=4)
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    return "\n".join(o.get("text", "") or json.dumps(o.get("data", {}), ensure_ascii=False)
                     for c in nb.cells for o in c.get("outputs", []))


def test_notebook_01_without_covers_says_its_cover_sections_are_skipped(coverless, tmp_path, monkeypatch):
    out, _ = run_tiny("01", coverless, tmp_path, monkeypatch)
    assert NO_COVERS in printed(out, "01_data_exploration.ipynb")
    assert not list(out.rglob("01_cover_*"))  # no empty cover tables nor blank figures
    assert (out / "tables" / "01_count_summary.csv").is_file() and (out / "figures" / "01_title_length.png").is_file()


def test_notebook_01_with_cover_figures_off_draws_no_cover(tiny, tmp_path, monkeypatch):
    out, _ = run_tiny("01", tiny, tmp_path, monkeypatch, cover_figures=False)
    assert "cover_figures=False: the covers are not drawn here" in printed(out, "01_data_exploration.ipynb")
    assert not (out / "figures" / "01_cover_grid.png").exists() and (out / "tables" / "01_cover_summary.csv").is_file()


def test_notebook_03_without_covers_runs_the_title_only_row(coverless, tmp_path, monkeypatch):
    weights = [(0.75, 0.25), (0.0, 1.0)]
    out, _ = run_tiny("03", coverless, tmp_path, monkeypatch, weights=weights, text="gru")
    assert "the rows with a cover weight above 0 (0.75 / 0.25) are skipped" in printed(out, "03_fusion_weight_sweep.ipynb")
    history = table(out, "03_sweep_history")
    assert (history["vision_weight"] == 0).all() and len(history) == 2  # one seed, one epoch, train and valid
    assert list(table(out, "03_best_valid", index_col=0).index) == ["0.0 / 1.0"]


def test_notebook_04_without_covers_scores_the_baselines_alone(coverless, tmp_path, monkeypatch):
    out, _ = run_tiny("04", coverless, tmp_path, monkeypatch, pairs=["vit_bert"], baselines=True, baseline_k=3)
    assert "so the pairs are skipped" in printed(out, "04_backbone_comparison.ipynb")
    assert not (out / "tables" / "04_history.csv").exists() and not (out / "figures" / "04_confusion.png").exists()
    best = table(out, "04_best_valid_and_cost", index_col=0)
    assert list(best.index) == list(BASELINES) and best["best valid"].between(0, 1).all()
