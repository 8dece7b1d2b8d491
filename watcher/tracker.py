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

from watcher import fast
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


Ended = list[tuple[Job, str | None, Event | None]]  # job, from status (None: quiet), event


class _Transitions:
    """Makes the transition events of one diff, or only counts those no rule could
    want (`wanted(kind, status)`, asked once per status)."""

    def __init__(
        self, out: Diff, now: datetime, wanted: Callable[[EventKind, str], bool] | None
    ) -> None:
        self._out = out
        self._now = now
        self._wanted = wanted
        self._routed: dict[str, bool] = {}

    def __call__(self, job: Job, from_status: str) -> Event | None:
        if self._wanted is not None:
            wants = self._routed.get(job.status)
            if wants is None:
                wants = self._routed[job.status] = self._wanted(EventKind.TRANSITION, job.status)
            if not wants:
                self._out.unrouted[EventKind.TRANSITION] += 1
                return None
        event = Event(
            kind=EventKind.TRANSITION,
            job=job,
            from_status=from_status,
            to_status=job.status,
            at=job.updated_at or self._now,
        )
        self._out.events.append(event)
        return event


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
    transition = _Transitions(out, now, wanted)
    ended: Ended = []
    seen = list(observed)  # every sighting: a pending job may get its startedAt later
    for job in seen:
        before = previous.get(job.sref)
        if before is not None:
            _sighting(out, job, before, now, transition, ended)
            continue
        # A first sighting, inline: every job of a first cycle comes this way.
        out.states.append(fast.first_state(job, now))
        if job.status not in TERMINAL_STATUSES:
            transition(job, NEW)
        elif baseline:
            ended.append((job, None, None))
        else:
            ended.append((job, NEW, transition(job, NEW)))
    _follow_templates(out, templates or {}, seen, ended, now, wanted)
    return out


def _sighting(
    out: Diff, job: Job, before: JobState, now: datetime, transition: _Transitions, ended: Ended
) -> None:
    """A job seen before: a transition, a quieter change of its record, or nothing."""
    if before.ended:
        # Terminal statuses are final: a different report later is a stale or broken
        # read, and alerting on it would be a false alarm.
        if job.status != before.status:
            out.ignored.append(
                Ignored(sref=job.sref, reason="changed_after_end", status=job.status)
            )
        return
    if job.updated_at and before.updated_at and job.updated_at < before.updated_at:
        out.ignored.append(Ignored(sref=job.sref, reason="stale", status=job.status))
        return
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


class _Templates:
    """The templates' states as this diff changes them, over what the store knew."""

    def __init__(self, out: Diff, known: Mapping[str, TemplateState], now: datetime) -> None:
        self._out = out
        self._known = known
        self._now = now

    def __getitem__(self, template: str) -> TemplateState:
        state = self._out.templates.get(template) or self._known.get(template)
        return state or TemplateState(template=template, watching_since=self._now)

    def __setitem__(self, template: str, state: TemplateState) -> None:
        self._out.templates[template] = state


def _follow_templates(
    out: Diff,
    known: Mapping[str, TemplateState],
    seen: list[Job],
    ended: Ended,
    now: datetime,
    wanted: Callable[[EventKind, str], bool] | None,
) -> None:
    templates = _Templates(out, known, now)
    _last_starts(templates, seen)
    recoveries = wanted is None or wanted(EventKind.RECOVERED, "completed")
    _streaks(out, templates, ended, now, recoveries=recoveries)


def _last_starts(templates: _Templates, seen: list[Job]) -> None:
    """Each template's newest start (for `missed`)."""
    newest: dict[str, Job] = {}
    for job in seen:
        if job.template and job.started_at is not None:
            top = newest.get(job.template)
            if top is None or job.started_at > (top.started_at or job.started_at):
                newest[job.template] = job
    for template, job in newest.items():
        state = templates[template]
        if state.last_start is None or (job.started_at and job.started_at > state.last_start):
            templates[template] = dataclasses.replace(
                state, last_start=job.started_at, last_name=job.name
            )


def _streaks(
    out: Diff, templates: _Templates, ended: Ended, now: datetime, *, recoveries: bool
) -> None:
    """Each template's failures in a row, the streak of each failure event, and a
    `recovered` event (or, when `recoveries` is not wanted, a count) for each
    completed job that ends a streak."""
    # Cancelled jobs neither break nor extend a streak. The others in the order they
    # ended, so "the previous ended job" means what it says.
    counted = [each for each in ended if each[0].template and each[0].status != "cancelled"]
    # By end, then start: two stable sorts on one date each, twice as fast as one sort
    # on a pair of dates (tens of thousands of jobs end in a large window).
    counted.sort(key=lambda each: each[0].started_at or now)
    counted.sort(key=lambda each: each[0].updated_at or now)
    streaks: dict[str, int] = {}  # template -> failures in a row, as of the job in hand
    for job, from_status, event in counted:
        streak = streaks.get(job.template)
        if streak is None:
            streak = templates[job.template].streak
        if job.status in FAILURE_STATUSES:
            streak += 1
            if event is not None:
                event.streak = streak  # made above, in this diff: not seen by anyone yet
        elif job.status == "completed":
            if streak and from_status is not None and not recoveries:
                out.unrouted[EventKind.RECOVERED] += 1
            elif streak and from_status is not None:
                out.events.append(_recovery(job, from_status, streak, now))
            streak = 0
        streaks[job.template] = streak
    for template, streak in streaks.items():
        templates[template] = dataclasses.replace(templates[template], streak=streak)


def _recovery(job: Job, from_status: str, streak: int, now: datetime) -> Event:
    return Event(
        kind=EventKind.RECOVERED,
        job=job,
        from_status=from_status,
        to_status=job.status,
        at=job.updated_at or now,
        streak=streak,
    )
