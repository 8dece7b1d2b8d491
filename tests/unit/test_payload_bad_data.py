"""Bad data. Property: whatever a page of job records looks like, parsing plus diffing
never crashes, never invents a transition, and names every record it skips. Bodies that
no JSON reader takes whole (invalid UTF-8, nesting past the recursion limit, numbers past
Python's digit limit) are read around the record at fault; over a socket, a poll does so
at the first attempt."""

from __future__ import annotations

import json
import re
import tracemalloc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
import structlog
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Hook, config_document, job_record, serve
from watcher import payload
from watcher.app import Daemon
from watcher.client import Client
from watcher.models import Job, JobState
from watcher.payload import MAX_TEXT, decode_listing, parse_list
from watcher.settings import ApiSettings, Settings
from watcher.simulator.runner import SimulatorHandle
from watcher.simulator.world import World
from watcher.tracker import diff

NOW = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
KNOWN = {f"jobs/{n}": "running" for n in range(6)}

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.text(st.characters(exclude_categories=()), max_size=10),  # lone surrogates too
    st.text(min_size=5000, max_size=6000),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers()),
    st.sampled_from(
        [
            "2026-13-01T00:00:00+00:00",
            "yesterday",
            "0001-01-01T00:00:00+05:00",
            "2026-03-29T01:30:00-23:59",
            "2026-03-29T01:30:00",
            "9999-12-31T23:59:59Z",
        ]
    ),
)
FIELDS = ["sref", "status", "name", "startedAt", "updatedAt", "pageCount", "type", "runType"]


@st.composite
def pages(draw: st.DrawFn) -> list[Any]:
    items: list[Any] = []
    for n in range(6):
        item = job_record(n, draw(st.sampled_from(["running", "failed", "completed", "zombie"])))
        for _ in range(draw(st.integers(0, 2))):
            field = draw(st.sampled_from(FIELDS))
            if draw(st.booleans()):
                item.pop(field, None)
            else:
                item[field] = draw(junk)
        items.append(item)
        if draw(st.integers(0, 5)) == 0:
            items.append(dict(item))  # the same sref twice, as a shifting page shows it
    items += draw(st.lists(junk, max_size=3))  # records that are not even objects
    return items


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pages())
def test_any_page_parses_and_diffs_without_false_transitions(items: list[Any]) -> None:
    """Events only for records whose readable status differs; every skip is logged."""
    previous = {
        sref: JobState(
            sref=sref,
            status=status,
            status_since=NOW - timedelta(hours=1),
            first_seen=NOW - timedelta(hours=1),
        )
        for sref, status in KNOWN.items()
    }
    with structlog.testing.capture_logs() as logged:
        page = parse_list({"results": items, "meta": {}}, 1)
    skipped = [e for e in logged if e["event"] == "job_record_skipped"]
    counted = sum(e["records"] for e in logged if e["event"] == "job_records_skipped_not_listed")
    assert len(skipped) == min(page.skipped, payload.MAX_SKIPPED_LINES)
    assert len(skipped) + counted == page.skipped
    assert all(e["where"].startswith("page 1 item ") for e in skipped)
    result = diff(previous, page.jobs, NOW)
    parsed = {job.sref: job.status for job in page.jobs}
    for event in result.events:
        assert event.job.sref in parsed
        assert event.to_status == parsed[event.job.sref]
        assert event.from_status in ("new", KNOWN.get(event.job.sref))
        assert event.to_status != KNOWN.get(event.job.sref)


def _tolerant(item: object) -> Job | None:
    try:
        return payload._job(item)
    except ValueError:
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pages())
def test_a_page_reads_the_same_decoded_typed_or_plain(items: list[Any]) -> None:
    """The fast path (records decoded from the bytes straight into typed values) reads
    every page, and every record, exactly as the tolerant field-by-field reader does."""
    body = json.dumps({"results": items, "meta": {"paginationTotalResults": 9}}).encode()
    body = body.replace(b"\\u0000", b"\\ufffd")  # as every body is read (a NUL has its test)
    with structlog.testing.capture_logs() as typed_log:
        typed = parse_list(decode_listing(body), 1)
    with structlog.testing.capture_logs() as plain_log:
        plain = parse_list(json.loads(body), 1)
    assert typed == plain
    assert typed_log == plain_log
    read = json.loads(body)["results"]
    assert typed.jobs == [job for item in read if (job := _tolerant(item))]


