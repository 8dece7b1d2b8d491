"""The flake filter's decisions, pure: which failures are started again, and what a
rerun's end does to the alerts it held."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from watcher import flakes
from watcher.flakes import Rerun
from watcher.models import Event, EventKind, Job
from watcher.settings import Rule

NOW = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)
TEMPLATE = "jobTemplates/6789"
FOLLOW_FOR = 3600.0


def rule(name: str = "retry", **rerun: Any) -> Rule:
    return Rule(
        name=name,
        match={"to": ["failed"]},
        notify=["ops"],
        rerun={"delay": "2m", **rerun},
    )


PLAIN = Rule(name="plain", match={"to": ["failed"]}, notify=["ops"])


def failure(sref: str = "jobs/1", streak: int = 1, **job: Any) -> Event:
    made = Job(sref=sref, name="Nightly", status="failed", template=TEMPLATE, **job)
    return Event(EventKind.TRANSITION, made, "running", "failed", NOW, streak=streak)


def planned(sref: str = "jobs/1", **changes: Any) -> Rerun:
    job = Job(sref=sref, name="Nightly", status="failed", template=TEMPLATE)
    made = Rerun(job, ("retry",), flakes.DUE, NOW, NOW, NOW + timedelta(hours=1))
    return dataclasses.replace(made, **changes)


def decide(
    *ledger: tuple[Event, tuple[Rule, ...]], known: dict[str, Rerun] | None = None
) -> list[flakes.Change]:
    return flakes.decide(list(ledger), known or {}, NOW, FOLLOW_FOR)


def test_a_failure_a_rerun_rule_matches_is_planned_and_holds_that_rules_alerts() -> None:
    event = failure()
    (change,) = decide((event, (PLAIN, rule())))
    assert change.new
    assert change.holds == ((event.key, "retry"),)  # the plain rule's alert goes
    assert change.rerun.state == flakes.DUE
    assert change.rerun.due_at == NOW + timedelta(minutes=2)
    assert change.rerun.deadline == NOW + timedelta(minutes=2, seconds=FOLLOW_FOR)


@pytest.mark.parametrize(
    ("event", "why"),
    [
        (failure(rerun_of="jobs/0"), "a rerun is never rerun"),
        (failure(streak=2), "previous run failed too"),
        (dataclasses.replace(failure(), job=Job("jobs/1", "x", "failed")), "no template"),
    ],
)
def test_no_rerun(event: Event, why: str) -> None:
    assert decide((event, (rule(),))) == []


def test_no_rerun_for_other_events_or_rules_without_rerun() -> None:
    stuck = dataclasses.replace(failure(), kind=EventKind.STUCK)
    assert decide((stuck, (rule(),)), (failure(), (PLAIN,))) == []


def test_one_rerun_per_failed_job() -> None:
    assert decide((failure(), (rule(),)), known={"jobs/1": planned()}) == []


def test_the_hourly_cap_counts_the_reruns_of_the_last_hour_and_of_this_cycle() -> None:
    recent = {"jobs/0": planned("jobs/0", decided_at=NOW - timedelta(minutes=59))}
    old = {"jobs/0": planned("jobs/0", decided_at=NOW - timedelta(minutes=61))}
    ledger = [(failure(f"jobs/{n}"), (rule(per_template_per_hour=2),)) for n in (1, 2)]
    assert [c.rerun.sref for c in decide(*ledger, known=recent)] == ["jobs/1"]
    assert [c.rerun.sref for c in decide(*ledger, known=old)] == ["jobs/1", "jobs/2"]


def test_a_reruns_own_events_do_not_go_to_rerun_rules() -> None:
    rerun = failure("jobs/2", rerun_of="jobs/1")
    assert flakes.without_rerun_rules(rerun, (PLAIN, rule())) == (PLAIN,)
    assert flakes.without_rerun_rules(failure(), (PLAIN, rule())) == (PLAIN, rule())
    back = dataclasses.replace(rerun, kind=EventKind.RECOVERED, to_status="completed")
    assert flakes.without_rerun_rules(back, (PLAIN,)) == ()


def test_a_completed_rerun_makes_the_failure_flaky() -> None:
    started = planned(state=flakes.STARTED, rerun="jobs/2", rerun_status="running")
    change, event = flakes.ended(started, Job("jobs/2", "Nightly", "completed"), NOW)
    assert change.rerun.state == flakes.FLAKY
    assert change.release is not None
    assert change.release.state == flakes.FLAKY
    assert event is not None
    assert (event.kind, event.job.sref, event.job.rerun) == (EventKind.FLAKY, "jobs/1", "jobs/2")


@pytest.mark.parametrize(
    ("status", "state", "release"),
    [
        ("failed", flakes.FAILED, flakes.REPLACED),
        ("expired", flakes.FAILED, flakes.REPLACED),
        ("cancelled", flakes.RELEASED, flakes.PENDING),
    ],
)
def test_a_rerun_that_does_not_complete(status: str, state: str, release: str) -> None:
    started = planned(state=flakes.STARTED, rerun="jobs/2", rerun_status="running")
    change, event = flakes.ended(started, Job("jobs/2", "Nightly", status), NOW)
    assert event is None
    assert change.rerun.state == state
    assert change.release is not None
    assert change.release.state == release


def test_a_running_rerun_changes_only_its_status() -> None:
    started = planned(state=flakes.STARTED, rerun="jobs/2", rerun_status="pending")
    change, event = flakes.ended(started, Job("jobs/2", "Nightly", "running"), NOW)
    assert (change.rerun.rerun_status, change.release, event) == ("running", None, None)


def test_past_the_deadline_the_held_alerts_go() -> None:
    started = planned(state=flakes.STARTED, rerun="jobs/2")
    assert flakes.overdue(started, NOW) is None
    late = flakes.overdue(started, NOW + timedelta(hours=1))
    assert late is not None
    assert late.release is not None
    assert late.release.state == flakes.PENDING
    assert "had not ended" in late.release.step.detail
    unstarted = flakes.overdue(planned(last_error="HTTP 503"), NOW + timedelta(hours=2))
    assert unstarted is not None
    assert unstarted.release is not None
    assert "HTTP 503" in unstarted.release.step.detail


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ({"match": {"event": "recovered"}, "rerun": {}}, "only for event transition"),
        ({"match": {"to": ["completed"]}, "rerun": {}}, "names no failure"),
        ({"rerun": {"max": 2}}, "less than or equal to 1"),
        ({"rerun": {"per_template_per_hour": 0}}, "greater than or equal to 1"),
    ],
)
def test_a_rerun_setting_that_cannot_work_is_refused(doc: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Rule(**{"name": "r", "notify": ["ops"], **doc})
