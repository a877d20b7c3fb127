"""validate(): typed kept rows, one quarantine row per bad video (row, field, reason), and the report."""
from __future__ import annotations

import pandas as pd
import pytest
from data_factories import good_row, opened_paths, save_jpeg, save_outside_cover

from popnb.data.schema import COUNT_COLUMNS, REQUIRED_COLUMNS, SchemaError, leaves_folder, validate


def frame(*rows: dict) -> pd.DataFrame:
    """Rows as a crawl CSV reads: every value a string; covers empty (no image checks)."""
    return pd.DataFrame([{**r, "cover": ""} for r in rows])


def run(df: pd.DataFrame, tmp_path, check_images="none"):
    kept, quarantine, report = validate(df, tmp_path, "test.csv", check_images)
    return kept, quarantine, report


def test_good_rows_are_typed_and_extra_columns_pass_through(tmp_path):
    df = frame(good_row("a", views="12.0", followers="", hot_list="true", duration="61.5", danmaku="7"),
               good_row("b", followers="3000", hot_list="0", duration="", danmaku="x"))
    kept, quarantine, report = run(df, tmp_path)
    assert list(kept.video_id) == ["a", "b"] and quarantine.empty
    assert all(kept[c].dtype == "Int64" for c in (*COUNT_COLUMNS, "followers"))
    assert kept.views.tolist() == [12, int(good_row("b")["views"])]
    assert kept.followers.isna().tolist() == [True, False]  # followers is optional: NA is fine
    assert kept.hot_list.tolist() == [True, False] and kept.duration.isna().tolist() == [False, True]
    assert kept.danmaku.tolist() == ["7", "x"]  # not ours: untouched
    assert (report.n_read, report.n_kept, report.n_quarantined, report.by_reason) == (2, 2, 0, {})


@pytest.mark.parametrize("field, value, reason", [
    ("likes", "", "missing count: likes is empty/NaN in a column that has values"),
    ("likes", "NaN", "missing count: likes is empty/NaN in a column that has values"),
    ("views", "-5", "negative count: -5"),
    ("coins", "abc", "non-numeric count: 'abc'"),
    ("coins", "1.2万", "non-numeric count: '1.2万'"),
    ("favorites", "inf", "non-numeric count: 'inf'"),
    ("shares", "1.5", "non-integer count: 1.5"),
    ("followers", "-1", "negative count: -1"),
    ("duration", "long", "non-numeric duration: 'long'"),
    ("hot_list", "maybe", "not a boolean: 'maybe'"),
    ("title", "", "empty title"),
    ("title", "  \t ", "empty title"),
    ("video_id", " ", "missing video_id"),
])
def test_bad_value_is_quarantined_naming_row_field_and_reason(tmp_path, field, value, reason):
    extra = {"followers": "10", "duration": "5", "hot_list": "yes"}
    df = frame(good_row("a", **extra), good_row("b", **{**extra, field: value}), good_row("c", **extra))
    kept, quarantine, report = run(df, tmp_path)
    assert list(kept.video_id) == ["a", "c"]
    assert quarantine[["_row", "_field", "_reason"]].values.tolist() == [[2, field, reason]]
    assert quarantine.loc[0, field] == value  # the original row, verbatim
    assert report.by_reason == {reason.split(":")[0]: 1}
    assert (report.n_read, report.n_kept, report.n_quarantined) == (3, 2, 1)


def test_a_count_column_entirely_empty_is_na_not_quarantined(tmp_path):
    df = frame(*(good_row(i, likes="", coins="") for i in "abc"))
    kept, quarantine, report = run(df, tmp_path)
    assert list(kept.video_id) == ["a", "b", "c"] and quarantine.empty
    assert kept[["likes", "coins"]].isna().all().all() and kept.likes.dtype == "Int64"
    assert kept.favorites.notna().all()
    assert report.notes == ["not in the data (all NA): likes, coins"]


def test_duplicates_keep_the_first_good_occurrence(tmp_path):
    df = frame(good_row("a"), good_row("b", views="-1"), good_row("a"), good_row("b"), good_row("a"))
    kept, quarantine, report = run(df, tmp_path)
    assert list(kept.video_id) == ["a", "b"]  # the b kept is row 4: row 2 was bad, so row 4 is no duplicate
    assert kept.views.tolist() == [int(good_row("a")["views"]), int(good_row("b")["views"])]
    assert quarantine[["_row", "_field", "_reason"]].values.tolist() == [
        [2, "views", "negative count: -1"],
        [3, "video_id", "duplicate video_id: same as row 1"],
        [5, "video_id", "duplicate video_id: same as row 1"],
    ]
    assert report.by_reason == {"negative count": 1, "duplicate video_id": 2}
    assert report.summary().splitlines() == [
        "test.csv: read 5, kept 2, quarantined 3",
        "  quarantined, duplicate video_id: 2",
        "  quarantined, negative count: 1",
    ]


