"""The tracker: previous states + observed jobs + now -> events, states to store, reads ignored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from watcher.models import NEW, EventKind, Job, JobState
from watcher.tracker import diff

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)  # when the job was first seen
NOW = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)  # the cycle being diffed


def job(status: str, sref: str = "jobs/1", updated: datetime | None = None, **extra: object) -> Job:
    return Job(
        sref=sref,
        name=str(extra.pop("name", "Nightly home")),
        status=status,
        started_at=T0,
        updated_at=updated or T0 + timedelta(minutes=30),
        template=str(extra.pop("template", "jobTemplates/6789")),
    )


def state(status: str, sref: str = "jobs/1", updated: datetime | None = None) -> JobState:
    """The stored twin of `job(status, sref, updated)`: same fields, first seen at T0."""
    return JobState(
        sref=sref,
        status=status,
        status_since=T0,
        first_seen=T0,
        updated_at=updated or T0 + timedelta(minutes=30),
        started_at=T0,
        template="jobTemplates/6789",
        name="Nightly home",
    )


LATER = T0 + timedelta(minutes=50)
EARLIER = T0 + timedelta(minutes=10)

# (case, previous states, observed jobs, baseline, events as (sref, from, to),
#  srefs with a state to store, ignored as (sref, reason))
CASES = [
    (
        "first sighting is a transition from new",
        [],
        [job("running")],
        False,
        [("jobs/1", NEW, "running")],
        ["jobs/1"],
        [],
    ),
    (
        "first sighting of an ended job outside the baseline is alerted",
        [],
        [job("failed")],
        False,
        [("jobs/1", NEW, "failed")],
        ["jobs/1"],
        [],
    ),
    (
        "baseline records ended jobs without an event",
        [],
        [job("completed", "jobs/1"), job("failed", "jobs/2"), job("expired", "jobs/3")],
        True,
        [],
        ["jobs/1", "jobs/2", "jobs/3"],
        [],
    ),
    (
        "baseline still reports unfinished jobs",
        [],
        [job("pending", "jobs/1"), job("running", "jobs/2"), job("cancelled", "jobs/3")],
        True,
        [("jobs/1", NEW, "pending"), ("jobs/2", NEW, "running")],
        ["jobs/1", "jobs/2", "jobs/3"],
        [],
    ),
    (
        "a status change is one transition",
        [state("running")],
        [job("completed", updated=LATER)],
        False,
        [("jobs/1", "running", "completed")],
        ["jobs/1"],
        [],
    ),
    (
        "the same status and fields give nothing",
        [state("running")],
        [job("running")],
        False,
        [],
        [],
        [],
    ),
    (
        "the same status with a moved updatedAt rewrites the state only",
        [state("running")],
        [job("running", updated=LATER)],
        False,
        [],
        ["jobs/1"],
        [],
    ),
    (
        "the same status with a new name rewrites the state only",
        [state("running")],
        [job("running", name="Renamed")],
        False,
        [],
        ["jobs/1"],
        [],
    ),
    (
        "a terminal status is final",
        [state("failed")],
        [job("completed", updated=LATER)],
        False,
        [],
        [],
        [("jobs/1", "changed_after_end")],
    ),
    (
        "a terminal job reported again unchanged gives nothing",
        [state("completed")],
        [job("completed", updated=LATER)],
        False,
        [],
        [],
        [],
    ),
    (
        "a read older than the stored one is stale",
        [state("running", updated=LATER)],
        [job("failed", updated=EARLIER)],
        False,
        [],
        [],
        [("jobs/1", "stale")],
    ),
    (
        "an unknown status is kept as it came",
        [state("running")],
        [job("Exploded", updated=LATER)],
        False,
        [("jobs/1", "running", "Exploded")],
        ["jobs/1"],
        [],
    ),
    (
        "an unknown status is not final",
        [state("Exploded")],
        [job("failed", updated=LATER)],
        False,
        [("jobs/1", "Exploded", "failed")],
        ["jobs/1"],
        [],
    ),
    (
        "pending to failed between two polls is one transition",
        [state("pending")],
        [job("failed", updated=LATER)],
        False,
        [("jobs/1", "pending", "failed")],
        ["jobs/1"],
        [],
    ),
    (
        "jobs are diffed independently",
        [state("running", "jobs/1"), state("running", "jobs/2")],
        [
            job("failed", "jobs/1", updated=LATER),
            job("running", "jobs/2"),
            job("pending", "jobs/3"),
        ],
        False,
        [("jobs/1", "running", "failed"), ("jobs/3", NEW, "pending")],
        ["jobs/1", "jobs/3"],
        [],
    ),
]


@pytest.mark.parametrize(
    ("previous", "observed", "baseline", "events", "stored", "ignored"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_diff_table(
    previous: list[JobState],
    observed: list[Job],
    baseline: bool,
    events: list[tuple[str, str, str]],
    stored: list[str],
    ignored: list[tuple[str, str]],
) -> None:
    """Each row: what the tracker reports, stores and ignores for one cycle."""
    result = diff({s.sref: s for s in previous}, observed, NOW, baseline=baseline)
    assert [(e.job.sref, e.from_status, e.to_status) for e in result.events] == events
    assert [s.sref for s in result.states] == stored
    assert [(i.sref, i.reason) for i in result.ignored] == ignored


def test_events_are_transitions_carrying_the_observed_job() -> None:
    """An event is of kind transition and carries the job as the API described it."""
    observed = job("failed", updated=LATER)
    (event,) = diff({"jobs/1": state("running")}, [observed], NOW).events
    assert event.kind is EventKind.TRANSITION
    assert event.job == observed


def test_event_time_is_the_jobs_updated_at() -> None:
    """The event happened when the API says the job last changed, not when it was polled."""
    (event,) = diff({"jobs/1": state("running")}, [job("failed", updated=LATER)], NOW).events
    assert event.at == LATER


def test_event_time_falls_back_to_now_without_updated_at() -> None:
    """A job without updatedAt gets the cycle's time as its event time."""
    bare = Job(sref="jobs/1", name="x", status="running")
    (event,) = diff({}, [bare], NOW).events
    assert event.at == NOW


