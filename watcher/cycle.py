"""One poll cycle as a short sequence of stages, each a function with one contract:

    observe -> diff -> timers -> measure -> route -> reruns -> enrich -> commit
      -> settle -> start reruns -> account

The only place where the pipeline's modules meet; each of them stays ignorant of the
others. Nothing is written before `commit`, so a cycle that fails anywhere before it
leaves the store as it was.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import structlog

from watcher import (
    fast,
    flakes,
    metrics,
    poller,
    regress,
    render,
    rerunner,
    rules,
    staging,
    timers,
    tracker,
)
from watcher.client import ApiError, Client
from watcher.flakes import Rerun
from watcher.metrics import Metrics
from watcher.models import (
    ALWAYS_RECORDED,
    DEFAULT_ACCOUNT,
    FAILURE_STATUSES,
    PERF_KINDS,
    TERMINAL_STATUSES,
    Alert,
    Event,
    EventKind,
    Job,
    JobState,
    Observation,
    TemplateState,
    Window,
)
from watcher.settings import PollSettings, Rule
from watcher.settled import Followed, Settled
from watcher.staging import Staged
from watcher.store import CycleCommit, Lease, Store

log = structlog.get_logger("watcher.cycle")
MAX_ENRICHED = 50  # test-run lookups per cycle; a storm beyond this goes out without them
MAX_EVENT_LINES = 100  # info lines for events per cycle; a storm beyond this is counted
TestRuns = dict[str, list[dict[str, object]]]  # event key -> the job's test runs


@dataclass(frozen=True, slots=True)
class Context:
    """What the stages of one cycle share; made by the daemon for each cycle."""

    client: Client
    store: Store
    poll: PollSettings
    rules: Sequence[Rule]
    settled: Settled
    clock: Callable[[], datetime]
    metrics: Metrics | None = None
    explain: bool = False  # make every event and log every rule's decision on it (debug)
    account: str = DEFAULT_ACCOUNT  # whose jobs (`store` is scoped to it, `rules` for it)
    fence: Lease | None = None  # with PostgreSQL: the commit holds only while this lease does
    dry_run: bool = False  # nothing sent, and no job started (the flake filter's reruns)
    scratch: Path | None = None  # the first poll's scratch file goes here (None: temp folder)
    followed: Followed = field(default_factory=Followed)  # kept by the daemon across cycles


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


@dataclass(frozen=True, slots=True)
class Seen:
    """What the API showed this cycle, and what the store knew before it."""

    observation: Observation
    now: datetime  # read after the responses, which may have corrected the clock
    first: bool  # no cycle was ever committed: the store knows no job
    open_jobs: dict[str, JobState]  # followed before this cycle
    staged: Staged | None = None  # the first poll's jobs kept on disk (`staging`)
    staged_followed: int = 0  # of those, the unfinished ones, followed from now on


@dataclass(frozen=True, slots=True)
class Changes:
    """What the observation changed."""

    found: tracker.Diff
    ended: dict[str, str]  # sref -> status of the listed jobs that had ended before
    templates: dict[str, TemplateState]  # every template known after this cycle
    open_after: dict[str, JobState]  # the unfinished jobs still followed after it
    followed: dict[str, JobState]  # what `store.open_jobs()` reads once it is committed


@dataclass(frozen=True, slots=True)
class Routed:
    """Each event with the rules that fire for it, and the events to record (the
    ledger): those a rule acted on, and timer events (which recur each cycle until
    recorded). A transition no rule wants lives on as its job's new state."""

    events: list[Event]
    fired: list[Sequence[Rule]]  # one entry per event
    ledger: list[tuple[Event, Sequence[Rule]]] = field(init=False)

    def __post_init__(self) -> None:
        pairs = zip(self.events, self.fired, strict=True)
        ledger = [(e, f) for e, f in pairs if f or e.kind in ALWAYS_RECORDED]
        object.__setattr__(self, "ledger", ledger)  # frozen: set once, here


