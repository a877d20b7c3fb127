"""popnb.analysis.binning on a small synthetic demo set and on the real bilibili_stats counts."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from popnb.analysis import binning  # noqa: E402
from popnb.data import import_crawl, load_dataset, make_demo_dataset  # noqa: E402
from popnb.labels import PAPER_THRESHOLDS, PAPER_WEIGHTS, bin_labels, popularity_score  # noqa: E402

N = 200


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    """The videos of a synthetic demo set of N, all five counts known."""
    videos = load_dataset(make_demo_dataset(tmp_path_factory.mktemp("demo") / "set", n=N, seed=2),
                          check_images="none").videos
    kept, weights, notes = binning.prepare(videos)
    assert len(kept) == N and weights == PAPER_WEIGHTS and notes == []
    return kept


def ordinal(y, c) -> float:
    return float(np.mean(np.where(y == c, 1.0, np.where(abs(y - c) == 1, 0.5, 0.0))))


def test_prepare_zeroes_missing_weights_and_leaves_out_unknown_rows(rows):
    df = rows.assign(likes=pd.array([pd.NA] * N, dtype="Int64"))
    df["coins"] = df["coins"].astype("Int64")
    df.loc[df.index[:3], "coins"] = pd.NA
    kept, weights, notes = binning.prepare(df)
    assert weights["likes"] == 0 and weights["views"] == 0.75 and weights["coins"] == 0.10
    assert len(kept) == N - 3 and kept["coins"].notna().all()
    assert any("likes" in n for n in notes) and any("3 row(s)" in n for n in notes)
    with pytest.raises(ValueError, match="no weighted count column"):
        binning.prepare(df[["video_id", "title"]], {"views": 1.0})


def test_class_table_paper_and_quantile_counts(rows):
    schemes = binning.fit_schemes(rows)
    table = binning.class_table(rows, schemes)
    assert table["paper n"].sum() == table["quantile n"].sum() == N
    assert table["paper share"].sum() == pytest.approx(1.0)
    direct = np.bincount(bin_labels(popularity_score(rows), PAPER_THRESHOLDS), minlength=5)
    assert table["paper n"].tolist() == direct.tolist()
    assert table["quantile n"].max() - table["quantile n"].min() <= 1  # equal-count bins (no ties in the score)
    assert table.loc[0, "paper range"] == "< 0.00025" and table.loc[4, "paper range"] == ">= 0.02"
    fig = binning.class_histogram(table, "demo")
    assert len(fig.axes[0].containers) == 2 and str(N) in fig.axes[0].get_title()
    plt.close(fig)


def test_baseline_table_is_the_best_constant_prediction(rows):
    schemes = binning.fit_schemes(rows)
    table = binning.baseline_table(rows, schemes)
    y = schemes["paper"].labels(rows)
    best = max(range(5), key=lambda c: ordinal(y, c))
    assert table.loc["paper", "constant class"] == best
    assert table.loc["paper", "constant ordinal accuracy"] == pytest.approx(ordinal(y, best))
    assert table.loc["paper", "majority share"] == pytest.approx(np.bincount(y).max() / N)
    assert table.loc["quantile", "constant ordinal accuracy"] == pytest.approx(0.4, abs=0.01)  # 0.2 + 0.5 * 0.4


def test_threshold_views_puts_a_video_exactly_on_each_threshold(rows):
    scheme = binning.fit_schemes(rows)["paper"]
    table = binning.threshold_views(scheme)
    means = {c: s["mean"] for c, s in scheme.stats.items()}
    probe = pd.DataFrame([{**means, "views": v} for v in table["views"]])
    score = popularity_score(probe, scheme.weights, scheme.stats)
    np.testing.assert_allclose(score, PAPER_THRESHOLDS, rtol=1e-9, atol=1e-15)
    assert table["share of max views"].tolist() == pytest.approx((table["views"] / rows["views"].max()).tolist())


def test_drop_top_effect_refits_without_the_top_videos(rows):
    table = binning.drop_top_effect(rows, drops=(1, 10))
    assert table.sum().tolist() == [N, N - 1, N - 10]
    assert table["all rows"].tolist() == binning.class_table(rows, binning.fit_schemes(rows))["paper n"].tolist()
    assert not table["all rows"].equals(table["without top 1"])  # the max moves the classes


def test_moved_weights_keep_the_total_and_the_ratios():
    moved = binning.moved_weights(PAPER_WEIGHTS, "views", 0.25)
    assert moved["views"] == 0.25 and sum(moved.values()) == pytest.approx(1.0)
    assert moved["likes"] / moved["favorites"] == pytest.approx(2.0) and moved["shares"] == 0
    assert binning.moved_weights({"views": 0.75}, "views", 0.5) == {"views": 0.5}


def test_weight_sensitivity_counts(rows):
    df = rows.drop(columns=["shares"])
    table = binning.weight_sensitivity(df, {**PAPER_WEIGHTS, "shares": 0.0}, grid=(0.0, 0.1, 0.75, 1.0))
    assert set(table.index.get_level_values("column")) == {"views", "likes", "coins", "favorites"}
    assert (table.sum(axis=1) == N).all()
    paper = np.bincount(bin_labels(popularity_score(rows), PAPER_THRESHOLDS), minlength=5)
    assert table.loc[("views", 0.75)].tolist() == paper.tolist()  # the paper's own weights
    fig = binning.sensitivity_figure(table, PAPER_WEIGHTS, "demo")
    assert len(fig.axes) == 4
    plt.close(fig)


def test_score_figure_marks_both_schemes(rows):
    schemes = binning.fit_schemes(rows)
    fig = binning.score_figure(rows, schemes, "demo")
    xs = [line.get_xdata()[0] for line in fig.axes[0].lines[1:]]
    assert xs == pytest.approx([*schemes["paper"].thresholds, *schemes["quantile"].thresholds])
    plt.close(fig)


def test_bilibili_stats_paper_bins_pile_into_class_0(bilibili_stats_src, tmp_path):
    import_crawl(bilibili_stats_src / "bilibili_data_analysis.csv", tmp_path / "stats", preset="bilibili-stats")
    kept, weights, _ = binning.prepare(load_dataset(tmp_path / "stats", check_images="none").videos)
    schemes = binning.fit_schemes(kept, weights)
    table = binning.class_table(kept, schemes)
    assert table["paper n"].sum() == len(kept)
    assert table.loc[0, "paper share"] > 0.7  # data README: about 77% land in class 0
    baselines = binning.baseline_table(kept, schemes)["constant ordinal accuracy"]
    assert baselines["paper"] > 0.75 and baselines["quantile"] == pytest.approx(0.4, abs=0.01)
