"""Property: whatever a page of job records looks like, parsing plus diffing never
crashes, never invents a transition, and names every record it skips."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watcher import payload
from watcher.models import Job, JobState
from watcher.payload import MAX_TEXT, decode_listing, parse_list
from watcher.tracker import diff

NOW = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
KNOWN = {f"jobs/{n}": "running" for n in range(6)}

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=30),
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


def record(n: int, status: str) -> dict[str, Any]:
    return {
        "sref": f"jobs/{n}",
        "name": f"Job {n}",
        "status": status,
        "type": "Single",
        "startedAt": "2026-03-29T00:00:00+00:00",
        "updatedAt": "2026-03-29T01:00:00+00:00",
        "pageCount": 1,
        "runType": "manual",
        "jobTemplateUri": "jobTemplates/1",
    }


@st.composite
def pages(draw: st.DrawFn) -> list[Any]:
    items: list[Any] = []
    for n in range(6):
        item = record(n, draw(st.sampled_from(["running", "failed", "completed", "zombie"])))
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
    assert len(skipped) == page.skipped
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
    with structlog.testing.capture_logs() as typed_log:
        typed = parse_list(decode_listing(body), 1)
    with structlog.testing.capture_logs() as plain_log:
        plain = parse_list(json.loads(body), 1)
    assert typed == plain
    assert typed_log == plain_log
    assert typed.jobs == [job for item in items if (job := _tolerant(item))]


def test_a_page_of_documented_records_is_decoded_typed() -> None:
    items = [record(n, "failed") for n in range(3)]
    items[1]["extra"] = {"unknown": ["fields", "are", "ignored"]}
    decoded = decode_listing(json.dumps({"results": items}).encode())
    assert not isinstance(decoded, dict)
    assert [job.sref for job in parse_list(decoded, 1).jobs] == ["jobs/0", "jobs/1", "jobs/2"]


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
    with pytest.raises(json.JSONDecodeError):
        decode_listing(b'{"results": [')


@pytest.mark.parametrize("length", [MAX_TEXT - 1, MAX_TEXT, MAX_TEXT + 1])
def test_a_long_name_is_cut_the_same_on_both_paths(length: int) -> None:
    """Characters, not bytes, count: a name of non-ASCII letters is kept or cut at
    MAX_TEXT whichever way the page was decoded."""
    item = {**record(1, "failed"), "name": "é" * length}
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
