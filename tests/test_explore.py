"""popnb.analysis.explore on a small synthetic demo set and on the real Bilibili data."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from popnb.analysis import explore  # noqa: E402
from popnb.data import COUNT_COLUMNS, import_crawl, load_dataset, make_demo_dataset, write_dataset  # noqa: E402

N = 200


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A loaded synthetic demo set of N videos."""
    return load_dataset(make_demo_dataset(tmp_path_factory.mktemp("demo") / "set", n=N, seed=1))


def test_open_data_makes_the_demo_once_and_labels_it_synthetic(tmp_path):
    ds = explore.open_data(None, demo_dir=tmp_path / "cache", demo_n=60, seed=3)
    assert ds.root == tmp_path / "cache" / "n60_seed3" and len(ds.videos) == 60
    stamp = (ds.root / "videos.csv").stat().st_mtime_ns
    again = explore.open_data(None, demo_dir=tmp_path / "cache", demo_n=60, seed=3)
    assert (again.root / "videos.csv").stat().st_mtime_ns == stamp  # reused, not rewritten
    assert explore.data_label(ds).startswith("SYNTHETIC")
    assert "SYNTHETIC" in explore.headline(ds, "Q")

    real = ds.videos.head(10).assign(cover="")
    write_dataset(real, tmp_path / "plain")
    plain = explore.open_data(tmp_path / "plain")
    assert not explore.is_synthetic(plain.root)
    assert explore.data_label(plain) == "plain (n=10)" and "SYNTHETIC" not in explore.headline(plain, "Q")


def test_count_summary_keeps_missing_columns_missing(demo):
    df = demo.videos.assign(likes=pd.array([pd.NA] * N, dtype="Int64"))
    summary = explore.count_summary(df)
    assert list(summary.index) == list(COUNT_COLUMNS)
    assert (summary["known"] + summary["missing"] == N).all()
    assert summary.loc["likes", "known"] == 0 and np.isnan(summary.loc["likes", "median"])
    assert summary.loc["views", "median"] == df["views"].astype(float).median()
    assert summary.loc["coins", "zeros"] == int((df["coins"] == 0).sum())


def test_count_correlations_are_spearman_with_missing_as_nan(demo):
    df = demo.videos.assign(shares=pd.array([pd.NA] * N, dtype="Int64"))
    corr = explore.count_correlations(df)
    ranks = df[["views", "coins"]].astype(float).rank()
    expected = np.corrcoef(ranks["views"], ranks["coins"])[0, 1]
    assert corr.loc["views", "coins"] == pytest.approx(expected)
    assert corr.loc["views", "views"] == pytest.approx(1.0)
    assert corr["shares"].isna().all() and corr.loc["shares"].isna().all()  # missing, not 0


def test_count_distributions_show_a_missing_panel(demo):
    df = demo.videos.assign(coins=pd.array([pd.NA] * N, dtype="Int64"))
    fig = explore.count_distributions(df, "demo")
    texts = {ax.get_xlabel(): " ".join(t.get_text() for t in ax.texts) for ax in fig.axes}
    assert "missing" in texts["log10(1 + coins)"] and texts["log10(1 + views)"] == ""
    assert len(fig.axes[0].patches) > 0  # the views histogram has bars
    plt.close(fig)


def test_cover_sizes_match_the_demo_files(demo):
    sizes = explore.cover_sizes(demo)
    assert len(sizes) == N and set(sizes["width"]) == {224} and set(sizes["height"]) == {126}
    assert explore.aspect_shares(sizes).loc["16:9", "share"] == 1.0
    assert explore.cover_summary(sizes).loc["width", "count"] == N
    fig = explore.cover_size_figure(sizes.iloc[:0], "none")  # no covers: says so instead of failing
    assert "no covers" in fig.axes[0].texts[0].get_text()
    plt.close(fig)


def test_nearest_aspect():
    assert [explore.nearest_aspect(a) for a in (480 / 270, 480 / 360, 1.0, 2.4)] == ["16:9", "4:3", "1:1", "other"]


def test_caption_avoids_tofu():
    ascii_only = set(range(32, 127))
    assert explore.caption("Why is ice slippery?", "BV1", ascii_only, width=40) == "Why is ice slippery?"
    assert explore.caption("a" * 30, "BV1", ascii_only, width=10) == "a" * 7 + "..."
    assert explore.caption("为什么冰这么滑？", "BV1xy", ascii_only) == "BV1xy · 8 chars"
    assert explore.caption("ice 😀", "BV2", ascii_only) == "BV2 · 5 chars"


def test_cover_grid_draws_the_covers_with_safe_captions(demo):
    fig = explore.cover_grid(demo, "demo", n=6, cols=3, seed=0)
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == 6
    drawable = explore.font_chars(explore.cjk_font() or plt.rcParams["font.family"][0])
    possible = {explore.caption(t, v, drawable) for v, t in zip(demo.videos["video_id"], demo.videos["title"])}
    assert {ax.get_title() for ax in drawn} <= possible
    assert all(ord(ch) in drawable or ch.isspace() for ax in drawn for ch in ax.get_title())
    plt.close(fig)


def test_title_lengths_count_characters():
    df = pd.DataFrame({"title": ["黑洞是什么？", "a😀b", "【科普】xyz"]})
    assert explore.title_lengths(df).tolist() == [6, 3, 7]


def test_real_covers_sizes_and_missing_counts(bilibili_covers_src, tmp_path):
    import_crawl(bilibili_covers_src / "videos.csv", tmp_path / "covers_set", preset="bilibili-covers", link=True)
    ds = load_dataset(tmp_path / "covers_set")
    sizes = explore.cover_sizes(ds)
    assert len(sizes) == len(ds.videos) > 500
    assert set(sizes["width"]) == {480}  # README: covers resized to 480 px wide
    shares = explore.aspect_shares(sizes)["share"]
    assert shares["16:9"] > 0.5 and shares["16:9"] + shares["4:3"] > 0.9
    corr = explore.count_correlations(ds.videos)  # only views is known in this crawl
    assert corr.loc["views", "views"] == pytest.approx(1.0) and corr.drop(index="views").isna().all().all()
    fig = explore.cover_grid(ds, explore.data_label(ds), n=4, seed=0)
    assert sum(bool(ax.images) for ax in fig.axes) == 4
    plt.close(fig)


def test_real_stats_counts_correlate(bilibili_stats_src, tmp_path):
    import_crawl(bilibili_stats_src / "bilibili_data_analysis.csv", tmp_path / "stats", preset="bilibili-stats")
    ds = load_dataset(tmp_path / "stats", check_images="none")
    summary = explore.count_summary(ds.videos)
    assert (summary["missing"] == 0).all() and (summary["known"] == len(ds.videos)).all()
    corr = explore.count_correlations(ds.videos)
    assert corr.notna().all().all() and (corr.to_numpy() > 0).all()
    assert explore.cover_sizes(ds).empty  # stats only: no covers, no failure
