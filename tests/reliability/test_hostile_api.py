"""A hostile API, fuzzed at the byte level: hypothesis makes the answers (truncated, huge
numbers, deep nesting, other encodings, endless or trickling streams, redirects, wrong
content types and lengths, gzip bombs, random bytes), a real aiohttp server on
127.0.0.1 serves them, and the client (tokens, listings, one job) and a few whole daemon
cycles run against it. Whatever comes: only ApiError (or JobGone) is raised, memory stays
within the configured bound plus slack, and nothing is read that the bytes do not hold.

The run count, the body bound and the memory bound are printed (`-s` shows them).
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Hook
from tests.hostile import Answer, HostileApi, answer, gzip_bomb, hostile_api, peak_memory
from watcher.app import Daemon
from watcher.client import ApiError, Client, JobGone
from watcher.models import Job
from watcher.paging import Listing
from watcher.settings import ApiSettings, Settings

# Most examples take milliseconds; one with a trickle takes up to 6 x TIMEOUT (three
# calls, two attempts each). This many keeps the file near half a minute.
FUZZ_EXAMPLES = 200
BOUND = 64 * 1024  # api.max_response_size in these tests
CONCURRENCY = 2  # api.max_concurrency: pages read ahead at once, each within BOUND
# Python's allocations while one call runs: the bodies in flight (each at most BOUND,
# and once more when its chunks are joined), what their JSON decodes to, and slack for
# aiohttp's buffers and the server that runs in this same process.
MEMORY_BOUND = CONCURRENCY * 4 * BOUND + 2 * 1024 * 1024
TIMEOUT = 0.3  # api.timeout: a trickle costs this per attempt
START = datetime(2026, 3, 29, tzinfo=UTC)
FOREIGN = ("jobs/666", "failed")  # what the other origin serves: never to be read
FIXED_TOKEN = "fuzz-fixed-token"

STATUSES = ["pending", "running", "failed", "completed", "cancelled", "expired", "zombie"]


# -- what the server is made to say -------------------------------------------------------

# Junk text is ASCII: the encodings below garble names, never a status or an sref, so a
# status read back can be compared with the one served.
ascii_text = st.text(st.characters(codec="ascii"), max_size=20)
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.just(10**400),
    st.floats(allow_nan=False, allow_infinity=False),
    ascii_text,
    st.lists(st.integers(), max_size=3),
    st.dictionaries(ascii_text, st.integers(), max_size=2),
)


@st.composite
def job_records(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 20))
    item: dict[str, Any] = {
        "sref": f"jobs/{n}",
        "name": draw(st.sampled_from([f"Job {n}", "Nightly \u00e9", "\u2603", "\ud800 lone"])),
        "status": draw(st.sampled_from(STATUSES)),
        "type": "Single",
        "startedAt": "2026-03-29T00:00:00+00:00",
        "updatedAt": "2026-03-29T01:00:00+00:00",
        "pageCount": draw(st.sampled_from([1, 10**400, -1, 1.5])),
        "runType": "manual",
        "jobTemplateUri": "jobTemplates/1",
    }
    for key in draw(st.lists(st.sampled_from(sorted(item)), max_size=2)):
        item[key] = draw(junk)
    return item


def held(document: object) -> set[tuple[str, str]]:
    """The (sref, status) pairs of the job records a document holds."""
    results = document.get("results") if isinstance(document, dict) else None
    items = results if isinstance(results, list) else [results]
    pairs = [(i.get("sref"), i.get("status")) for i in items if isinstance(i, dict)]
    return {(a, b) for a, b in pairs if isinstance(a, str) and isinstance(b, str)}


@st.composite
def listing_documents(draw: st.DrawFn) -> dict[str, Any]:
    total = draw(st.one_of(st.none(), st.integers(0, 40), st.just(10**400), st.just("7")))
    meta: dict[str, Any] = {} if total is None else {"paginationTotalResults": total}
    if draw(st.booleans()):
        meta["next"] = draw(st.sampled_from(["jobs?page=2", "//localhost/pa/v1/jobs", "::"]))
    return {"results": draw(st.lists(job_records(), max_size=8)), "meta": meta}


@st.composite
def token_documents(draw: st.DrawFn) -> dict[str, Any]:
    token = draw(st.one_of(st.just("fuzz-token-ok"), st.just("tok\r\nX-In: 1"), junk))
    return {"access_token": token, "expires_in": draw(junk)}


def _text(document: object) -> bytes:
    # Non-ASCII as it is, and a lone surrogate as the (invalid) UTF-8 bytes it would be.
    return json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _recode(encoding: str) -> Callable[[bytes], bytes]:
    return lambda b: b.decode("utf-8", "surrogatepass").encode(encoding, "replace")


ENCODINGS: dict[str, Callable[[bytes], bytes]] = {
    "utf-8": lambda b: b,
    "latin-1": _recode("latin-1"),
    "utf-16": _recode("utf-16"),
    "bom": lambda b: b"\xef\xbb\xbf" + b,
    "invalid byte": lambda b: b.replace(b'"name": "', b'"name": "\xff\xfe', 1),
    "deep": lambda b: b'{"results": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
    "NaN": lambda b: b.replace(b'"pageCount": 1', b'"pageCount": NaN', 1),
    "1e999": lambda b: b.replace(b'"pageCount": 1', b'"pageCount": 1e999', 1),
}


@st.composite
def bodies(draw: st.DrawFn, documents: st.SearchStrategy[Any]) -> tuple[bytes, Any]:
    """A document's bytes, re-encoded or cut; and the document, for the oracle."""
    document = draw(documents)
    raw = ENCODINGS[draw(st.sampled_from(sorted(ENCODINGS)))](_text(document))
    if draw(st.integers(0, 4)) == 0:
        raw = raw[: draw(st.integers(0, len(raw)))]
    return raw, document


