"""Payload: the API's JSON -> Job values, tolerant of all the documentation leaves open."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from watcher.models import Job
from watcher.payload import (
    MAX_TEXT,
    PayloadError,
    decode_listing,
    newer,
    parse_list,
    parse_one,
    parse_token,
)

RECORD: dict[str, Any] = {
    "name": "Homepage",
    "url": "https://example.com/",
    "startedAt": "2017-02-27T13:19:11+00:00",
    "updatedAt": "2017-02-27T13:19:53+00:00",
    "startedBy": "Joe Bloggs",
    "type": "Single",
    "pageCount": 1,
    "status": "completed",
    "sref": "jobs/12345",
    "jobTemplateUri": "jobTemplates/6789",
    "runType": "scheduled",
    "testRunsUri": "testRuns?job=jobs%2F12345",
}


def record(**changes: Any) -> dict[str, Any]:
    return {**RECORD, **changes}


def one(**changes: Any) -> Job:
    (job,) = parse_list({"results": [record(**changes)]}, 1).jobs
    return job


# -- good records ---------------------------------------------------------------------------


def test_parse_list_reads_every_documented_field() -> None:
    """A documented record becomes a Job with every field in place."""
    assert one() == Job(
        sref="jobs/12345",
        name="Homepage",
        status="completed",
        started_at=datetime(2017, 2, 27, 13, 19, 11, tzinfo=UTC),
        updated_at=datetime(2017, 2, 27, 13, 19, 53, tzinfo=UTC),
        url="https://example.com/",
        type="Single",
        run_type="scheduled",
        started_by="Joe Bloggs",
        page_count=1,
        template="jobTemplates/6789",
        test_runs_uri="testRuns?job=jobs%2F12345",
    )


def test_parse_list_counts_the_page() -> None:
    """The page says how many records it had, how many were skipped, and the meta total."""
    body = {
        "results": [record(sref="jobs/1"), record(sref="jobs/2")],
        "meta": {"paginationTotalResults": 7},
    }
    page = parse_list(body, 1)
    assert (len(page.jobs), page.count, page.skipped, page.total) == (2, 2, 0, 7)


@pytest.mark.parametrize("decode", [decode_listing, json.loads], ids=["typed", "plain"])
def test_settled_records_that_read_the_same_are_counted_not_parsed(decode: Any) -> None:
    """A settled job listed with the status it had is counted; one with another status
    is read, and a record without a status is never taken for a settled one."""
    records = [
        record(sref="jobs/1"),
        record(sref="jobs/2", status="failed"),
        record(sref="jobs/3", status=""),
    ]
    body = decode(json.dumps({"results": records}).encode())
    kept = "".join(["jobs/", "1"])  # not the string decoded from the page
    settled = {"completed": {kept: kept, "jobs/2": "jobs/2", "jobs/3": "jobs/3"}}
    page = parse_list(body, 1, settled)
    assert page.unchanged == ["jobs/1"]
    assert page.unchanged[0] is kept
    assert [j.sref for j in page.jobs] == ["jobs/2"]
    assert page.skipped == 1  # jobs/3: no status


@pytest.mark.parametrize("decode", [decode_listing, json.loads], ids=["typed", "plain"])
def test_a_listing_for_some_jobs_counts_the_others_without_parsing_them(decode: Any) -> None:
    """With `only`, a record of another job is counted (as unchanged), unless it is a
    settled job that reads another status now or has no readable sref: those are read."""
    records = [
        record(sref="jobs/1", status="running"),
        record(sref="jobs/2"),
        record(sref="jobs/3"),  # settled as failed: it reads completed now
        record(sref="jobs/4"),  # settled as completed: unchanged, as always
        record(sref=7),
    ]
    body = decode(json.dumps({"results": records}).encode())
    settled = {"failed": {"jobs/3": "jobs/3"}, "completed": {"jobs/4": "jobs/4"}}
    page = parse_list(body, 1, settled, only={"jobs/1"})
    assert [j.sref for j in page.jobs] == ["jobs/1", "jobs/3"]
    assert sorted(page.unchanged) == ["jobs/2", "jobs/4"]
    assert (page.count, page.skipped) == (5, 1)


@pytest.mark.parametrize(
    "total",
    [None, -1, "7", True, 1.5, 2**63, 10**400],
    ids=["null", "negative", "text", "bool", "fraction", "2^63", "10^400"],
)
def test_unusable_total_is_unknown(total: object) -> None:
    """A total that is not a count a server could have made (an integer from 0 to
    2**63 - 1) is treated as absent, as if the page had given none."""
    assert parse_list({"results": [], "meta": {"paginationTotalResults": total}}, 1).total is None


@pytest.mark.parametrize(
    ("meta", "link"),
    [
        ({}, None),
        ({"next": "/jobs?page=2"}, "/jobs?page=2"),
        ({"nextPage": "/jobs?page=3"}, "/jobs?page=3"),
        ({"links": {"next": "/jobs?page=4"}}, "/jobs?page=4"),
        ({"next": ""}, None),
        ({"next": 2}, None),
        ({"next": "https://api.example.com/jobs?page=2"}, "https://api.example.com/jobs?page=2"),
        ({"next": "/jobs?page=2 HTTP/1.1\r\nX-Injected: 1"}, None),
        ({"next": "/jobs?name=a b"}, None),
        ({"next": "/jobs?name=\u00e9"}, None),
        ({"next": "/jobs?page=\ud800"}, None),
    ],
)
def test_next_link_from_meta(meta: dict[str, Any], link: str | None) -> None:
    """A next-page link is taken from meta when one is there, and only if it is written
    as a URL is (printable ASCII, no spaces): it is requested as it came."""
    with capture_logs():
        assert parse_list({"results": [], "meta": meta}, 1).next_url == link


def test_a_next_link_that_is_not_a_url_is_logged() -> None:
    """A next link that cannot be requested is left out, and the log says so."""
    with capture_logs() as logs:
        parse_list({"results": [], "meta": {"next": "/jobs?page=2\r\n"}}, 3)
    assert [(e["event"], e["page"]) for e in logs] == [("api_next_link_ignored", 3)]


@pytest.mark.parametrize("meta", ["hello", [1, 2], 3, None])
def test_meta_that_is_not_an_object_is_no_meta(meta: object) -> None:
    """A meta of another shape gives no total and no next link, and the page is read."""
    page = parse_list({"results": [record()], "meta": meta}, 1)
    assert (len(page.jobs), page.total, page.next_url) == (1, None, None)


def test_missing_meta_is_fine() -> None:
    """A list without meta has no total and no next link."""
    page = parse_list({"results": [record()]}, 1)
    assert (page.total, page.next_url) == (None, None)


def test_unknown_fields_are_ignored() -> None:
    """Fields the API may add are ignored, never an error."""
    assert one(priority=3, region={"eu": True}) == one()


MINIMAL = {"sref": "jobs/9", "status": "pending", "name": "n", "startedAt": "2017-02-27T13:19:11Z"}


def test_missing_optional_fields_have_defaults() -> None:
    """Only sref, status, name and startedAt are needed; the rest default to empty."""
    (job,) = parse_list({"results": [MINIMAL]}, 1).jobs
    assert job == Job(
        sref="jobs/9",
        name="n",
        status="pending",
        started_at=datetime(2017, 2, 27, 13, 19, 11, tzinfo=UTC),
    )


def test_null_fields_read_as_empty() -> None:
    """null in an optional field is the same as the field being absent."""
    job = one(url=None, updatedAt="", pageCount=None, runType=None, startedBy=None)
    assert (job.url, job.updated_at, job.page_count, job.run_type, job.started_by) == (
        "",
        None,
        0,
        "",
        "",
    )


def test_unknown_status_is_kept_as_it_came() -> None:
    """A status the documentation does not list is kept verbatim."""
    assert one(status="Exploded").status == "Exploded"


def test_known_status_is_normalised() -> None:
    """A known status in another case or with spaces is read as the documented value."""
    assert one(status=" FAILED ").status == "failed"


@pytest.mark.parametrize(
    ("sref", "expected"),
    [("jobs/1", "jobs/1"), ("/jobs/1", "jobs/1"), ("jobs/abc-9", "jobs/abc-9")],
)
def test_sref_is_normalised(sref: str, expected: str) -> None:
    """A leading slash is dropped from the sref."""
    assert one(sref=sref).sref == expected


def test_job_id_is_the_last_part_of_the_sref() -> None:
    """Job.id is what follows `jobs/`."""
    assert one(sref="/jobs/12345").id == "12345"


# -- dates ----------------------------------------------------------------------------------


def test_date_with_offset_is_converted_to_utc() -> None:
    """A date with an offset is the same instant in UTC."""
    job = one(startedAt="2017-02-27T14:19:11+01:00", updatedAt="2017-02-27T08:19:53-05:00")
    assert job.started_at == datetime(2017, 2, 27, 13, 19, 11, tzinfo=UTC)
    assert job.updated_at == datetime(2017, 2, 27, 13, 19, 53, tzinfo=UTC)


def test_dates_are_in_utc() -> None:
    """The tzinfo of a parsed date is UTC itself, whatever offset came in."""
    job = one(startedAt="2017-02-27T14:19:11+01:00")
    assert job.started_at is not None
    assert job.started_at.utcoffset() == timedelta(0)
    assert job.started_at.tzinfo is UTC


def test_naive_date_is_read_as_utc() -> None:
    """A date without an offset is taken as UTC (the API's GMT)."""
    assert one(startedAt="2017-02-27T13:19:11").started_at == datetime(
        2017, 2, 27, 13, 19, 11, tzinfo=UTC
    )


def test_zulu_date_is_read() -> None:
    """A `Z` suffix is UTC."""
    assert one(updatedAt="2017-02-27T13:19:53Z").updated_at == datetime(
        2017, 2, 27, 13, 19, 53, tzinfo=UTC
    )


@pytest.mark.parametrize("when", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"])
def test_date_out_of_range_in_utc_skips_only_its_record(when: str) -> None:
    """A date that exists with its offset but not in UTC is a malformed record, not a crash."""
    body = {"results": [record(sref="jobs/1", startedAt=when), record(sref="jobs/2")]}
    page = parse_list(body, 1)
    assert ([j.sref for j in page.jobs], page.skipped) == (["jobs/2"], 1)


# -- malformed records ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        record(sref="jobs/1", status=None),
        record(sref="jobs/1", status=""),
        record(sref="jobs/1", status=3),
        record(sref="jobs/1", startedAt="yesterday"),
        record(sref="jobs/1", updatedAt=1488201593),
        record(sref="jobs/1", pageCount=-1),
        record(sref="jobs/1", pageCount="many"),
        record(sref="jobs/1", name={"first": "x"}),
        record(sref="jobs/1", type=True),
    ],
    ids=[
        "status-null",
        "status-empty",
        "status-number",
        "date-text",
        "date-number",
        "pages-negative",
        "pages-text",
        "name-object",
        "type-bool",
    ],
)
def test_malformed_record_is_skipped_and_neighbours_used(bad: dict[str, Any]) -> None:
    """One bad record is left out; the records around it are read."""
    body = {"results": [record(sref="jobs/0"), bad, record(sref="jobs/2")]}
    page = parse_list(body, 1)
    assert ([j.sref for j in page.jobs], page.count, page.skipped) == (["jobs/0", "jobs/2"], 3, 1)


