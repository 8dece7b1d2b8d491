"""The fast module: every positional build equals its keyword twin, field by field.

Each test gives every field a value no other field has, so a model field reordered (or
a value passed in the wrong place) makes the two builds differ.
"""

from __future__ import annotations

import asyncio
import gc
import json
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from watcher import fast, payload
from watcher.models import Alert, Event, EventKind, Job, JobState, Severity
from watcher.settings import Rule

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
NOW = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)

JOB = Job(
    sref="jobs/1",
    name="Nightly home",
    status="running",
    started_at=T0,
    updated_at=T0 + timedelta(minutes=5),
    url="https://example.com/",
    type="Crawl",
    run_type="scheduled",
    started_by="Joe Bloggs",
    page_count=7,
    template="jobTemplates/6789",
    test_runs_uri="testRuns?job=jobs%2F1",
)


def test_job_from_a_record_is_the_job_by_keyword() -> None:
    """A documented record becomes the same Job the keyword constructor makes."""
    record = payload.Record(
        sref="jobs/1",
        status="running",
        name="Nightly home",
        url="https://example.com/",
        startedAt=T0.isoformat(),
        updatedAt=(T0 + timedelta(minutes=5)).isoformat(),
        startedBy="Joe Bloggs",
        type="Crawl",
        pageCount=7,
        jobTemplateUri="jobTemplates/6789",
        runType="scheduled",
        testRunsUri="testRuns?job=jobs%2F1",
    )
    assert fast.job(record, "jobs/1", JOB.started_at, JOB.updated_at) == JOB


def test_the_settled_records_of_a_typed_page_are_those_the_plain_loop_finds() -> None:
    """Same status: counted (twice if listed twice); another status, no status, a job
    not settled, an sref written another way: read, in their places."""
    listed = [
        ("jobs/1", "completed"),
        ("jobs/2", "failed"),
        ("jobs/3", ""),
        ("jobs/4", "running"),
        ("/jobs/1", "completed"),
        ("jobs/1", "completed"),
        ("jobs/5", "expired"),
    ]
    records = [payload.Record(sref=s, status=t, name="n", startedAt="") for s, t in listed]
    settled = {
        "completed": {"jobs/1": "jobs/1", "jobs/2": "jobs/2"},
        "expired": {"jobs/5": "jobs/5"},
    }
    found = fast.unsettled(records, settled)
    assert found == ([1, 2, 3, 4], ["jobs/1", "jobs/1", "jobs/5"])
    assert found[1][0] is settled["completed"]["jobs/1"]
    assert found == payload._unsettled(records, False, settled)  # its twin


def test_an_empty_record_gives_the_keyword_defaults() -> None:
    """Fields the record leaves out are the model's defaults."""
    record = payload.Record(sref="jobs/2", status="pending", name="", startedAt="")
    built = fast.job(record, "jobs/2", None, None)
    assert built == Job(sref="jobs/2", name="", status="pending")


def test_a_first_state_is_the_state_by_keyword() -> None:
    """A job first seen running has run since it started; every field lands in place."""
    assert fast.first_state(JOB, NOW) == JobState(
        sref="jobs/1",
        status="running",
        status_since=T0,
        first_seen=NOW,
        updated_at=T0 + timedelta(minutes=5),
        started_at=T0,
        template="jobTemplates/6789",
        name="Nightly home",
    )


def test_a_first_state_not_running_starts_now() -> None:
    pending = Job(sref="jobs/3", name="n", status="pending", started_at=T0)
    assert fast.first_state(pending, NOW).status_since == NOW


def test_alerts_are_the_alerts_by_keyword() -> None:
    """One alert per rule and channel, every field where the keyword build puts it."""
    event = Event(
        kind=EventKind.STUCK,
        job=JOB,
        from_status="running",
        to_status="running",
        at=NOW,
        rule="slow",
        seq=4,
    )
    rule = Rule(
        name="slow",
        notify=["ops", "mail"],
        severity=Severity.WARNING,
        title="T {{ job.name }}",
        body="B {{ job.sref }}",
    )
    expected = [
        Alert(
            kind=EventKind.STUCK,
            rule="slow",
            channel=channel,
            severity=Severity.WARNING,
            sref="jobs/1",
            template="jobTemplates/6789",
            status="running",
            seq=4,
            resolvable=True,
            variables="[vars]",
            title_source="T {{ job.name }}",
            body_source="B {{ job.sref }}",
        )
        for channel in ("ops", "mail")
    ]
    assert fast.alerts(event, [rule], "[vars]") == expected
    assert [a.key for a in expected] == [event.key, event.key]