def test_emoji_and_overlong_titles_are_kept_verbatim(tmp_path):
    emoji, long = "猫咪🐱 vs 狗狗🐶 #1 👍🏽", "长" * 300
    kept, quarantine, report = run(frame(good_row("a", title=emoji), good_row("b", title=long)), tmp_path)
    assert kept.title.tolist() == [emoji, long] and quarantine.empty
    assert report.notes == ["1 titles longer than 128 characters: kept, truncated at tokenisation"]


def test_na_looking_titles_are_text(tmp_path):
    kept, _, _ = run(frame(good_row("a", title="NA"), good_row("b", title="None")), tmp_path)
    assert kept.title.tolist() == ["NA", "None"]


def test_missing_required_column_is_a_schema_error_naming_file_and_column(tmp_path):
    with pytest.raises(SchemaError, match=r"test.csv: missing required column 'coins'"):
        run(frame(good_row("a")).drop(columns="coins"), tmp_path)
    assert SchemaError.__mro__[1] is ValueError
    assert set(REQUIRED_COLUMNS) == {"video_id", "title", "cover", *COUNT_COLUMNS}


def test_covers_are_checked_and_unusual_modes_noted(tmp_path):
    save_jpeg(tmp_path / "a.jpg")
    save_jpeg(tmp_path / "b.jpg", mode="CMYK")
    save_jpeg(tmp_path / "c.jpg", mode="L")
    df = pd.DataFrame([good_row(i) for i in "abcd"] + [{**good_row("e"), "cover": ""}])
    kept, quarantine, report = run(df, tmp_path, check_images="header")
    assert list(kept.video_id) == ["a", "b", "c", "e"]
    assert kept.cover.tolist() == ["a.jpg", "b.jpg", "c.jpg", ""]
    assert quarantine[["_row", "_field"]].values.tolist() == [[4, "cover"]]
    assert quarantine.loc[0, "_reason"] == f"missing cover file: {tmp_path / 'd.jpg'}"
    assert report.notes == ["covers not in RGB, kept and converted to RGB when read: CMYK 1, L 1"]
    kept, quarantine, _ = run(df, tmp_path, check_images="none")
    assert len(kept) == 5 and quarantine.empty


def test_unknown_check_level(tmp_path):
    with pytest.raises(ValueError, match="check_images must be one of"):
        run(frame(good_row("a")), tmp_path, check_images="fast")


@pytest.mark.parametrize("path, leaves", [
    ("a.jpg", False), ("covers/a.jpg", False), ("./covers/a.jpg", False), ("covers/../a.jpg", False),
    ("covers/x/../../a.jpg", False), ("..a.jpg", False), ("covers/a..jpg", False), ("", False),
    ("../a.jpg", True), ("..", True), ("covers/../../a.jpg", True), ("./../a.jpg", True), ("..\\a.jpg", True),
    ("/etc/a.jpg", True), ("\\\\server\\share\\a.jpg", True), ("C:\\a.jpg", True), ("C:a.jpg", True),
])
def test_leaves_folder_judges_the_normalised_text(path, leaves):
    assert leaves_folder(path) is leaves


@pytest.mark.parametrize("level", ["none", "header", "full"])
def test_a_cover_leaving_the_folder_is_quarantined_unopened_whether_or_not_it_exists(tmp_path, level,
                                                                                       monkeypatch):
    root, secret = tmp_path / "ds", save_outside_cover(tmp_path)
    (root / "covers").mkdir(parents=True)
    inside = save_jpeg(root / "covers" / "a.jpg").resolve()
    covers = ["covers/a.jpg", "../elsewhere/secret.jpg", "../elsewhere/absent.jpg", str(secret),
              "covers/../../elsewhere/secret.jpg"]
    df = pd.DataFrame([good_row(f"v{i}", cover=cover) for i, cover in enumerate(covers)])
    opened = opened_paths(monkeypatch)
    kept, quarantine, report = run(df, root, check_images=level)
    assert kept.cover.tolist() == ["covers/a.jpg"]
    assert quarantine[["_row", "_field", "_reason"]].values.tolist() == [
        [row, "cover", "cover path leaves the dataset folder"] for row in (2, 3, 4, 5)]
    assert quarantine.cover.tolist() == covers[1:]  # the value as written
    assert report.by_reason == {"cover path leaves the dataset folder": 4}
    assert set(opened) == (set() if level == "none" else {inside})  # the outside file: never opened