def test_skipped_record_is_logged_naming_its_sref() -> None:
    """The warning for a skipped record names its sref, its place and the field at fault."""
    body = {"results": [record(sref="jobs/0"), record(sref="jobs/77", startedAt="soon")]}
    with capture_logs() as logs:
        parse_list(body, 3)
    (entry,) = [e for e in logs if e["event"] == "job_record_skipped"]
    assert (entry["log_level"], entry["sref"], entry["where"]) == (
        "warning",
        "jobs/77",
        "page 3 item 1",
    )
    assert "startedAt" in entry["problems"]


@pytest.mark.parametrize(
    "sref",
    [
        None,
        12345,
        "",
        "jobs/",
        "jobTemplates/1",
        "jobs/1/runs",
        "https://x/jobs/1",
        "jobs/1\x00",
        "jobs/\x1b[2J",
        "jobs/\ud800",
    ],
)
def test_record_without_a_job_sref_is_skipped(sref: object) -> None:
    """A record whose sref is not `jobs/<id>` (an id of printable characters) cannot be
    followed and is skipped."""
    body = {"results": [record(sref=sref), record(sref="jobs/2")]}
    assert [j.sref for j in parse_list(body, 1).jobs] == ["jobs/2"]


@pytest.mark.parametrize("item", [None, "jobs/1", 5, ["jobs/1", "failed"]])
def test_record_that_is_not_an_object_is_skipped(item: object) -> None:
    """A list item that is not a JSON object is skipped and named `?` in the log."""
    with capture_logs() as logs:
        page = parse_list({"results": [item, record(sref="jobs/2")]}, 1)
    assert [j.sref for j in page.jobs] == ["jobs/2"]
    assert [e["sref"] for e in logs if e["event"] == "job_record_skipped"] == ["?"]