def test_the_variable_list_names_each_value_where_templates_read_it() -> None:
    """The outbox's list, read back, gives each variable its own value."""
    event = Event(
        kind=EventKind.TRANSITION,
        job=JOB,
        from_status="pending",
        to_status="failed",
        at=NOW,
        streak=2,
        stuck_for=30.0,
    )
    runs: list[dict[str, object]] = [{"url": "https://example.com/a"}]
    named = fast.named_variables(json.loads(fast.variable_list(event, runs)))
    assert named["job"] == {
        "name": "Nightly home",
        "url": "https://example.com/",
        "status": "running",
        "type": "Crawl",
        "run_type": "scheduled",
        "started_at": T0.isoformat(),
        "updated_at": (T0 + timedelta(minutes=5)).isoformat(),
        "started_by": "Joe Bloggs",
        "page_count": 7,
        "sref": "jobs/1",
        "id": "1",
        "template": "jobTemplates/6789",
        "test_runs_uri": "testRuns?job=jobs%2F1",
        "test_runs": runs,
        "rerun_of": "",
        "rerun": "",
    }
    assert named["event"] == {
        "kind": "transition",
        "from": "pending",
        "to": "failed",
        "at": NOW.isoformat(),
        "streak": 2,
        "stuck_for": 30.0,
        # regressed and improved only: None (runs: []) for every other event
        **dict.fromkeys(fast.PERF_VARIABLES),
        "runs": [],
    }


def test_a_series_event_carries_its_numbers_and_older_lists_still_read() -> None:
    """regressed/improved append an object of PERF_VARIABLES; a list queued before them
    (20 values) still reads, with the new variables empty."""
    event = Event(
        kind=EventKind.REGRESSED,
        job=JOB,
        from_status="completed",
        to_status="jobTemplates/6789|Chrome|onLoad|https://example.com/",
        at=NOW,
        seq=1,
        perf={"metric": "onLoad", "value": 2.1, "baseline": 1.5, "runs": [1.5, 2.1]},
    )
    values = json.loads(fast.variable_list(event, None))
    named = fast.named_variables(values)
    assert named["event"]["to"] == "regressed"
    assert (named["event"]["metric"], named["event"]["value"], named["event"]["runs"]) == (
        "onLoad",
        2.1,
        [1.5, 2.1],
    )
    assert named["event"]["percent"] is None
    older = fast.named_variables(values[:-1])
    assert older["event"]["metric"] is None
    assert older["event"]["runs"] == []
    with pytest.raises(ValueError, match="values for"):
        fast.named_variables(values[:-2])


def test_stamps_are_the_timestamps() -> None:
    stamps = fast.Stamps()
    assert stamps[T0] == T0.timestamp()
    assert stamps[T0] == T0.timestamp()  # from the cache
    assert list(stamps) == [T0]


def test_dates_are_the_utc_datetimes_of_timestamps_one_object_each() -> None:
    dates = fast.Dates()
    first = dates[T0.timestamp()]
    assert first == T0
    assert first.tzinfo is UTC
    assert dates[T0.timestamp()] is first


def test_the_collector_is_paused_during_the_work_and_restored_after() -> None:
    seen: list[bool] = []

    @fast.collector_paused
    async def work() -> int:
        seen.append(gc.isenabled())
        return 7

    assert gc.isenabled()
    assert asyncio.run(work()) == 7
    assert seen == [False]
    assert gc.isenabled()


def test_the_flake_filters_links_travel_in_the_trailing_object() -> None:
    """`job.rerun_of` and `job.rerun` ride in the trailing object, only when a job has
    one: the list of every other job stays as it was."""
    plain = Event(EventKind.TRANSITION, JOB, "running", "failed", NOW)
    rerun = msgspec.structs.replace(JOB, sref="jobs/2", rerun_of="jobs/1")
    linked = Event(EventKind.TRANSITION, rerun, "running", "failed", NOW)
    assert not isinstance(json.loads(fast.variable_list(plain, None))[-1], dict)
    named = fast.named_variables(json.loads(fast.variable_list(linked, None)))
    assert (named["job"]["rerun_of"], named["job"]["rerun"]) == ("jobs/1", "")
    assert named["event"]["metric"] is None