@st.composite
def framed(draw: st.DrawFn, body: bytes) -> Answer:
    """`body` sent as a 200 (or another status), with a right, wrong or no length, plain,
    chunked or gzipped, under some content type."""
    status = draw(st.sampled_from([200, 200, 200, 201, 204, 304, 401, 404, 429, 500, 599]))
    headers = [("Content-Type", draw(st.sampled_from(["application/json", "text/html", "x/y"])))]
    if draw(st.booleans()):
        headers.append(("Retry-After", draw(st.sampled_from(["0", "-1", "1e400", "soon", ""]))))
    framing = draw(st.sampled_from(["length", "short", "long", "none", "chunked", "gzip"]))
    if framing == "gzip":
        squeeze = zlib.compressobj(6, zlib.DEFLATED, 31)
        zipped = squeeze.compress(body) + squeeze.flush()
        if draw(st.booleans()):
            zipped = zipped[: len(zipped) // 2]  # a broken stream
        return answer(status, zipped, [*headers, ("Content-Encoding", "gzip")])
    if framing == "chunked":
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:7], body[7:]))
        te = [*headers, ("Transfer-Encoding", "chunked")]
        return answer(status, chunks + b"0\r\n\r\n", te, length=None)
    length = {"length": -1, "none": None, "short": len(body) // 2, "long": len(body) + 100}
    return answer(status, body, headers, length=length[framing])


BOMB = gzip_bomb(b'{"results": [], "meta": {}', 8 * BOUND, b"}")
BIG_HEADER = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"


def wild(other: str) -> st.SearchStrategy[Answer]:
    """Answers that are not a framed document: streams, bombs, redirects, noise."""
    return st.sampled_from(
        [
            answer(body=b'{"results": [', length=None, endless=b"0," * 8192),
            answer(body=b"[", length=None, endless=b" ", pause=0.05),
            Answer(head=b"HTTP/1.1 200 OK\r\n", endless=b"X-A: b\r\n", pause=0.01),
            answer(body=BOMB, headers=[("Content-Encoding", "gzip")]),
            answer(body=b"{}", length=10**15),
            answer(301, headers=[("Location", f"{other}/pa/v1/jobs?sig=x")]),
            answer(307, headers=[("Location", f"{other}/authorisation/token")]),
            answer(302, headers=[("Location", "/pa/v1/moved/jobs")]),
            answer(302, headers=[("Location", "http://[::1")]),
            Answer(head=BIG_HEADER),
            Answer(head=b""),
        ]
    ) | st.binary(max_size=300).map(lambda raw: Answer(head=raw))


@dataclass
class Script:
    """What each endpoint answers in one example, and what its documents hold."""

    token: Answer
    pages: list[Answer]
    job: Answer
    fixed_token: bool = False  # api.access_token instead of the token endpoint
    pairs: set[tuple[str, str]] = field(default_factory=set)  # (sref, status) served
    tokens: set[str] = field(default_factory=lambda: {FIXED_TOKEN})

    def __call__(self, request: web.Request) -> Answer:
        last = request.path.rsplit("/", 1)[-1]
        if last == "token":
            return self.token
        if last == "jobs":
            page = request.query.get("page", "1")
            index = int(page) - 1 if page.isdigit() else 0
            empty = answer(body=b'{"results": [], "meta": {}}')
            return self.pages[index] if index < len(self.pages) else empty
        return self.job


@st.composite
def one_answer(
    draw: st.DrawFn, documents: st.SearchStrategy[Any], other: str
) -> tuple[Answer, Any]:
    if draw(st.integers(0, 3)) == 0:
        return draw(wild(other)), None
    raw, document = draw(bodies(documents))
    return draw(framed(raw)), document


@st.composite
def scripts(draw: st.DrawFn, other: str) -> Script:
    token, token_doc = draw(one_answer(token_documents(), other))
    pages = [draw(one_answer(listing_documents(), other)) for _ in range(draw(st.integers(1, 3)))]
    job, job_doc = draw(one_answer(listing_documents().map(_one_job), other))
    script = Script(token, [a for a, _ in pages], job, fixed_token=draw(st.booleans()))
    for _, document in [*pages, (None, job_doc)]:
        script.pairs |= held(document)
    if isinstance(token_doc, dict) and isinstance(token_doc.get("access_token"), str):
        script.tokens.add(token_doc["access_token"])
    return script


def _one_job(document: dict[str, Any]) -> dict[str, Any]:
    results = document["results"]
    return {"results": results[0] if results else None}


# -- the probe ------------------------------------------------------------------------------


def fuzz_settings(api: HostileApi, fixed_token: bool) -> ApiSettings:
    credentials: dict[str, str] = (
        {"access_token": FIXED_TOKEN}
        if fixed_token
        else {"client_id": "fuzz-id", "client_secret": "fuzz-SECRET-client"}
    )
    return ApiSettings(
        base_url=api.base_url,
        token_url=api.token_url,
        realm="fuzz-realm",
        timeout=TIMEOUT,
        retries=1,
        page_size=5,
        max_pages=4,
        max_concurrency=CONCURRENCY,
        max_response_size=BOUND,
        **credentials,
    )


async def no_sleep(_seconds: float) -> None:
    return None


Call = Callable[[Client], Awaitable[object]]
CALLS: list[tuple[Call, tuple[type[Exception], ...]]] = [
    (lambda c: c._bearer(), (ApiError,)),
    (lambda c: c.list_jobs(START, START + timedelta(hours=1)), (ApiError,)),
    (lambda c: c.get_job("jobs/1"), (ApiError, JobGone)),
]


async def probe(script: Script, api: HostileApi, other: HostileApi) -> None:
    """Each call on a fresh client: a token, a listing, one job."""
    api.answer = script
    for call, allowed in CALLS:
        async with Client(fuzz_settings(api, script.fixed_token), sleep=no_sleep) as client:
            error = ""
            with peak_memory() as peak:
                try:
                    got = await call(client)
                except allowed as exc:
                    got, error = None, str(exc)
            assert peak[0] < MEMORY_BOUND, f"{peak[0]} bytes at the peak"
            assert "fuzz-SECRET" not in error
            check_read(got, script)
    assert other.seen == []


def check_read(got: object, script: Script) -> None:
    """What a call returned holds only what the server's documents held."""
    if isinstance(got, str):
        assert got in script.tokens
        assert got.isascii()
        assert got.isprintable()
        assert " " not in got
    elif isinstance(got, Listing):
        for job in got.jobs.values():
            assert (job.sref, job.status) in script.pairs
    elif isinstance(got, Job):
        assert got.sref == "jobs/1"
        assert (got.sref, got.status) in script.pairs
    else:
        assert got is None


def _foreign_api() -> Script:
    """What the other origin says: a sound API with a failed job and its own token."""
    sref, status = FOREIGN
    job = {"sref": sref, "name": "Foreign", "status": status, "startedAt": START.isoformat()}
    return Script(
        token=answer(body=b'{"access_token": "foreign-token", "expires_in": 60}'),
        pages=[answer(body=json.dumps({"results": [job]}).encode())],
        job=answer(body=json.dumps({"results": job}).encode()),
    )


@asynccontextmanager
async def two_origins() -> AsyncIterator[tuple[HostileApi, HostileApi]]:
    async with hostile_api(_foreign_api()) as api, hostile_api(_foreign_api()) as other:
        yield api, other


def test_any_answer_fails_cleanly_within_the_memory_bound_and_invents_nothing() -> None:
    """Only ApiError (or JobGone); memory under the bound; no job, status or token that
    the served documents do not hold; nothing sent to another origin."""
    loop = asyncio.new_event_loop()
    servers = two_origins()
    api, other = loop.run_until_complete(servers.__aenter__())
    runs = 0

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data())
    def each(data: st.DataObject) -> None:
        nonlocal runs
        runs += 1
        loop.run_until_complete(probe(data.draw(scripts(other.origin)), api, other))

    try:
        each()
    finally:
        loop.run_until_complete(servers.__aexit__(None, None, None))
        loop.close()
    print(
        f"hostile API fuzz: {runs} examples; max_response_size {BOUND} bytes;"
        f" memory bound {MEMORY_BOUND} bytes a call"
    )
    assert runs >= FUZZ_EXAMPLES