def test_a_page_of_documented_records_is_decoded_typed() -> None:
    items = [job_record(n, "failed") for n in range(3)]
    items[1]["extra"] = {"unknown": ["fields", "are", "ignored"]}
    decoded = decode_listing(json.dumps({"results": items}).encode())
    assert not isinstance(decoded, dict)
    assert [job.sref for job in parse_list(decoded, 1).jobs] == ["jobs/0", "jobs/1", "jobs/2"]


def test_a_nul_in_a_name_becomes_a_replacement_character() -> None:
    """PostgreSQL's text holds no NUL: a name with one would fail every write."""
    items = [job_record(n, "failed") for n in range(2)]
    items[0]["name"] = "Night\u0000ly"
    body = json.dumps({"results": items}).encode()
    assert parse_list(decode_listing(body), 1).jobs[0].name == "Night\ufffdly"
    assert payload.decode_body(body)["results"][0]["name"] == "Night\ufffdly"


# The fields every record needs besides sref and status, as the bodies below write them.
NEEDED = b'"name": "Job 1", "startedAt": "2026-03-29T00:00:00Z"'


@pytest.mark.parametrize(
    "body",
    [
        b'{"results": [{"sref": "jobs/1", "status": "failed", "score": NaN, ' + NEEDED + b"}]}",
        b'{"results": {"sref": "jobs/1", "status": "failed", ' + NEEDED + b"}}",
        b'{"results": [{"sref": "jobs/1", "status": "failed", "pageCount": "3", ' + NEEDED + b"}]}",
        b'\xef\xbb\xbf{"results": [{"sref": "jobs/1", "status": "failed", ' + NEEDED + b"}]}",
    ],
)
def test_a_page_of_another_shape_is_read_plain(body: bytes) -> None:
    with structlog.testing.capture_logs():
        (job,) = parse_list(decode_listing(body), 1).jobs
    assert job.sref == "jobs/1"


def test_a_body_that_is_not_json_is_a_value_error() -> None:
    with structlog.testing.capture_logs(), pytest.raises(ValueError, match="byte 13"):
        decode_listing(b'{"results": [')


@pytest.mark.parametrize("length", [MAX_TEXT - 1, MAX_TEXT, MAX_TEXT + 1])
def test_a_long_name_is_cut_the_same_on_both_paths(length: int) -> None:
    """Characters, not bytes, count: a name of non-ASCII letters is kept or cut at
    MAX_TEXT whichever way the page was decoded."""
    item = {**job_record(1, "failed"), "name": "é" * length}
    body = json.dumps({"results": [item]}).encode()
    (typed,) = parse_list(decode_listing(body), 1).jobs
    (plain,) = parse_list(json.loads(body), 1).jobs
    assert typed == plain
    assert typed.name == "é" * min(length, MAX_TEXT)


def test_a_key_given_twice_reads_the_same_on_both_paths() -> None:
    """The last of two values wins, as Python's reader has it, whichever path reads it."""
    body = b'{"results": [{"sref": "jobs/1", "status": "running", "status": "failed", '
    body += NEEDED + b"}]}"
    (typed,) = parse_list(decode_listing(body), 1).jobs
    (plain,) = parse_list(json.loads(body), 1).jobs
    assert typed == plain
    assert typed.status == "failed"


def test_the_typed_record_has_every_field_the_tolerant_reader_reads() -> None:
    """An unusual typed record is handed back to the tolerant reader as its fields:
    a field only one of them knows would be lost on the way."""
    assert set(payload.Record.__struct_fields__) == set(payload._FIELDS)


# -- pages no JSON reader takes whole ---------------------------------------------------------

DEEP = 100_000  # levels: past Python's and msgspec's recursion limits


