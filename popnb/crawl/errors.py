"""The crawl's failure kinds: each is one line for the user, never a traceback."""
from __future__ import annotations


class CrawlError(Exception):
    """A failure that stops the crawl (results so far are kept). `kind` heads the line the user sees,
    `advice` says what to do about it."""

    kind = "crawl failed"
    advice = ""

    def __str__(self) -> str:
        return f"{self.kind}: {self.args[0]}"


def failure(name: str, kind: str, advice: str) -> type[CrawlError]:
    """A CrawlError subclass for one failure kind: its line's head and what to do about it."""
    return type(name, (CrawlError,), {"kind": kind, "advice": advice, "__doc__": f"{kind}: {advice}."})


NoNetwork = failure("NoNetwork", "no network", "check the connection (and --api-base / --cover-base)")
Blocked = failure("Blocked", "blocked by the platform's anti-crawling check",
                  "wait an hour or more, then resume with a larger --delay (or a browser's --cookie)")
RateLimited = failure("RateLimited", "rate limited", "wait a while, then resume with a larger --delay")
ServerError = failure("ServerError", "server error", "the platform is struggling: resume later")
ApiError = failure("ApiError", "API error", "the request was refused: check --section and the options")


class ShapeError(CrawlError):
    """`path`: the JSON field that is missing or of another type (None: the whole response)."""

    kind = "unexpected response shape"
    advice = "the API changed: popnb.crawl.api needs updating"

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.path = path


class Unavailable(Exception):
    """One video (or its cover) cannot be had: the crawl goes on and quarantines it with this reason."""
