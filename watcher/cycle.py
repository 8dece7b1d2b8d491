"""One poll cycle end to end: observe -> diff -> timers -> route and render -> one commit.

The only place where the pipeline's stages meet; each stage stays ignorant of the
others. A cycle that fails anywhere before the commit leaves the store untouched.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import gc
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

import structlog

from watcher import poller, render, rules, timers, tracker
from watcher.client import ApiError, Client
from watcher.metrics import Metrics
from watcher.models import (
    FAILURE_STATUSES,
    TERMINAL_STATUSES,
    Alert,
    Event,
    EventKind,
    Job,
    JobState,
    TemplateState,
    Window,
)
from watcher.settings import PollSettings, Rule
from watcher.store import CycleCommit, Store

log = structlog.get_logger("watcher.cycle")
MAX_ENRICHED = 50  # test-run lookups per cycle; a storm beyond this goes out without them
MAX_EVENT_LINES = 100  # info lines for events per cycle; a storm beyond this is counted
TIMER_KINDS = frozenset({EventKind.STUCK, EventKind.MISSED})
P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CycleReport:
    window: Window
    pages: int
    requests: int
    jobs_seen: int
    skipped: int
    events: int
    alerts: int
    followed: int
    seconds: float


def alerts_for(
    event: Event, fired: Sequence[Rule], test_runs: list[dict[str, object]] | None = None
) -> list[Alert]:
    """The alerts an event causes: one per firing rule and channel, queued with the
    event's variables and rendered when sent (`render.finish`)."""
    if not fired:
        return []
    variables = render.queued(event, test_runs)
    job, stuck = event.job, event.kind is EventKind.STUCK
    return [
        Alert(  # positional, in the order of Alert's fields: a storm makes tens of thousands
            event.key,
            rule.name,
            channel,
            rule.severity,
            "",  # title and body: rendered when sent
            "",
            job.sref,
            event.kind,
            job.template,
            stuck or rule.drop_if_resolved,
            variables,
            rule.title,
            rule.body,
        )
        for rule in fired
        for channel in rule.notify
    ]


def _explained(event: Event, rule_list: Sequence[Rule]) -> list[Rule]:
    """The rules that fire for the event, each decision logged (at debug)."""
    fired = []
    for decision in rules.evaluate(event, rule_list):
        log.debug(
            "rule_decision", rule=decision.rule.name, event_key=event.key, reason=decision.reason
        )
        if decision.fires:
            fired.append(decision.rule)
    return fired


async def _enrich(client: Client, wanted: list[Event]) -> dict[str, list[dict[str, object]]]:
    """Test runs for the events whose rules ask for them; a failed lookup costs nothing
    but the enrichment."""
    if len(wanted) > MAX_ENRICHED:
        log.warning("test_runs_skipped", events=len(wanted) - MAX_ENRICHED, cap=MAX_ENRICHED)
        wanted = wanted[:MAX_ENRICHED]

    async def one(event: Event) -> tuple[str, list[dict[str, object]] | None]:
        try:
            return event.key, await client.test_runs(event.job.sref)
        except (ApiError, ValueError) as exc:
            log.warning("test_runs_unavailable", sref=event.job.sref, error=str(exc))
            return event.key, None

    found = await asyncio.gather(*(one(e) for e in wanted))
    return {key: runs for key, runs in found if runs is not None}


def _log_events(events: list[Event], fired: list[Sequence[Rule]], *, debug: bool) -> None:
    """A line for each event a rule acted on, up to MAX_EVENT_LINES a cycle (a storm
    must not flood the log: the rest are counted in one line); every event at debug."""
    acted = 0
    for event, rules_fired in zip(events, fired, strict=True):
        if rules_fired:
            acted += 1
        if rules_fired and acted <= MAX_EVENT_LINES:
            emit = log.info
        elif debug:
            emit = log.debug
        else:
            continue
        emit(
            "job_event",
            kind=str(event.kind),
            sref=event.job.sref,
            name=event.job.name,
            from_status=event.from_status,
            to_status=event.to_status,
            streak=event.streak,
            rules=[r.name for r in rules_fired],
        )
    if acted > MAX_EVENT_LINES:
        log.info(
            "job_events_not_listed",
            count=acted - MAX_EVENT_LINES,
            hint="log.level debug lists every event; watcher status shows the outbox",
        )


def _known(
    store: Store, observed: Sequence[Job], open_jobs: dict[str, JobState]
) -> tuple[dict[str, str], Sequence[Job], dict[str, JobState]]:
    """What the store knows of the observed jobs: the status of those that had ended, the
    jobs left to diff, and the previous state of each of those it knows."""
    ended, previous = store.seen([j.sref for j in observed if j.sref not in open_jobs])
    previous.update(open_jobs)
    if not ended:
        return ended, observed, previous
    # Jobs that had ended and still read the same are most of every window: leave them
    # out of the diff, which could only confirm that nothing happened.
    jobs = [j for j in observed if ended.get(j.sref) != j.status]
    previous.update(store.states([j.sref for j in jobs if j.sref in ended]))  # ignored by the diff
    return ended, jobs, previous