@fast.collector_paused
async def run_cycle(ctx: Context) -> CycleReport:
    """Poll, find what changed, queue its alerts, in one commit; return the summary."""
    started = time.monotonic()
    router = rules.Router(ctx.rules)
    seen = await observe(ctx, router)
    try:
        return await _after_observing(ctx, router, seen, started)
    finally:
        if seen.staged:
            seen.staged.close()


async def _after_observing(
    ctx: Context, router: rules.Router, seen: Seen, started: float
) -> CycleReport:
    known = await known_reruns(ctx, seen)
    changes = await diff(ctx, seen, router)
    timed = await due_timers(ctx, seen, changes)
    measured = await measure(ctx, seen, changes)
    routed = route(ctx, router, [*changes.found.events, *timed, *measured.events])
    routed, reran = await reruns(ctx, seen, changes, router, routed, known)
    runs = await enrich(ctx, routed)
    queued, fresh = await commit(ctx, seen, changes, routed, runs, measured, reran)
    settle(ctx, seen, changes)
    if ctx.metrics:
        for change in reran:
            if change.rerun.state in metrics.RERUN_OUTCOMES:
                ctx.metrics.reruns.labels(ctx.account, change.rerun.state).inc()
    await start_reruns(ctx, known, reran)
    kinds = account(ctx, seen, changes, routed, fresh)
    observation = seen.observation
    return CycleReport(
        window=observation.window,
        pages=observation.pages,
        requests=observation.requests,
        jobs_seen=len(observation.jobs) + len(observation.unchanged) + observation.staged,
        skipped=observation.skipped,
        events=kinds.total(),
        alerts=queued,
        followed=len(changes.open_after) + seen.staged_followed,
        seconds=time.monotonic() - started,
    )


async def observe(ctx: Context, router: rules.Router) -> Seen:
    """Read the window and the followed jobs from the API; write nothing to the store.
    The first poll ever (which records the jobs that had ended without events) keeps the
    jobs that can make no event in a scratch file as the pages come (`staging`)."""
    watermark = await ctx.store.watermark()
    open_jobs = ctx.followed.take(ctx.fence)
    if open_jobs is None:
        open_jobs = await ctx.store.open_jobs()
    now = ctx.clock()
    quiet = watermark is None and not ctx.poll.alert_on_first_run
    staged = staging.open_for(ctx.scratch, now, _held(ctx, router, now)) if quiet else None

    async def listed(sink: Staged | None) -> Observation:
        return await poller.observe(
            ctx.client,
            ctx.poll,
            watermark,
            open_jobs,
            now,
            ctx.settled.by_status,
            ctx.store.count_started_between,
            sink,
        )

    try:
        observation = await listed(staged)
        followed = staged.finish() if staged else 0
    except staging.StagingFailed as exc:
        assert staged is not None  # only a scratch file fails so
        staged.close()
        staged = None
        log.warning("first_poll_in_memory", error=str(exc), hint="the window is read again")
        observation, followed = await listed(None), 0
    except BaseException:
        if staged:
            staged.close()
        raise
    return Seen(observation, ctx.clock(), watermark is None, open_jobs, staged, followed)


def _held(ctx: Context, router: rules.Router, now: datetime) -> staging.Keep:
    """Which unfinished jobs of a first poll stay in memory: those that could make an
    event this cycle (a rule wants their status, or a `stuck` rule's time has come);
    the rest are staged (`staging`). With `explain`, every one (each event is made)."""
    stuck = [r for r in ctx.rules if r.match.event is EventKind.STUCK]

    def keep(job: Job) -> bool:
        if ctx.explain or router.wants(EventKind.TRANSITION, job.status):
            return True
        state = fast.first_state(job, now)
        return bool(stuck) and bool(timers.stuck([job], {job.sref: state}, stuck, now))

    return keep


RERUNS_KEPT = timedelta(days=2)  # reruns read each cycle: every open one, and these


