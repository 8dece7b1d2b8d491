"""The only module that knows the API's HTTP: OAuth2 tokens, headers, retries and paging.

Retries connection errors, timeouts, malformed responses, 5xx, 429 (honouring
Retry-After) and unreadable bodies with jittered backoff; a body past
api.max_response_size or a redirect off the configured origin fails at once (retrying
would meet the same answer). Anything it cannot get right raises `ApiError`, whose
message never carries a token or secret. Each request's bounds live in `transport`;
payload parsing in `payload`.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import random
import re
import time
from collections.abc import Awaitable, Callable, Container, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urljoin

import aiohttp
import structlog
from yarl import URL

from watcher import logs, paging, payload, transport
from watcher.metrics import Metrics
from watcher.models import Job
from watcher.paging import Listing
from watcher.settings import ApiSettings

if TYPE_CHECKING:
    from watcher.settled import ByStatus

log = structlog.get_logger("watcher.client")
T = TypeVar("T")

AGREEMENT = 0.5  # seconds of slack beyond the Date header's whole-second resolution
SKEW_WARNING = 60.0  # seconds between the API's clock and ours worth a log line
# Seconds between the API's Date and our clock past which the Date is not believed: the
# API's clock is followed through the steps of a host's clock (NTP, a resumed VM), but
# a Date a year away would fire every stuck and missed timer, and one in year 9999
# leaves no room for arithmetic.
MAX_API_SKEW = 86400.0
MAX_RETRY_AFTER = 60.0  # seconds; a longer ask fails this cycle, the next one tries again
TOKEN_MARGIN = 0.1  # renew when this share of the token's lifetime is left
# What a bearer token may hold to be sent in a header as it came: visible ASCII. Line
# breaks would be a header injection (aiohttp raises on them); non-ASCII has no encoding
# that the API is known to read.
SENDABLE_TOKEN = re.compile(r"[\x21-\x7e]+")


class ApiError(Exception):
    """The API could not be read this cycle."""


class _NotFound(Exception):
    pass


class JobGone(Exception):
    """The API answers 404 for a job it listed before."""


class JobRefused(ApiError):
    """A start request answered 4xx: the template cannot be started (not retried)."""


class StartUnknown(ApiError):
    """A start request got no usable answer (timeout, connection lost, a 2xx without a
    jobUri): a job may have started, so the request must not simply be sent again."""


@dataclass(frozen=True, slots=True)
class _Failure:
    """One attempt that went wrong in a way worth retrying."""

    outcome: str  # the metric's label
    problem: str  # for the log and the final ApiError: names the endpoint, no secret
    retry_after: float | None = None


Sleep = Callable[[float], Awaitable[None]]
NOTHING_SETTLED: ByStatus = MappingProxyType({})


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


def _total(body: Any) -> int | None:
    """`meta.paginationTotalResults` of a listing, if it is a whole number."""
    meta = body.get("meta") if isinstance(body, dict) else None
    total = meta.get("paginationTotalResults") if isinstance(meta, dict) else None
    return total if isinstance(total, int) and not isinstance(total, bool) else None


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
        # Credentials go to these origins only: data requests to base_url's, the client
        # secret to token_url's (transport.exchange refuses any other, redirects too).
        self._home = URL(settings.base_url)
        self._token_home = URL(settings.token_url)
        self.requests = 0
        self.server_time: tuple[datetime, float] | None = None  # (API time, monotonic)
        self._skew = 0.0

    @property
    def page_size(self) -> int:
        return self._s.page_size

    @property
    def max_pages(self) -> int:
        return self._s.max_pages

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
                # No session-wide deadline: transport.exchange sets one per request that
                # covers every redirect hop and the whole body.
                timeout=aiohttp.ClientTimeout(total=None),
                connector=aiohttp.TCPConnector(
                    limit=self._s.max_concurrency + 1, ssl=self._s.verify_tls
                ),
                raise_for_status=False,
            )
        return self._session

    def _note_server_time(self, header: str | None) -> None:
        """Keep the API's time (its Date header) against our monotonic clock, so that
        windows and timers follow the API's clock, not a wall clock that NTP may jump;
        unless it is more than MAX_API_SKEW from ours (logged once when it goes there)."""
        server = _http_date(header) if header else None
        if server is None:
            return
        skew = server.timestamp() - time.time()
        if abs(skew - self._skew) > SKEW_WARNING:
            if abs(skew) > MAX_API_SKEW:
                log.warning("api_date_ignored", seconds=round(skew), hint="check the API's clock")
            elif abs(skew) > SKEW_WARNING:
                log.warning("clock_skew", seconds=round(skew, 1), hint="check NTP on this host")
        self._skew = skew
        if abs(skew) <= MAX_API_SKEW:
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
        form = {"grant_type": "client_credentials"}
        for attempt in range(self._s.retries + 1):
            got = await self._attempt(
                "token", "POST", str(self._token_home), self._token_home, headers, form
            )
            result = self._token_from(got)
            if not isinstance(result, _Failure):
                self._count("token", "ok")
                logs.protect(result[0])
                return result
            self._count("token", result.outcome)
            if attempt == self._s.retries:
                raise ApiError(result.problem)
            await self._backoff(attempt, result.retry_after, result.problem)
        raise AssertionError("unreachable")

    def _token_from(self, got: transport.Reply | _Failure) -> tuple[str, float] | _Failure:
        """The token and its lifetime from one answer of the token endpoint, or the
        failure worth retrying; raises ApiError when the credentials are refused."""
        if isinstance(got, _Failure):
            return got
        if got.status in (400, 401, 403):
            self._count("token", "refused")
            raise ApiError(f"token endpoint refused the client credentials (HTTP {got.status})")
        if not 200 <= got.status < 300:
            wait = _retry_after(got.headers.get("Retry-After"))
            return _Failure("error", f"token endpoint answered HTTP {got.status}", wait)
        token = payload.parse_token(got.body)  # None for any body it cannot read
        if token is None:
            return _Failure("error", "token endpoint answered without an access_token")
        if not SENDABLE_TOKEN.fullmatch(token[0]):
            return _Failure(
                "error", "token endpoint answered an access_token that is not printable ASCII"
            )
        return token

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

    async def _attempt(
        self,
        endpoint: str,
        method: str,
        url: str,
        home: URL,
        headers: Mapping[str, str],
        form: Mapping[str, str] | bytes | None = None,
    ) -> transport.Reply | _Failure:
        """One request: its reply, or the failure worth retrying. A refused answer (too
        large, off the origin) raises ApiError: the same request would meet it again."""
        what = "token endpoint" if endpoint == "token" else f"{method} {endpoint}"
        try:
            return await transport.exchange(
                self._http(),
                method,
                url,
                home=home,
                headers=headers,
                data=form,
                limit=self._s.max_response_size,
                timeout=self._s.timeout,
            )
        except transport.Refused as exc:
            self._count(endpoint, exc.outcome)
            raise ApiError(f"{what}: {exc}") from None
        except TimeoutError:
            within = f"api.timeout ({self._s.timeout:g}s)"
            return _Failure("timeout", f"{what}: no complete answer within {within}")
        except aiohttp.ClientResponseError:
            # aiohttp's parser refused the status line or the headers (it bounds their
            # size and count); its message quotes the raw bytes, so it is not passed on.
            return _Failure("bad_response", f"{what}: malformed HTTP response")
        except aiohttp.ClientPayloadError:
            return _Failure("bad_body", f"{what}: body broken off or not decodable")
        except aiohttp.ClientError as exc:
            return _Failure("connection_error", f"{what}: connection error ({type(exc).__name__})")

    async def _get(self, url: str, endpoint: str, decode: Callable[[bytes], Any]) -> Any:
        """GET `url` (already encoded) and return its decoded JSON, retrying what is worth it."""
        renewed = False
        attempt = 0
        while True:
            async with self._gate:
                token = await self._bearer()
                headers = {"Realm": self._s.realm, "Authorization": f"Bearer {token}"}
                got = await self._attempt(endpoint, "GET", url, self._home, headers)
            if isinstance(got, transport.Reply):
                self._note_server_time(got.headers.get("Date"))
                if got.status == 401 and not renewed and self._s.access_token is None:
                    self._count(endpoint, "unauthorized")
                    renewed = True
                    await self._bearer(renew=True)
                    continue
            result = self._judge(endpoint, got, decode)
            if not isinstance(result, _Failure):
                self._count(endpoint, "ok")
                return result
            self._count(endpoint, result.outcome)
            if attempt >= self._s.retries:
                raise ApiError(f"{result.problem} (after {attempt + 1} attempts)")
            await self._backoff(attempt, result.retry_after, result.problem)
            attempt += 1

    def _judge(
        self, endpoint: str, got: transport.Reply | _Failure, decode: Callable[[bytes], Any]
    ) -> Any:
        """The decoded body of a good reply, or the failure worth retrying; raises
        _NotFound for 404 and ApiError for any other answer that retrying cannot mend."""
        if isinstance(got, _Failure):
            return got
        status = got.status
        if 200 <= status < 300:
            try:
                return decode(got.body)
            except (ValueError, RecursionError):  # not JSON, or nested past any reader
                return _Failure("bad_body", f"GET {endpoint}: body is not readable JSON")
        if status == 404:
            self._count(endpoint, "not_found")
            raise _NotFound
        if status == 429 or status >= 500:
            wait = _retry_after(got.headers.get("Retry-After"))
            return _Failure(f"http_{status}", f"GET {endpoint}: HTTP {status}", wait)
        self._count(endpoint, f"http_{status}")
        raise ApiError(f"GET {endpoint}: HTTP {status}")

    async def get_job(self, sref: str) -> Job | None:
        """The job at `sref` now; None if its record is unusable this time (logged).

        Raises JobGone when the API no longer knows the job.
        """
        url = f"{self._s.base_url}/{quote(sref, safe='/')}"
        try:
            body = await self._get(url, "job", payload.decode_body)
        except _NotFound:
            raise JobGone(sref) from None
        try:
            return payload.parse_one(body, sref)
        except payload.PayloadError as exc:
            log.warning("job_record_skipped", sref=sref, where=f"GET {sref}", problems=str(exc))
            return None

    async def start_job(self, template: str) -> str:
        """POST /jobs for `template`, once (and again after a 401 with a new token); the
        new job's sref. A 4xx raises JobRefused; 429 and 5xx raise ApiError, for the
        caller to try again later (so a request never outlives `start_budget`); an
        answer that never came raises StartUnknown: the job may exist, and only a look
        at the template's jobs can say."""
        url = f"{self._s.base_url}/jobs"
        body = json.dumps({"jobTemplateUri": template}).encode()
        renewed = False
        while True:
            async with self._gate:
                token = await self._bearer()
                headers = {
                    "Realm": self._s.realm,
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/json",
                }
                try:
                    got = await self._attempt("start", "POST", url, self._home, headers, body)
                except ApiError as exc:
                    raise StartUnknown(f"{exc}; a job may have started") from None
            if isinstance(got, _Failure):
                self._count("start", got.outcome)
                raise StartUnknown(f"{got.problem}; a job may have started")
            self._note_server_time(got.headers.get("Date"))
            status = got.status
            if status == 401 and not renewed and self._s.access_token is None:
                self._count("start", "unauthorized")
                renewed = True
                await self._bearer(renew=True)
                continue
            if 200 <= status < 300:
                sref = payload.parse_started(got.body)
                self._count("start", "ok" if sref else "bad_body")
                if sref is None:
                    raise StartUnknown(f"POST jobs: HTTP {status} without a jobUri")
                return sref
            self._count("start", f"http_{status}")
            if status != 429 and status < 500:
                raise JobRefused(f"POST jobs: HTTP {status}: {template} cannot be started")
            raise ApiError(f"POST jobs: HTTP {status}")

    @property
    def start_budget(self) -> float:
        """The longest a `start_job` can take, in seconds: a token and two requests."""
        return 3 * self._s.timeout + 5

    async def jobs_of(self, template: str, start: datetime, end: datetime) -> list[Job]:
        """The jobs of `template` that started in [start, end]: the listing by date with
        `jobTemplate` too, filtered here as well (a server may ignore either filter)."""
        listing = await self.list_jobs(start, end, template=template)
        return [j for j in listing.jobs.values() if j.template == template]

    async def count_jobs(self, start: datetime, end: datetime) -> int | None:
        """How many jobs started in [start, end], as the API counts them: the
        `paginationTotalResults` of its first page (asked as the listing asks it: a
        server may refuse another page size); None if it gives no count."""
        fetch = self._get(self._pages(start, end)(1), "jobs", payload.decode_listing)
        return await self._read_page(fetch, 1, payload.listing_total)

    def _pages(
        self, start: datetime, end: datetime, template: str | None = None
    ) -> Callable[[int], str]:
        """The URL of each page of the window [start, end]: the window is encoded once."""
        window = {
            "fromDate": start.isoformat(timespec="seconds"),
            "toDate": end.isoformat(timespec="seconds"),
        }
        if template is not None:
            window["jobTemplate"] = template
        query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in window.items())
        size = f"{quote(self._s.page_size_param, safe='')}={self._s.page_size}"
        prefix = f"{self._s.base_url}/jobs?{query}&{quote(self._s.page_param, safe='')}="
        return lambda page: f"{prefix}{page}&{size}"

    async def test_runs(self, sref: str, limit: int = 50) -> list[dict[str, object]]:
        """The first `limit` test runs of a job, page by page (`api.page_param`, at most
        `api.max_pages` pages): until a page is empty or short, `paginationTotalResults`
        runs are in, `limit` is reached, or a page repeats the one before (a server that
        ignores the page parameter). ApiError if a page cannot be read."""
        size = min(limit, self._s.page_size)
        base = (
            f"{self._s.base_url}/testRuns?job={quote(sref, safe='')}"
            f"&{quote(self._s.page_size_param, safe='')}={size}"
            f"&{quote(self._s.page_param, safe='')}="
        )
        runs: list[dict[str, object]] = []
        previous: list[dict[str, object]] | None = None
        for page in range(1, self._s.max_pages + 1):
            try:
                body = await self._get(f"{base}{page}", "testRuns", payload.decode_body)
            except _NotFound:
                break  # no such job (or no such page): no runs
            try:
                found = payload.parse_test_runs(body)
            except payload.PayloadError as exc:
                raise ApiError(f"GET testRuns page {page}: {exc}") from None
            if not found or found == previous:
                break
            runs.extend(found)
            total = _total(body)
            if (
                len(runs) >= limit
                or len(found) < size
                or (total is not None and len(runs) >= total)
            ):
                break
            previous = found
        return runs[:limit]

    async def list_jobs(
        self,
        start: datetime,
        end: datetime,
        settled: ByStatus = NOTHING_SETTLED,
        *,
        template: str | None = None,
        sink: paging.Sink | None = None,
        only: Container[str] | None = None,
    ) -> Listing:
        """Every job whose start lies in [start, end] (of one template), across all
        pages, one per sref.

        Records of jobs in `settled` (by the terminal status the store holds) that
        still read that status are counted, not parsed (see `payload.parse_list`), and
        with `only`, so are those of the jobs not in it. A `sink` takes each page's jobs
        that it wants out of the listing's memory.
        """
        found = paging.Found(sink=sink)
        page_url = self._pages(start, end, template)
        ahead = paging.ReadAhead(
            lambda n: self._get(page_url(n), "jobs", payload.decode_listing),
            self._s.max_concurrency,
            self._s.max_pages,
        )
        url, page = page_url(1), 1
        visited: set[str] = set()
        most = self._s.max_pages * self._s.page_size
        try:
            while True:
                if page > self._s.max_pages:
                    raise ApiError(
                        f"the window needs more than api.max_pages ({self._s.max_pages}) pages"
                    )
                visited.add(url)
                fetch = ahead.pop(page) or self._get(url, "jobs", payload.decode_listing)
                read = functools.partial(payload.parse_list, page=page, settled=settled, only=only)
                listed = await self._read_page(fetch, page, read)
                new = found.add(listed)
                # What a listing holds is bounded like its pages: a server that answers
                # more records a page than asked for must not make a cycle hold more.
                if found.records > most:
                    raise ApiError(
                        f"GET jobs: the window holds more than {most} records"
                        " (api.max_pages x api.page_size)"
                    )
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
        return found.listing(page)

    @staticmethod
    async def _read_page(fetch: Awaitable[Any], page: int, read: Callable[[Any], T]) -> T:
        """What `read` takes from a listing's page, its failures as the API's."""
        try:
            body = await fetch
        except _NotFound:
            raise ApiError("GET jobs: HTTP 404") from None
        try:
            return read(body)
        except payload.PayloadError as exc:
            raise ApiError(f"GET jobs page {page}: {exc}") from None
