"""What a crawl asks for (`CrawlConfig`) and how gently (`Politeness`); light, so `popnb --help` stays fast."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

API_BASE = "https://api.bilibili.com"
# Main sections: slug -> tid (docs/video/video_zone.md of SocialSisterYi/bilibili-API-collect). The paper's is knowledge.
SECTIONS = {
    "douga": 1, "anime": 13, "guochuang": 167, "music": 3, "dance": 129, "game": 4, "knowledge": 36, "tech": 188,
    "sports": 234, "car": 223, "life": 160, "food": 211, "animal": 217, "kichiku": 119, "fashion": 155,
    "information": 202, "ent": 5, "cinephile": 181,
}


@dataclass
class Politeness:
    """How gently to ask, in seconds: delay + U(0, jitter) between any two requests; after a retryable
    failure up to `retries` more tries, waiting backoff * 2**try + U(0, jitter) (or Retry-After, if longer)."""

    delay: float = 1.0
    jitter: float = 0.5
    retries: int = 4
    backoff: float = 5.0
    timeout: float = 10.0


@dataclass
class CrawlConfig:
    """Every parameter of a crawl into the dataset folder `out`."""

    out: str
    section: str = "knowledge"  # a slug of SECTIONS or a tid (any section, e.g. 201 = knowledge/science)
    pages: int = 10  # listing pages, newest videos first
    page_size: int = 50  # videos per listing page (the API's most)
    limit: int | None = None  # at most this many videos
    since: date | None = None  # only videos published on or after this day (China Standard Time)
    api_base: str = API_BASE
    cover_base: str | None = None  # scheme://host replacing the covers' own host (a mirror, a test server)
    cover_width: int = 640  # px: covers fetched scaled down to at most this width; 0 = as uploaded
    hot_pages: int = 5  # pages (50 videos each) of the current popular list
    weekly: int = 8  # most recent issues of the weekly must-watch list
    cookie: str | None = None  # 'NAME=VALUE; ...'; default: a visitor id from /x/frontend/finger/spi
    polite: Politeness = field(default_factory=Politeness)


def section_tid(section: str) -> int:
    """'knowledge' -> 36; '201' -> 201; ValueError naming the known slugs otherwise."""
    if section in SECTIONS:
        return SECTIONS[section]
    if section.isdigit() and int(section) > 0:
        return int(section)
    raise ValueError(f"--section: unknown section {section!r}; known: {', '.join(SECTIONS)}, or a numeric tid")


def check_config(cfg: CrawlConfig) -> None:
    """ValueError naming the option when a value cannot work."""
    section_tid(cfg.section)
    least = {"pages": (cfg.pages, 1), "page_size": (cfg.page_size, 1), "limit": (cfg.limit, 1),
             "cover_width": (cfg.cover_width, 0), "hot_pages": (cfg.hot_pages, 0), "weekly": (cfg.weekly, 0),
             "retries": (cfg.polite.retries, 0), "delay": (cfg.polite.delay, 0), "jitter": (cfg.polite.jitter, 0),
             "backoff": (cfg.polite.backoff, 0), "timeout": (cfg.polite.timeout, 0.001)}
    for name, (value, low) in least.items():
        if value is not None and not value >= low:
            raise ValueError(f"--{name.replace('_', '-')} must be at least {low}, got {value}")
    if cfg.page_size > 50:
        raise ValueError(f"--page-size must be at most 50 (the API's largest page), got {cfg.page_size}")
