"""The synthetic demo data set: deterministic, schema-clean, paper classes all present, known features drive counts."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from popnb.data import load_dataset, make_demo_dataset
from popnb.data.demo import demo_tables
from popnb.labels import LabelScheme

COLUMNS = ["video_id", "title", "cover", "views", "likes", "coins", "favorites", "shares",
           "followers", "hot_list", "duration", "section"]


def rank_corr(a, b) -> float:
    return float(pd.Series(np.asarray(a, dtype=float)).rank().corr(pd.Series(np.asarray(b, dtype=float)).rank()))


def paper_class_shares(videos: pd.DataFrame) -> np.ndarray:
    labels = LabelScheme.fit(videos, kind="paper").labels(videos)
    return np.bincount(labels, minlength=5) / len(videos)


def paper_filter_mask(videos: pd.DataFrame) -> pd.Series:
    return (videos["followers"] < 500_000) & videos["hot_list"].astype(bool)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A 500-video demo folder at the default cover size, with its truth table."""
    root = make_demo_dataset(tmp_path_factory.mktemp("demo") / "demo", n=500, seed=7)
    return root, pd.read_csv(root / "truth.csv")


def test_same_seed_gives_identical_files_other_seed_differs(tmp_path):
    a = make_demo_dataset(tmp_path / "a", n=30, seed=3, size=(64, 36))
    b = make_demo_dataset(tmp_path / "b", n=30, seed=3, size=(64, 36))
    c = make_demo_dataset(tmp_path / "c", n=30, seed=4, size=(64, 36))
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 30 + 4  # covers + videos.csv, truth.csv, DATASET.json, README.md
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert (a / "videos.csv").read_bytes() != (c / "videos.csv").read_bytes()
    cover_bytes = [[p.read_bytes() for p in sorted((root / "covers").iterdir())] for root in (a, c)]
    assert sum(x != y for x, y in zip(*cover_bytes)) == 30


def test_folder_loads_clean_with_design_columns(demo):
    root, truth = demo
    raw = pd.read_csv(root / "videos.csv")
    assert list(raw.columns) == COLUMNS
    dataset = load_dataset(root, check_images="full")
    assert dataset.report.n_quarantined == 0 and len(dataset.quarantine) == 0
    assert dataset.report.n_kept == 500 and dataset.has_covers
    videos = dataset.videos
    assert videos["video_id"].is_unique and videos["video_id"].iat[0] == "DEMO000001"
    assert list(truth["video_id"]) == list(videos["video_id"])
    assert (videos["title"].str.len() > 0).all() and videos["title"].str.contains("[\u4e00-\u9fff]").all()
    for column in COLUMNS[3:9]:
        assert str(videos[column].dtype) == "Int64" and (videos[column] >= 0).all(), column
    assert str(videos["hot_list"].dtype) == "boolean" and videos["duration"].dtype == np.float64
    assert (videos["duration"] >= 30).all() and (videos["section"] == "knowledge").all()
    with Image.open(dataset.cover_path(0)) as im:
        assert im.format == "JPEG" and im.size == (224, 126) and im.mode == "RGB"
    removed = 1 - paper_filter_mask(videos).mean()
    assert 0.10 <= removed <= 0.20
    assert (videos["followers"] >= 500_000).any() and (~videos["hot_list"]).any()


def test_paper_labels_give_all_five_classes_0_to_2_large(demo):
    videos, _ = demo_tables(n=3000, seed=0)
    for data in (videos, videos[paper_filter_mask(videos)], load_dataset(demo[0], check_images="none").videos):
        shares = paper_class_shares(data)
        assert shares.min() >= 0.03, shares
        assert shares[:3].min() > shares[3:].max(), shares
    views = videos["views"]
    assert views.max() > 20 * views.mean() and views.mean() > 3 * views.quantile(0.25)  # heavy right tail


def test_known_cover_and_title_features_drive_views(demo):
    root, truth = demo
    videos = pd.read_csv(root / "videos.csv")
    for feature, low in (("face", 0.3), ("brightness", 0.2), ("saturation", 0.15), ("question", 0.2),
                         ("number", 0.1), ("hook", 0.1)):
        assert rank_corr(truth[feature], videos["views"]) > low, feature
    assert rank_corr(truth["latent"], videos["views"]) > 0.999
    effects = json.loads((root / "DATASET.json").read_text(encoding="utf-8"))["effects"]
    rebuilt = sum(w * truth[f].astype(float) for f, w in effects.items()) + truth["noise"]
    np.testing.assert_allclose(rebuilt, truth["latent"], atol=1e-9)


def test_face_is_drawn_only_in_the_right_third(demo):
    root, truth = demo
    width = 224
    assert (truth.loc[truth["face"], "face_x0"] >= width * 2 / 3).all()
    yellow_right, yellow_left, luminance = [], [], []
    for _, row in truth.head(120).iterrows():
        rgb = np.asarray(Image.open(root / "covers" / f"{row['video_id']}.jpg").convert("RGB"), dtype=int)
        yellow = (rgb[..., 0] > 200) & (rgb[..., 1] > 160) & (rgb[..., 2] < 90)
        yellow_right.append(yellow[:, int(np.ceil(width * 2 / 3)):].mean())
        yellow_left.append(yellow[:, : width * 2 // 3 - 2].mean())
        luminance.append(rgb.mean())
    face = truth["face"].head(120).to_numpy()
    assert face.any() and (~face).any()
    assert np.min(np.array(yellow_right)[face]) > 0.1 and np.max(np.array(yellow_right)[~face]) < 0.01
    assert max(yellow_left) < 0.01
    assert rank_corr(truth["brightness"].head(120), luminance) > 0.6


def test_readme_and_dataset_json_say_synthetic(demo):
    root, truth = demo
    doc = json.loads((root / "DATASET.json").read_text(encoding="utf-8"))
    assert doc["name"] == "popnb-demo" and doc["synthetic"] is True
    assert (doc["n"], doc["seed"], doc["size"]) == (500, 7, [224, 126])
    assert set(doc["effects"]) <= set(truth.columns) and doc["face_region"]["x_from"] == pytest.approx(2 / 3)
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert "SYNTHETIC" in readme and "right third" in readme and "seed=7" in readme
    assert "latent" not in pd.read_csv(root / "videos.csv").columns


@pytest.mark.parametrize("kwargs, message", [
    ({"n": 0}, "n must be a positive integer"), ({"n": -5}, "n must be"), ({"n": 2.5}, "n must be"),
    ({"size": (0, 126)}, "size must be"), ({"size": (224, -1)}, "size must be"), ({"size": (224,)}, "size must be"),
    ({"size": "224x126"}, "size must be"), ({"seed": -1}, "seed must be"),
])
def test_bad_arguments_give_clear_errors(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_demo_dataset(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_refuses_a_non_empty_folder_and_keeps_it(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not an empty folder"):
        make_demo_dataset(tmp_path / "out", n=5)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["mine.txt"]
    (tmp_path / "empty").mkdir()
    assert make_demo_dataset(tmp_path / "empty", n=5).joinpath("videos.csv").is_file()