def without(field: str, **changes: Any) -> dict[str, Any]:
    return {key: value for key, value in record(**changes).items() if key != field}


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (without("name", sref="jobs/1"), "name: missing"),
        (record(sref="jobs/1", name=None), "name: missing"),
        (without("startedAt", sref="jobs/1"), "startedAt: missing"),
        (record(sref="jobs/1", startedAt=None), "startedAt: missing"),
        (record(sref="jobs/1", startedAt=""), "startedAt: missing"),
    ],
    ids=["name-absent", "name-null", "start-absent", "start-null", "start-empty"],
)
def test_record_without_a_name_or_a_start_is_skipped(bad: dict[str, Any], problem: str) -> None:
    """Every job has a name and a start: a record without one is malformed, skipped and
    logged naming the field, whether the page was read plain or typed from its bytes."""
    items = [record(sref="jobs/0"), bad, record(sref="jobs/2")]
    for body in ({"results": items}, decode_listing(json.dumps({"results": items}).encode())):
        with capture_logs() as logs:
            page = parse_list(body, 1)
        assert [j.sref for j in page.jobs] == ["jobs/0", "jobs/2"]
        assert [(e["sref"], e["problems"]) for e in logs] == [("jobs/1", problem)]


def test_a_page_of_bare_srefs_and_statuses_yields_no_job() -> None:
    """A flood of `{"sref", "status"}` records is a flood of malformed records, not of
    jobs with blank names."""
    items = [{"sref": f"jobs/{n}", "status": "failed"} for n in range(1000)]
    with capture_logs():
        page = parse_list(decode_listing(json.dumps({"results": items}).encode()), 1)
    assert (page.jobs, page.count, page.skipped) == ([], 1000, 1000)


