"""The crawl's failure kinds: each is one line for the user, never a traceback."""
from __future__ import annotations


class CrawlError(Exception):
    """A failure that stops the crawl (results so far are kept). `kind` heads the line the user sees,
    `advice` says what to do about it."""

    kind = "crawl failed"
    advice = ""

    def __str__(self) -> str:
        return f"{self.kind}: {self.args[0]}"


class NoNetwork(CrawlError):
    kind = "no network"
    advice = "check the connection (and --api-base / --cover-base)"


class Blocked(CrawlError):
    kind = "blocked by the platform's anti-crawling check"
    advice = "wait an hour or more, then resume with a larger --delay (or a browser's --cookie)"


class RateLimited(CrawlError):
    kind = "rate limited"
    advice = "wait a while, then resume with a larger --delay"


class ServerError(CrawlError):
    kind = "server error"
    advice = "the platform is struggling: resume later"


class ShapeError(CrawlError):
    """`path`: the JSON field that is missing or of another type (None: the whole response)."""

    kind = "unexpected response shape"
    advice = "the API changed: popnb.crawl.api needs updating"

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.path = path


class ApiError(CrawlError):
    kind = "API error"
    advice = "the request was refused: check --section and the options"


class Unavailable(Exception):
    """One video (or its cover) cannot be had: the crawl goes on and quarantines it with this reason."""
