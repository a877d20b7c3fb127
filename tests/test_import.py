"""import_crawl / load_dataset / write_dataset: every bad input handled, no good row lost, raw input untouched."""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from data_factories import (
    RANKING_MAP, good_row, good_rows, opened_paths, ranking_rows, save_bomb_png, save_jpeg, save_not_an_image,
    save_outside_cover, save_palette_png, save_rgba_png, save_truncated_jpeg, snapshot, write_crawl,
)

from popnb.data import commands
from popnb.data.images import open_cover
from popnb.data.importers import import_crawl
from popnb.data.io import load_dataset, write_dataset
from popnb.data.schema import COUNT_COLUMNS, REQUIRED_COLUMNS, SchemaError

GOOD = ("g1", "g2", "g3")
LEAVES = "cover path leaves the dataset folder"


def read_quarantine(out) -> pd.DataFrame:
    return pd.read_csv(out / "quarantine.csv", dtype=str, keep_default_na=False)


def crawl_with(src, bad: dict):
    """g1, g2, the bad row (data row 3), g3."""
    rows = good_rows(src, GOOD)
    return write_crawl(src, [rows[0], rows[1], bad, rows[2]])


# name -> (make the row under test in folder d, expected (field, reason start) or None when it is kept)
CASES = {
    "truncated image": (lambda d: good_row("x", cover=save_truncated_jpeg(d / "x.jpg").name),
                        ("cover", "unreadable image: x.jpg: image file is truncated")),
    "unreadable image": (lambda d: good_row("x", cover=save_not_an_image(d / "x.jpg").name),
                         ("cover", "unreadable image: x.jpg: cannot identify image file")),
    "missing cover file": (lambda d: good_row("x"), ("cover", "missing cover file: ")),
    "decompression bomb": (lambda d: good_row("x", cover=save_bomb_png(d / "x.png").name),
                           ("cover", "image too large: x.png: Image size (400000000 pixels) exceeds limit")),
    "empty title": (lambda d: good_row("x", title="", cover=save_jpeg(d / "x.jpg").name), ("title", "empty title")),
    "NaN count": (lambda d: good_row("x", likes="NaN", cover=save_jpeg(d / "x.jpg").name),
                  ("likes", "missing count: likes")),
    "negative count": (lambda d: good_row("x", views="-3", cover=save_jpeg(d / "x.jpg").name),
                       ("views", "negative count: -3")),
    "non-numeric count": (lambda d: good_row("x", coins="lots", cover=save_jpeg(d / "x.jpg").name),
                          ("coins", "non-numeric count: 'lots'")),
    "duplicate video_id": (lambda d: good_row("g1", title="again"), ("video_id", "duplicate video_id: same as row 1")),
    "CMYK JPEG": (lambda d: good_row("x", cover=save_jpeg(d / "x.jpg", mode="CMYK").name), None),
    "PNG with alpha": (lambda d: good_row("x", cover=save_rgba_png(d / "x.png").name), None),
    "palette PNG": (lambda d: good_row("x", cover=save_palette_png(d / "x.png").name), None),
    "grayscale JPEG": (lambda d: good_row("x", cover=save_jpeg(d / "x.jpg", mode="L").name), None),
    "very large JPEG": (lambda d: good_row("x", cover=save_jpeg(d / "x.jpg", size=(4800, 2700)).name), None),
    "emoji title": (lambda d: good_row("x", title="开箱🎁！猫咪😺 ✨", cover=save_jpeg(d / "x.jpg").name), None),
    "overlong title": (lambda d: good_row("x", title="标题" * 200, cover=save_jpeg(d / "x.jpg").name), None),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_quarantined_or_kept_and_no_good_row_is_lost(tmp_path, case):
    make, expected = CASES[case]
    src = tmp_path / "raw"
    src.mkdir()
    bad = make(src)
    report = import_crawl(crawl_with(src, bad), tmp_path / "out")
    out = tmp_path / "out"
    videos = pd.read_csv(out / "videos.csv", dtype=str, keep_default_na=False)
    quarantine = read_quarantine(out)
    assert (report.n_read, report.n_kept + report.n_quarantined) == (4, 4)
    if expected is None:  # good data: kept, and readable as RGB from the new folder
        assert list(videos.video_id) == ["g1", "g2", "x", "g3"] and quarantine.empty
        assert videos.title[2] == bad["title"]
        ds = load_dataset(out, check_images="full")
        assert ds.report.n_quarantined == 0
        assert all(open_cover(ds.cover_path(i)).mode == "RGB" for i in range(len(ds)))
    else:
        field, reason = expected
        assert list(videos.video_id) == list(GOOD)
        assert videos.title.tolist() == [good_row(i)["title"] for i in GOOD]  # for a duplicate: the first kept
        assert quarantine[["_row", "_field"]].values.tolist() == [["3", field]]
        assert quarantine._reason[0].startswith(reason), quarantine._reason[0]
        assert quarantine.title[0] == bad["title"]
        assert report.by_reason == {reason.split(":")[0]: 1}


def test_notes_say_what_was_kept_and_how(tmp_path):
    src = tmp_path / "raw"
    rows = good_rows(src, GOOD) + [good_row("c", cover=save_jpeg(src / "c.jpg", mode="CMYK").name),
                                    good_row("big", cover=save_jpeg(src / "big.jpg", size=(5000, 2000)).name),
                                    good_row("long", title="x" * 200, cover="g1.jpg")]
    report = import_crawl(write_crawl(src, rows), tmp_path / "out")
    assert report.notes == ["covers not in RGB, kept and converted to RGB when read: CMYK 1",
                            "1 covers larger than 4096 px, kept and decoded at reduced size",
                            "1 titles longer than 128 characters: kept, truncated at tokenisation"]


def test_missing_required_column_names_file_and_column(tmp_path):
    src = write_crawl(tmp_path / "raw", [{k: v for k, v in good_row("a").items() if k != "title"}])
    with pytest.raises(SchemaError, match=rf"{src}.*missing required column 'title'"):
        import_crawl(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_wrong_encoding_names_file_and_line_and_suggests_one(tmp_path):
    src = tmp_path / "raw"
    rows = good_rows(src, ["a", "b"])
    rows[1]["title"] = "中文标题：编码测试"
    path = write_crawl(src, rows, encoding="gbk")
    with pytest.raises(SchemaError, match=rf"{path}, line 3: not valid utf-8 .*--encoding gb18030"):
        import_crawl(path, tmp_path / "out")
    import_crawl(path, tmp_path / "out", encoding="gb18030")
    assert load_dataset(tmp_path / "out").videos.title.tolist() == ["title of a", "中文标题：编码测试"]


def test_mapping_an_unknown_crawl_keeps_extras_and_absent_counts_are_na(tmp_path):
    src = tmp_path / "raw"
    rows = [{"id": r["video_id"], "name": r["title"], "plays": r["views"], "img": r["cover"], "lang": "zh"}
            for r in good_rows(src / "imgs", ["a", "b"])]
    path = write_crawl(src, rows)
    mapping = {"video_id": "id", "title": "name", "views": "plays", "cover": "img"}
    report = import_crawl(path, tmp_path / "out", covers=src / "imgs", mapping=mapping)
    assert report.notes == ["not in the data (all NA): likes, coins, favorites, shares"]
    ds = load_dataset(tmp_path / "out", check_images="full")
    assert list(ds.videos.columns) == [*REQUIRED_COLUMNS, "lang"]
    assert ds.videos.views.tolist() == [int(r["plays"]) for r in rows]
    assert ds.videos[list(COUNT_COLUMNS[1:])].isna().all().all()  # unknown, never zero
    assert ds.videos.cover.tolist() == ["covers/a.jpg", "covers/b.jpg"] and ds.has_covers
    with pytest.raises(SchemaError, match=r"missing column 'plays_total' \(the source of 'views'\)"):
        import_crawl(path, tmp_path / "out2", mapping={**mapping, "views": "plays_total"})
    with pytest.raises(SchemaError, match="--covers given but the crawl has no cover column"):
        import_crawl(path, tmp_path / "out3", covers=src, mapping={"video_id": "id", "title": "name", "views": "plays"})
    with pytest.raises(ValueError, match="unknown preset 'youtube'"):
        import_crawl(path, tmp_path / "out4", preset="youtube")


@pytest.mark.parametrize("link", [False, True])
def test_raw_input_is_never_written_and_covers_are_copied_or_linked(tmp_path, link):
    src = tmp_path / "raw"
    path = write_crawl(src, good_rows(src, GOOD))
    before = snapshot(src)
    import_crawl(path, tmp_path / "out", link=link)
    assert snapshot(src) == before
    for i in GOOD:
        copied, original = tmp_path / "out" / "covers" / f"{i}.jpg", src / f"{i}.jpg"
        assert copied.read_bytes() == original.read_bytes()
        assert os.path.samefile(copied, original) == link


def test_output_folder_is_written_once_and_never_the_raw_folder(tmp_path):
    src = tmp_path / "raw"
    path = write_crawl(src, good_rows(src, GOOD))
    import_crawl(path, tmp_path / "out")
    with pytest.raises(ValueError, match="videos.csv exists: a dataset folder is written once"):
        import_crawl(path, tmp_path / "out")
    with pytest.raises(ValueError, match="is the raw input's folder"):
        import_crawl(path, src)
    with pytest.raises(FileNotFoundError, match="crawl file"):
        import_crawl(src / "nope.csv", tmp_path / "out5")


def test_load_never_writes_and_rechecks_covers_at_the_chosen_level(tmp_path):
    src = tmp_path / "raw"
    import_crawl(write_crawl(src, good_rows(src, GOOD)), tmp_path / "out")
    out = tmp_path / "out"
    save_truncated_jpeg(out / "covers" / "g2.jpg")  # damaged after import
    (out / "covers" / "g3.jpg").unlink()
    before = snapshot(out)
    assert [len(load_dataset(out, check_images=level)) for level in ("none", "header", "full")] == [3, 2, 1]
    ds = load_dataset(out, check_images="full", quarantine_to=tmp_path / "elsewhere" / "q.csv")
    assert snapshot(out) == before
    assert ds.videos.video_id.tolist() == ["g1"] and ds.cover_path(0) == out / "covers" / "g1.jpg"
    assert ds.quarantine[["_row", "_field"]].values.tolist() == [[2, "cover"], [3, "cover"]]
    written = pd.read_csv(tmp_path / "elsewhere" / "q.csv")
    assert written._reason.str.split(":").str[0].tolist() == ["unreadable image", "missing cover file"]
    with pytest.raises(ValueError, match="inside the dataset folder"):
        load_dataset(out, quarantine_to=out / "q.csv")
    with pytest.raises(FileNotFoundError, match="not a dataset folder"):
        load_dataset(tmp_path / "raw")


def test_write_dataset_orders_columns_and_parquet_loads_the_same(tmp_path):
    videos = pd.DataFrame({"note": ["n1", "n2"], "views": [5, 7], "video_id": ["a", "b"], "title": ["t", "猫🐱"],
                           "cover": ["", ""], "section": ["tech", "life"], "hot_list": [True, pd.NA],
                           "likes": [1, 2], "coins": [0, 3], "favorites": [2, 2],
                           "shares": pd.array([None, None], dtype="Int64")})
    write_dataset(videos, tmp_path / "csv")
    header = (tmp_path / "csv" / "videos.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == ",".join([*REQUIRED_COLUMNS, "hot_list", "section", "note"])
    (tmp_path / "pq").mkdir()
    videos.to_parquet(tmp_path / "pq" / "videos.parquet")
    for ds in (load_dataset(tmp_path / "csv"), load_dataset(tmp_path / "pq")):
        assert ds.videos.title.tolist() == ["t", "猫🐱"] and ds.videos.views.tolist() == [5, 7]
        assert ds.videos.likes.tolist() == [1, 2] and ds.videos.shares.isna().all() and ds.report.n_quarantined == 0
        assert ds.videos.hot_list.tolist()[0] is True and ds.videos.hot_list.isna().tolist() == [False, True]
        assert not ds.has_covers and ds.cover_path(0) is None
    with pytest.raises(FileExistsError):
        write_dataset(videos, tmp_path / "csv")
    with pytest.raises(SchemaError, match="missing required column 'title'"):
        write_dataset(videos.drop(columns="title"), tmp_path / "x")


@pytest.mark.parametrize("link", [False, True])
def test_cover_paths_leaving_the_covers_folder_are_quarantined_never_opened_or_copied(tmp_path, link, monkeypatch):
    src, secret = tmp_path / "raw", save_outside_cover(tmp_path)
    rows = good_rows(src, GOOD)
    escaping = [good_row("up", cover="../elsewhere/secret.jpg"), good_row("abs", cover=str(secret)),
                good_row("gone", cover="../elsewhere/absent.jpg")]
    opened = opened_paths(monkeypatch)
    report = import_crawl(write_crawl(src, [rows[0], *escaping, *rows[1:]]), tmp_path / "out", link=link)
    out = tmp_path / "out"
    assert load_dataset(out).videos.video_id.tolist() == list(GOOD)
    quarantine = read_quarantine(out)
    assert quarantine[["_row", "_field", "_reason"]].values.tolist() == [[r, "cover", LEAVES] for r in "234"]
    assert quarantine.cover.tolist() == [r["cover"] for r in escaping]  # the crawl's value, verbatim
    assert (report.n_kept, report.by_reason) == (3, {LEAVES: 3})
    assert sorted(p.name for p in (out / "covers").iterdir()) == [f"{i}.jpg" for i in GOOD]
    assert (src / "g1.jpg").resolve() in opened and secret.resolve() not in opened


def test_covers_symlinked_by_import_link_load(tmp_path, monkeypatch):
    def cross_device(*_):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)  # as on another file system: import --link symlinks
    src = tmp_path / "raw"
    import_crawl(write_crawl(src, good_rows(src, GOOD)), tmp_path / "out", link=True)
    cover = tmp_path / "out" / "covers" / "g1.jpg"
    assert cover.is_symlink() and os.readlink(cover) == str((src / "g1.jpg").resolve())  # points outside
    ds = load_dataset(tmp_path / "out", check_images="full")
    assert ds.videos.video_id.tolist() == list(GOOD) and ds.report.n_quarantined == 0


def test_load_quarantines_a_hand_edited_cover_leaving_the_folder_unopened(tmp_path, monkeypatch):
    src, secret = tmp_path / "raw", save_outside_cover(tmp_path)
    import_crawl(write_crawl(src, good_rows(src, GOOD)), tmp_path / "out")
    edited = tmp_path / "edited"
    shutil.copytree(tmp_path / "out", edited)
    videos = pd.read_csv(edited / "videos.csv", dtype=str, keep_default_na=False)
    videos.loc[1:, "cover"] = ["covers/../../elsewhere/secret.jpg", str(secret)]
    videos.to_csv(edited / "videos.csv", index=False)
    opened = opened_paths(monkeypatch)
    ds = load_dataset(edited, check_images="full", quarantine_to=tmp_path / "q.csv")
    assert ds.videos.video_id.tolist() == ["g1"] and secret.resolve() not in opened
    written = pd.read_csv(tmp_path / "q.csv", dtype=str)
    assert written[["_row", "_field", "_reason", "video_id"]].values.tolist() == [
        ["2", "cover", LEAVES, "g2"], ["3", "cover", LEAVES, "g3"]]


def derived(*fields: str) -> str:
    """The README's rule, written out: 'h' + 12 hex digits of SHA-1 over the fields joined by U+001F."""
    return "h" + hashlib.sha1("\x1f".join(fields).encode("utf-8")).hexdigest()[:12]


def test_a_crawl_without_ids_gets_stable_derived_ids_and_repeats_are_quarantined(tmp_path, capsys):
    rows = ranking_rows(("猫咪日常", "up1"), ("猫咪日常 ", "up1"), ("cafe\u0301", "up2"), ("café", "up2"),
                        ("猫咪日常", "up2"))  # row 2: row 1 with a space; row 4: row 3 in NFC
    path = write_crawl(tmp_path / "raw", rows, name="ranking.csv")
    args = _parse(["import", str(path), str(tmp_path / "out"), "--map", ",".join(f"{k}={v}" for k, v in
                                                                                  RANKING_MAP.items())])
    assert args.func(args) == 0
    assert ("  note: no column mapped to video_id: ids derived from title, uploader "
            "('h' + 12 hex digits of their SHA-1)") in capsys.readouterr().out.splitlines()
    import_crawl(path, tmp_path / "again", mapping=RANKING_MAP)
    first, again = load_dataset(tmp_path / "out").videos, load_dataset(tmp_path / "again").videos
    expected = [derived("猫咪日常", "up1"), derived("café", "up2"), derived("猫咪日常", "up2")]
    assert first.video_id.tolist() == again.video_id.tolist() == expected
    assert first.title.tolist() == ["猫咪日常", "cafe\u0301", "猫咪日常"]  # titles as published
    assert first.likes.tolist() == [10] * 3 and first.followers.tolist() == [500] * 3
    quarantine = read_quarantine(tmp_path / "out")
    assert quarantine[["_row", "_reason", "title", "uploader", "views"]].values.tolist() == [
        ["2", "duplicate video_id: same as row 1", "猫咪日常 ", "up1", "1001"],
        ["4", "duplicate video_id: same as row 3", "café", "up2", "1003"]]


def test_derived_ids_use_the_upload_time_when_mapped(tmp_path):
    rows = [{"name": "同一个标题", "plays": "5", "at": day} for day in ("2021-11-22", "2021-11-23")]
    path = write_crawl(tmp_path / "raw", rows)
    report = import_crawl(path, tmp_path / "out", mapping={"title": "name", "views": "plays", "upload_time": "at"})
    assert report.notes[0].startswith("no column mapped to video_id: ids derived from title, upload_time ")
    assert load_dataset(tmp_path / "out").videos.video_id.tolist() == [derived("同一个标题", day)
                                                                      for day in ("2021-11-22", "2021-11-23")]


def test_one_source_column_feeds_two_of_ours(tmp_path):
    path = write_crawl(tmp_path / "raw", ranking_rows(("a", "x"), ("b", "x"), ("a", "y")))
    args = _parse(["import", str(path), str(tmp_path / "out"), "--map", "video_id=title,title=title"])
    report = import_crawl(args.src, args.out, mapping=args.map[0])
    videos = load_dataset(tmp_path / "out").videos
    assert videos.video_id.tolist() == videos.title.tolist() == ["a", "b"] and "author" in videos
    assert read_quarantine(tmp_path / "out")[["_row", "_reason"]].values.tolist() == [
        ["3", "duplicate video_id: same as row 1"]]
    assert not any("derived" in note for note in report.notes)


# ---- the real crawls in ../shared/data ----

def test_real_bilibili_covers(tmp_path, bilibili_covers_src):
    src = tmp_path / "bilibili_covers"
    shutil.copytree(bilibili_covers_src, src)
    before = snapshot(src)
    raw = pd.read_csv(src / "videos.csv")
    report = import_crawl(src / "videos.csv", tmp_path / "out", preset="bilibili-covers")
    print(report.summary())
    assert snapshot(src) == before
    assert report.n_read == len(raw) == 570 and report.n_kept + report.n_quarantined == 570
    ds = load_dataset(tmp_path / "out")
    quarantined = set(read_quarantine(tmp_path / "out").video_id)
    assert set(ds.videos.video_id) == set(raw.bvid) - quarantined and len(ds) == report.n_kept
    assert ds.videos[["likes", "coins", "favorites", "shares"]].isna().all().all()
    by_id = raw.set_index("bvid").loc[ds.videos.video_id]
    assert ds.videos.views.tolist() == by_id.view_count.tolist()
    assert ds.videos.danmaku.tolist() == by_id.danmaku_count.tolist()
    assert ds.videos.followers.isna().sum() == by_id.uploader_follower.isna().sum()
    assert ds.has_covers and ds.report.n_quarantined == 0
    for i in range(len(ds)):
        assert open_cover(ds.cover_path(i), max_side=112).mode == "RGB"


def test_real_bilibili_stats(tmp_path, bilibili_stats_src):
    src = bilibili_stats_src / "bilibili_data_analysis.csv"
    raw = pd.read_csv(src, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    report = import_crawl(src, tmp_path / "out", preset="bilibili-stats")
    print(report.summary())
    assert report.n_read == len(raw) and report.n_kept + report.n_quarantined == len(raw)
    key = ["作者", "标题", "上传时间"]
    repeated = raw.duplicated(key)
    first_row = raw.reset_index().groupby(key)["index"].transform("min") + 1
    expected = {(i + 1, f"duplicate video_id: same as row {first_row[i]}") for i in raw.index[repeated]}
    quarantine = read_quarantine(tmp_path / "out")
    assert set(zip(quarantine._row.astype(int), quarantine._reason)) == expected
    assert report.by_reason == {"duplicate video_id": int(repeated.sum())}
    ds = load_dataset(tmp_path / "out")
    assert len(ds) == len(raw) - repeated.sum() and ds.videos.video_id.is_unique and not ds.has_covers
    assert ds.videos[list(COUNT_COLUMNS)].notna().all().all()
    assert ds.videos.views.tolist() == raw.loc[~repeated, "播放"].astype(int).tolist()
    assert set(ds.videos.section) == set(raw["分区"])


# ---- the command line ----

def _parse(argv):
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_command_arguments():
    args = _parse(["import", "a.csv", "out", "--map", "views=plays,title=name", "--map", "cover=img"])
    assert [args.src, args.out, args.map] == ["a.csv", "out", [{"views": "plays", "title": "name"}, {"cover": "img"}]]
    assert _parse(["demo-data", "d", "--size", "112x63"]).size == (112, 63)
    assert _parse(["demo-data", "d"]).size == (224, 126)
    for bad in (["import", "a.csv", "out", "--map", "views"], ["demo-data", "d", "--size", "big"]):
        with pytest.raises(SystemExit):
            _parse(bad)


def test_demo_data_command_writes_a_loadable_dataset(tmp_path, capsys):
    if importlib.util.find_spec("popnb.data.demo") is None:
        pytest.skip("popnb/data/demo.py (another engineer's part) is not written yet")
    args = _parse(["demo-data", str(tmp_path / "d"), "--n", "20", "--size", "48x27"])
    assert args.func(args) == 0
    assert capsys.readouterr().out.startswith("demo dataset: ")
    ds = load_dataset(tmp_path / "d", check_images="full")
    assert len(ds) == 20 and ds.report.n_quarantined == 0 and ds.has_covers


def test_cli_import_end_to_end(tmp_path):
    from popnb.cli import COMMAND_MODULES

    absent = [m for m in COMMAND_MODULES if importlib.util.find_spec(m) is None]
    if absent:
        pytest.skip(f"the popnb CLI needs {', '.join(absent)} (other engineers' parts), not written yet")
    src = tmp_path / "raw"
    rows = [{("plays" if k == "views" else k): v for k, v in r.items()}
            for r in [*good_rows(src, GOOD), good_row("bad", views="-1", cover="g1.jpg")]]
    path = write_crawl(src, rows)
    popnb = [sys.executable, "-m", "popnb", "import"]
    done = subprocess.run([*popnb, str(path), str(tmp_path / "out"), "--map", "views=plays"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"{path}: read 4, kept 3, quarantined 1" in done.stdout
    assert "quarantined, negative count: 1" in done.stdout
    assert f"quarantine: {tmp_path / 'out'}/quarantine.csv (1 rows)" in done.stdout
    failed = subprocess.run([*popnb, str(path), str(tmp_path / "out2")], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert failed.stderr.startswith(f"popnb import: error: {path}: missing required column 'views'")
    assert failed.stderr.rstrip().endswith("name a column with --map OURS=SOURCE")
