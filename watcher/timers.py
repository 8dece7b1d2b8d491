"""Pure: events that come from time passing rather than from a status change.

`stuck`: a job has stayed in one of a rule's statuses for longer than `after` (then
every `repeat_after`). `missed`: no job of a template has started for `every + grace`
since the last one, or since the watcher began watching it; or, with a cron
`schedule`, none started within `grace` of a scheduled time (`missed_slot`). Each
event carries its rule and a sequence number (reminder, gap, or scheduled time), so
its key is stable across cycles and restarts, and it is alerted once.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from watcher import cron
from watcher.models import Event, EventKind, Job, JobState, TemplateState
from watcher.settings import Rule


def stuck(
    jobs: Iterable[Job], states: Mapping[str, JobState], rules: Sequence[Rule], now: datetime
) -> list[Event]:
    """Stuck events for unfinished jobs, given their states after this cycle."""
    out: list[Event] = []
    timers = [r for r in rules if r.match.event is EventKind.STUCK]
    for job in jobs:
        state = states.get(job.sref)
        if state is None or state.ended:
            continue
        stuck_for = (now - state.status_since).total_seconds()
        for rule in timers:
            after = rule.match.after or 0.0
            if state.status not in rule.match.status or stuck_for < after:
                continue
            seq = int((stuck_for - after) // rule.repeat_after) if rule.repeat_after else 0
            out.append(
                Event(
                    kind=EventKind.STUCK,
                    job=job,
                    from_status=state.status,
                    to_status=state.status,
                    at=now,
                    stuck_for=stuck_for,
                    rule=rule.name,
                    seq=seq,
                )
            )
    return out


def watched_templates(rules: Sequence[Rule], known: Iterable[str]) -> dict[str, list[Rule]]:
    """Templates each `missed` rule watches: its exact names, and known ones its globs match."""
    known = list(known)
    out: dict[str, list[Rule]] = {}
    for rule in rules:
        if rule.match.event is not EventKind.MISSED:
            continue
        for pattern in rule.match.template:
            names = (
                fnmatch.filter(known, pattern) if any(c in pattern for c in "*?[") else [pattern]
            )
            for name in names:
                watchers = out.setdefault(name, [])
                if rule not in watchers:  # two patterns of one rule can name one template
                    watchers.append(rule)
    return out


def missed(
    templates: Mapping[str, TemplateState], rules: Sequence[Rule], now: datetime
) -> list[Event]:
    """Missed events for watched templates whose next run is overdue."""
    out: list[Event] = []
    for name, watchers in watched_templates(rules, templates).items():
        state = templates.get(name)
        if state is None:
            continue
        anchor = state.last_start or state.watching_since
        for rule in watchers:
            if rule.match.schedule is not None:
                slot = missed_slot(state, rule, now)
                if slot is not None:
                    out.append(_missed(name, state, rule, now, slot, int(slot.timestamp()) // 60))
                continue
            limit = (rule.match.every or 0.0) + rule.match.grace
            if (now - anchor).total_seconds() > limit:
                out.append(_missed(name, state, rule, now, anchor, int(anchor.timestamp())))
    return out


def missed_slot(state: TemplateState, rule: Rule, now: datetime) -> datetime | None:
    """The scheduled time (UTC) whose run a template with a `schedule` rule missed, if any.

    Scheduled times are the rule's cron schedule in its time zone (`cron`: DST-correct;
    a wall time repeated by a fall-back change counts once). The one judged is the
    latest T with T + grace <= now and T at or after watching began; only that one:
    after a long downtime the latest missed run is alerted, not each one missed
    meanwhile (nor an older one when the latest did run).

    T's run is there when the template's newest start (`last_start`) is at or after
    T - early, where early is `grace` but at most half the time since the previous
    scheduled time: a job started a little early (clock skew, a queue that starts it
    ahead) counts for the run it is nearest to, and never for the run before. A job
    that started later than T + grace also counts, when it is seen before T is judged
    (the newest start alone cannot tell whether an earlier one came in time); while
    the watcher runs, T is judged in the first cycle past T + grace.
    """
    found = _latest_run(rule.match.schedule or "", rule.match.timezone, rule.match.grace, now)
    if found is None or found[0] < state.watching_since:
        return None
    slot, early = found
    if state.last_start is not None and state.last_start >= slot - early:
        return None
    return slot


@functools.lru_cache(maxsize=64)  # one answer per rule and cycle, whatever the templates
def _latest_run(
    schedule: str, timezone: str, grace_seconds: float, now: datetime
) -> tuple[datetime, timedelta] | None:
    """The latest scheduled time T with T + grace <= now, and how early a start may be
    and still count for it."""
    trigger = cron.trigger(schedule, timezone)
    grace = timedelta(seconds=grace_seconds)
    slot = cron.latest(trigger, cron.EPOCH, now - grace)
    if slot is None:
        return None
    early = grace
    before = cron.latest(trigger, slot - 2 * grace, slot - _TICK) if grace else None
    if before is not None:
        early = min(early, (slot - before) / 2)
    return slot, early


_TICK = timedelta(microseconds=1)


def _missed(
    name: str, state: TemplateState, rule: Rule, now: datetime, since: datetime, seq: int
) -> Event:
    """A missed event: `stuck_for` is the time since `since` (the last start, or when
    watching began; for a schedule, the scheduled time that was missed)."""
    job = Job(
        sref="",
        name=state.last_name or name,
        status="",
        template=name,
        started_at=state.last_start,
    )
    return Event(
        kind=EventKind.MISSED,
        job=job,
        from_status="",
        to_status="missed",
        at=now,
        stuck_for=(now - since).total_seconds(),
        rule=rule.name,
        seq=seq,
    )