TEXT_FIELDS = [
    ("name", "name"),
    ("url", "url"),
    ("startedBy", "started_by"),
    ("type", "type"),
    ("runType", "run_type"),
    ("jobTemplateUri", "template"),
    ("testRunsUri", "test_runs_uri"),
    ("status", "status"),
]


@pytest.mark.parametrize(("field", "attribute"), TEXT_FIELDS)
def test_a_lone_surrogate_in_text_reads_as_a_replacement_character(
    field: str, attribute: str
) -> None:
    """JSON can escape half of a UTF-16 pair (`"\\ud800"`) and Python's reader keeps it,
    but no UTF-8 writer (the state store, the outbox) takes it: it reads as U+FFFD."""
    assert getattr(one(**{field: "a\ud800b"}), attribute) == "a\ufffdb"


def test_huge_strings_are_truncated() -> None:
    """A huge text field is cut to MAX_TEXT characters."""
    job = one(name="x" * (MAX_TEXT * 50), startedBy="y" * (MAX_TEXT + 1))
    assert (len(job.name), len(job.started_by)) == (MAX_TEXT, MAX_TEXT)


def test_numbers_in_text_fields_are_read_as_text() -> None:
    """A name that came as a number is kept as its text."""
    assert one(name=2024).name == "2024"


