"""The API client against a hostile server over a real socket: bodies past the size
bound, endless and trickling streams, gzip bombs, huge headers, redirects off the
configured origin, and tokens that cannot be sent. Each fails one poll cleanly."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
import structlog
from aiohttp import web

from tests.conftest import job_record
from tests.hostile import (
    Answer,
    HostileApi,
    answer,
    gzip_bomb,
    hostile_api,
    json_answer,
    peak_memory,
    redirect,
    token_answer,
)
from watcher.client import ApiError, Client
from watcher.metrics import Metrics
from watcher.settings import ApiSettings

BOUND = 64 * 1024  # the max_response_size these tests configure
SLACK = 4 * 1024 * 1024  # what a bounded read may hold beyond the body: buffers, parsing
START = datetime(2026, 3, 29, tzinfo=UTC)
CLIENT_SECRET = "hostile-client-SECRET-9e1"


LISTING = {"results": [job_record(1)], "meta": {"paginationTotalResults": 1}}


def endpoint_of(path: str) -> str:
    """Which of the client's endpoints a request path (query and all) is for."""
    path = path.split("?", 1)[0]
    if path.endswith("/token"):
        return "token"
    return {"jobs": "jobs", "testRuns": "testRuns"}.get(path.rsplit("/", 1)[-1], "job")


def routes(**hostile: Answer) -> Callable[[web.Request], Answer]:
    """A sound API but for the endpoints (token, jobs, job, testRuns) given."""
    sound = {
        "token": token_answer(),
        "jobs": json_answer(LISTING),
        "job": json_answer({"results": job_record(1)}),
        "testRuns": json_answer({"results": [{"sref": "testRuns/1", "onLoad": 1.5}]}),
    }
    return lambda request: (sound | hostile)[endpoint_of(request.path)]


def settings(api: HostileApi, **kw: Any) -> ApiSettings:
    base: dict[str, Any] = {
        "base_url": api.base_url,
        "token_url": api.token_url,
        "realm": "hostile-realm",
        "client_id": "hostile-id",
        "client_secret": CLIENT_SECRET,
        "retries": 2,
        "timeout": 5,
        "max_response_size": BOUND,
    }
    return ApiSettings(**(base | kw))


async def no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
async def other() -> AsyncIterator[HostileApi]:
    """Another origin, answering everything as a sound API would: nothing may reach it."""
    async with hostile_api(routes()) as api:
        yield api


Call = Callable[[Client], Awaitable[object]]
CALLS: dict[str, Call] = {
    "token": lambda c: c._bearer(),
    "jobs": lambda c: c.list_jobs(START, START + timedelta(hours=1)),
    "job": lambda c: c.get_job("jobs/1"),
    "testRuns": lambda c: c.test_runs("jobs/1"),
}
WHAT = {"token": "token endpoint", "jobs": "GET jobs", "job": "GET job", "testRuns": "GET testRuns"}


async def fails(api: HostileApi, endpoint: str, **kw: Any) -> tuple[str, Metrics]:
    """Call `endpoint` once against `api`; the ApiError's message and the metrics."""
    metrics = Metrics()
    async with Client(settings(api, **kw), metrics=metrics, sleep=no_sleep) as client:
        with pytest.raises(ApiError) as caught:
            await CALLS[endpoint](client)
    message = str(caught.value)
    assert CLIENT_SECRET not in message
    assert "hostile-token-value" not in message
    return message, metrics


def counted(metrics: Metrics, endpoint: str, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "watcher_api_requests_total", {"endpoint": endpoint, "outcome": outcome}
    )
    return value or 0.0


# -- size --------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", list(CALLS))
async def test_an_endless_body_fails_at_the_bound_once_without_a_retry(endpoint: str) -> None:
    """A fast stream that never ends: cut as soon as it passes max_response_size, an
    ApiError naming the endpoint and the bound, counted as too_large, not retried."""
    endless = answer(body=b'{"results": [', length=None, endless=b"0," * 32768)
    async with hostile_api(routes(**{endpoint: endless})) as api:
        with peak_memory() as peak:
            message, metrics = await fails(api, endpoint, timeout=2)
    assert WHAT[endpoint] in message
    assert f"api.max_response_size ({BOUND} bytes)" in message
    assert counted(metrics, endpoint, "too_large") == 1
    assert [endpoint_of(p) for p in api.paths()].count(endpoint) == 1
    assert peak[0] < 2 * BOUND + SLACK