async def known_reruns(ctx: Context, seen: Seen) -> list[Rerun]:
    """The flake filter's reruns (open, or decided lately); each listed rerun job gets
    its `rerun_of`, which its events and its test runs' verdicts heed."""
    known = await ctx.store.reruns(seen.now - RERUNS_KEPT)
    if origins := flakes.origins(known):
        for job in seen.observation.jobs:
            if job.sref in origins:
                job.rerun_of = origins[job.sref]
    return known


async def diff(ctx: Context, seen: Seen, router: rules.Router) -> Changes:
    """Compare the observation with the stored states: transitions, recoveries, streaks,
    the new states, and the templates that `missed` rules begin watching now."""
    jobs = seen.observation.jobs
    # A store that never committed a cycle knows no job: nothing to look up.
    ended, unsettled, previous = (
        ({}, jobs, seen.open_jobs) if seen.first else await _known(ctx.store, jobs, seen.open_jobs)
    )
    known_templates = await ctx.store.templates()
    quiet = seen.staged.templates(known_templates) if seen.staged else {}
    known_templates.update(quiet)
    found = tracker.diff(
        previous,
        unsettled,
        seen.now,
        templates=known_templates,
        baseline=seen.first and not ctx.poll.alert_on_first_run,
        wanted=None if ctx.explain else router.wants,
    )
    for ignored in found.ignored:
        log.warning(
            "job_report_ignored",
            sref=ignored.sref,
            reason=ignored.reason,
            reported_status=ignored.status,
        )
    for name, state in quiet.items():  # written as the staged jobs left them, if not since
        found.templates.setdefault(name, state)
    # The staged unfinished jobs' first sightings, which no rule wanted (else held).
    found.unrouted[EventKind.TRANSITION] += seen.staged_followed
    templates = {**known_templates, **found.templates}
    for name in timers.watched_templates(ctx.rules, templates):
        if name not in templates:  # the watcher begins watching it now
            templates[name] = found.templates[name] = TemplateState(name, watching_since=seen.now)
    open_after = _open_after(seen, found)
    return Changes(found, ended, templates, open_after, _followed(seen, previous, open_after))


async def _known(
    store: Store, observed: Sequence[Job], open_jobs: dict[str, JobState]
) -> tuple[dict[str, str], Sequence[Job], dict[str, JobState]]:
    """What the store knows of the observed jobs: the status of those that had ended, the
    jobs left to diff, and the previous state of each of those it knows."""
    ended, previous = await store.seen([j.sref for j in observed if j.sref not in open_jobs])
    previous.update(open_jobs)
    if not ended:
        return ended, observed, previous
    # Jobs that had ended and still read the same are most of every window: leave them
    # out of the diff, which could only confirm that nothing happened.
    jobs = [j for j in observed if ended.get(j.sref) != j.status]
    # the diff ignores these
    previous.update(await store.states([j.sref for j in jobs if j.sref in ended]))
    return ended, jobs, previous


def _open_after(seen: Seen, found: tracker.Diff) -> dict[str, JobState]:
    """The unfinished jobs still followed once this cycle is committed."""
    gone = set(seen.observation.unfollow)
    after = {sref: s for sref, s in seen.open_jobs.items() if sref not in gone}
    for state in found.states:
        if state.status in TERMINAL_STATUSES or state.sref in gone:
            after.pop(state.sref, None)
        else:
            after[state.sref] = state
    return after


def _followed(
    seen: Seen, previous: dict[str, JobState], open_after: dict[str, JobState]
) -> dict[str, JobState]:
    """The unfinished jobs still followed, as the store will hold them: a job it holds
    unfollowed (known, not followed before) stays so when a new state of it is written."""
    unfollowed = (previous.keys() - seen.open_jobs.keys()) & open_after.keys()
    if not unfollowed:
        return open_after  # the usual case: one dict, which nothing changes once made
    return {sref: state for sref, state in open_after.items() if sref not in unfollowed}


