"""Pure: events that come from time passing rather than from a status change.

`stuck`: a job has stayed in one of a rule's statuses for longer than `after` (then
every `repeat_after`). `missed`: no job of a template has started for `every + grace`
since the last one, or since the watcher began watching it. Each event carries its
rule and a sequence number (reminder, or gap), so its key is stable across cycles
and restarts, and it is alerted once.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

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
            limit = (rule.match.every or 0.0) + rule.match.grace
            overdue = (now - anchor).total_seconds()
            if overdue <= limit:
                continue
            job = Job(
                sref="",
                name=state.last_name or name,
                status="",
                template=name,
                started_at=state.last_start,
            )
            out.append(
                Event(
                    kind=EventKind.MISSED,
                    job=job,
                    from_status="",
                    to_status="missed",
                    at=now,
                    stuck_for=overdue,
                    rule=rule.name,
                    seq=int(anchor.timestamp()),
                )
            )
    return out