async def test_a_declared_length_past_the_bound_is_refused_without_reading() -> None:
    """Content-Length above the bound: refused from the header alone (the body that
    would follow never comes, so reading it would wait for the timeout)."""
    huge = answer(body=b"{", length=10**12, endless=b" ", pause=0.5)
    async with hostile_api(routes(jobs=huge)) as api:
        message, metrics = await fails(api, "jobs", timeout=2)
    assert "declares 1000000000000 bytes" in message
    assert f"api.max_response_size ({BOUND} bytes)" in message
    assert counted(metrics, "jobs", "too_large") == 1


async def test_a_body_just_within_the_bound_is_read() -> None:
    """The bound is on the body, not below it: exactly max_response_size bytes pass."""
    body = b'{"results": [], "meta": {}}'
    padded = body[:-1] + b" " * (BOUND - len(body)) + b"}"
    async with (
        hostile_api(routes(jobs=answer(body=padded, length=None))) as api,
        Client(settings(api), sleep=no_sleep) as client,
    ):
        listing = await client.list_jobs(START, START + timedelta(hours=1))
    assert listing.jobs == {}


async def test_a_gzip_bomb_is_cut_at_the_bound_of_inflated_bytes() -> None:
    """A few kB of gzip that inflate to 64 MB of valid JSON: the bound counts inflated
    bytes, so it fails at the bound, and memory never holds the inflated body."""
    bomb = gzip_bomb(b'{"results": [], "meta": {}', 64 << 20, b"}")
    assert len(bomb) < BOUND
    gzipped = answer(body=bomb, headers=[("Content-Encoding", "gzip")])
    async with hostile_api(routes(jobs=gzipped)) as api:
        with peak_memory() as peak:
            message, metrics = await fails(api, "jobs")
    assert f"api.max_response_size ({BOUND} bytes)" in message
    assert counted(metrics, "jobs", "too_large") == 1
    assert peak[0] < 2 * BOUND + SLACK


# -- time --------------------------------------------------------------------------------


async def test_a_trickle_that_never_ends_is_cut_by_the_timeout() -> None:
    """A byte every 50 ms forever (slowloris): api.timeout ends each attempt, retries
    included, and the error says so."""
    trickle = answer(body=b'{"results": [', length=None, endless=b" ", pause=0.05)
    async with hostile_api(routes(jobs=trickle)) as api:
        message, metrics = await fails(api, "jobs", timeout=0.3, retries=1)
    assert "GET jobs: no complete answer within api.timeout (0.3s)" in message
    assert counted(metrics, "jobs", "timeout") == 2


async def test_the_timeout_covers_every_redirect_hop_together() -> None:
    """Each hop of a same-origin redirect chain answers within api.timeout, the chain
    does not: the timeout is per request, redirects and body included, not per hop."""

    def slow_chain(request: web.Request) -> Answer:
        if endpoint_of(request.path) == "token":
            return token_answer()
        hop = int(request.query.get("hop", "0"))
        return replace(redirect(f"/pa/v1/jobs?hop={hop + 1}", status=302), delay=0.2)

    async with hostile_api(slow_chain) as api:
        message, _ = await fails(api, "jobs", timeout=0.5, retries=0)
    assert "GET jobs: no complete answer within api.timeout (0.5s)" in message
    assert len([p for p in api.paths() if "/jobs" in p]) <= 3


# -- malformed HTTP ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "why"),
    [
        (b"HTTP/1.1 200 OK\r\nX-Huge: " + b"a" * 100_000 + b"\r\n\r\n", "a 100 kB header"),
        (b"HTTP/1.1 200 OK\r\n" + b"X-A: a\r\n" * 1000 + b"\r\n", "1000 headers"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", "a negative length"),
        (b"\x00\xff\xfe not HTTP at all\r\n\r\n", "no status line"),
    ],
)
async def test_a_malformed_response_head_is_retried_and_named(head: bytes, why: str) -> None:
    """What aiohttp's parser refuses (its own bounds on header size and count) is a
    malformed response: retried, then an error that says so, never the raw bytes."""
    async with hostile_api(routes(jobs=Answer(head=head, body=b"{}"))) as api:
        message, metrics = await fails(api, "jobs")
    assert message == "GET jobs: malformed HTTP response (after 3 attempts)", why
    assert counted(metrics, "jobs", "bad_response") == 3


# -- redirects ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_to_another_host_is_refused_before_any_credential_goes_there(
    other: HostileApi, status: int
) -> None:
    """A 3xx from /jobs to another origin is not followed: the other host gets no Realm,
    no token, no request at all; the error names the target without its secrets."""
    away = f"http://user:pw-SECRET@localhost:{other.port}/pa/v1/jobs?sig=q-SECRET#frag"
    async with hostile_api(routes(jobs=redirect(away, status))) as api:
        message, metrics = await fails(api, "jobs")
    assert other.seen == []
    assert f"redirected to http://localhost:{other.port}/pa/v1/jobs" in message
    assert "SECRET" not in message
    assert "not followed" in message
    assert counted(metrics, "jobs", "redirect_refused") == 1
    assert not any(s.headers.get("Host", "").startswith("localhost") for s in api.seen)


