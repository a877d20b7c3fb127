"""CLI: `popnb crawl` (a Bilibili section -> a dataset folder, resumable)."""
from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from popnb.crawl.config import SECTIONS, CrawlConfig, Politeness

DEFAULT, POLITE = CrawlConfig(out=""), Politeness()


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def _crawl(args: argparse.Namespace) -> int:
    from popnb.crawl.crawl import crawl
    from popnb.crawl.errors import CrawlError

    polite = Politeness(args.delay, args.jitter, args.retries, args.backoff, args.timeout)
    cfg = CrawlConfig(args.out, args.section, args.pages, args.page_size, args.limit, args.since, args.api_base,
                      args.cover_base, args.cover_width, args.hot_pages, args.weekly, args.cookie, polite)
    state = Path(args.out) / "crawl"
    try:
        report = crawl(cfg)
    except CrawlError as err:
        print(f"popnb crawl: {err}; {err.advice}; what was fetched is kept in {state}: "
              "rerun the same command to resume", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"popnb crawl: interrupted; what was fetched is kept in {state}: rerun the same command to resume",
              file=sys.stderr)
        return 130
    print(report.summary())
    print(f"dataset: {Path(args.out)}/videos.csv ({report.n_kept} videos)")
    print(f"quarantine: {Path(args.out)}/quarantine.csv ({report.n_quarantined} rows)")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "crawl", help="collect a dataset folder from a Bilibili section (resumable)",
        description="List a Bilibili section's newest videos; fetch each one's stats, uploader followers and cover; "
                    "mark hot-list membership; write OUT/ (videos.csv, covers/, quarantine.csv). Killed or "
                    "failed, it keeps what it fetched in OUT/crawl/: the same command resumes.")
    p.add_argument("out", help="new dataset folder (or the folder of a crawl to resume)")
    p.add_argument("--section", default=DEFAULT.section, help=f"{', '.join(SECTIONS)}, or a numeric tid")
    p.add_argument("--pages", type=int, default=DEFAULT.pages, help="listing pages, newest first")
    p.add_argument("--page-size", type=int, default=DEFAULT.page_size, help="videos per listing page (at most 50)")
    p.add_argument("--limit", type=int, help="at most this many videos")
    p.add_argument("--since", type=_day, metavar="YYYY-MM-DD", help="only videos published on or after this day")
    p.add_argument("--api-base", default=DEFAULT.api_base, metavar="URL", help="the API's scheme://host")
    p.add_argument("--cover-base", metavar="URL", help="scheme://host replacing the covers' host (default: theirs)")
    p.add_argument("--cover-width", type=int, default=DEFAULT.cover_width, metavar="PX",
                   help="fetch covers scaled to at most this width; 0: as uploaded")
    p.add_argument("--hot-pages", type=int, default=DEFAULT.hot_pages, help="pages of the popular list to read")
    p.add_argument("--weekly", type=int, default=DEFAULT.weekly, help="recent weekly must-watch issues to read")
    p.add_argument("--cookie", metavar="'NAME=VALUE; ...'", help="cookies to send (default: a visitor id)")
    p.add_argument("--delay", type=float, default=POLITE.delay, metavar="S", help="seconds between requests")
    p.add_argument("--jitter", type=float, default=POLITE.jitter, metavar="S", help="up to this many more, at random")
    p.add_argument("--retries", type=int, default=POLITE.retries, help="more tries after a 412/429/5xx/timeout")
    p.add_argument("--backoff", type=float, default=POLITE.backoff, metavar="S",
                   help="first wait before a retry, doubled each time")
    p.add_argument("--timeout", type=float, default=POLITE.timeout, metavar="S", help="per request")
    p.set_defaults(func=_crawl)
