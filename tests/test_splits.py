"""popnb.splits: random (stratified), uploader (grouped) and time (earlier -> later) splits and folds."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from popnb.data.importers import import_crawl
from popnb.data.io import load_dataset, write_dataset
from popnb.splits import cross_validate, cv_folds, publish_time, split, summarize, uploader_groups


@pytest.fixture
def df() -> pd.DataFrame:
    """200 videos by 37 uploaders (a few unknown), with views, a publish date (some unknown) and a class."""
    rng = np.random.default_rng(0)
    uploader = pd.Series([f"up{i}" for i in rng.integers(0, 37, 200)], dtype="string")
    uploader[[5, 6, 7]] = [pd.NA, "", "  "]
    day = pd.Timestamp("2021-11-01") + pd.to_timedelta(rng.integers(0, 40, 200), unit="D")  # ties on a day
    upload_time = pd.Series(day.strftime("%Y/%m/%d %H:%M"), dtype="string")
    upload_time[[10, 11]] = [pd.NA, "not a date"]
    return pd.DataFrame({"uploader": uploader, "upload_time": upload_time, "views": rng.integers(0, 10**6, 200),
                         "label": rng.integers(0, 5, 200)})


def test_uploader_groups_strip_names_and_isolate_unknown_rows(df):
    groups = uploader_groups(df.assign(uploader=df["uploader"].mask(df.index == 0, " " + df["uploader"][1] + " ")))
    assert groups[0] == groups[1]
    unknown = groups[[5, 6, 7]]
    assert len(set(unknown)) == 3 and not set(unknown) & set(np.delete(groups, [5, 6, 7]))
    with pytest.raises(ValueError, match="needs an 'uploader' column"):
        uploader_groups(df.drop(columns="uploader"))
    with pytest.raises(ValueError, match="empty in every row"):
        uploader_groups(df.assign(uploader=""))


def test_uploader_split_seeds_0_to_k_minus_1_are_one_grouped_cross_validation(df):
    groups = uploader_groups(df)
    splits = [split(df, "uploader", valid_fraction=0.25, seed=s) for s in range(8)]  # k = 4: two repeats
    for train, valid in splits:
        assert not set(groups[train]) & set(groups[valid])
        assert sorted([*train, *valid]) == list(range(200))
    for r in range(2):  # seeds 4r..4r+3 validate every row exactly once
        assert sorted(np.concatenate([v for _, v in splits[4 * r: 4 * r + 4]]).tolist()) == list(range(200))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(splits[:4], splits[4:]))  # seed // k reshuffles


def test_uploader_split_and_folds_never_share_an_uploader(df):
    groups = uploader_groups(df)
    train, valid = split(df, "uploader", valid_fraction=0.2, seed=3)
    assert not set(groups[train]) & set(groups[valid])
    assert sorted([*train, *valid]) == list(range(200))
    folds = list(cv_folds(df, "uploader", k=5, repeats=2, seed=0))
    assert len(folds) == 10
    for train, valid in folds:
        assert not set(groups[train]) & set(groups[valid])
        assert sorted([*train, *valid]) == list(range(200))
    for r in range(2):  # every row is valid exactly once per repeat
        assert sorted(np.concatenate([v for _, v in folds[5 * r: 5 * r + 5]]).tolist()) == list(range(200))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds[:5], folds[5:]))  # repeats reshuffle


def test_time_split_trains_on_earlier_videos(df):
    when = publish_time(df)
    assert np.isnan(when[[10, 11]]).all() and np.isfinite(np.delete(when, [10, 11])).all()
    train, valid = split(df, "time", valid_fraction=0.25)
    assert when[train].max() <= when[valid].min()
    assert len(valid) == round(0.25 * 198) and not {10, 11} & {*train, *valid}  # unknown times left out
    folds = list(cv_folds(df, "time", k=4))
    assert len(folds) == 4
    for train, valid in folds:
        assert when[train].max() <= when[valid].min()
    assert [len(t) for t, _ in folds] == sorted(len(t) for t, _ in folds)  # an expanding window
    with pytest.raises(ValueError, match="repeats must be 1"):
        list(cv_folds(df, "time", k=4, repeats=2))


def test_seconds_ago_means_earlier_and_missing_time_is_an_error(df):
    ago = pd.DataFrame({"pub_seconds_ago": [300, 100, 200, 50]})
    train, valid = split(ago, "time", valid_fraction=0.5)
    assert train.tolist() == [0, 2] and valid.tolist() == [1, 3]  # 300 and 200 s ago came first
    with pytest.raises(ValueError, match=r"needs a publish time column, one of \('upload_time', 'pub_seconds_ago'\)"
                                         "; this data has uploader, views, label"):
        split(df.drop(columns="upload_time"), "time")
    with pytest.raises(ValueError, match="no row has a known publish time"):
        split(df.assign(upload_time="soon"), "time")


def test_random_split_and_folds_are_stratified(df):
    labels = df["label"].to_numpy()
    counts = np.bincount(labels)
    train, valid = split(df, "random", valid_fraction=1 / 11, seed=0, labels=labels)
    assert np.bincount(labels[valid], minlength=5).tolist() == [round(c / 11) for c in counts]
    for train, valid in cv_folds(df, "random", k=5, seed=0, labels=labels):
        # StratifiedKFold gives each class floor or ceil of its share to each fold
        assert np.all(np.abs(np.bincount(labels[valid], minlength=5) - counts / 5) < 1)
    default = next(cv_folds(df, "random", k=5, seed=0))  # default labels: log-views quintiles
    assert sorted([*default[0], *default[1]]) == list(range(200))
    with pytest.raises(ValueError, match="split must be one of"):
        split(df, "uploaders")


def test_cross_validate_and_summarize(df):
    def fit_evaluate(train, valid):
        first = float(valid.index[0])
        return {"share": len(valid) / len(df), "first": first, "nan": np.nan if first == 0 else 1.0}  # row 0's fold

    per_fold = cross_validate(df, fit_evaluate, "uploader", k=4, repeats=2, seed=1)
    assert per_fold[["repeat", "fold"]].values.tolist() == [[r, f] for r in range(2) for f in range(4)]
    assert (per_fold["n_train"] + per_fold["n_valid"] == 200).all()
    assert per_fold.groupby("repeat")["share"].sum().tolist() == pytest.approx([1.0, 1.0])  # each row once a repeat
    summary = summarize(per_fold)
    assert summary["n_folds"] == 8
    assert summary["first"] == pytest.approx(per_fold["first"].mean())
    assert summary["first_std"] == pytest.approx(np.std(per_fold["first"], ddof=1))
    assert np.isnan(summary["nan"]) and np.isnan(summary["nan_std"])  # a NaN fold is never skipped


def test_uploader_names_that_look_like_numbers_stay_distinct_after_a_round_trip(tmp_path):
    rows = pd.DataFrame({"video_id": ["a", "b", "c"], "title": ["t1", "t2", "t3"], "cover": "", "views": [1, 2, 3],
                         "likes": pd.NA, "coins": pd.NA, "favorites": pd.NA, "shares": pd.NA,
                         "uploader": ["007", "7", "7.0"]})
    write_dataset(rows, tmp_path / "ds")
    loaded = load_dataset(tmp_path / "ds", check_images="none").videos
    assert loaded["uploader"].tolist() == ["007", "7", "7.0"]  # read as text: three uploaders, not one number
    assert len(set(uploader_groups(loaded))) == 3


def test_real_covers_uploader_and_time_folds(bilibili_covers_src, tmp_path):
    import_crawl(bilibili_covers_src / "videos.csv", tmp_path / "covers", preset="bilibili-covers")
    df = load_dataset(tmp_path / "covers", check_images="none").videos
    groups, when = uploader_groups(df), publish_time(df)
    assert len(df) == 570 and np.isfinite(when).all()
    for train, valid in cv_folds(df, "uploader", k=5, repeats=1, seed=0):
        assert not set(groups[train]) & set(groups[valid])
    for train, valid in cv_folds(df, "time", k=5):
        assert when[train].max() <= when[valid].min()