# -- envelopes ------------------------------------------------------------------------------


def test_results_object_where_a_list_is_expected() -> None:
    """A single object in `results` of a list is read as a one-item list, with a warning."""
    with capture_logs() as logs:
        page = parse_list({"results": record()}, 4)
    assert [j.sref for j in page.jobs] == ["jobs/12345"]
    assert {"event": "api_results_not_a_list", "page": 4, "log_level": "warning"} in logs


@pytest.mark.parametrize("body", [{}, {"meta": {}}, [], None, "results", {"Results": []}], ids=repr)
def test_missing_results_is_a_payload_error(body: object) -> None:
    """A body without `results` fails the page."""
    with pytest.raises(PayloadError, match="no 'results'"):
        parse_list(body, 1)


@pytest.mark.parametrize("results", [None, "jobs", 3, True])
def test_results_of_the_wrong_type_is_a_payload_error(results: object) -> None:
    """`results` that is neither a list nor an object fails the page."""
    with pytest.raises(PayloadError):
        parse_list({"results": results}, 1)


def test_parse_one_reads_the_job() -> None:
    """GET /jobs/{id} answers one object under `results`."""
    job = parse_one({"results": record()}, "jobs/12345")
    assert job is not None
    assert (job.sref, job.status) == ("jobs/12345", "completed")


def test_parse_one_refuses_another_job() -> None:
    """An answer about a different job than the one asked for is not used, and is logged."""
    with capture_logs() as logs:
        job = parse_one({"results": record(sref="jobs/999")}, "jobs/12345")
    assert job is None
    assert {
        "event": "job_sref_mismatch",
        "asked": "jobs/12345",
        "answered": "jobs/999",
        "log_level": "warning",
    } in logs


def test_parse_one_malformed_record_is_none() -> None:
    """A malformed single record is None (logged), not an exception."""
    with capture_logs() as logs:
        assert parse_one({"results": record(status=None)}, "jobs/12345") is None
    assert [e["where"] for e in logs] == ["GET jobs/12345"]


def test_parse_one_without_results_is_a_payload_error() -> None:
    """A single-job body without `results` is a PayloadError."""
    with pytest.raises(PayloadError):
        parse_one({"job": record()}, "jobs/12345")


# -- tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"access_token": "abc", "token_type": "bearer", "expires_in": 3600}', ("abc", 3600.0)),
        (b'{"access_token": "abc", "expires_in": "120"}', ("abc", 120.0)),
        (b'{"access_token": "abc", "expires_in": 0.5}', ("abc", 0.5)),
        (b'{"access_token": "abc"}', ("abc", 300.0)),
        (b'{"access_token": "abc", "expires_in": null}', ("abc", 300.0)),
        (b'{"access_token": "abc", "expires_in": "soon"}', ("abc", 300.0)),
        (b'{"access_token": "abc", "expires_in": [1]}', ("abc", 300.0)),
        (b'{"access_token": "abc", "expires_in": -5}', ("abc", 300.0)),
        (b'{"access_token": "abc", "expires_in": 0}', ("abc", 300.0)),
        (b'{"access_token": "abc", "expires_in": true}', ("abc", 300.0)),
        (b'{"access_token": "abc", "expires_in": NaN}', ("abc", 300.0)),
        (b'{"access_token": "abc", "expires_in": 1' + b"0" * 400 + b"}", ("abc", 300.0)),
    ],
    ids=lambda value: repr(value)[:60],
)
def test_parse_token_reads_token_and_lifetime(body: bytes, expected: tuple[str, float]) -> None:
    """The token and its lifetime; an absent or unusable lifetime is taken as 300 s."""
    assert parse_token(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html>bad gateway</html>",
        b"[]",
        b'"abc"',
        b"{}",
        b'{"access_token": ""}',
        b'{"access_token": 42}',
        b'{"token": "abc"}',
        b"\xff\xfe",
        b'{"access_token": "abc", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
    ids=lambda body: repr(body[:40]),
)
def test_parse_token_without_a_token_is_none(body: bytes) -> None:
    """A body that carries no usable access_token is None, never an exception."""
    assert parse_token(body) is None