def encoded(item: dict[str, Any]) -> bytes:
    return json.dumps(item).encode()


def spoilt(n: int, field: str, raw: bytes) -> bytes:
    """Record n with `field` set to `raw`, bytes written as they are."""
    item = job_record(n, "failed")
    item.pop(field, None)
    return encoded(item)[:-1] + b', "' + field.encode() + b'": ' + raw + b"}"


def listing(*items: bytes, meta: bytes = b'{"paginationTotalResults": 3}') -> bytes:
    return b'{"results": [' + b", ".join(items) + b'], "meta": ' + meta + b"}"


def around(bad: bytes) -> bytes:
    """A page of three records whose middle one is `bad`."""
    return listing(encoded(job_record(0, "failed")), bad, encoded(job_record(2, "failed")))


UNREADABLE = {
    "invalid UTF-8": spoilt(1, "name", b'"Job \xff\xfe"'),
    "UTF-8 cut short": spoilt(1, "name", b'"Job \xc3"'),
    "nested 10^5 deep": spoilt(1, "extra", b"[" * DEEP + b"]" * DEEP),
    "a 10^5-digit count": spoilt(1, "pageCount", b"1" + b"0" * DEEP),
    "an invalid escape": spoilt(1, "name", b'"Job \\x"'),
    "a raw control character": spoilt(1, "name", b'"Job \x01"'),
    "a bare word": spoilt(1, "name", b"Job"),
}


@pytest.mark.parametrize("bad", UNREADABLE.values(), ids=UNREADABLE)
def test_a_record_no_reader_takes_is_skipped_and_its_neighbours_read(bad: bytes) -> None:
    """One record that no JSON reader takes is skipped like any malformed record: logged
    with its sref, its place and the byte where it goes wrong; the rest of the page is
    read."""
    body = around(bad)
    with structlog.testing.capture_logs() as logged:
        page = parse_list(decode_listing(body), 4)
    assert ([j.sref for j in page.jobs], page.count, page.skipped) == (["jobs/0", "jobs/2"], 3, 1)
    (entry,) = [e for e in logged if e["event"] == "job_record_skipped"]
    assert (entry["sref"], entry["where"]) == ("jobs/1", "page 4 item 1")
    offset = int(re.search(r"byte (\d+)", entry["problems"])[1])  # type: ignore[index]
    assert body.index(bad) <= offset < body.index(bad) + len(bad)


def test_a_record_with_an_unreadable_unknown_field_is_read() -> None:
    """A number past Python's 4300 digits in a field the API added is ignored like the
    field, even on a page that Python's reader must read."""
    bad = spoilt(1, "extra", b"1" + b"0" * DEEP)
    other = spoilt(2, "pageCount", b'"3"')  # a record only the tolerant reader takes
    page = parse_list(decode_listing(listing(bad, other)), 1)
    assert [(j.sref, j.page_count) for j in page.jobs] == [("jobs/1", 1), ("jobs/2", 3)]


def test_a_lone_surrogate_written_as_utf_8_bytes_is_replaced() -> None:
    """Python's reader lets half of a UTF-16 pair through as three UTF-8 bytes; it reads
    as U+FFFD like the escaped one."""
    body = around(spoilt(1, "name", b'"Job \xed\xa0\x80"'))
    with structlog.testing.capture_logs():
        names = [j.name for j in parse_list(decode_listing(body), 1).jobs]
    assert names == ["Job 0", "Job \ufffd", "Job 2"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pages())
def test_a_page_read_around_a_record_no_reader_takes_reads_the_rest_the_same(
    items: list[Any],
) -> None:
    """Read around a record that no reader takes, every other record reads as it does when
    the whole page is read plain: the same jobs, the same log lines, and one skip more."""
    records = [json.dumps(item).encode() for item in items]
    body = listing(*records, UNREADABLE["invalid UTF-8"], meta=b"{}")
    with patch.object(payload, "MAX_SKIPPED_LINES", len(items) + 1):  # a line for each
        with structlog.testing.capture_logs() as around_log:
            read_around = parse_list(decode_listing(body), 1)
        with structlog.testing.capture_logs() as plain_log:
            # as any body is read: an escaped NUL is U+FFFD
            text = json.dumps({"results": items, "meta": {}}).replace("\\u0000", "\\ufffd")
            plain = parse_list(json.loads(text), 1)
    assert read_around.jobs == plain.jobs
    assert around_log[:-1] == plain_log
    assert around_log[-1]["where"] == f"page 1 item {len(items)}"


