"""popnb.analysis.findings and cjk_font: bootstrap group effects on planted and null data, word lift, the demo's
planted effects recovered, the CJK font lookup, and notebook 06 run through popnb's report runner."""
from __future__ import annotations

import json
import warnings

import matplotlib

matplotlib.use("Agg")
import nbformat  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from test_notebooks import REPO_REPORTS, assert_drawn, snapshot, table  # noqa: E402

from popnb.analysis import cjk_font, findings  # noqa: E402
from popnb.analysis.explore import cjk_font as any_cjk_font  # noqa: E402
from popnb.data import load_dataset, make_demo_dataset, write_dataset  # noqa: E402
from popnb.reports import runner  # noqa: E402

Z95 = 1.959964  # a 95 % interval spans about 2 * Z95 bootstrap sd (the median's sampling law is near normal)
DEMO_N, DEMO_SIZE = 600, (96, 54)  # BlazeFace still finds most demo faces on covers this small


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(a small synthetic demo set, a feature cache shared by this module's tests and notebook run)."""
    root = tmp_path_factory.mktemp("findings")
    return make_demo_dataset(root / "demo", n=DEMO_N, seed=0, size=DEMO_SIZE), root / "cache"


@pytest.fixture(scope="module")
def demo_table(demo):
    """(the demo's feature table, its rows with the target, the target column)."""
    data, cache = demo
    features = findings.feature_table(load_dataset(data), ocr=None, stats_side=DEMO_SIZE[0], cache=cache,
                                      progress=False)
    return features, *findings.with_target(features)[:2]


def test_group_effects_find_a_planted_difference():
    rng = np.random.default_rng(0)
    y = np.concatenate([rng.normal(0.5, 1, 1500), rng.normal(0, 1, 3000)])
    df = pd.DataFrame({"y": y, "flag": np.arange(len(y)) < 1500})
    (row,) = findings.group_effects(df, "y", {"planted": df["flag"]}).to_dict("records")
    assert (row["n_in"], row["n_out"], row["target"]) == (1500, 3000, "y")
    assert row["excludes_zero"] and row["verdict"] == "higher" and row["ci_low"] > 0
    sd = (row["ci_high"] - row["ci_low"]) / (2 * Z95)
    assert abs(row["median_diff"] - 0.5) < 4 * sd  # the estimate sits within 4 bootstrap sd of the truth
    # a sample median of N(., 1) has sd sqrt(pi / 2 / n): the bootstrap agrees within its own noise
    assert sd == pytest.approx(np.sqrt(np.pi / 2 * (1 / 1500 + 1 / 3000)), rel=0.25)
    assert 0.1 < row["cliffs_delta"] < 0.45  # 2 * Phi(0.5 / sqrt(2)) - 1 = 0.28


def test_group_effects_include_zero_without_a_difference():
    covered = 0
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        df = pd.DataFrame({"y": rng.normal(size=600), "flag": rng.random(600) < 0.5})
        (row,) = findings.group_effects(df, "y", {"null": lambda d: d["flag"]}, n_boot=1000, seed=seed).itertuples()
        covered += not row.excludes_zero
    assert covered >= 17  # a 95 % interval: 19 of 20 expected; 16 or fewer has probability 1.6 %


def test_masks_callables_na_and_small_groups():
    df = pd.DataFrame({"y": np.arange(40.0), "x": [np.nan] * 10 + list(range(30))})
    mask = pd.Series([pd.NA] * 10 + [True] * 15 + [False] * 15, dtype="boolean")
    out = findings.group_effects(df, "y", {"na": mask, "tiny": lambda d: d["y"] < 5}, n_boot=200).set_index("finding")
    assert (out.loc["na", "n_in"], out.loc["na", "n_out"]) == (15, 15)  # NA rows are in neither group
    assert out.loc["na", "median_diff"] == np.median(np.arange(10, 25)) - np.median(np.arange(25, 40))
    assert out.loc["tiny", "n_in"] == 5 and np.isnan(out.loc["tiny", "median_diff"])
    assert not out.loc["tiny", "excludes_zero"] and out.loc["tiny", "verdict"].startswith("too few")
    alone = findings.group_effects(df, "y", {"na": mask}, n_boot=200)
    pd.testing.assert_frame_equal(alone, out.loc[["na"]].reset_index())  # seeded by name: others change nothing

    df = pd.DataFrame({"y": np.arange(100.0), "x": [np.nan] * 20 + list(range(80))})
    (row,) = findings.quantile_effect(df, "x", "y", q=0.25, n_boot=200).itertuples()
    assert row.n_in == row.n_out == 20  # 80 known values, top and bottom quarter; NaN x in neither
    assert row.finding == "x: top vs bottom 25% (>= 59.2 vs <= 19.8)" and row.median_diff == 60


def test_quantile_ties_go_to_the_bottom_group():
    x = pd.Series([0.0] * 30 + [1.0] * 10, name="x")
    is_in = findings.quantile_group(x, 0.25)[1]
    assert is_in.sum() == 10 and (~is_in).sum() == 30  # both cuts are 0: zeros are the bottom, ones the top


def test_with_target_beyond_followers_and_log_views():
    rng = np.random.default_rng(0)
    followers = 10 ** rng.uniform(2, 6, 300)
    table = pd.DataFrame({"views": np.round(followers * rng.lognormal(0, 1, 300)), "followers": followers})
    table.loc[:4, "followers"] = np.nan
    rows, target, about = findings.with_target(table)
    assert target == "beyond_followers" and len(rows) == 295 and "5 without views or followers left out" in about
    # least-squares residuals: mean 0 and uncorrelated with the regressor (up to float64 sums of ~300 terms)
    assert abs(rows[target].mean()) < 1e-9 and abs(np.corrcoef(rows[target], np.log1p(rows["followers"]))[0, 1]) < 1e-9
    rows, target, about = findings.with_target(table.assign(followers=np.nan))
    assert target == "log_views" and np.array_equal(rows[target], np.log1p(table["views"]))
    with pytest.raises(ValueError, match="target must be"):
        findings.with_target(table, "paper")


def test_feature_table_without_covers_says_so(demo, tmp_path):
    data, cache = demo
    write_dataset(load_dataset(data).videos.head(30).assign(cover=""), tmp_path / "stats")
    out = findings.feature_table(load_dataset(tmp_path / "stats"), cache=cache, progress=False)
    assert out.attrs["notes"] == ["no cover features: 30 of 30 videos have no cover"]
    assert "brightness" not in out and {"video_id", "title", "views", "followers", "length", "brackets"} <= set(out)


def test_title_words_and_word_lift_recover_a_planted_word():
    assert findings.title_words("【科普】为什么黑洞会发光？10个秘密") == ["科普", "为什么", "黑洞", "发光", "秘密"]
    rng = np.random.default_rng(0)
    base = ["天气", "咖啡", "音乐", "电影", "历史", "数学", "地理", "化学"]
    titles = ["，".join(rng.choice(base, 3, replace=False)) for _ in range(600)]
    planted, rare = np.arange(600) < 100, (np.arange(600) >= 100) & (np.arange(600) < 103)
    titles = [t + ("，黑洞" if p else "，彗星" if r else "") for t, p, r in zip(titles, planted, rare)]
    y = rng.normal(size=600) + 1.0 * planted + 3.0 * rare
    words = findings.word_lift(titles, y, k=20, min_count=3, top=5).set_index("word")
    assert words.index[0] == "黑洞" and words.loc["黑洞", "n"] == 100
    mean = y[planted].mean()
    assert words.loc["黑洞", "mean"] == pytest.approx(mean, rel=1e-12)  # float sums in another order
    assert words.loc["黑洞", "lift"] == pytest.approx(100 / 120 * (mean - y.mean()), rel=1e-12)
    assert words.loc["彗星", "mean"] > mean and words.loc["彗星", "lift"] < words.loc["黑洞", "lift"]  # 3 titles: shrunk
    assert "彗星" not in findings.word_lift(titles, y, min_count=5)["word"].tolist()


def test_demo_recovers_the_face_on_the_right_and_title_effects(demo_table):
    features, rows, target = demo_table
    assert target == "beyond_followers" and len(rows) == DEMO_N and "n_text_boxes" not in rows
    assert features.attrs["notes"] == [f"no text-on-cover features: OCR off (ocr=False; it costs {findings.OCR_COST})"]
    effects = findings.standard_findings(rows, target).set_index("finding")
    for face in ("face on the cover", "face in the right third (vs no face)"):
        assert effects.loc[face, "excludes_zero"] and effects.loc[face, "median_diff"] > 0, face
    titles = effects[effects["part"] == "title"]
    assert (titles["excludes_zero"] & (titles["median_diff"] > 0)).any()
    recovered = findings.planted_recovery(effects.reset_index()).set_index("planted")["recovered"]
    assert recovered["face"] and recovered[["question", "number", "hook"]].any()
    assert recovered[["brightness", "saturation"]].all()


def test_partial_dependence_of_the_baseline(demo_table):
    _, rows, target = demo_table
    columns = ["brightness", "questions", "latin_words"]  # latin_words: always 0 on the demo titles
    model = findings.fit_baseline(rows, target, columns)
    pd_table = findings.partial_dependence_table(model, rows, columns, grid=10)
    assert list(dict.fromkeys(pd_table["feature"])) == ["brightness", "questions"]  # a constant column is left out
    bright = pd_table[pd_table["feature"] == "brightness"]
    assert len(bright) == 10 and bright["value"].is_monotonic_increasing
    assert bright["average"].iloc[-1] > bright["average"].iloc[0]  # the demo plants brighter = more popular
    assert pd_table[pd_table["feature"] == "questions"]["value"].tolist() == [0.0, 1.0]


@pytest.fixture
def fonts(monkeypatch):
    """Set matplotlib's font list (a list of FontEntry) for one test; the font lookup is cached, so clear it."""
    def use(entries):
        monkeypatch.setattr(font_manager.fontManager, "ttflist", entries)
        cjk_font.find_cjk_font.cache_clear()

    yield use
    cjk_font.find_cjk_font.cache_clear()


def dejavu() -> list:
    return [e for e in font_manager.fontManager.ttflist if e.name.startswith("DejaVu")]


def test_cjk_font_prefers_a_known_family(fonts):
    fonts([*dejavu(), font_manager.FontEntry(fname=dejavu()[0].fname, name="Noto Sans CJK JP")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cjk_font.find_cjk_font() == "Noto Sans CJK JP"


def test_cjk_font_warns_once_when_none(fonts):
    fonts(dejavu())
    with pytest.warns(UserWarning, match="fonts-noto-cjk") as record:
        assert cjk_font.find_cjk_font() is None and cjk_font.find_cjk_font() is None
    assert len(record) == 1
    assert cjk_font.labels(["黑洞", "AI"], ["word 1", "word 2"]) == ["word 1 · 2 chars", "AI"]  # no tofu


def test_cjk_font_finds_an_installed_one(fonts):
    if any_cjk_font() is None:
        pytest.skip("no CJK font installed (CI: fonts-noto-cjk from .ci/browser-deps.sh)")
    name = cjk_font.find_cjk_font()
    assert any(key in name for key in ("CJK", "Noto", "WenQuanYi", "Hei", "Han"))
    assert cjk_font.labels(["黑洞"], ["word 1"]) == ["黑洞"]


def test_notebook_06_on_the_demo(demo, tmp_path, monkeypatch):
    data, cache = demo
    monkeypatch.setenv("POPNB_CACHE", str(cache))  # the kernel inherits it: the features of the tests above
    before, out = snapshot(REPO_REPORTS), tmp_path / "reports"
    code = runner.run_reports(data_dir=data, only="06", out=out,
                              parameters={"stats_side": DEMO_SIZE[0], "n_boot": 500, "min_count": 3, "top_words": 8})
    (record,) = json.loads((out / runner.RECORDS).read_text(encoding="utf-8")).values()
    assert code == 0 and record["status"] == "ok", record["error"]
    assert snapshot(REPO_REPORTS) == before

    effects = table(out, "06_findings", index_col="finding")
    assert set(effects["target"]) == {"beyond_followers"} and effects.loc["face on the cover", "excludes_zero"]
    assert table(out, "06_planted_effects", index_col="planted").loc["face", "recovered"]
    assert "brightness" in set(table(out, "06_partial_dependence")["feature"])
    words = table(out, "06_title_words")
    assert 0 < len(words) <= 8 and (words["n"] >= 3).all() and words["lift"].is_monotonic_decreasing
    assert_drawn(out, ["06_effects", "06_partial_dependence", "06_title_words"])
    nb = nbformat.read(out / "06_what_drives_popularity.ipynb", as_version=4)
    assert not [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