# -- newer ----------------------------------------------------------------------------------

T = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


def at(updated: datetime | None) -> Job:
    return Job(sref="jobs/1", name="x", status="running", updated_at=updated)


@pytest.mark.parametrize(
    ("candidate", "known", "expected"),
    [
        (T + timedelta(seconds=1), T, True),
        (T, T + timedelta(seconds=1), False),
        (T, T, False),
        (T, None, True),
        (None, T, False),
        (None, None, False),
    ],
)
def test_newer(candidate: datetime | None, known: datetime | None, expected: bool) -> None:
    """The later updatedAt wins; a read with a date beats one without; ties keep the known."""
    assert newer(at(candidate), at(known)) is expected


def test_newer_compares_instants_across_offsets() -> None:
    """Dates in different offsets are compared as instants."""
    plus_two = timezone(timedelta(hours=2))
    later = datetime(2024, 3, 1, 11, 30, tzinfo=plus_two)  # 09:30 UTC
    assert newer(at(T), at(later)) is True


# -- property -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
offsets = st.integers(min_value=-23 * 60, max_value=23 * 60).map(
    lambda m: timezone(timedelta(minutes=m))
)
# Every code point, lone surrogates included: Python's JSON reader makes them from escapes.
any_text = st.text(st.characters(exclude_categories=()))
srefs = st.one_of(
    st.integers(min_value=0).map("jobs/{}".format),
    any_text.map("/jobs/{}".format),
    st.sampled_from(["jobs/x y", "jobs/", "jobTemplates/3", "jobs/4?x", "jobs/5/"]),
)
statuses = st.sampled_from(["pending", "RUNNING", " failed", "Exploded", ""]) | any_text
dates = st.one_of(
    st.builds(lambda d, tz: d.replace(tzinfo=tz).isoformat(), st.datetimes(), offsets),
    st.datetimes().map(datetime.isoformat),
)
# Records close to real ones (so that jobs come out and get checked) and arbitrary ones.
field_values = {
    "sref": st.one_of(srefs, srefs, srefs, json_values),
    "status": st.one_of(statuses, statuses, statuses, json_values),
    "startedAt": st.one_of(dates, dates, dates, st.none(), json_values),
    "updatedAt": st.one_of(dates, dates, dates, st.none(), json_values),
    "pageCount": st.one_of(st.integers(min_value=-1, max_value=10**6), st.none(), json_values),
}
near_records = st.fixed_dictionaries(
    {"sref": field_values["sref"], "status": field_values["status"]},
    optional={
        field: field_values.get(field, st.one_of(any_text, st.none(), st.integers()))
        for field in RECORD
        if field not in ("sref", "status")
    }
    | {"extra": json_values},
)
records = st.one_of(
    near_records,
    near_records,
    st.dictionaries(st.sampled_from(list(RECORD)) | st.text(max_size=8), json_values, max_size=8),
)
bodies = st.one_of(
    st.fixed_dictionaries(
        {"results": st.lists(st.one_of(records, records, json_values), max_size=6)},
        optional={"meta": json_values},
    ),
    st.fixed_dictionaries({"results": records}),
    json_values,
)
SREF = re.compile(r"jobs/[^/?#\s]+")


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(bodies)
@example(
    {"results": [{"sref": "jobs/1", "status": "pending", "startedAt": "0001-01-01T00:00+00:01"}]}
)
def test_parse_list_never_raises_but_payload_error(body: object) -> None:
    """Whatever JSON comes back, parse_list raises only PayloadError, and every job it
    returns has a `jobs/...` sref, a non-empty status, a start, and text that UTF-8 can
    write."""
    with capture_logs():
        try:
            page = parse_list(body, 1)
        except PayloadError:
            return
    for job in page.jobs:
        assert SREF.fullmatch(job.sref)
        assert job.status
        assert job.started_at is not None
        for value in (job.sref, job.name, job.status, job.url, job.type, job.started_by):
            value.encode()
    assert page.count == len(page.jobs) + page.skipped
