"""popnb crawl against a local replay of the Bilibili API (tests/crawl_server.py): never the internet."""
from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from dataclasses import replace
from datetime import date

import pandas as pd
import pytest
from crawl_server import (
    BLOCKED, BLOCKED_IN_BODY, BLOCKED_PAGE, STALL, TOO_FREQUENT, TOO_MANY, TOO_MANY_WAIT_3, Platform, ReplayServer, bvid,
    ok,
)

from popnb.cli import main
from popnb.crawl.config import CrawlConfig, Politeness
from popnb.crawl.crawl import cover_url, crawl
from popnb.data import load_dataset

FAST = Politeness(delay=0, jitter=0, retries=2, backoff=0.5, timeout=5)
LISTED = 22  # 3 pages of 8, each page repeating the last video of the one before
GONE = {3: ("video_id", "video unavailable: no such video (code -404"),
        10: ("video_id", "video unavailable: video invisible (code 62002"),
        6: ("cover", "cover download failed: HTTP 404"),
        8: ("cover", "unreadable image")}


@pytest.fixture
def server():
    with ReplayServer() as s:
        yield s


def config(server: ReplayServer, out, **kw) -> CrawlConfig:
    return CrawlConfig(str(out), **{"pages": 3, "page_size": 8, "api_base": server.url, "cover_base": server.url,
                                    "cover_width": 32, "polite": FAST, **kw})


def cli_args(server: ReplayServer, out, *more) -> list[str]:
    return ["crawl", str(out), "--pages", "3", "--page-size", "8", "--api-base", server.url, "--cover-base",
            server.url, "--cover-width", "32", "--delay", "0", "--jitter", "0", "--backoff", "0", "--retries", "2",
            *more]


def journal(out) -> list[dict]:
    return [json.loads(line) for line in (out / "crawl" / "videos.jsonl").read_text().splitlines()]


def error_lines(err: str) -> list[str]:
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("popnb crawl:")]


def without_stat(i: int):
    """Video i's view answer with `stat` gone: a changed response shape."""
    data = Platform().archive(i)
    del data["stat"]
    return ok(data)


def test_three_pages_make_a_dataset_that_loads_and_trains(server, tmp_path):
    from popnb.train.loop import TrainConfig, train

    server.faults["view:" + bvid(12)] = [without_stat(12)]  # one odd answer: that video is quarantined
    out = tmp_path / "knowledge"
    report = crawl(config(server, out))

    data = load_dataset(out)
    bad = {**GONE, 12: ("stat.view", "unexpected response shape: video BV1Kn4y10012")}
    assert (report.n_read, report.n_kept, report.n_quarantined) == (LISTED, LISTED - len(bad), len(bad))
    assert list(data.videos["video_id"]) == [bvid(i) for i in range(LISTED) if i not in bad]
    assert data.has_covers and data.quarantine.empty
    quarantine = pd.read_csv(out / "quarantine.csv", dtype=str)
    assert {video: (column, reason[: len(bad[int(video[-4:])][1])]) for video, column, reason
            in zip(quarantine["video_id"], quarantine["_field"], quarantine["_reason"])} == {bvid(i): bad[i] for i in bad}

    platform, videos = Platform(), data.videos.set_index("video_id")
    for i in (0, 1, 2, 21):
        row, stat = videos.loc[bvid(i)], platform.archive(i)["stat"]
        assert (row.views, row.likes, row.coins, row.favorites, row.shares, row.danmaku, row.replies) == (
            stat["view"], stat["like"], stat["coin"], stat["favorite"], stat["share"], stat["danmaku"], stat["reply"])
        assert row.followers == platform.followers(1000 + i % 5) and row.duration == 60 + 17 * i
    assert videos["hot_list"].to_dict() == {b: int(b[-4:]) % 5 in (1, 2) for b in videos.index}  # uploaders 1001, 1002
    assert set(videos.index[videos["video_on_hot_list"]]) == {bvid(1), bvid(2)}
    assert (videos["section"] == "knowledge").all()
    assert [server.counts[f"view:{bvid(i)}"] for i in range(LISTED)] == [1] * LISTED
    assert [server.counts[f"stat:{mid}"] for mid in range(1000, 1005)] == [1] * 5  # one per uploader
    assert [server.counts[f"region:{pn}"] for pn in (1, 2, 3)] == [1, 1, 1]

    metrics = train(TrainConfig(str(out), str(tmp_path / "run"), vision="vit_tiny_patch16_224", text="charbert-tiny",
                                image_size=32, epochs=1, max_steps=1, batch_size=4, threads=1))
    assert metrics["final"]["epoch"] == 1 and (tmp_path / "run" / "checkpoint.pt").is_file()


def test_killed_crawl_resumes_without_fetching_a_finished_video_twice(server, tmp_path):
    out = tmp_path / "killed"
    server.hang = f"view:{bvid(5)}"  # the sixth video's request stays open: the crawl is killed waiting for it
    with (tmp_path / "log").open("w") as log:
        crawler = subprocess.Popen([sys.executable, "-m", "popnb", *cli_args(server, out)], stdout=log, stderr=log)
        try:
            assert server.hung.wait(60), (tmp_path / "log").read_text()
        finally:
            crawler.kill()
            crawler.wait()
    server.hang = None
    assert [r["video_id"] for r in journal(out)] == [bvid(i) for i in range(5)]
    with (out / "crawl" / "videos.jsonl").open("a") as f:  # a kill in the middle of writing a line
        f.write('{"video_id": "BV1Kn4y1')

    report = crawl(config(server, out))

    assert report.n_read == LISTED and len(load_dataset(out)) == LISTED - len(GONE)
    assert server.counts[f"view:{bvid(5)}"] == 2  # the one in flight when killed, asked again
    assert [server.counts[f"view:{bvid(i)}"] for i in range(LISTED) if i != 5] == [1] * (LISTED - 1)
    assert [server.counts[f"cover:{bvid(i)}"] for i in range(LISTED) if i not in (3, 10)] == [1] * (LISTED - 2)
    assert [server.counts[f"stat:{mid}"] for mid in range(1000, 1005)] == [1] * 5
    assert [server.counts[f"region:{pn}"] for pn in (1, 2, 3)] == [1, 1, 1]
    assert server.counts["popular:1"] == 1 and server.counts["series/one:3"] == 1  # hot lists: once per crawl