@settings(max_examples=200, deadline=None, database=None, derandomize=True)
@given(st.binary(max_size=24).map(lambda b: b.replace(b'"', b"").replace(b"\\", b"")))
def test_whatever_bytes_a_name_holds_its_neighbours_are_read(junk: bytes) -> None:
    """Any bytes between the quotes of one record's name (but quotes and backslashes,
    which would move the record's end): that record is read or skipped, never more."""
    body = around(spoilt(1, "name", b'"' + junk + b'"'))
    with structlog.testing.capture_logs():
        page = parse_list(decode_listing(body), 1)
    assert [j.sref for j in page.jobs] in (["jobs/0", "jobs/2"], ["jobs/0", "jobs/1", "jobs/2"])
    assert page.count == 3


GOOD = encoded(job_record(0, "failed"))
CUT_IN_A_STRING = listing(GOOD)[:18]
CUT_BETWEEN_RECORDS = b'{"results": [' + GOOD + b", "
MISMATCHED = b'{"results": [' + GOOD + b"}"
ONE_TOO_MANY = listing(GOOD) + b"]"
BAD_META = listing(GOOD, meta=b'{"next": "\xff"}')
BROKEN = {
    "cut inside a string": (CUT_IN_A_STRING, CUT_IN_A_STRING.rindex(b'"')),
    "cut between records": (CUT_BETWEEN_RECORDS, len(CUT_BETWEEN_RECORDS)),
    "a bracket that does not match": (MISMATCHED, len(MISMATCHED) - 1),
    "a bracket too many": (ONE_TOO_MANY, len(ONE_TOO_MANY) - 1),
    "invalid UTF-8 around the records": (BAD_META, BAD_META.index(b"\xff")),
    "not JSON": (b"<html>Bad gateway</html>", 0),
}


@pytest.mark.parametrize(("body", "offset"), BROKEN.values(), ids=BROKEN)
def test_a_page_unreadable_around_its_records_is_a_value_error_naming_the_byte(
    body: bytes, offset: int
) -> None:
    """When the page itself cannot be read (not one record in it), the page fails: a
    ValueError, which the client retries, and a log line, each naming the byte."""
    with (
        structlog.testing.capture_logs() as logged,
        pytest.raises(ValueError, match=rf"\bbyte {offset}\b") as failed,
    ):
        decode_listing(body)
    assert [e["problem"] for e in logged if e["event"] == "api_body_unreadable"] == [
        str(failed.value)
    ]