async def due_timers(ctx: Context, seen: Seen, changes: Changes) -> list[Event]:
    """The `stuck` and `missed` events due now that are not recorded yet; none while a
    catch-up is read in steps: the jobs after the step, and the followed jobs' statuses
    now, are not read yet (the last step judges them)."""
    if seen.observation.window.catching_up:
        return []
    unfinished = [j for j in seen.observation.jobs if j.sref in changes.open_after]
    due = [
        *timers.stuck(unfinished, changes.open_after, ctx.rules, seen.now),
        *timers.missed(changes.templates, ctx.rules, seen.now),
    ]
    # Timer events recur every cycle until their key is recorded: skip the known ones
    # before rules and templates run, not after.
    known = await ctx.store.known_events([e.key for e in due])
    return [e for e in due if e.key not in known]


NOTHING_MEASURED = regress.Measured(events=[], series=[], queued=[], looked_up=[], retried=[])


async def measure(ctx: Context, seen: Seen, changes: Changes) -> regress.Measured:
    """The test runs of the completed jobs that regressed/improved rules want (those
    queued by earlier cycles first, at most `poll.test_run_lookups`), judged against
    their series: the events that fire, the series to store, the lookups left."""
    perf = [r for r in ctx.rules if r.match.event in PERF_KINDS]
    if not perf:
        return NOTHING_MEASURED
    pending = await ctx.store.pending_lookups(ctx.poll.test_run_lookups)
    # The first poll records the jobs that had ended without events: nor series.
    quiet = seen.first and not ctx.poll.alert_on_first_run
    done = {s.sref for s in changes.found.states if s.status == "completed"}
    completed = [] if quiet else [j for j in seen.observation.jobs if j.sref in done]
    if not pending and not completed:
        return NOTHING_MEASURED
    return await regress.measure(
        ctx.client,
        perf,
        pending,
        completed,
        ctx.poll.test_run_lookups,
        seen.now,
        ctx.store.series,
    )


def route(ctx: Context, router: rules.Router, events: list[Event]) -> Routed:
    """The rules that fire for each event; with `explain`, each decision logged."""
    if ctx.explain:
        return Routed(events, [_explained(event, ctx.rules) for event in events])
    return Routed(events, [router(event) for event in events])


def _explained(event: Event, rule_list: Sequence[Rule]) -> list[Rule]:
    fired = []
    for decision in rules.evaluate(event, rule_list):
        log.debug(
            "rule_decision", rule=decision.rule.name, event_key=event.key, reason=decision.reason
        )
        if decision.fires:
            fired.append(decision.rule)
    return fired


async def reruns(
    ctx: Context,
    seen: Seen,
    changes: Changes,
    router: rules.Router,
    routed: Routed,
    known: Sequence[Rerun],
) -> tuple[Routed, list[flakes.Change]]:
    """The flake filter's cycle: what the started reruns' ends change (a `flaky` event,
    or the rerun's failure sent to the rules that held), the reruns overdue, and the
    reruns that this cycle's failures ask for (their alerts held)."""
    if not known and not any(r.rerun for r in ctx.rules):
        return routed, []  # no rerun to follow, none to start: the usual case, for free
    events = list(routed.events)
    fired = [flakes.without_rerun_rules(e, f) for e, f in zip(events, routed.fired, strict=True)]
    started = [r for r in known if r.state == flakes.STARTED]
    looked: dict[str, Job] = {}
    if started:
        listed = {j.sref: j for j in seen.observation.jobs}
        looked = await rerunner.look(ctx.client, started, listed)
    done: list[flakes.Change] = []
    for rerun in known:
        change, event = flakes.progress(rerun, looked, seen.now)
        if change is None:
            continue
        if event is not None:
            events.append(event)
            fired.append(router(event))
        elif change.rerun.state == flakes.FAILED:
            job = looked[rerun.rerun]
            change = _report_failure(ctx, changes, router, rerun, job, change, events, fired)
        done.append(change)
    now_routed = Routed(events, fired)
    new = flakes.decide(
        now_routed.ledger, {r.sref: r for r in known}, seen.now, ctx.poll.follow_for
    )
    return now_routed, [*done, *new]


