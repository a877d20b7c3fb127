"""A local stand-in for the Bilibili web API on 127.0.0.1, so the crawl tests never touch the internet.

It replays responses shaped like the real ones (fields, nesting and codes as SocialSisterYi/bilibili-API-collect
documents them: docs/video_ranking/dynamic.md, docs/video/info.md, docs/video_ranking/popular.md, docs/misc/),
written here from that structure; covers are tiny generated JPEGs. It counts requests per endpoint and id, serves
queued faults (anti-crawl 412, 429, -799, stalls, changed shapes) before the normal answer, and can hold one
request open (a crawl killed mid-request).
"""
from __future__ import annotations

import io
import json
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from PIL import Image

T0 = 1_720_584_000  # the newest video's pubdate: 2024-07-10 12:00 China Standard Time
SECTION = 36  # knowledge
OUTSIDER = {"bvid": "BV1Ot4y1Hot0", "mid": 9999}  # a hot video of another section


def bvid(i: int) -> str:
    """The id of the platform's i-th newest video."""
    return f"BV1Kn4y1{i:04d}"


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: dict = field(default_factory=dict)
    delay: float = 0.0  # s before answering (longer than the client's timeout: a stall)


def json_reply(obj, status: int = 200, **kw) -> Reply:
    return Reply(status, json.dumps(obj, ensure_ascii=False).encode(), **kw)


def code_reply(code: int, message: str, status: int = 200, **kw) -> Reply:
    """The API's error body: no data."""
    return json_reply({"code": code, "message": message, "ttl": 1, "data": None}, status, **kw)


def ok(data) -> Reply:
    return json_reply({"code": 0, "message": "0", "ttl": 1, "data": data})


BLOCKED = code_reply(-412, "请求被拦截", status=412)  # the anti-crawling check, as seen in the wild
BLOCKED_PAGE = Reply(412, b"<!DOCTYPE html><html><body>412 Precondition Failed</body></html>", "text/html")
BLOCKED_IN_BODY = code_reply(-412, "请求被拦截")  # the same verdict with HTTP 200
TOO_MANY = Reply(429, b"Too Many Requests", "text/plain")
TOO_MANY_WAIT_3 = Reply(429, b"Too Many Requests", "text/plain", headers={"Retry-After": "3"})
TOO_FREQUENT = code_reply(-799, "请求过于频繁，请稍后再试")
STALL = Reply(200, b"{}", delay=1.0)


class Platform:
    """The replayed site: n videos in section 36, newest first, by 5 uploaders (1000..1004); some deleted,
    hidden, with a cover that is gone or an error page instead of an image."""

    def __init__(self, n: int = 30, deleted=(3,), hidden=(10,), cover_gone=(6,), cover_not_image=(8,)):
        self.n, self.deleted, self.hidden = n, set(deleted), set(hidden)
        self.cover_gone, self.cover_not_image = set(cover_gone), set(cover_not_image)

    @staticmethod
    def followers(mid: int) -> int:
        return 1000 * (mid - 999) ** 3

    def archive(self, i: int) -> dict:
        """Video i as the listing, the view and the hot lists return it."""
        view = 500 + (i * 7919) % 100_000
        like = view // (8 + i % 5)
        mid = 1000 + i % 5
        return {
            "aid": 100_000 + i, "videos": 1, "tid": 201, "tname": "科学科普", "copyright": 1,
            "pic": f"http://i0.hdslb.com/bfs/archive/{bvid(i)}.jpg", "title": f"第{i}期：为什么天空是蓝色的？",
            "pubdate": T0 - 3600 * i, "ctime": T0 - 3600 * i - 60, "desc": "-", "state": 0, "duration": 60 + 17 * i,
            "rights": {"bp": 0, "elec": 0, "download": 0, "movie": 0, "pay": 0, "hd5": 0, "no_reprint": 1,
                       "autoplay": 1, "ugc_pay": 0, "is_cooperation": 0, "ugc_pay_preview": 0, "no_background": 0},
            "owner": {"mid": mid, "name": f"UP主{mid}", "face": "http://i0.hdslb.com/bfs/face/member.jpg"},
            "stat": {"aid": 100_000 + i, "view": view, "danmaku": view // 50, "reply": view // 40,
                     "favorite": like // 2, "coin": like // 3, "share": like // 10, "now_rank": 0, "his_rank": 0,
                     "like": like, "dislike": 0, "vt": 0, "vv": view},
            "dynamic": "", "cid": 500_000 + i, "dimension": {"width": 1920, "height": 1080, "rotate": 0},
            "bvid": bvid(i),
        }

    def region(self, pn: int, ps: int) -> dict:
        """Listing page pn: each page starts with the last video of the one before (a new upload in between
        shifts the list by one)."""
        start = (pn - 1) * (ps - 1)
        return {"page": {"num": pn, "size": ps, "count": self.n},
                "archives": [self.archive(i) for i in range(start, min(start + ps, self.n))]}

    def view(self, bv: str) -> Reply:
        i = int(bv[-4:]) if bv[:-4] == bvid(0)[:-4] else -1
        if i in self.deleted or not 0 <= i < self.n:
            return code_reply(-404, "啥都木有")
        if i in self.hidden:
            return code_reply(62002, "稿件不可见")
        return ok(self.archive(i))

    def cover(self, bv: str) -> Reply:
        i = int(bv[-4:])
        if i in self.cover_gone:
            return Reply(404, b"<html><body>404 Not Found</body></html>", "text/html")
        if i in self.cover_not_image:
            return Reply(200, b"<html><body>upstream error</body></html>", "image/jpeg")
        buffer = io.BytesIO()
        Image.new("RGB", (32, 18), (i * 37 % 256, i * 91 % 256, i * 53 % 256)).save(buffer, "JPEG")
        return Reply(200, buffer.getvalue(), "image/jpeg")

    def hot_entry(self, entry: dict) -> dict:
        return {**self.archive(0), "bvid": entry["bvid"], "owner": {"mid": entry["mid"], "name": "hot", "face": ""}}


