"""popnb.targets: scores and classes fitted on a train split, reused on held-out rows, saved and loaded."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from popnb.labels import LabelScheme
from popnb.targets import Target


def videos(n: int, seed: int, slope: float = 0.8, intercept: float = 2.0, noise: float = 0.5) -> pd.DataFrame:
    """Counts with log1p(views) = intercept + slope * log1p(followers) + N(0, noise)."""
    rng = np.random.default_rng(seed)
    followers = rng.integers(0, 1_000_000, n)
    log_views = intercept + slope * np.log1p(followers) + rng.normal(0, noise, n)
    views = np.round(np.expm1(log_views)).astype(np.int64)
    counts = {c: (views * rng.uniform(0.01, 0.1, n)).astype(np.int64)
              for c in ("likes", "coins", "favorites", "shares")}
    return pd.DataFrame({"views": views, **counts, "followers": followers}).astype("Int64")


@pytest.fixture
def train_valid() -> tuple[pd.DataFrame, pd.DataFrame]:
    return videos(400, seed=0), videos(100, seed=1)


def test_log_views_is_log1p_with_the_label_schemes_classes(train_valid):
    train, valid = train_valid
    target = Target.fit(train, "log_views")
    assert np.array_equal(target.score(valid), np.log1p(valid["views"].to_numpy(dtype=float)))
    scheme = LabelScheme.fit(train, "log_views")
    assert target.thresholds == scheme.thresholds
    assert np.array_equal(target.labels(valid), scheme.labels(valid))
    assert np.bincount(target.labels(train)).tolist() == [80] * 5  # 400 distinct scores: equal-count bins


def test_beyond_followers_line_is_fitted_on_train_only(train_valid):
    train, valid = train_valid
    target = Target.fit(train, "beyond_followers")
    # 400 points around slope 0.8 with noise 0.5; log1p of a uniform count has standard deviation ~1, so the
    # slope's standard error is about 0.5 / (1 * sqrt(400)) = 0.025 and 0.1 is four of them
    assert target.line["slope"] == pytest.approx(0.8, abs=0.1)
    # least squares with an intercept: the train residuals sum to zero (up to float rounding of 400 terms)
    assert target.score(train).mean() == pytest.approx(0.0, abs=1e-9)
    x, y = (np.log1p(valid[c].to_numpy(dtype=float)) for c in ("followers", "views"))
    expected = y - (target.line["intercept"] + target.line["slope"] * x)
    assert np.array_equal(target.score(valid), expected)  # the train line, not one refitted on valid
    assert Target.fit(valid, "beyond_followers").line != target.line
    assert np.bincount(target.labels(train)).tolist() == [80] * 5


def test_an_exact_line_is_recovered():
    df = videos(50, seed=2, slope=0.5, intercept=3.0, noise=0.0)
    line = Target.fit(df, "beyond_followers").line
    # views are rounded to integers: log1p(views) moves by at most 0.5 / min(views) ~ 1.2e-4 (min 4005 here);
    # log1p(followers) spans ~10.6..13.8, so the intercept, 11-13 units of x from the data, may move ~13 times that
    assert df["views"].min() >= 4000
    assert line["slope"] == pytest.approx(0.5, abs=2e-4) and line["intercept"] == pytest.approx(3.0, abs=2e-3)


@pytest.mark.parametrize("kind", ["log_views", "beyond_followers", "paper", "quantile"])
def test_saved_and_loaded_target_transforms_identically(train_valid, tmp_path, kind):
    train, valid = train_valid
    target = Target.fit(train, kind)
    loaded = Target.load(target.save(tmp_path / "target.json"))
    assert loaded == target
    assert np.array_equal(loaded.score(valid), target.score(valid))
    assert np.array_equal(loaded.labels(valid), target.labels(valid))
    assert kind in loaded.describe()


def test_bin_sends_a_score_on_an_edge_to_the_upper_class(train_valid):
    target = Target.fit(train_valid[0], "log_views")
    edges = np.array(target.thresholds)
    assert target.bin(edges).tolist() == [1, 2, 3, 4]
    assert target.bin([edges[0] - 1.0, edges[3] + 1.0]).tolist() == [0, 4]


def test_missing_columns_are_named(train_valid, tmp_path):
    train = train_valid[0]
    with pytest.raises(ValueError, match="target 'log_views' needs column 'views', which is all NA"):
        Target.fit(train.assign(views=pd.NA), "log_views")
    with pytest.raises(ValueError, match="needs column 'followers', which is absent"):
        Target.fit(train.drop(columns="followers"), "beyond_followers")
    with pytest.raises(ValueError, match=r"'followers' is NA in 1 row\(s\) \(index 3\)"):
        Target.fit(train.assign(followers=train["followers"].mask(train.index == 3)), "beyond_followers")
    with pytest.raises(ValueError, match="column 'likes' has weight 0.1 but is all NA"):
        Target.fit(train.assign(likes=pd.NA), "paper")
    with pytest.raises(ValueError, match="same for every train row"):
        Target.fit(train.assign(followers=10), "beyond_followers")
    with pytest.raises(ValueError, match="target kind must be one of"):
        Target.fit(train, "views")
    (tmp_path / "bad.json").write_text('{"kind": "log_views"}')
    with pytest.raises(ValueError, match="not a valid target"):
        Target.load(tmp_path / "bad.json")