def _ended(before: dict[str, str], states: list[JobState]) -> dict[str, str]:
    """sref -> status of the window's ended jobs as the store now holds them: those that
    had ended (`before`) and those that ended in this cycle (the diff leaves the others
    out, so the two never share a job)."""
    ended = {s.sref: s.status for s in states if s.status in TERMINAL_STATUSES}
    ended.update(before)
    return ended


def _collector_paused(
    cycle: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Run the cycle with the garbage collector paused: a window of new jobs allocates
    millions of objects and no reference cycles, and collections set off by them would
    rescan the growing heap again and again (0.5 s of a 100k-job first cycle)."""

    @functools.wraps(cycle)
    async def paused(*args: P.args, **kwargs: P.kwargs) -> T:
        collecting = gc.isenabled()
        gc.disable()
        try:
            return await cycle(*args, **kwargs)
        finally:
            if collecting:
                gc.enable()

    return paused


@_collector_paused
async def run_cycle(
    client: Client,
    store: Store,
    poll: PollSettings,
    rule_list: Sequence[Rule],
    clock: Callable[[], datetime],
    metrics: Metrics | None = None,
) -> CycleReport:
    started = time.monotonic()
    watermark = store.watermark()
    open_jobs = store.open_jobs()
    observation, unfollow = await poller.observe(
        client, poll, watermark, open_jobs, clock(), store.count_started_between
    )
    # Read the clock again: the responses may have corrected it (see Daemon._api_time).
    now = clock()
    # A store that never committed a cycle knows no job: nothing to look up.
    ended, jobs, previous = (
        _known(store, observation.jobs, open_jobs)
        if watermark is not None
        else ({}, observation.jobs, open_jobs)
    )
    known_templates = store.templates()
    baseline = watermark is None and not poll.alert_on_first_run
    explain = log.is_enabled_for(logging.DEBUG)
    route = rules.Router(rule_list)
    # At debug every event is made and logged; else only those some rule could want.
    routable = None if explain else route.wants
    diff = tracker.diff(
        previous, jobs, now, templates=known_templates, baseline=baseline, wanted=routable
    )
    for ignored in diff.ignored:
        log.warning(
            "job_report_ignored",
            sref=ignored.sref,
            reason=ignored.reason,
            reported_status=ignored.status,
        )
    templates = {**known_templates, **diff.templates}
    for name in timers.watched_templates(rule_list, templates):
        if name not in templates:  # the watcher begins watching it now
            templates[name] = diff.templates[name] = TemplateState(name, watching_since=now)
    gone = set(unfollow)
    # The unfinished jobs after this cycle, still followed: what stuck timers look at.
    after = {sref: s for sref, s in open_jobs.items() if sref not in gone}
    for state in diff.states:
        if state.status in TERMINAL_STATUSES or state.sref in gone:
            after.pop(state.sref, None)
        else:
            after[state.sref] = state
    unfinished = [j for j in observation.jobs if j.sref in after]
    timed = [
        *timers.stuck(unfinished, after, rule_list, now),
        *timers.missed(templates, rule_list, now),
    ]
    # Timer events recur every cycle until their key is recorded: skip the known ones
    # before rules and templates run, not after.
    known = store.known_events([e.key for e in timed])
    events = [*diff.events, *(e for e in timed if e.key not in known)]
    if explain:
        fired: list[Sequence[Rule]] = [_explained(event, rule_list) for event in events]
    else:
        fired = [route(event) for event in events]
    # The events recorded are the ledger that keeps an alert from going out twice: those
    # a rule acted on, and timer events (which recur each cycle until recorded). A
    # transition no rule wants lives on as its job's new state.
    ledger = [(e, f) for e, f in zip(events, fired, strict=True) if f or e.kind in TIMER_KINDS]
    wanted = [
        e
        for e, f in ledger
        if e.kind is EventKind.TRANSITION
        and e.to_status in FAILURE_STATUSES
        and any(r.include_test_runs for r in f)
    ]
    runs = await _enrich(client, wanted) if wanted else {}
    queued, fresh = store.commit_cycle(
        CycleCommit(
            states=diff.states,
            events=[e for e, _ in ledger],
            # made while they are written, not all at once: each carries its variables
            alerts=(a for e, f in ledger for a in alerts_for(e, f, runs.get(e.key))),
            watermark=observation.window.end,
            now=now,
            unfollowed=unfollow,
            templates=list(diff.templates.values()),
        )
    )
    client.settle(_ended(ended, diff.states))
    repeated = {e.key for e, _ in ledger} - fresh  # recorded by an earlier cycle already
    if repeated:
        fired = [f for e, f in zip(events, fired, strict=True) if e.key not in repeated]
        events = [e for e in events if e.key not in repeated]
    kinds = collections.Counter(e.kind for e in events) + diff.unrouted
    _log_events(events, fired, debug=explain)
    if metrics:
        for kind, count in kinds.items():
            metrics.events.labels(str(kind)).inc(count)
        metrics.records_skipped.inc(observation.skipped)
    return CycleReport(
        window=observation.window,
        pages=observation.pages,
        requests=observation.requests,
        jobs_seen=len(observation.jobs) + observation.unchanged,
        skipped=observation.skipped,
        events=kinds.total(),
        alerts=queued,
        followed=len(after),
        seconds=time.monotonic() - started,
    )
