"""popnb.labels: the paper's score and bins, quantile and log-views schemes, save/load, real data."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from popnb.labels import PAPER_THRESHOLDS, LabelScheme, bin_labels, popularity_score

# Four videos; "shares" is absent on purpose (its paper weight is 0, so it is not required).
HAND = pd.DataFrame(
    {
        "views": [0, 100, 200, 500],  # mean 200, max-min 500 -> -0.4, -0.2, 0, 0.6
        "likes": [0, 10, 30, 0],  # mean 10, max-min 30 -> -1/3, 0, 2/3, -1/3
        "coins": [5, 5, 5, 25],  # mean 10, max-min 20 -> -0.25, -0.25, -0.25, 0.75
        "favorites": [0, 4, 0, 0],  # mean 1, max-min 4 -> -0.25, 0.75, -0.25, -0.25
    },
    dtype="Int64",
)


def test_score_formula_on_hand_example():
    score = popularity_score(HAND)
    expected = [
        0.75 * -0.4 + 0.10 * (-1 / 3) + 0.10 * -0.25 + 0.05 * -0.25,  # -0.3 - 0.0333 - 0.025 - 0.0125 = -0.370833
        0.75 * -0.2 + 0.10 * 0 + 0.10 * -0.25 + 0.05 * 0.75,  # -0.15 - 0.025 + 0.0375 = -0.1375
        0.75 * 0 + 0.10 * (2 / 3) + 0.10 * -0.25 + 0.05 * -0.25,  # 0.0667 - 0.025 - 0.0125 = 0.029167
        0.75 * 0.6 + 0.10 * (-1 / 3) + 0.10 * 0.75 + 0.05 * -0.25,  # 0.45 - 0.0333 + 0.075 - 0.0125 = 0.479167
    ]
    np.testing.assert_allclose(score.to_numpy(), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(expected, [-0.370833333, -0.1375, 0.029166667, 0.479166667], atol=1e-9)
    assert list(score.index) == list(HAND.index)
    # -0.37 and -0.14 < 0.00025 -> class 0; 0.029 and 0.48 >= 0.02 -> class 4
    assert LabelScheme.fit(HAND).labels(HAND).tolist() == [0, 0, 4, 4]


def test_thresholds_at_exact_boundaries():
    below = np.nextafter(0.00025, -1)
    score = [below, 0.00025, 0.0015, 0.005, 0.02, 0.001, 0.019, -5.0, 5.0]
    labels = bin_labels(score, PAPER_THRESHOLDS)
    assert labels.dtype == np.int64
    assert labels.tolist() == [0, 1, 2, 3, 4, 1, 3, 0, 4]
    with pytest.raises(ValueError, match="4 finite non-decreasing"):
        bin_labels(score, (0.1, 0.0, 0.2, 0.3))
    with pytest.raises(ValueError, match="NaN"):
        bin_labels([0.1, float("nan")])


def test_class_ranges_hold_their_scores():
    scheme = LabelScheme.fit(HAND)
    ranges = scheme.class_ranges()
    assert ranges == [(-math.inf, 0.00025), (0.00025, 0.0015), (0.0015, 0.005), (0.005, 0.02), (0.02, math.inf)]
    for s, k in zip(scheme.score(HAND), scheme.labels(HAND)):
        assert ranges[k][0] <= s < ranges[k][1]


def test_saved_scheme_labels_second_frame_with_first_frames_stats(tmp_path):
    scheme = LabelScheme.fit(HAND)
    loaded = LabelScheme.load(scheme.save(tmp_path / "label_scheme.json"))
    assert loaded == scheme
    other = pd.DataFrame({"views": [200, 201, 240], "likes": [10, 11, 10], "coins": [10, 10, 11], "favorites": [1, 1, 2]})
    # With HAND's stats (views mean 200 / range 500, likes 10/30, coins 10/20, favorites 1/4):
    # row 0: all at the mean -> 0 -> class 0
    # row 1: 0.75*1/500 + 0.10*1/30 = 0.0015 + 0.003333 = 0.004833 -> class 2 (< 0.005)
    # row 2: 0.75*40/500 + 0.10*1/20 + 0.05*1/4 = 0.06 + 0.005 + 0.0125 = 0.0775 -> class 4
    np.testing.assert_allclose(loaded.score(other), [0.0, 0.0048333333, 0.0775], atol=1e-9)
    assert loaded.labels(other).tolist() == [0, 2, 4]
    assert np.array_equal(loaded.score(other), scheme.score(other))
    # Refitting on the second frame's own stats labels it differently (row 1 falls below its own mean views).
    assert LabelScheme.fit(other).labels(other).tolist() != [0, 2, 4]


def test_quantile_bins_are_equal_count_and_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({c: rng.lognormal(8, 2, 1000).round() for c in ["views", "likes", "coins", "favorites"]})
    scheme = LabelScheme.fit(df, kind="quantile")
    assert np.bincount(scheme.labels(df), minlength=5).tolist() == [200] * 5
    loaded = LabelScheme.load(scheme.save(tmp_path / "q.json"))
    assert loaded == scheme
    new = df.iloc[:300] * 3  # a second frame: labelled with the first frame's stats and edges
    assert np.array_equal(loaded.labels(new), bin_labels(popularity_score(new, scheme.weights, scheme.stats), scheme.thresholds))


def test_quantile_ties_stay_together_and_bins_stay_as_equal_as_allowed():
    # 20 rows, 4 per bin; 8 tied zeros cannot be split, so bin 0 takes all 8 and the 12 rows left share 3 each.
    v = pd.DataFrame({"views": [0] * 8 + list(range(1, 13))})
    labels = LabelScheme.fit(v, kind="log_views").labels(v)
    assert np.bincount(labels, minlength=5).tolist() == [8, 3, 3, 3, 3]
    # 10 rows, 3 tied zeros: bin 0 = {0,0,0} (3 is nearer 2 than 0 is); 7 rows left / 4 -> 1.75 per bin:
    # bin 1 nearest 3 + 1.75 = 4.75 -> 5 = {1,2}; bin 2 nearest 5 + 5/3 = 6.67 -> 7 = {3,4};
    # bin 3 nearest 7 + 1.5 = 8.5 -> 8 (tie with 9, lower wins) = {5}; bin 4 = {6,7}.
    v = pd.DataFrame({"views": [0, 0, 0, 1, 2, 3, 4, 5, 6, 7]})
    assert np.bincount(LabelScheme.fit(v, kind="log_views").labels(v), minlength=5).tolist() == [3, 2, 2, 1, 2]
    with pytest.raises(ValueError, match="at least 5 distinct"):
        LabelScheme.fit(pd.DataFrame({"views": [0, 0, 1, 2, 3]}), kind="log_views")


def test_weight_on_missing_column_is_a_clear_error():
    no_likes = HAND.drop(columns="likes")
    with pytest.raises(ValueError, match=r"'likes'.*absent.*likes=0"):
        popularity_score(no_likes)
    all_na = HAND.assign(coins=pd.array([pd.NA] * 4, dtype="Int64"))
    with pytest.raises(ValueError, match=r"'coins'.*all NA.*coins=0"):
        LabelScheme.fit(all_na)
    # Setting that weight to 0 makes the column unnecessary.
    weights = {"views": 0.75, "likes": 0.0, "coins": 0.10, "favorites": 0.05}
    assert len(popularity_score(no_likes, weights)) == 4


def test_na_in_weighted_column_names_the_rows():
    df = HAND.copy()
    df.loc[2, "views"] = pd.NA
    with pytest.raises(ValueError, match=r"'views' is NA in 1 row\(s\) \(index 2\)"):
        popularity_score(df)


def test_auto_picks_log_views_for_views_only_data_and_says_so():
    views_only = pd.DataFrame({"views": range(8), "likes": pd.array([pd.NA] * 8, dtype="Int64")})
    scheme = LabelScheme.fit(views_only, kind="auto")
    assert scheme.kind == "log_views"
    assert "log_views (auto: likes, coins, favorites missing)" in scheme.describe()
    assert LabelScheme.fit(HAND, kind="auto").kind == "paper"
    assert "\n" not in scheme.describe()


def test_load_rejects_a_bad_file(tmp_path):
    path = tmp_path / "scheme.json"
    path.write_text('{"kind": "paper"}', encoding="utf-8")
    with pytest.raises(ValueError, match="scheme.json: not a valid label scheme"):
        LabelScheme.load(path)


def _real_stats(src) -> pd.DataFrame:
    names = {"播放": "views", "点赞": "likes", "硬币": "coins", "收藏": "favorites", "分享": "shares"}
    return pd.read_csv(src / "bilibili_data_analysis.csv", encoding="utf-8-sig").rename(columns=names)


def test_real_stats_paper_bins_are_mostly_class_0(bilibili_stats_src):
    from popnb.metrics import constant_baseline

    df = _real_stats(bilibili_stats_src)
    paper = LabelScheme.fit(df, kind="paper").labels(df)
    counts = np.bincount(paper, minlength=5)
    assert 0.74 < counts[0] / len(df) < 0.80  # the data README: about 77% in class 0
    best, accuracy = constant_baseline(paper)
    assert best == 0 and 0.76 < accuracy < 0.80  # the data README: about 0.78
    quantile = np.bincount(LabelScheme.fit(df, kind="quantile").labels(df), minlength=5)
    assert quantile.max() - quantile.min() <= 1 and quantile.sum() == len(df)
