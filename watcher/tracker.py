"""Pure: previous job and template states + the jobs one cycle observed + now -> events
and new states.

No I/O and no clock: `now` comes in as an argument. Only statuses seen at polls are
known, so pending -> running -> failed between two polls is one transition. Templates
carry the failure streak (for `consecutive` and `recovered`) and the last start (for
`missed`).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from watcher.models import (
    FAILURE_STATUSES,
    NEW,
    TERMINAL_STATUSES,
    Event,
    EventKind,
    Job,
    JobState,
    TemplateState,
)


@dataclass(frozen=True, slots=True)
class Ignored:
    sref: str
    reason: str  # "stale" | "changed_after_end"
    status: str


@dataclass(slots=True)
class Diff:
    events: list[Event] = field(default_factory=list)
    states: list[JobState] = field(default_factory=list)  # new or changed, to be stored
    templates: dict[str, TemplateState] = field(default_factory=dict)  # changed ones
    ignored: list[Ignored] = field(default_factory=list)
    # events no rule could want, counted but not made (see `diff`'s `wanted`)
    unrouted: Counter[EventKind] = field(default_factory=Counter)


def _first_state(job: Job, now: datetime) -> JobState:
    """A job seen for the first time; first seen running, it has run since it started."""
    started = job.started_at
    since = started if job.status == "running" and started is not None and started < now else now
    return JobState(  # positional, in the order of JobState's fields: the hot loop
        job.sref, job.status, since, now, job.updated_at, started, job.template, job.name
    )


def _state(job: Job, now: datetime, previous: JobState) -> JobState:
    return JobState(
        sref=job.sref,
        status=job.status,
        status_since=previous.status_since if previous.status == job.status else now,
        first_seen=previous.first_seen,
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
    templates: Mapping[str, TemplateState] | None = None,
    baseline: bool = False,
    wanted: Callable[[EventKind, str], bool] | None = None,
) -> Diff:
    """Compare what the API says now with what was stored.

    `baseline` is the first poll ever: jobs that had already ended are recorded (and
    counted in their template's streak) without an event, so a new install does not
    replay history as alerts.

    `wanted(kind, status)` says whether any rule could act on such an event: the events
    it rules out are only counted (`unrouted`), which spares a large window of new jobs
    100k events that nothing would read.
    """
    out = Diff()
    ended: list[tuple[Job, str | None, Event | None]] = []  # job, from status (None: quiet)
    seen = list(observed)  # every sighting: a pending job may get its startedAt later
    routed: dict[str, bool] = {}  # status -> whether a transition to it is wanted

    def transition(job: Job, from_status: str) -> Event | None:
        if wanted is not None:
            wants = routed.get(job.status)
            if wants is None:
                wants = routed[job.status] = wanted(EventKind.TRANSITION, job.status)
            if not wants:
                out.unrouted[EventKind.TRANSITION] += 1
                return None
        event = Event(EventKind.TRANSITION, job, from_status, job.status, job.updated_at or now)
        out.events.append(event)
        return event

    for job in seen:
        before = previous.get(job.sref)
        if before is None:
            out.states.append(_first_state(job, now))
            if job.status not in TERMINAL_STATUSES:
                transition(job, NEW)
            elif baseline:
                ended.append((job, None, None))
            else:
                ended.append((job, NEW, transition(job, NEW)))
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
            event = transition(job, before.status)
            out.states.append(_state(job, now, before))
            if job.status in TERMINAL_STATUSES:
                ended.append((job, before.status, event))
        elif (job.updated_at, job.started_at, job.name, job.template) != (
            before.updated_at,
            before.started_at,
            before.name,
            before.template,
        ):
            out.states.append(_state(job, now, before))
    _follow_templates(out, templates or {}, seen, ended, now, wanted)
    return out


def _follow_templates(
    out: Diff,
    known: Mapping[str, TemplateState],
    seen: list[Job],
    ended: list[tuple[Job, str | None, Event | None]],
    now: datetime,
    wanted: Callable[[EventKind, str], bool] | None,
) -> None:
    def current(template: str) -> TemplateState:
        state = out.templates.get(template) or known.get(template)
        return state or TemplateState(template=template, watching_since=now)

    newest: dict[str, Job] = {}
    for job in seen:
        if job.template and job.started_at is not None:
            top = newest.get(job.template)
            if top is None or job.started_at > (top.started_at or job.started_at):
                newest[job.template] = job
    for template, job in newest.items():
        state = current(template)
        if state.last_start is None or (job.started_at and job.started_at > state.last_start):
            out.templates[template] = dataclasses.replace(
                state, last_start=job.started_at, last_name=job.name
            )
    # Cancelled jobs neither break nor extend a streak. The others in the order they
    # ended, so "the previous ended job" means what it says.
    counted = [each for each in ended if each[0].template and each[0].status != "cancelled"]
    # By end, then start: two stable sorts on one date each, twice as fast as one sort
    # on a pair of dates (tens of thousands of jobs end in a large window).
    counted.sort(key=lambda each: each[0].started_at or now)
    counted.sort(key=lambda each: each[0].updated_at or now)
    streaks: dict[str, int] = {}  # template -> failures in a row, as of the job in hand
    recoveries = wanted is None or wanted(EventKind.RECOVERED, "completed")
    for job, from_status, event in counted:
        streak = streaks.get(job.template)
        if streak is None:
            streak = current(job.template).streak
        if job.status in FAILURE_STATUSES:
            streak += 1
            if event is not None:
                event.streak = streak  # made above, in this diff: not seen by anyone yet
        elif job.status == "completed":
            if streak and from_status is not None and not recoveries:
                out.unrouted[EventKind.RECOVERED] += 1
            elif streak and from_status is not None:
                at = job.updated_at or now
                recovery = Event(EventKind.RECOVERED, job, from_status, job.status, at, streak)
                out.events.append(recovery)
            streak = 0
        streaks[job.template] = streak
    for template, streak in streaks.items():
        out.templates[template] = dataclasses.replace(current(template), streak=streak)