class ReplayServer:
    """`with ReplayServer() as server:` serves Platform on server.url until the block ends.

    counts: requests per key ('view:BV..', 'stat:1001', 'cover:BV..', 'region:2', 'popular:1', 'spi', ...).
    faults[key]: replies served (one per request, used up) before the normal one. hang = key: that request
    waits for `release` after setting `hung`. Without a buvid3 cookie every API request gets the 412."""

    def __init__(self, platform: Platform | None = None):
        self.platform = platform or Platform()
        self.counts: Counter = Counter()
        self.faults: dict[str, list[Reply]] = defaultdict(list)
        self.hang: str | None = None
        self.hung, self.release = threading.Event(), threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, address: None  # a client gone mid-reply is expected here
        self.httpd.replay = self
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> ReplayServer:
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, path: str, query: dict, cookie: str) -> tuple[str, Reply]:
        """-> (the request's key, the normal reply)."""
        p = self.platform
        if path.startswith("/bfs/archive/"):
            bv = path.rsplit("/", 1)[1].split(".")[0]
            return f"cover:{bv}", p.cover(bv)
        if path == "/x/frontend/finger/spi":
            return "spi", json_reply({"code": 0, "data": {"b_3": "D9656DA8-0000-infoc", "b_4": "F6E0FD4B-0000=="},
                                      "message": "ok"})
        routes = {
            "/x/web-interface/dynamic/region": lambda: (
                f"region:{query.get('pn', '1')}",
                ok(p.region(int(query.get("pn", 1)), int(query.get("ps", 14)))) if query.get("rid") == str(SECTION)
                else code_reply(-400, "请求错误")),
            "/x/web-interface/view": lambda: (f"view:{query.get('bvid')}", p.view(query.get("bvid", ""))),
            "/x/relation/stat": lambda: (f"stat:{query.get('vmid')}", ok(
                {"mid": int(query["vmid"]), "following": 10, "whisper": 0, "black": 0,
                 "follower": p.followers(int(query["vmid"]))})),
            "/x/web-interface/popular": lambda: (f"popular:{query.get('pn', '1')}", ok(
                {"list": [p.archive(1), p.hot_entry(OUTSIDER)], "no_more": True})),
            "/x/web-interface/popular/series/list": lambda: ("series/list", ok({"list": [
                {"number": n, "subject": f"第{n}期", "status": 2, "name": f"2024第{n}期 07.05 - 07.11"}
                for n in (3, 2, 1)]})),
            "/x/web-interface/popular/series/one": lambda: (f"series/one:{query.get('number')}", ok(
                {"config": {"number": int(query["number"]), "type": "weekly_selected"}, "reminder": "每周五晚18:00更新",
                 "list": [p.archive(2) if query["number"] == "3" else p.hot_entry(OUTSIDER)]})),
        }
        if path not in routes:
            return f"unknown:{path}", Reply(404, b"<html>404</html>", "text/html")
        key, reply = routes[path]()
        return key, reply if "buvid3=" in cookie else BLOCKED


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        replay: ReplayServer = self.server.replay
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        key, reply = replay.answer(url.path, query, self.headers.get("Cookie", ""))
        replay.counts[key] += 1
        if replay.faults[key]:
            reply = replay.faults[key].pop(0)
        if key == replay.hang:
            replay.hung.set()
            replay.release.wait(30)
        if reply.delay:
            time.sleep(reply.delay)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, *args) -> None:  # quiet
        pass
