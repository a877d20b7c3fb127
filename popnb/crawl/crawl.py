"""`crawl`: list a section, fetch each video's stats, uploader and cover, and write a dataset folder.

OUT/videos.csv, OUT/covers/<bvid>.jpg and OUT/quarantine.csv are written (through popnb.data's validate and
write functions) once every listed video is done; until then OUT/crawl/ holds the resumable state.
"""
from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, time as day_start, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
from tqdm.auto import tqdm

from popnb.crawl import api
from popnb.crawl.client import Client, parse_cookie
from popnb.crawl.config import CrawlConfig, check_config, section_tid
from popnb.crawl.errors import ShapeError, Unavailable
from popnb.crawl.state import CrawlState, write_atomic
from popnb.data.io import TABLE_NAMES, write_dataset, write_quarantine
from popnb.data.schema import REQUIRED_COLUMNS, ValidationReport, validate

CHINA = timezone(timedelta(hours=8))  # the platform's days
SHAPE_STREAK = 3  # this many videos in a row with an unexpected response: the API changed, stop


def _since_seconds(cfg: CrawlConfig) -> int:
    """--since as a Unix time (0 when not given)."""
    return int(datetime.combine(cfg.since, day_start(), CHINA).timestamp()) if cfg.since else 0


def cover_url(pic: str, cover_base: str | None, width: int) -> str:
    """The URL to fetch a cover from: https, the host replaced by cover_base, scaled to `width` px (0: as is)."""
    url = urlsplit("https:" + pic if pic.startswith("//") else pic)
    base = urlsplit(cover_base) if cover_base else url._replace(scheme="https")
    url = url._replace(scheme=base.scheme, netloc=base.netloc)
    return url.geturl() + (f"@{width}w.jpg" if width else "")


def _hot_lists(client: Client, state: CrawlState, cfg: CrawlConfig) -> tuple[set[str], set[int]]:
    """(videos, uploaders) on the popular list and the recent weekly must-watch issues; fetched once per crawl."""
    if state.listing["hot"] is None:
        entries = []
        for pn in range(1, cfg.hot_pages + 1):
            page, no_more = api.popular_page(client, pn)
            entries += page
            if no_more:
                break
        for number in api.weekly_numbers(client)[: cfg.weekly] if cfg.weekly else []:
            entries += api.weekly_issue(client, number)
        state.listing["hot"] = {"bvids": sorted({e["bvid"] for e in entries}),
                                "mids": sorted({e["mid"] for e in entries})}
        state.save_listing()
    return set(state.listing["hot"]["bvids"]), set(state.listing["hot"]["mids"])


def _listed(client: Client, state: CrawlState, cfg: CrawlConfig, tid: int) -> list[str]:
    """The section's videos to crawl, newest first, each once, at most cfg.limit; pages already listed are kept."""
    pages, since = state.listing["pages"], _since_seconds(cfg)
    for pn in range(1, cfg.pages + 1):
        if state.listing["end"] is not None and pn > state.listing["end"]:
            break
        if str(pn) not in pages:
            entries = api.section_page(client, tid, pn, cfg.page_size)
            pages[str(pn)] = [[e["bvid"], e["pubdate"]] for e in entries]
            if not entries or min(e["pubdate"] for e in entries) < since:  # the end, or older than --since
                state.listing["end"] = pn
            state.save_listing()
    listed = (bvid for pn in range(1, cfg.pages + 1) for bvid, pubdate in pages.get(str(pn), []) if pubdate >= since)
    return list(dict.fromkeys(listed))[: cfg.limit]


def _save_cover(client: Client, pic: str, cfg: CrawlConfig, out: Path, bvid: str) -> str:
    """Download the cover to out/covers/<bvid>.jpg (atomically); its path relative to out ("" when it has none)."""
    if not pic:
        return ""
    suffix = ".jpg" if cfg.cover_width else (Path(urlsplit(pic).path).suffix.lower() or ".jpg")
    name = f"covers/{bvid}{suffix}"
    (out / "covers").mkdir(exist_ok=True)
    write_atomic(out / name, client.download(cover_url(pic, cfg.cover_base, cfg.cover_width)))
    return name