async def test_a_redirect_to_the_same_port_on_another_host_name_is_refused() -> None:
    """Origin is scheme, host and port: localhost is not 127.0.0.1, even on one server."""
    hop = {"n": 0}

    def to_localhost(request: web.Request) -> Answer:
        if endpoint_of(request.path) != "jobs":
            return routes()(request)
        hop["n"] += 1
        return redirect(f"http://localhost:{request.url.port}/pa/v1/jobs")

    async with hostile_api(to_localhost) as api:
        message, _ = await fails(api, "jobs")
    assert hop["n"] == 1
    assert f"http://localhost:{api.port}/pa/v1/jobs" in message


async def test_a_redirect_of_the_token_endpoint_to_another_host_is_refused(
    other: HostileApi,
) -> None:
    """The token endpoint redirected away: no client credentials and no foreign token."""
    away = redirect(f"{other.token_url}?x=1", status=307)
    async with hostile_api(routes(token=away)) as api:
        message, metrics = await fails(api, "jobs")
    assert other.seen == []
    assert f"token endpoint: redirected to {other.token_url}," in message
    assert counted(metrics, "token", "redirect_refused") == 1


async def test_a_same_origin_redirect_is_followed_with_the_credentials() -> None:
    """A redirect within the configured origin (a moved path) is followed."""

    def moved(request: web.Request) -> Answer:
        if request.path == "/pa/v1/jobs":
            return redirect(f"/pa/v2/jobs?{request.query_string}", status=308)
        if request.path == "/pa/v2/jobs":
            return json_answer(LISTING)
        return routes()(request)

    async with hostile_api(moved) as api, Client(settings(api), sleep=no_sleep) as client:
        listing = await client.list_jobs(START, START + timedelta(hours=1))
    assert list(listing.jobs) == ["jobs/1"]
    moved_to = [s for s in api.seen if s.path_qs.startswith("/pa/v2/jobs")]
    assert [s.headers["Realm"] for s in moved_to] == ["hostile-realm"]


async def test_a_same_origin_redirect_that_then_leaves_the_origin_is_refused(
    other: HostileApi,
) -> None:
    """The origin is checked again at every hop."""

    def hop_then_away(request: web.Request) -> Answer:
        if request.path == "/pa/v1/jobs":
            return redirect("/pa/v1/elsewhere")
        if request.path == "/pa/v1/elsewhere":
            return redirect(f"{other.base_url}/jobs")
        return routes()(request)

    async with hostile_api(hop_then_away) as api:
        message, _ = await fails(api, "jobs")
    assert other.seen == []
    assert f"redirected to {other.base_url}/jobs" in message


async def test_a_redirect_loop_on_the_origin_stops_after_five_hops() -> None:
    """Same-origin redirects are followed 5 hops at most, then the request fails."""

    def loop(request: web.Request) -> Answer:
        if endpoint_of(request.path) == "token":
            return token_answer()
        return redirect(request.path_qs, status=302)

    async with hostile_api(loop) as api:
        message, metrics = await fails(api, "jobs")
    assert "GET jobs: more than 5 redirects" in message
    assert len([p for p in api.paths() if "/jobs" in p]) == 6
    assert counted(metrics, "jobs", "redirect_refused") == 1


async def test_a_next_link_to_another_host_is_not_requested(other: HostileApi) -> None:
    """A page whose meta points the next page at another host: the listing fails there
    instead of sending the Realm and the token along."""
    page = {
        "results": [job_record(n, "completed") for n in range(3)],
        "meta": {"next": f"{other.base_url}/jobs?page=2"},
    }
    async with hostile_api(routes(jobs=json_answer(page))) as api:
        message, _ = await fails(api, "jobs")
    assert other.seen == []
    assert f"{other.base_url}/jobs is off the configured origin" in message


# -- tokens ------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["tok\r\nX-Injected: 1", "tok en", "tok\u00e9n", "\x00", "tok\n"])
async def test_a_token_that_is_not_printable_ascii_is_refused(token: str) -> None:
    """An access_token with spaces, line breaks (a header injection) or non-ASCII is the
    token endpoint's fault: an ApiError after the retries, never a crash in aiohttp."""
    async with hostile_api(routes(token=token_answer(token))) as api:
        message, _ = await fails(api, "jobs")
    assert message == "token endpoint answered an access_token that is not printable ASCII"
    assert not any("/jobs" in p for p in api.paths())