# -- whole daemon cycles ------------------------------------------------------------------

# A token that lives a millisecond: every cycle asks the token endpoint again.
SOUND_TOKEN = answer(body=b'{"access_token": "daemon-token", "expires_in": 0.001}')
SOUND_EMPTY = answer(body=b'{"results": [], "meta": {"paginationTotalResults": 0}}')


def _listing_of(*jobs: tuple[str, str]) -> Answer:
    records = [
        {"sref": sref, "name": f"Job {sref[5:]}", "status": status, "startedAt": START.isoformat()}
        for sref, status in jobs
    ]
    meta = {"paginationTotalResults": len(records)}
    return answer(body=json.dumps({"results": records, "meta": meta}).encode())


def daemon_cases(other: str) -> dict[str, Script]:
    """Each a hostile API that the issue's probe met, whose bytes hold no job of this API."""
    endless = answer(body=b'{"results": [', length=None, endless=b"0," * 8192)
    cases = {
        "jobs redirected to another host": answer(301, headers=[("Location", f"{other}/x")]),
        "an endless stream": endless,
        "a gzip bomb": answer(body=BOMB, headers=[("Content-Encoding", "gzip")]),
        "a trickle": answer(body=b"[", length=None, endless=b" ", pause=0.05),
    }
    scripts = {name: Script(SOUND_TOKEN, [a], a) for name, a in cases.items()}
    away = answer(307, headers=[("Location", f"{other}/authorisation/token")])
    scripts["the token endpoint redirected away"] = Script(away, [SOUND_EMPTY], SOUND_EMPTY)
    return scripts