def _fetch(client: Client, state: CrawlState, cfg: CrawlConfig, out: Path, bvid: str) -> dict:
    """One video's record (with `_field` and `_reason` when it goes to quarantine); its uploader is fetched once."""
    try:
        record = api.video(client, bvid)
    except Unavailable as err:
        return {"video_id": bvid, "_field": "video_id", "_reason": str(err)}
    record["crawled_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if record["uploader_mid"] not in state.followers:
        state.add_uploader(record["uploader_mid"], api.followers(client, record["uploader_mid"]))
    try:
        record["cover"] = _save_cover(client, record["cover_url"], cfg, out, bvid)
    except Unavailable as err:
        return {**record, "cover": "", "_field": "cover", "_reason": f"cover download failed: {err}"}
    return record


def _fetch_all(client: Client, state: CrawlState, cfg: CrawlConfig, out: Path, todo: list[str], on_video) -> None:
    """Fetch and record every video of `todo` not yet finished, in order."""
    streak = 0
    for bvid in tqdm([b for b in todo if b not in state.videos], desc=f"crawling {cfg.section}", unit="video"):
        try:
            record, streak = _fetch(client, state, cfg, out, bvid), 0
        except ShapeError as err:
            record, streak, last = {"video_id": bvid, "_field": err.path, "_reason": str(err)}, streak + 1, err
        state.add_video(record)
        if streak == SHAPE_STREAK:
            raise ShapeError(f"{SHAPE_STREAK} videos in a row, the last: {last.args[0]}", last.path)
        if on_video is not None:
            on_video(bvid)


def _table(state: CrawlState, slug: str, hot_videos: set[str], hot_uploaders: set[int]) -> pd.DataFrame:
    """Every finished video in crawl order, with `_row` (its line in videos.jsonl), section, followers, hot lists."""
    rows = []
    for row, record in enumerate(state.videos.values(), start=1):
        extra = {"_row": row, "section": slug, "video_on_hot_list": record["video_id"] in hot_videos}
        if "uploader_mid" in record:
            extra |= {"followers": state.followers.get(record["uploader_mid"]),
                      "hot_list": record["uploader_mid"] in hot_uploaders}
        rows.append({**record, **extra})
    table = pd.DataFrame(rows)
    for column in api.WHOLE:  # NA where a video failed: Int64, not float
        if column in table:
            table[column] = table[column].astype("Int64")
    return table.reindex(columns=[*table.columns, *(c for c in ("_row", *REQUIRED_COLUMNS, "_field", "_reason")
                                                    if c not in table.columns)])


def _write(out: Path, table: pd.DataFrame) -> ValidationReport:
    """Validate the crawled rows and write the dataset folder; crawl failures join validation's quarantine."""
    failed = table["_reason"].notna()
    crawled = table[~failed].drop(columns=["_field", "_reason"]).reset_index(drop=True)
    source = str(out / "crawl" / "videos.jsonl")
    kept, quarantine, report = validate(crawled.drop(columns="_row"), out, source, check_images="full")
    quarantine["_row"] = crawled["_row"].to_numpy()[quarantine["_row"].to_numpy(dtype=int) - 1]
    quarantine = pd.concat([table[failed], quarantine]).sort_values("_row").reset_index(drop=True)
    write_dataset(kept, out)
    write_quarantine(quarantine, out / "quarantine.csv")
    by_reason = Counter(report.by_reason) + Counter(r.split(":")[0] for r in table.loc[failed, "_reason"])
    return ValidationReport(len(table), report.n_kept, len(quarantine), dict(by_reason), report.notes, source)


def crawl(cfg: CrawlConfig, sleep=time.sleep, on_video=None) -> ValidationReport:
    """Crawl into the dataset folder cfg.out, resuming from cfg.out/crawl/ when it is there.

    Raises a popnb.crawl.errors.CrawlError (one line) when the network, the platform or its API fails;
    what was fetched stays in cfg.out/crawl/. `sleep(seconds)` waits (tests: no waiting);
    `on_video(bvid)` is called after each finished video.
    """
    check_config(cfg)
    out, tid = Path(cfg.out), section_tid(cfg.section)
    finished = [out / name for name in TABLE_NAMES if (out / name).exists()]
    if finished:
        raise ValueError(f"{finished[0]} exists: that crawl is finished (a dataset folder is written once); "
                         "choose a new folder")
    options = {"section_tid": tid, "page_size": cfg.page_size, "since": cfg.since and cfg.since.isoformat()}
    state = CrawlState(out / "crawl", options)
    with Client(cfg.api_base, cfg.polite, sleep=sleep) as client:
        client.http.cookies.update(parse_cookie(cfg.cookie) if cfg.cookie else api.visitor_cookies(client))
        todo = _listed(client, state, cfg, tid)
        hot_videos, hot_uploaders = _hot_lists(client, state, cfg)
        tqdm.write(f"{cfg.section} (tid {tid}): {len(todo)} videos listed, {len(state.videos)} done before")
        _fetch_all(client, state, cfg, out, todo, on_video)
    return _write(out, _table(state, cfg.section, hot_videos, hot_uploaders))
