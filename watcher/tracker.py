"""Pure: previous job states + the jobs one cycle observed + now -> events and new states.

No I/O and no clock: `now` comes in as an argument. Only statuses seen at polls are
known, so pending -> running -> failed between two polls is one transition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from watcher.models import NEW, Event, EventKind, Job, JobState, is_terminal


@dataclass(frozen=True, slots=True)
class Ignored:
    sref: str
    reason: str  # "stale" | "changed_after_end"
    status: str


@dataclass(slots=True)
class Diff:
    events: list[Event] = field(default_factory=list)
    states: list[JobState] = field(default_factory=list)  # new or changed, to be stored
    ignored: list[Ignored] = field(default_factory=list)


def _state(job: Job, now: datetime, previous: JobState | None) -> JobState:
    moved = previous is None or previous.status != job.status
    return JobState(
        sref=job.sref,
        status=job.status,
        status_since=now if moved or previous is None else previous.status_since,
        first_seen=previous.first_seen if previous else now,
        updated_at=job.updated_at,
        started_at=job.started_at,
        template=job.template,
        name=job.name,
    )


def diff(
    previous: Mapping[str, JobState],
    observed: Iterable[Job],
    now: datetime,
    *,
    baseline: bool = False,
) -> Diff:
    """Compare what the API says now with what was stored.

    `baseline` is the first poll ever: jobs that had already ended are recorded
    without an event, so a new install does not replay history as alerts.
    """
    out = Diff()
    for job in observed:
        before = previous.get(job.sref)
        if before is None:
            out.states.append(_state(job, now, None))
            if not (baseline and is_terminal(job.status)):
                out.events.append(_transition(job, NEW, now))
            continue
        if before.ended:
            # Terminal statuses are final: a different report later is a stale or broken
            # read, and alerting on it would be a false alarm.
            if job.status != before.status:
                out.ignored.append(Ignored(job.sref, "changed_after_end", job.status))
            continue
        if job.updated_at and before.updated_at and job.updated_at < before.updated_at:
            out.ignored.append(Ignored(job.sref, "stale", job.status))
            continue
        if job.status != before.status:
            out.events.append(_transition(job, before.status, now))
            out.states.append(_state(job, now, before))
        elif (job.updated_at, job.started_at, job.name, job.template) != (
            before.updated_at,
            before.started_at,
            before.name,
            before.template,
        ):
            out.states.append(_state(job, now, before))
    return out


def _transition(job: Job, from_status: str, now: datetime) -> Event:
    return Event(
        kind=EventKind.TRANSITION,
        job=job,
        from_status=from_status,
        to_status=job.status,
        at=job.updated_at or now,
    )