def test_412_429_and_stalls_are_retried_with_exponential_backoff(server, tmp_path):
    server.faults[f"view:{bvid(0)}"] = [BLOCKED, BLOCKED_PAGE]
    server.faults[f"view:{bvid(1)}"] = [TOO_MANY_WAIT_3]
    server.faults[f"view:{bvid(2)}"] = [TOO_FREQUENT, STALL]
    sleeps = []
    cfg = config(server, tmp_path / "out", limit=3, polite=replace(FAST, timeout=0.3))

    report = crawl(cfg, sleep=sleeps.append)

    assert report.n_kept == 3
    assert sleeps == [0.5, 1.0, 3.0, 0.5, 1.0]  # backoff 0.5 s doubling per try; Retry-After when longer
    assert [server.counts[f"view:{bvid(i)}"] for i in range(4)] == [3, 2, 3, 0]


@pytest.mark.parametrize("fault, line", [
    (BLOCKED, "blocked by the platform's anti-crawling check: HTTP 412 (code -412: 请求被拦截) from "),
    (BLOCKED_IN_BODY, "blocked by the platform's anti-crawling check: code -412 (request intercepted: 请求被拦截)"),
    (TOO_MANY, "rate limited: HTTP 429 from "),
])
def test_a_persistent_block_is_one_line_and_keeps_what_was_fetched(server, tmp_path, capsys, fault, line):
    out = tmp_path / "out"
    server.faults[f"view:{bvid(2)}"] = [fault] * 3  # every try (1 + --retries 2)

    assert main(cli_args(server, out, "--limit", "4")) == 1

    [message] = error_lines(capsys.readouterr().err)
    assert message.startswith(f"popnb crawl: {line}") and f"view?bvid={bvid(2)}, 3 tries" in message
    assert message.endswith(f"kept in {out / 'crawl'}: rerun the same command to resume")
    assert [r["video_id"] for r in journal(out)] == [bvid(0), bvid(1)]
    assert main(cli_args(server, out, "--limit", "4")) == 0  # later, the block lifted: it resumes
    assert len(load_dataset(out)) == 3  # video 3 is deleted
    assert [server.counts[f"view:{bvid(i)}"] for i in range(4)] == [1, 1, 4, 1]


def test_no_network_fails_fast_with_one_line(tmp_path, capsys):
    with socket.socket() as s:  # a local port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()

    assert main(["crawl", str(tmp_path / "out"), "--api-base", f"http://127.0.0.1:{port}"]) == 1  # default politeness

    assert time.monotonic() - start < 30
    [message] = error_lines(capsys.readouterr().err)
    assert message.startswith(f"popnb crawl: no network: cannot reach http://127.0.0.1:{port}/x/frontend/finger/spi")


def test_a_changed_response_shape_stops_with_one_line(server, tmp_path, capsys):
    for i in range(3):
        server.faults[f"view:{bvid(i)}"] = [without_stat(i)]

    assert main(cli_args(server, tmp_path / "out")) == 1

    [message] = error_lines(capsys.readouterr().err)
    assert message.startswith("popnb crawl: unexpected response shape: 3 videos in a row, the last: video "
                              f"{bvid(2)} (/x/web-interface/view): no 'stat.view' in the response")
    assert [r["_field"] for r in journal(tmp_path / "out")] == ["stat.view"] * 3
    assert server.counts[f"view:{bvid(3)}"] == 0


def test_since_stops_the_listing_at_older_videos(server, tmp_path):
    report = crawl(config(server, tmp_path / "out", since=date(2024, 7, 10)))  # the first 13 (12 hours) are that day

    assert report.n_read == 13
    assert server.counts["region:2"] == 1 and server.counts["region:3"] == 0
    assert server.counts[f"view:{bvid(12)}"] == 1 and server.counts[f"view:{bvid(13)}"] == 0


def test_a_resume_must_ask_the_same_and_a_finished_crawl_is_not_redone(server, tmp_path):
    out = tmp_path / "out"

    def interrupt(bvid_done: str):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        crawl(config(server, out), on_video=interrupt)
    assert len(journal(out)) == 1
    with pytest.raises(ValueError, match="started with section_tid=36, not 188"):
        crawl(config(server, out, section="tech"))
    crawl(config(server, out, limit=2))
    with pytest.raises(ValueError, match="videos.csv exists: that crawl is finished"):
        crawl(config(server, out, limit=2))
    assert server.counts[f"view:{bvid(0)}"] == 1


def test_cover_urls_are_https_rehosted_and_scaled():
    pic = "http://i0.hdslb.com/bfs/archive/ab12.jpg"
    assert cover_url(pic, None, 640) == "https://i0.hdslb.com/bfs/archive/ab12.jpg@640w.jpg"
    assert cover_url("//i1.hdslb.com/bfs/archive/ab12.png", None, 0) == "https://i1.hdslb.com/bfs/archive/ab12.png"
    assert cover_url(pic, "http://127.0.0.1:8000", 0) == "http://127.0.0.1:8000/bfs/archive/ab12.jpg"