def _report_failure(
    ctx: Context,
    changes: Changes,
    router: rules.Router,
    before: Rerun,
    job: Job,
    change: flakes.Change,
    events: list[Event],
    fired: list[Sequence[Rule]],
) -> flakes.Change:
    """The rerun failed too: its failure goes to the rules that held the first one
    (and to any other that wants it), in place of the held alerts: as the event of this
    cycle's listing, if it made one, else as one made here."""
    done = change.rerun
    when = done.ended_at or ctx.clock()
    holders = [r for r in ctx.rules if r.name in done.rules]
    if not holders:
        return flakes.release(done, when, "the rules that held it are gone")
    template = changes.templates.get(job.template)
    event = flakes.rerun_failure(before, job, template.streak if template else 0, when)
    at = next((i for i, e in enumerate(events) if e.key == event.key), None)
    if at is None:
        events.append(event)
        fired.append(flakes.without_rerun_rules(event, router(event)))
        at = len(events) - 1
    fired[at] = (*fired[at], *(r for r in holders if r not in fired[at]))
    return change


async def start_reruns(
    ctx: Context, known: Sequence[Rerun], reran: Sequence[flakes.Change]
) -> None:
    """The start requests of the reruns due, after the commit that decided them (each
    is committed on its own around its request: `rerunner`)."""
    latest = {r.sref: r for r in known}
    latest.update((c.rerun.sref, c.rerun) for c in reran)
    due = [r for r in latest.values() if r.state in (flakes.DUE, flakes.STARTING)]
    if due and ctx.dry_run:
        log.info("reruns_not_started", count=len(due), reason="dry run")
    elif due:
        started = await rerunner.start_due(ctx.client, ctx.store, due, ctx.clock(), ctx.fence)
        if ctx.metrics and started:
            ctx.metrics.reruns.labels(ctx.account, "started").inc(started)


async def enrich(ctx: Context, routed: Routed) -> TestRuns:
    """Test runs for the failures whose rules ask for them; a failed lookup costs
    nothing but the enrichment."""
    wanted = [
        e
        for e, f in routed.ledger
        if e.kind is EventKind.TRANSITION
        and e.to_status in FAILURE_STATUSES
        and any(r.include_test_runs for r in f)
    ]
    if len(wanted) > MAX_ENRICHED:
        log.warning("test_runs_skipped", events=len(wanted) - MAX_ENRICHED, cap=MAX_ENRICHED)
        wanted = wanted[:MAX_ENRICHED]

    async def one(event: Event) -> tuple[str, list[dict[str, object]] | None]:
        try:
            return event.key, await ctx.client.test_runs(event.job.sref)
        except (ApiError, ValueError) as exc:
            log.warning("test_runs_unavailable", sref=event.job.sref, error=str(exc))
            return event.key, None

    found = await asyncio.gather(*(one(e) for e in wanted))
    return {key: runs for key, runs in found if runs is not None}


def alerts_for(
    event: Event,
    fired: Sequence[Rule],
    test_runs: list[dict[str, object]] | None = None,
    account: str = DEFAULT_ACCOUNT,
) -> list[Alert]:
    """The alerts an event causes: one per firing rule and channel, queued with the
    event's variables and rendered when sent (`render.finish`)."""
    return fast.alerts(event, fired, render.queued(event, test_runs), account) if fired else []


async def commit(
    ctx: Context,
    seen: Seen,
    changes: Changes,
    routed: Routed,
    runs: TestRuns,
    measured: regress.Measured = NOTHING_MEASURED,
    reran: Sequence[flakes.Change] = (),
) -> tuple[int, set[str]]:
    """Write the cycle in one transaction: states, templates, events, their alerts, the
    series and lookups, and the watermark. Returns the alerts queued and the keys of the
    events recorded now."""
    ledger = routed.ledger
    return await ctx.store.commit_cycle(
        CycleCommit(
            states=changes.found.states,
            events=[e for e, _ in ledger],
            # made while they are written, not all at once: each carries its variables
            alerts=(a for e, f in ledger for a in alerts_for(e, f, runs.get(e.key), ctx.account)),
            watermark=seen.observation.window.end,
            now=seen.now,
            unfollowed=seen.observation.unfollow,
            templates=list(changes.found.templates.values()),
            fence=ctx.fence,
            series=measured.series,
            queued=measured.queued,
            looked_up=measured.looked_up,
            retried=measured.retried,
            reruns=reran,
            staged=seen.staged,
        )
    )


