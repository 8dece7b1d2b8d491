"""The flake filter, pure: which failures are started again, and what a rerun's end
does to the alerts its failure held. The start requests are `rerunner`'s.

A failed job that a rule with `rerun:` matches gets one row, keyed by the failed job
(so no crash or failover makes a second), and its alerts from those rules are queued
`waiting`. The row's life:

    due -> starting -> started -> flaky | failed | released
     |        |           |
     +--------+-----------+-> released (start refused, never started, or not ended
                                         within poll.follow_for)

- `flaky`: the rerun completed. The held alerts are not sent; a `flaky` event about
  the failed job (`job.rerun` the rerun) is recorded, for the rules that want it.
- `failed`: the rerun failed too. The held alerts are replaced by the alerts of the
  same rules on the rerun's failure (`job.rerun_of` the failed job): one alert per
  rule and channel, naming both jobs.
- `released`: the held alerts go out as they were queued, with a step saying why.

No rerun for a rerun, for a failure whose template's previous run failed too (its
streak is past 1), for a job of no template, or past the rule's
`per_template_per_hour`.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import msgspec
import structlog

from watcher.models import FAILURE_STATUSES, TERMINAL_STATUSES, Event, EventKind, Job
from watcher.people import Step

if TYPE_CHECKING:
    from watcher.settings import Rule

log = structlog.get_logger("watcher.flakes")

DUE, STARTING, STARTED = "due", "starting", "started"
FLAKY, FAILED, RELEASED = "flaky", "failed", "released"
OPEN = frozenset({DUE, STARTING, STARTED})
# What becomes of held alerts: sent as they were, not sent (flaky), or replaced.
PENDING, REPLACED = "pending", "replaced"
WAITING = "waiting"  # the outbox state of a held alert
HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Rerun:
    """One failed job's rerun, as the store keeps it."""

    failed: Job  # as it was when it failed; its sref is the row's key
    rules: tuple[str, ...]  # the rules whose alerts it holds
    state: str
    decided_at: datetime
    due_at: datetime  # when the start request may go
    deadline: datetime  # released if not ended by then
    attempts: int = 0  # start requests tried
    claimed_at: datetime | None = None  # the last `starting`
    rerun: str = ""  # the rerun's sref, once known
    rerun_status: str = ""  # the rerun's status when last seen
    last_error: str = ""
    ended_at: datetime | None = None

    @property
    def sref(self) -> str:
        return self.failed.sref


@dataclass(frozen=True, slots=True)
class Release:
    """The held alerts of a rerun's failed job move to `state` (pending, flaky or
    replaced), with `step` in their history."""

    state: str
    step: Step


@dataclass(frozen=True, slots=True)
class Change:
    """A rerun row to write (inserted if `new`), and what its held alerts become."""

    rerun: Rerun
    release: Release | None = None
    new: bool = False
    holds: tuple[tuple[str, str], ...] = ()  # new: the alerts it holds (event key, rule)


def origins(reruns: Iterable[Rerun]) -> dict[str, str]:
    """rerun sref -> the failed job's sref."""
    return {r.rerun: r.sref for r in reruns if r.rerun}


def rerun_rule(fired: Sequence[Rule]) -> Rule | None:
    """The first of the firing rules that asks for a rerun (its settings apply)."""
    return next((r for r in fired if r.rerun is not None), None)


def decide(
    ledger: Sequence[tuple[Event, Sequence[Rule]]],
    known: Mapping[str, Rerun],
    now: datetime,
    follow_for: float,
) -> list[Change]:
    """The reruns to start for the failures of this cycle's ledger, each holding the
    alerts of the rules that asked for it."""
    started = Counter(r.failed.template for r in known.values() if now - r.decided_at < HOUR)
    changes: list[Change] = []
    for event, fired in ledger:
        rule = rerun_rule(fired)
        if rule is None or not _failure(event) or event.job.sref in known:
            continue
        assert rule.rerun is not None
        job = event.job
        reason = _why_not(
            job, event.streak, started[job.template], rule.rerun.per_template_per_hour
        )
        if reason:
            log.info("rerun_skipped", sref=job.sref, rule=rule.name, reason=reason)
            continue
        started[job.template] += 1
        asking = tuple(r.name for r in fired if r.rerun is not None)
        due = now + timedelta(seconds=rule.rerun.delay)
        rerun = Rerun(
            failed=job,
            rules=asking,
            state=DUE,
            decided_at=now,
            due_at=due,
            deadline=due + timedelta(seconds=follow_for),
        )
        changes.append(Change(rerun, new=True, holds=tuple((event.key, n) for n in asking)))
        log.info("rerun_planned", sref=job.sref, template=job.template, at=due.isoformat())
    return changes


