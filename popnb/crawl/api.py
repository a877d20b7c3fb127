"""The Bilibili web endpoints the crawl reads, each response checked for every field it uses.

Shapes and codes as documented by SocialSisterYi/bilibili-API-collect (docs/video_ranking/dynamic.md,
docs/video/info.md, docs/video_ranking/popular.md, docs/misc/buvid3_4.md). None needs WBI signing.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

from popnb.crawl.client import Client
from popnb.crawl.errors import ApiError, ShapeError, Unavailable

# /x/web-interface/view codes for a video that is gone or hidden: it is quarantined, the crawl goes on
GONE_CODES = {-404: "no such video", -403: "access denied", 62002: "video invisible", 62004: "video under review",
              62012: "visible to its uploader only"}
STATS = {"views": "view", "likes": "like", "coins": "coin", "favorites": "favorite", "shares": "share",
         "danmaku": "danmaku", "replies": "reply"}  # our column -> field of data.stat
WHOLE = ("danmaku", "replies", "uploader_mid", "tid")  # integer columns beyond the schema's (kept Int64)
BVID = re.compile(r"[A-Za-z0-9]{1,32}")  # also a safe file name for the cover


def value_at(obj, path: str, kind: type, where: str):
    """obj['a']['b'] for path 'a.b', checked to be of `kind` (an int is never a bool); else ShapeError."""
    value = obj
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise ShapeError(f"{where}: no {path!r} in the response", path)
        value = value[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ShapeError(f"{where}: {path!r} is {type(value).__name__} {value!r:.40}, expected {kind.__name__}", path)
    return value


def _data(body: dict, where: str) -> dict:
    """The `data` object of a successful (code 0) response; ApiError naming the code otherwise."""
    if body["code"] != 0:
        raise ApiError(f"{where}: code {body['code']} ({body.get('message', '')})")
    return value_at(body, "data", dict, where)


def _entries(data: dict, key: str, where: str) -> list[dict]:
    """data[key] (null = an empty page) as [{'bvid', 'mid', 'pubdate'}], each entry checked."""
    items = data.get(key, ...)
    if items is ...:
        raise ShapeError(f"{where}: no {key!r} in the response", key)
    entries = []
    for i, item in enumerate(items or []):
        at = f"{where}, item {i + 1}"
        bvid = value_at(item, "bvid", str, at)
        if not BVID.fullmatch(bvid):
            raise ShapeError(f"{at}: bvid {bvid!r} is not an id", "bvid")
        entries.append({"bvid": bvid, "mid": value_at(item, "owner.mid", int, at),
                        "pubdate": value_at(item, "pubdate", int, at)})
    return entries


def visitor_cookies(client: Client) -> dict[str, str]:
    """A visitor's buvid3 / buvid4 cookies (some endpoints answer -412 without them)."""
    where = "visitor id (/x/frontend/finger/spi)"
    data = _data(client.api("/x/frontend/finger/spi"), where)
    return {"buvid3": value_at(data, "b_3", str, where), "buvid4": value_at(data, "b_4", str, where)}


def section_page(client: Client, tid: int, pn: int, ps: int) -> list[dict]:
    """Page pn (from 1, ps videos, newest first) of section tid's videos: [{'bvid', 'mid', 'pubdate'}]."""
    where = f"section {tid} page {pn} (/x/web-interface/dynamic/region)"
    return _entries(_data(client.api("/x/web-interface/dynamic/region", {"rid": tid, "pn": pn, "ps": ps}), where),
                    "archives", where)


def popular_page(client: Client, pn: int, ps: int = 50) -> tuple[list[dict], bool]:
    """Page pn of the current popular list -> (entries, no more pages)."""
    where = f"popular page {pn} (/x/web-interface/popular)"
    data = _data(client.api("/x/web-interface/popular", {"pn": pn, "ps": ps}), where)
    return _entries(data, "list", where), bool(data.get("no_more", True))


def weekly_numbers(client: Client) -> list[int]:
    """Issue numbers of the weekly must-watch list, newest first."""
    where = "weekly issues (/x/web-interface/popular/series/list)"
    issues = value_at(_data(client.api("/x/web-interface/popular/series/list"), where), "list", list, where)
    return [value_at(issue, "number", int, where) for issue in issues]


def weekly_issue(client: Client, number: int) -> list[dict]:
    """The videos of weekly must-watch issue `number`."""
    where = f"weekly issue {number} (/x/web-interface/popular/series/one)"
    return _entries(_data(client.api("/x/web-interface/popular/series/one", {"number": number}), where), "list", where)


def video(client: Client, bvid: str) -> dict:
    """One video's record in our column names (counts, duration in s, publish time in UTC, uploader);
    Unavailable when it is deleted or hidden."""
    where = f"video {bvid} (/x/web-interface/view)"
    body = client.api("/x/web-interface/view", {"bvid": bvid})
    if body["code"] in GONE_CODES:
        raise Unavailable(f"video unavailable: {GONE_CODES[body['code']]} (code {body['code']}: "
                          f"{body.get('message', '')})")
    data = _data(body, where)
    published = datetime.fromtimestamp(value_at(data, "pubdate", int, where), tz=timezone.utc)
    return {
        "video_id": bvid,
        "title": value_at(data, "title", str, where),
        "cover_url": value_at(data, "pic", str, where),
        **{ours: value_at(data, f"stat.{theirs}", int, where) for ours, theirs in STATS.items()},
        "duration": float(value_at(data, "duration", int, where)),
        "published_at": published.isoformat(timespec="seconds"),
        "uploader": value_at(data, "owner.name", str, where),
        "uploader_mid": value_at(data, "owner.mid", int, where),
        "tid": value_at(data, "tid", int, where),
        "tname": value_at(data, "tname", str, where),
    }


def followers(client: Client, mid: int) -> int | None:
    """The uploader's follower count; None when the platform will not say (e.g. a closed account)."""
    where = f"uploader {mid} (/x/relation/stat)"
    body = client.api("/x/relation/stat", {"vmid": mid})
    return value_at(body, "data.follower", int, where) if body["code"] == 0 else None