# Each case, and the endpoint and outcome that /metrics counts for it.
CASES = {
    "jobs redirected to another host": ("jobs", "redirect_refused"),
    "an endless stream": ("jobs", "too_large"),
    "a gzip bomb": ("jobs", "too_large"),
    "a trickle": ("jobs", "timeout"),
    "the token endpoint redirected away": ("token", "redirect_refused"),
}


FAILURES = {
    "name": "failures",
    "match": {"to": ["failed"]},
    "notify": ["hook"],
    "title": "{{ job.name }} {{ event.to }}",
}


def daemon_settings(
    api: HostileApi, hook: Hook, tmp_path: Path, rules: list[dict[str, Any]] | None = None
) -> Settings:
    return Settings(
        api={
            "base_url": api.base_url,
            "token_url": api.token_url,
            "realm": "daemon-realm",
            "client_id": "daemon-id",
            "client_secret": "daemon-SECRET-client",
            "timeout": TIMEOUT,
            "retries": 0,
            "max_response_size": BOUND,
        },
        state={"path": str(tmp_path / "state.db")},
        channels={"hook": hook.url},
        rules=rules or [FAILURES],
        delivery={"group_wait": "0s"},
        server={"listen": ""},
    )


@pytest.mark.parametrize("case", CASES)
async def test_a_hostile_answer_fails_the_daemon_cycle_with_no_alert_and_the_next_recovers(
    case: str, hook: Hook, tmp_path: Path
) -> None:
    """A failed poll within the memory bound, nothing alerted (the other host's failed
    job included), the outcome counted; the next sound poll alerts what it shows."""
    async with two_origins() as (api, other):
        api.answer = Script(SOUND_TOKEN, [SOUND_EMPTY], SOUND_EMPTY)
        daemon = Daemon(daemon_settings(api, hook, tmp_path))
        try:
            assert await daemon.poll_once()
            api.answer = daemon_cases(other.origin)[case]
            with peak_memory() as peak:
                assert not await daemon.poll_once()
            await daemon.notifier.flush(budget=5)
            assert hook.received == []
            assert other.seen == []
            assert peak[0] < MEMORY_BOUND
            endpoint, outcome = CASES[case]
            labels = {"endpoint": endpoint, "outcome": outcome}
            assert daemon.metrics.registry.get_sample_value("watcher_api_requests_total", labels)
            api.answer = Script(SOUND_TOKEN, [_listing_of(("jobs/2", "failed"))], SOUND_EMPTY)
            assert await daemon.poll_once()
            await daemon.notifier.flush(budget=5)
        finally:
            await daemon.close()
    assert hook.titles() == ["Job 2 failed"]


async def test_a_date_header_a_year_ahead_fires_no_stuck_timer(hook: Hook, tmp_path: Path) -> None:
    """A job that just started, listed under a Date a year ahead: not stuck, no alert."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    record = {"sref": "jobs/3", "name": "Job 3", "status": "running", "startedAt": now}
    body = json.dumps({"results": [record], "meta": {"paginationTotalResults": 1}}).encode()
    ahead = format_datetime(datetime.now(UTC) + timedelta(days=365), usegmt=True)
    dated = answer(body=body, headers=[("Date", ahead)])
    stuck = {"name": "stuck", "match": {"event": "stuck", "after": "2h"}, "notify": ["hook"]}
    async with two_origins() as (api, _):
        api.answer = Script(SOUND_TOKEN, [answer(body=body)], SOUND_EMPTY)
        daemon = Daemon(daemon_settings(api, hook, tmp_path, [stuck]))
        try:
            assert await daemon.poll_once()
            api.answer = Script(SOUND_TOKEN, [dated], SOUND_EMPTY)
            assert await daemon.poll_once()
            await daemon.notifier.flush(budget=5)
        finally:
            await daemon.close()
    assert hook.received == []