def _failure(event: Event) -> bool:
    return event.kind is EventKind.TRANSITION and event.to_status in FAILURE_STATUSES


def _why_not(job: Job, streak: int, this_hour: int, cap: int) -> str:
    if job.rerun_of:
        return f"it is the rerun of {job.rerun_of}: a rerun is never rerun"
    if not job.template:
        return "the job names no template to start"
    if streak > 1:
        return "the template's previous run failed too"
    if this_hour >= cap:
        return f"per_template_per_hour ({cap}) reached"
    return ""


def without_rerun_rules(event: Event, fired: Sequence[Rule]) -> Sequence[Rule]:
    """A rerun's own events do not go to the rules that asked for reruns: those speak
    through the alerts that the rerun's failed job held (see `ended`). Nor does its
    `recovered`: its completion is the failure's `flaky` event, and the failure was
    never told."""
    if not event.job.rerun_of or not fired:
        return fired
    if event.kind is EventKind.RECOVERED:
        return ()
    if rerun_rule(fired) is None:
        return fired
    return tuple(r for r in fired if r.rerun is None)


def ended(rerun: Rerun, job: Job, now: datetime) -> tuple[Change, Event | None]:
    """What a look at the rerun (`job`) changes: a new status kept, or its end with the
    release of the held alerts, and for `flaky` its event. A rerun that failed is
    reported by the cycle as the rerun's failure, to the rules that held."""
    status = job.status
    if status not in TERMINAL_STATUSES:
        return Change(dataclasses.replace(rerun, rerun_status=status)), None
    done = dataclasses.replace(rerun, rerun_status=status, ended_at=now)
    if status == "completed":
        failed = msgspec.structs.replace(rerun.failed, rerun=job.sref)
        event = Event(
            kind=EventKind.FLAKY,
            job=failed,
            from_status=rerun.failed.status,
            to_status=status,
            at=now,
        )
        step = Step(now, FLAKY, f"its rerun {job.sref} completed")
        return Change(dataclasses.replace(done, state=FLAKY), Release(FLAKY, step)), event
    if status in FAILURE_STATUSES:
        step = Step(now, REPLACED, f"by the alert on its rerun {job.sref}, which {status} too")
        return Change(dataclasses.replace(done, state=FAILED), Release(REPLACED, step)), None
    return release(done, now, f"its rerun {job.sref} ended {status}"), None


def progress(
    rerun: Rerun, looked: Mapping[str, Job], now: datetime
) -> tuple[Change | None, Event | None]:
    """What this cycle changes of a rerun (`looked`: the reruns' jobs as seen now):
    nothing, its release past the deadline, a new status, or its end."""
    if rerun.state not in OPEN:
        return None, None
    if (late := overdue(rerun, now)) is not None:
        return late, None
    job = looked.get(rerun.rerun)
    if job is None:
        return None, None
    change, event = ended(rerun, job, now)
    return (None, None) if change.rerun == rerun else (change, event)


def rerun_failure(before: Rerun, job: Job, streak: int, at: datetime) -> Event:
    """The rerun's failure as a transition of the rerun (`job`, its `rerun_of` the
    failed job), from the status it had when last seen (`before`)."""
    return Event(
        kind=EventKind.TRANSITION,
        job=job,
        from_status=before.rerun_status or "running",
        to_status=job.status,
        at=job.updated_at or at,
        streak=streak,
    )


def release(rerun: Rerun, now: datetime, why: str) -> Change:
    """The rerun given up: its held alerts go out as they were queued."""
    done = dataclasses.replace(rerun, state=RELEASED, ended_at=rerun.ended_at or now)
    log.warning("rerun_released", sref=rerun.sref, rerun=rerun.rerun or None, reason=why)
    return Change(done, Release(PENDING, Step(now, "released", why)))


def overdue(rerun: Rerun, now: datetime) -> Change | None:
    """The release of a rerun that has not ended by its deadline."""
    if rerun.state not in OPEN or now < rerun.deadline:
        return None
    if rerun.state == STARTED:
        return release(rerun, now, f"its rerun {rerun.rerun} had not ended by the deadline")
    why = "the rerun could not be started"
    return release(rerun, now, f"{why}: {rerun.last_error}" if rerun.last_error else why)
