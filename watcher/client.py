"""The only module that knows the API's HTTP: OAuth2 tokens, headers, retries and paging.

Retries connection errors, timeouts, 5xx, 429 (honouring Retry-After) and unreadable
bodies with jittered backoff; anything it cannot get right raises `ApiError`, whose
message never carries a token or secret. Payload parsing lives in `payload`.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, urljoin

import aiohttp
import structlog
from yarl import URL

from watcher import logs, payload
from watcher.metrics import Metrics
from watcher.models import TERMINAL_STATUSES, Job
from watcher.settings import ApiSettings

log = structlog.get_logger("watcher.client")

AGREEMENT = 0.5  # seconds of slack beyond the Date header's whole-second resolution
SKEW_WARNING = 60.0  # seconds between the API's clock and ours worth a log line
MAX_RETRY_AFTER = 60.0  # seconds; a longer ask fails this cycle, the next one tries again
TOKEN_MARGIN = 0.1  # renew when this share of the token's lifetime is left


class ApiError(Exception):
    """The API could not be read this cycle."""


class _NotFound(Exception):
    pass


class JobGone(Exception):
    """The API answers 404 for a job it listed before."""


@dataclass(frozen=True, slots=True)
class Listing:
    jobs: dict[str, Job]  # by sref
    pages: int
    skipped: int
    unchanged: int = 0  # ended jobs listed again with the same status, not parsed
    ended: dict[str, str] = field(default_factory=dict)  # sref -> status, parsed or not


Sleep = Callable[[float], Awaitable[None]]
NOTHING_SETTLED: Mapping[str, str] = MappingProxyType({})


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@functools.lru_cache(maxsize=64)
def _http_date(header: str) -> datetime | None:
    """A Date header, read once: it changes once a second, pages come faster."""
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo is not None else None


class Client:
    def __init__(
        self,
        settings: ApiSettings,
        *,
        metrics: Metrics | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._s = settings
        self._metrics = metrics
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self._gate = asyncio.Semaphore(settings.max_concurrency)
        self._token_lock = asyncio.Lock()
        self._token: str | None = (
            settings.access_token.get_secret_value() if settings.access_token else None
        )
        self._token_expiry = float("inf") if self._token else 0.0
        self.requests = 0
        self.server_time: tuple[datetime, float] | None = None  # (API time, monotonic)
        self._skew = 0.0

    @property
    def page_size(self) -> int:
        return self._s.page_size

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._s.timeout),
                connector=aiohttp.TCPConnector(
                    limit=self._s.max_concurrency + 1, ssl=self._s.verify_tls
                ),
                raise_for_status=False,
            )
        return self._session

    def _note_server_time(self, header: str | None) -> None:
        """Keep the API's time (its Date header) against our monotonic clock, so that
        windows and timers follow the API's clock, not a wall clock that NTP may jump."""
        server = _http_date(header) if header else None
        if server is None:
            return
        skew = server.timestamp() - time.time()
        if abs(skew) > SKEW_WARNING and abs(skew - self._skew) > SKEW_WARNING:
            log.warning("clock_skew", seconds=round(skew, 1), hint="check NTP on this host")
        self._skew = skew
        self.server_time = (server, time.monotonic())

    def api_now(self, local: datetime) -> datetime:
        """The time by the API's clock: `local` while it agrees with the API's last Date
        header (which has whole seconds only), else that header plus monotonic time since."""
        if self.server_time is None:
            return local
        server, then = self.server_time
        estimate = server + timedelta(seconds=time.monotonic() - then)
        agrees = -AGREEMENT <= (local - estimate).total_seconds() <= 1 + AGREEMENT
        return local if agrees else estimate

    def _count(self, endpoint: str, outcome: str) -> None:
        self.requests += 1
        if self._metrics:
            self._metrics.api_requests.labels(endpoint, outcome).inc()

    # -- authentication ---------------------------------------------------------------

    async def _bearer(self, *, renew: bool = False) -> str:
        if self._s.access_token is not None:
            return self._s.access_token.get_secret_value()
        async with self._token_lock:
            if self._token and not renew and time.monotonic() < self._token_expiry:
                return self._token
            self._token = None
            self._token, lifetime = await self._fetch_token()
            self._token_expiry = time.monotonic() + lifetime * (1 - TOKEN_MARGIN)
            return self._token

    async def _fetch_token(self) -> tuple[str, float]:
        assert self._s.client_id is not None
        assert self._s.client_secret is not None
        pair = f"{self._s.client_id}:{self._s.client_secret.get_secret_value()}"
        headers = {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
        for attempt in range(self._s.retries + 1):
            wait: float | None = None
            try:
                async with self._http().post(
                    self._s.token_url, data={"grant_type": "client_credentials"}, headers=headers
                ) as resp:
                    status, body = resp.status, await resp.read()
                    wait = _retry_after(resp.headers.get("Retry-After"))
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._count("token", "connection_error")
                problem = f"token endpoint unreachable ({type(exc).__name__})"
            else:
                if status in (400, 401, 403):
                    self._count("token", "refused")
                    raise ApiError(f"token endpoint refused the client credentials (HTTP {status})")
                problem = f"token endpoint answered HTTP {status}"
                if 200 <= status < 300:
                    token = payload.parse_token(body)
                    if token is not None:
                        self._count("token", "ok")
                        logs.protect(token[0])
                        return token
                    problem = "token endpoint answered without an access_token"
                self._count("token", "error")
            if attempt == self._s.retries:
                raise ApiError(problem)
            await self._backoff(attempt, wait, problem)
        raise AssertionError("unreachable")

    # -- requests ---------------------------------------------------------------------

    async def _backoff(self, attempt: int, retry_after: float | None, problem: str) -> None:
        if retry_after is not None:
            if retry_after > MAX_RETRY_AFTER:
                raise ApiError(f"{problem}; Retry-After {retry_after:.0f}s is too long to wait")
            delay = retry_after
        else:
            delay = min(30.0, 0.5 * 2**attempt) * random.uniform(0.5, 1.0)
        log.info("api_retry", problem=problem, attempt=attempt + 1, delay=round(delay, 2))
        await self._sleep(delay)

    async def _get(
        self, url: str, endpoint: str, decode: Callable[[bytes], Any] = json.loads
    ) -> Any:
        """GET `url` (already encoded) and return its decoded JSON, retrying what is worth it."""
        renewed = False
        attempt = 0
        while True:
            wait: float | None = None
            async with self._gate:
                token = await self._bearer()
                headers = {"Realm": self._s.realm, "Authorization": f"Bearer {token}"}
                try:
                    async with self._http().get(URL(url, encoded=True), headers=headers) as resp:
                        status, body = resp.status, await resp.read()
                        wait = _retry_after(resp.headers.get("Retry-After"))
                        self._note_server_time(resp.headers.get("Date"))
                except (aiohttp.ClientError, TimeoutError) as exc:
                    status, body = 0, b""
                    outcome = "timeout" if isinstance(exc, TimeoutError) else "connection_error"
                    problem = f"GET {endpoint}: {outcome.replace('_', ' ')}"
            if status == 401 and not renewed and self._s.access_token is None:
                self._count(endpoint, "unauthorized")
                renewed = True
                await self._bearer(renew=True)
                continue
            if 200 <= status < 300:
                try:
                    decoded = decode(body)
                except (ValueError, RecursionError):  # not JSON, or nested past any reader
                    outcome, problem = "bad_body", f"GET {endpoint}: body is not readable JSON"
                else:
                    self._count(endpoint, "ok")
                    return decoded
            elif status == 404:
                self._count(endpoint, "not_found")
                raise _NotFound
            elif status == 429 or status >= 500:
                outcome, problem = f"http_{status}", f"GET {endpoint}: HTTP {status}"
            elif status:
                self._count(endpoint, f"http_{status}")
                raise ApiError(f"GET {endpoint}: HTTP {status}")
            self._count(endpoint, outcome)
            if attempt >= self._s.retries:
                raise ApiError(f"{problem} (after {attempt + 1} attempts)")
            await self._backoff(attempt, wait, problem)
            attempt += 1

    async def get_job(self, sref: str) -> Job | None:
        """The job at `sref` now; None if its record is unusable this time (logged).

        Raises JobGone when the API no longer knows the job.
        """
        url = f"{self._s.base_url}/{quote(sref, safe='/')}"
        try:
            body = await self._get(url, "job")
        except _NotFound:
            raise JobGone(sref) from None
        try:
            return payload.parse_one(body, sref)
        except payload.PayloadError as exc:
            log.warning("job_record_skipped", sref=sref, where=f"GET {sref}", problems=str(exc))
            return None

    def _pages(self, start: datetime, end: datetime) -> Callable[[int], str]:
        """The URL of each page of the window [start, end]: the window is encoded once."""
        window = {
            "fromDate": start.isoformat(timespec="seconds"),
            "toDate": end.isoformat(timespec="seconds"),
        }
        query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in window.items())
        size = f"{quote(self._s.page_size_param, safe='')}={self._s.page_size}"
        prefix = f"{self._s.base_url}/jobs?{query}&{quote(self._s.page_param, safe='')}="
        return lambda page: f"{prefix}{page}&{size}"

    async def test_runs(self, sref: str, limit: int = 50) -> list[dict[str, object]]:
        """The first `limit` test runs of a job, for enriching an alert."""
        query = f"job={quote(sref, safe='')}&{quote(self._s.page_size_param)}={limit}"
        try:
            body = await self._get(f"{self._s.base_url}/testRuns?{query}", "testRuns")
        except _NotFound:
            return []
        return payload.parse_test_runs(body)[:limit]

    async def list_jobs(
        self, start: datetime, end: datetime, settled: Mapping[str, str] = NOTHING_SETTLED
    ) -> Listing:
        """Every job whose start lies in [start, end], across all pages, one per sref.

        Records of jobs in `settled` (sref -> the terminal status the store holds) that
        still read that status are counted, not parsed (see `payload.parse_list`).
        """
        found = _Found()
        page_url = self._pages(start, end)
        ahead = _ReadAhead(
            lambda n: self._get(page_url(n), "jobs", payload.decode_listing),
            self._s.max_concurrency,
            self._s.max_pages,
        )
        url, page = page_url(1), 1
        visited: set[str] = set()
        try:
            while True:
                if page > self._s.max_pages:
                    raise ApiError(
                        f"the window needs more than api.max_pages ({self._s.max_pages}) pages"
                    )
                visited.add(url)
                fetch = ahead.pop(page) or self._get(url, "jobs", payload.decode_listing)
                listed = await self._read_page(fetch, page, settled)
                new = found.add(listed)
                if listed.count == 0:
                    break
                if listed.next_url:
                    url = urljoin(self._s.base_url + "/", listed.next_url)
                    if url in visited:
                        break
                    page += 1
                    continue
                if not new:
                    log.warning("api_paging_ignored", page=page, hint="check api.page_param")
                    break
                if found.complete(listed):
                    break
                page += 1
                url = page_url(page)
                if listed.total is not None:
                    ahead.request(page, listed.total, found.widest)
        finally:
            await ahead.cancel()
        return found.listing(page, settled)

    @staticmethod
    async def _read_page(
        fetch: Awaitable[Any], page: int, settled: Mapping[str, str]
    ) -> payload.Page:
        try:
            body = await fetch
        except _NotFound:
            raise ApiError("GET jobs: HTTP 404") from None
        try:
            return payload.parse_list(body, page, settled)
        except payload.PayloadError as exc:
            raise ApiError(f"GET jobs page {page}: {exc}") from None