def test_event_key_is_per_job_and_new_status() -> None:
    """The key names the kind, the job and the new status, and nothing else."""
    (event,) = diff({"jobs/1": state("running")}, [job("failed", updated=LATER)], NOW).events
    assert event.key == "transition:jobs/1:failed"


def test_event_key_does_not_depend_on_the_previous_status() -> None:
    """Failing from pending or from running is the same event for the dedup."""
    a = diff({"jobs/1": state("pending")}, [job("failed", updated=LATER)], NOW).events[0]
    b = diff({"jobs/1": state("running")}, [job("failed", updated=LATER)], NOW).events[0]
    assert a.key == b.key


def test_event_keys_differ_between_jobs_and_statuses() -> None:
    """Two jobs, or two statuses of one job, never share a key."""
    keys = {
        diff({}, [job("failed", "jobs/1")], NOW).events[0].key,
        diff({}, [job("failed", "jobs/2")], NOW).events[0].key,
        diff({}, [job("running", "jobs/1")], NOW).events[0].key,
    }
    assert len(keys) == 3


def test_first_sighting_is_first_seen_now() -> None:
    """A new job is first seen at the cycle's time."""
    (stored,) = diff({}, [job("failed")], NOW).states
    assert (stored.first_seen, stored.status) == (NOW, "failed")


def test_first_sighting_pending_is_pending_since_now() -> None:
    """A job first seen pending counts its time in that status from the cycle's time."""
    (stored,) = diff({}, [job("pending")], NOW).states
    assert stored.status_since == NOW


def test_first_sighting_running_is_running_since_it_started() -> None:
    """A job first seen running has been running since its startedAt."""
    (stored,) = diff({}, [job("running")], NOW).states
    assert stored.status_since == T0


def test_status_change_restarts_status_since_and_keeps_first_seen() -> None:
    """A new status counts from now; the first sighting stays where it was."""
    (stored,) = diff({"jobs/1": state("pending")}, [job("running", updated=LATER)], NOW).states
    assert (stored.status, stored.status_since, stored.first_seen) == ("running", NOW, T0)


def test_unchanged_status_keeps_status_since_when_fields_move() -> None:
    """A rewrite for a moved updatedAt does not restart the time spent in the status."""
    (stored,) = diff({"jobs/1": state("running")}, [job("running", updated=LATER)], NOW).states
    assert (stored.status_since, stored.updated_at) == (T0, LATER)


def test_ignored_read_records_the_reported_status() -> None:
    """An ignored read says which status was reported, for the log."""
    (ignored,) = diff({"jobs/1": state("failed")}, [job("completed", updated=LATER)], NOW).ignored
    assert ignored.status == "completed"


@pytest.mark.parametrize(
    ("wanted", "events", "unrouted"),
    [
        (None, ["transition:failed", "transition:completed", "recovered:completed"], {}),
        (
            lambda kind, status: status == "failed" or kind is EventKind.RECOVERED,
            ["transition:failed", "recovered:completed"],
            {EventKind.TRANSITION: 1},
        ),
        (lambda kind, status: False, [], {EventKind.TRANSITION: 2, EventKind.RECOVERED: 1}),
    ],
)
def test_events_no_rule_wants_are_counted_not_made(
    wanted: Any, events: list[str], unrouted: dict[EventKind, int]
) -> None:
    """`wanted` spares events no rule could act on; states and streaks are the same."""
    failed = job("failed", "jobs/1", updated=EARLIER)
    done = job("completed", "jobs/2", updated=LATER)
    plain = diff({}, [failed, done], NOW)
    out = diff({}, [failed, done], NOW, wanted=wanted)
    assert [f"{e.kind}:{e.to_status}" for e in out.events] == events
    assert dict(out.unrouted) == unrouted
    assert (out.states, out.templates) == (plain.states, plain.templates)
    assert next(e for e in plain.events if e.kind is EventKind.RECOVERED).streak == 1
