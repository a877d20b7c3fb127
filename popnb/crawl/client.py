"""One polite HTTP client for the crawl: a gap between requests (with jitter), and retries with exponential
backoff on HTTP 412 / 429 / 5xx, timeouts and the platform's own risk-control and rate-limit codes."""
from __future__ import annotations

import random
import time

import httpx

from popnb.crawl.config import API_BASE, Politeness
from popnb.crawl.errors import Blocked, CrawlError, NoNetwork, RateLimited, ServerError, ShapeError, Unavailable

HEADERS = {  # a browser's: without a Referer the API answers 412
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Referer": "https://www.bilibili.com/",
}
# JSON `code`s that are worth another try later (docs/misc/errcode.md of SocialSisterYi/bilibili-API-collect)
RETRY_CODES = {
    -412: (Blocked, "request intercepted"), -352: (Blocked, "risk control"),
    -799: (RateLimited, "requests too frequent"), -509: (RateLimited, "over the limit"),
    -500: (ServerError, "server error"), -503: (ServerError, "overloaded"), -504: (ServerError, "service timed out"),
}
MAX_WAIT = 600.0  # s: the longest backoff or Retry-After honoured


class _Retry(Exception):
    """Internal: this try failed in a way worth another (`failure` is raised when tries run out)."""

    def __init__(self, failure: CrawlError, after: float | None = None):
        self.failure, self.after = failure, after


def parse_cookie(text: str) -> dict[str, str]:
    """'SESSDATA=x; buvid3=y' -> {'SESSDATA': 'x', 'buvid3': 'y'}."""
    pairs = [item.split("=", 1) for item in text.split(";") if item.strip()]
    if any(len(p) != 2 or not p[0].strip() for p in pairs):
        raise ValueError(f"--cookie: expected NAME=VALUE; NAME=VALUE..., got {text!r}")
    return {name.strip(): value.strip() for name, value in pairs}


def _retry_after(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds (its HTTP-date form is ignored)."""
    value = response.headers.get("retry-after", "")
    return float(value) if value.strip().isdigit() else None


def _describe(response: httpx.Response) -> str:
    """'HTTP 412 (code -412: 请求被拦截)' when the body is the API's JSON, else 'HTTP 412'."""
    try:
        body = response.json()
        return f"HTTP {response.status_code} (code {body['code']}: {body.get('message', '')})"
    except (ValueError, TypeError, KeyError):
        return f"HTTP {response.status_code}"


class Client:
    """GET JSON from the API (`api`) or bytes from anywhere (`download`), politely.

    `sleep`, `clock` and `rng` are injectable so tests run without waiting."""

    def __init__(self, api_base: str = API_BASE, polite: Politeness | None = None, cookies: dict | None = None,
                 sleep=time.sleep, clock=time.monotonic, rng=random.random):
        self.api_base = api_base.rstrip("/")
        self.polite = polite or Politeness()
        self.sleep, self.clock, self.rng = sleep, clock, rng
        self.http = httpx.Client(headers=HEADERS, cookies=cookies, timeout=self.polite.timeout, follow_redirects=True)
        self.reached = False  # has any response come back? before that a refused connection means no network
        self._last = float("-inf")

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.http.close()

    def api(self, path: str, params: dict | None = None) -> dict:
        """The JSON body of api_base + path (its `code` may be any not in RETRY_CODES)."""
        return self._request(self.api_base + path, params, expect_json=True)

    def download(self, url: str) -> bytes:
        """The body of url; Unavailable on HTTP 4xx other than 412 / 429."""
        return self._request(url, None, expect_json=False)

    def _request(self, url: str, params: dict | None, expect_json: bool):
        tries = self.polite.retries + 1
        for attempt in range(tries):
            self._wait_turn()
            try:
                return self._attempt(url, params, expect_json)
            except _Retry as retry:
                if attempt == tries - 1:
                    raise type(retry.failure)(f"{retry.failure.args[0]}, {tries} tries") from None
                wait = self.polite.backoff * 2 ** attempt + self.polite.jitter * self.rng()
                self.sleep(min(MAX_WAIT, max(wait, retry.after or 0.0)))

    def _wait_turn(self) -> None:
        """Sleep until delay + jitter seconds have passed since the last request."""
        wait = self._last + self.polite.delay + self.polite.jitter * self.rng() - self.clock()
        if wait > 0:
            self.sleep(wait)
        self._last = self.clock()

    def _attempt(self, url: str, params: dict | None, expect_json: bool):
        where = str(httpx.URL(url, params=params))
        try:
            response = self.http.get(url, params=params)
        except httpx.TimeoutException:
            raise _Retry(ServerError(f"no answer from {where} within {self.polite.timeout:g} s")) from None
        except httpx.TransportError as err:  # refused, unreachable, name not resolved, connection reset
            failure = NoNetwork(f"cannot reach {where} ({type(err).__name__}: {err or 'no detail'})")
            if not self.reached:  # nothing ever answered: no point in waiting
                raise failure from None
            raise _Retry(failure) from None
        self.reached = True
        status, after = response.status_code, _retry_after(response)
        if status == 412:
            raise _Retry(Blocked(f"{_describe(response)} from {where}"))
        if status == 429:
            raise _Retry(RateLimited(f"{_describe(response)} from {where}"), after)
        if status >= 500:
            raise _Retry(ServerError(f"{_describe(response)} from {where}"), after)
        if status >= 400:
            if expect_json:
                raise ShapeError(f"{_describe(response)} from {where}: the endpoint moved, or --api-base is wrong")
            raise Unavailable(f"HTTP {status}")
        if not expect_json:
            return response.content
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("code"), int):
            kind = response.headers.get("content-type", "no content type")
            raise ShapeError(f"{where}: expected a JSON object with a 'code', got {kind}: {response.text[:80]!r}")
        if body["code"] in RETRY_CODES:
            error, meaning = RETRY_CODES[body["code"]]
            raise _Retry(error(f"code {body['code']} ({meaning}: {body.get('message', '')}) from {where}"), after)
        return body