def test_a_meta_of_many_keys_is_skipped_not_built() -> None:
    """Of a page's meta only the keys that are read are decoded: 200k others cost no
    memory (Python's allocations while the page is read stay under a tenth of it)."""
    meta = b"{" + b", ".join(b'"k%d": 0' % n for n in range(200_000)) + b"}"
    body = listing(encoded(job_record(0, "failed")), meta=meta)
    tracemalloc.start()
    try:
        page = parse_list(decode_listing(body), 1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(page.jobs) == 1
    assert peak < len(body) // 10


def test_an_unreadable_single_job_is_a_malformed_record() -> None:
    """`GET /jobs/{id}` whose record no reader takes: a skipped record, logged, not a body
    to retry."""
    body = b'{"results": ' + UNREADABLE["invalid UTF-8"] + b"}"
    with structlog.testing.capture_logs() as logged:
        assert payload.parse_one(payload.decode_body(body), "jobs/1") is None
    assert [(e["event"], e["sref"], e["where"]) for e in logged] == [
        ("job_record_skipped", "jobs/1", "GET jobs/1")
    ]


def test_an_unreadable_test_run_is_left_out() -> None:
    """Test runs around one that no reader takes are kept."""
    body = b'{"results": [{"pageTitle": "a"}, {"pageTitle": "\xff"}, {"pageTitle": "c"}]}'
    runs = payload.parse_test_runs(payload.decode_body(body))
    assert [run["pageTitle"] for run in runs] == ["a", "c"]


# -- over a socket: what a poll makes of them ----------------------------------------------


@asynccontextmanager
async def api_answering(body: bytes) -> AsyncIterator[tuple[Client, list[str]]]:
    """A client of a local API that answers every GET with `body`, and the paths asked."""
    asked: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/pa/v1/{tail:.*}", handle)
    runner, port = await serve(app)
    api = ApiSettings(
        base_url=f"http://127.0.0.1:{port}/pa/v1",
        token_url=f"http://127.0.0.1:{port}/token",
        realm="r",
        access_token="fixed-token-value",
        retries=2,
    )
    try:
        async with Client(api) as client:
            yield client, asked
    finally:
        await runner.cleanup()


async def test_a_poll_reads_the_page_around_a_record_no_reader_takes() -> None:
    """The whole listing is read at the first attempt, less the one record."""
    async with api_answering(around(UNREADABLE["invalid UTF-8"])) as (client, asked):
        with structlog.testing.capture_logs() as logged:
            found = await client.list_jobs(datetime(2026, 3, 29, tzinfo=UTC), datetime.now(UTC))
    assert (sorted(found.jobs), found.skipped, len(asked)) == (["jobs/0", "jobs/2"], 1, 1)
    assert [e["sref"] for e in logged if e["event"] == "job_record_skipped"] == ["jobs/1"]


async def test_a_followed_job_whose_record_no_reader_takes_is_skipped_not_retried() -> None:
    """`GET /jobs/1` answering a record no reader takes: None (a record skipped this
    time), after one request, not an error that fails the poll."""
    body = b'{"results": ' + UNREADABLE["nested 10^5 deep"] + b"}"
    async with api_answering(body) as (client, asked):
        with structlog.testing.capture_logs() as logged:
            assert await client.get_job("jobs/1") is None
    assert asked == ["/pa/v1/jobs/1"]
    assert [(e["event"], e["sref"]) for e in logged if e["log_level"] == "warning"] == [
        ("job_record_skipped", "jobs/1")
    ]


async def test_a_job_named_with_a_lone_surrogate_is_stored_and_alerted(
    sim: SimulatorHandle, world: World, hook: Hook, tmp_path: Path
) -> None:
    """The simulator writes the name as JSON does, `\\ud800` escaped: the poll stores the
    job and alerts on it under a name with U+FFFD, where it once crashed every poll."""
    doc = config_document(sim, tmp_path, {"hook": hook.url}, poll={"alert_on_first_run": True})
    daemon = Daemon(Settings(**doc))
    world.add_job(name="Checkout \ud800", status="failed")
    try:
        assert await daemon.poll_once()
        await daemon.notifier.flush(budget=20)
    finally:
        await daemon.close()
    assert hook.titles() == ["Checkout \ufffd failed"]


def test_a_page_of_malformed_records_logs_a_few_lines_and_counts_the_rest() -> None:
    """The probe's page of bare {sref, status} records: every record skipped, ten named,
    the rest counted in one line, so a hostile page cannot flood the log each cycle."""
    bare = [{"sref": f"jobs/{n}", "status": "failed"} for n in range(5000)]
    body = json.dumps({"results": bare}).encode()
    with structlog.testing.capture_logs() as logged:
        page = parse_list(decode_listing(body), 1)
    assert (page.jobs, page.skipped) == ([], 5000)
    events = [entry["event"] for entry in logged]
    assert events == ["job_record_skipped"] * payload.MAX_SKIPPED_LINES + [
        "job_records_skipped_not_listed"
    ]
    assert logged[-1]["records"] == 5000 - payload.MAX_SKIPPED_LINES