SETTLED_STAGED = 200_000  # staged jobs the next listing may skip unparsed (memory bound)
# Staged unfinished jobs kept for the next cycle's start (`Followed`); more are read from
# the store by that cycle instead: held from the end of the first cycle on, their states
# (200 bytes each) would add to its peak, which the settled jobs make.
FOLLOWED_STAGED = 50_000


def settle(ctx: Context, seen: Seen, changes: Changes) -> None:
    """Tell the settled jobs what the store now holds, for the next cycle's listing, and
    keep the followed jobs for the next cycle's start."""
    stored = {s.sref: s.status for s in changes.found.states if s.status in TERMINAL_STATUSES}
    stored.update(changes.ended)  # the diff left those out: the two never share a job
    observation = seen.observation
    ctx.settled.settle(observation.unchanged, observation.ended, stored)
    if seen.staged:
        _adopt_staged(ctx.settled, seen.staged)
    followed = _followed_now(seen, changes)
    if followed is not None:
        ctx.followed.keep(followed, ctx.fence)


def _adopt_staged(settled: Settled, staged: Staged) -> None:
    """A first poll's staged ended jobs settled as written (beyond the bound, or if the
    scratch file fails now that the cycle is committed, the next cycle parses them)."""
    try:
        settled.adopt(staged.ended(SETTLED_STAGED))
    except staging.StagingFailed as exc:
        log.warning("settled_jobs_not_kept", error=str(exc), hint="the next cycle reads them")


def _followed_now(seen: Seen, changes: Changes) -> dict[str, JobState] | None:
    """What the store follows now that the cycle is committed: the unfinished jobs held
    in memory, and those a first poll staged, read back from its scratch file; None if
    they are too many or that file fails now (the next cycle reads the store)."""
    if not seen.staged_followed:
        return changes.followed
    if seen.staged_followed > FOLLOWED_STAGED:
        return None
    assert seen.staged is not None  # only a staged first poll follows staged jobs
    try:
        return {**changes.followed, **seen.staged.followed()}
    except staging.StagingFailed as exc:
        log.warning("followed_jobs_not_kept", error=str(exc), hint="the next cycle reads them")
        return None


def account(
    ctx: Context, seen: Seen, changes: Changes, routed: Routed, fresh: set[str]
) -> collections.Counter[EventKind]:
    """Log the events of this cycle (not those an earlier cycle recorded), count them by
    kind with those no rule could want, and count the records skipped."""
    repeated = {e.key for e, _ in routed.ledger} - fresh  # recorded by an earlier cycle
    pairs = list(zip(routed.events, routed.fired, strict=True))
    if repeated:
        pairs = [(e, f) for e, f in pairs if e.key not in repeated]
    kinds = collections.Counter(e.kind for e, _ in pairs) + changes.found.unrouted
    _log_events(pairs, debug=ctx.explain)
    if ctx.metrics:
        for kind, count in kinds.items():
            ctx.metrics.events.labels(ctx.account, str(kind)).inc(count)
        ctx.metrics.records_skipped.inc(seen.observation.skipped)
    return kinds


def _log_events(pairs: list[tuple[Event, Sequence[Rule]]], *, debug: bool) -> None:
    """A line for each event a rule acted on, up to MAX_EVENT_LINES a cycle (a storm
    must not flood the log: the rest are counted in one line); every event at debug."""
    acted = 0
    for event, rules_fired in pairs:
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