@dataclass(slots=True)
class _Found:
    """What a listing has found so far, page by page."""

    jobs: dict[str, Job] = field(default_factory=dict)
    unchanged: set[str] = field(default_factory=set)  # settled jobs listed again
    skipped: int = 0
    records: int = 0  # on the pages so far, malformed ones included
    widest: int = 0  # the most records one page had

    @property
    def count(self) -> int:
        return len(self.jobs) + len(self.unchanged)

    def add(self, listed: payload.Page) -> bool:
        """Take a page in; True if it showed a job the listing had not seen yet."""
        before = self.count
        self.skipped += listed.skipped
        self.unchanged.update(listed.unchanged)
        for job in listed.jobs:
            known = self.jobs.get(job.sref)
            if known is None or payload.newer(job, known):
                self.jobs[job.sref] = job
        self.records += listed.count
        self.widest = max(self.widest, listed.count)
        return self.count > before

    def complete(self, listed: payload.Page) -> bool:
        """Whether the listing ends with this page, which had no next link."""
        total = listed.total
        if total is not None:
            return self.count + self.skipped >= total or (
                self.records >= total and listed.count < self.widest
            )
        # Without a total, only a page shorter than the widest so far ends the
        # listing: a server that silently caps the page size makes every page "short".
        return listed.count < self.widest

    def listing(self, pages: int, settled: Mapping[str, str]) -> Listing:
        ended = {sref: settled[sref] for sref in self.unchanged}
        ended.update(
            (j.sref, j.status) for j in self.jobs.values() if j.status in TERMINAL_STATUSES
        )
        self.unchanged.difference_update(self.jobs)  # a shifted page can show a job both ways
        return Listing(
            jobs=self.jobs,
            pages=pages,
            skipped=self.skipped,
            unchanged=len(self.unchanged),
            ended=ended,
        )


class _ReadAhead:
    """Once a page tells the total, the pages after the next one are requested ahead, up
    to max_concurrency at a time; the listing still reads and judges them in order."""

    def __init__(
        self, fetch: Callable[[int], Awaitable[Any]], concurrency: int, max_pages: int
    ) -> None:
        self._fetch = fetch
        self._concurrency = concurrency
        self._max_pages = max_pages
        self._last = 0
        self._tasks: dict[int, asyncio.Future[Any]] = {}

    def pop(self, page: int) -> asyncio.Future[Any] | None:
        return self._tasks.pop(page, None)

    def request(self, page: int, total: int, widest: int) -> None:
        """`page` is the next to read; request those after it within the window."""
        self._last = min(max(self._last, math.ceil(total / widest)), self._max_pages)
        for n in range(page + 1, min(page + self._concurrency, self._last + 1)):
            if n not in self._tasks:
                self._tasks[n] = asyncio.ensure_future(self._fetch(n))

    async def cancel(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