async def test_a_token_body_nested_past_any_reader_is_an_answer_without_a_token() -> None:
    """What the JSON reader raises on is the token endpoint's fault: retried, then an
    ApiError, never a RecursionError."""
    async with hostile_api(routes(token=answer(body=b"[" * 50_000))) as api:
        message, metrics = await fails(api, "jobs")
    assert message == "token endpoint answered without an access_token"
    assert counted(metrics, "token", "error") == 3


async def test_a_token_lifetime_too_large_for_a_float_is_no_crash() -> None:
    """expires_in of 400 digits: a token (payload may read the lifetime as unknown) or a
    clean ApiError, never an OverflowError."""
    body = b'{"access_token": "t", "expires_in": 1' + b"0" * 400 + b"}"
    async with (
        hostile_api(routes(token=answer(body=body))) as api,
        Client(settings(api), sleep=no_sleep) as client,
    ):
        try:
            outcome = await client._bearer()
        except ApiError as exc:
            outcome = str(exc)
    assert outcome in ("t", "token endpoint answered without an access_token")


# -- listings ----------------------------------------------------------------------------


async def test_pages_with_more_records_than_asked_cannot_grow_a_listing_past_its_bound() -> None:
    """Every page full past page_size, next links forever: the listing stops once it holds
    more than max_pages x page_size records, before reading max_pages pages."""

    def crowded(request: web.Request) -> Answer:
        if endpoint_of(request.path) != "jobs":
            return routes()(request)
        page = int(request.query.get("page", "1"))
        records = [job_record(page * 1000 + n, "completed") for n in range(40)]
        return json_answer({"results": records, "meta": {"next": f"jobs?page={page + 1}"}})

    async with hostile_api(crowded) as api:
        message, _ = await fails(api, "jobs", page_size=10, max_pages=5)
    assert (
        message == "GET jobs: the window holds more than 50 records (api.max_pages x api.page_size)"
    )
    assert len([p for p in api.paths() if "/jobs" in p]) == 2


async def test_a_total_of_400_digits_reads_the_listing() -> None:
    """paginationTotalResults too large for a float: the pages are read until a short one."""

    def boastful(request: web.Request) -> Answer:
        if endpoint_of(request.path) != "jobs":
            return routes()(request)
        page = int(request.query.get("page", "1"))
        records = [job_record(n, "completed") for n in range(10)] if page == 1 else []
        return json_answer({"results": records, "meta": {"paginationTotalResults": 10**400}})

    async with hostile_api(boastful) as api, Client(settings(api, page_size=10)) as client:
        listing = await client.list_jobs(START, START + timedelta(hours=1))
    assert len(listing.jobs) == 10


# -- the API's clock ---------------------------------------------------------------------


def http_date(when: datetime) -> str:
    return format_datetime(when, usegmt=True)


@pytest.mark.parametrize(
    "date",
    ["Fri, 31 Dec 9999 23:59:59 GMT", "in a year", "Mon, 01 Jan 1990 00:00:00 GMT"],
)
async def test_a_date_header_more_than_a_day_away_is_not_followed(date: str) -> None:
    """The API's clock is not believed more than a day from ours: it would fire every
    timer (a year ahead) or leave no room for arithmetic (year 9999)."""
    local = datetime.now(UTC)
    if date == "in a year":
        date = http_date(local + timedelta(days=365))
    dated = answer(body=json.dumps(LISTING).encode(), headers=[("Date", date)])
    async with (
        hostile_api(routes(jobs=dated)) as api,
        Client(settings(api), sleep=no_sleep) as client,
    ):
        with structlog.testing.capture_logs() as logged:
            await client.list_jobs(START, START + timedelta(hours=1))
    assert client.api_now(local) == local
    assert [e["event"] for e in logged if e["log_level"] == "warning"] == ["api_date_ignored"]


async def test_a_date_header_hours_away_is_followed() -> None:
    """Within a day, the API's clock is the one windows and timers follow."""
    local = datetime.now(UTC).replace(microsecond=0)
    ahead = local + timedelta(hours=3)
    dated = answer(body=json.dumps(LISTING).encode(), headers=[("Date", http_date(ahead))])
    async with (
        hostile_api(routes(jobs=dated)) as api,
        Client(settings(api), sleep=no_sleep) as client,
    ):
        await client.list_jobs(START, START + timedelta(hours=1))
    assert client.api_now(local) >= ahead
