"""Regressions: completed jobs' test runs -> series -> `regressed` and `improved` events.

A series is (template, page URL, browser, metric); its statistics are `baseline`'s,
its state is kept in the store with the number of regressions it had (the `seq` of
its events, so each regression is alerted once, and its recovery once). The cycle
(`cycle.measure`) reads the test runs of the completed jobs that a `regressed` or
`improved` rule wants, at most `poll.test_run_lookups` a cycle, oldest first; the rest
wait in the store's `lookups` queue. Nothing here does I/O but `read`.

Bad input never makes a verdict: a run without a page URL is skipped, a missing, null
or non-numeric metric gives no value for that series (never a zero), a run whose result
code is an error never enters a baseline, and a lookup that fails is tried again next
cycle (given up, with an error logged, after MAX_ATTEMPTS cycles).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from watcher import baseline, rules
from watcher.client import ApiError, Client
from watcher.models import Event, EventKind, Job
from watcher.settings import Rule
from watcher.store import Lookup, SeriesKey, SeriesRow

log = structlog.get_logger("watcher.regress")
MAX_RUNS_A_JOB = 1000  # test runs read of one job: pages x browsers, usually tens
MAX_ATTEMPTS = 10  # cycles a failing lookup is tried before it is given up

_LAST = float("inf")

TestRuns = list[dict[str, object]]


def series_id(key: SeriesKey) -> str:
    """A series as an event's status (its key's part): template|browser|metric|page URL
    (the URL last: whatever it holds, the other parts stay apart)."""
    template, page, browser, metric = key
    return f"{template}|{browser}|{metric}|{page}"


def series_of(status: str) -> SeriesKey | None:
    """The series that `series_id` wrote as an event's status, for `status` to name it;
    None for a status of another shape."""
    parts = status.split("|", 3)  # a template, browser or metric holds no "|"
    if len(parts) != 4:
        return None
    template, browser, metric, page = parts
    return template, page, browser, metric


def metrics_for(rule_list: Sequence[Rule], job: Job) -> dict[str, baseline.Thresholds]:
    """The metrics whose series a job feeds, each with the thresholds of the first
    regressed/improved rule (in order) that takes the job and names the metric."""
    found: dict[str, baseline.Thresholds] = {}
    for rule in rules.perf_rules(rule_list, job):
        for metric in rule.match.metrics:
            if metric not in found:
                found[metric] = rule.match.thresholds(metric)
    return found


def series_thresholds(rule_list: Sequence[Rule], key: SeriesKey) -> baseline.Thresholds:
    """The thresholds a stored series is shown with: those of the first rule that takes
    a completed job known only by its template and names the metric, else the metric's
    defaults (a series keeps no job's name or type, so a rule that matches on those is
    passed over here). `rule_list` is the series' account's (`rules.rules_for`)."""
    template, _page, _browser, metric = key
    probe = Job(sref="", name="", status="completed", template=template)
    found = metrics_for(rule_list, probe).get(metric)
    return found if found is not None else baseline.Thresholds.for_metric(metric)


def wanted(rule_list: Sequence[Rule], jobs: Iterable[Job]) -> list[Job]:
    """The completed jobs whose test runs some regressed/improved rule wants, by start."""
    if not any(r.match.event in (EventKind.REGRESSED, EventKind.IMPROVED) for r in rule_list):
        return []
    chosen = [j for j in jobs if j.status == "completed" and metrics_for(rule_list, j)]
    chosen.sort(key=lambda j: (j.started_at.timestamp() if j.started_at else _LAST, j.sref))
    return chosen


async def read(client: Client, job: Job) -> TestRuns | None:
    """A job's test runs, every page; None (logged) if the API did not give them."""
    try:
        return await client.test_runs(job.sref, limit=MAX_RUNS_A_JOB)
    except (ApiError, ValueError) as exc:
        log.warning("test_runs_unavailable", sref=job.sref, error=str(exc), retry="next cycle")
        return None


@dataclass(slots=True)
class Judged:
    """What the test runs of a cycle's lookups did to their series."""

    events: list[Event] = field(default_factory=list)
    series: dict[SeriesKey, SeriesRow] = field(default_factory=dict)  # changed ones
    values: int = 0  # values judged (clean or not)
    skipped: int = 0  # runs or values that could not be used


def _page(run: dict[str, object]) -> tuple[str, str] | None:
    """A run's page URL and browser, or None when it names no page."""
    url, browser = run.get("url"), run.get("browser")
    if not isinstance(url, str) or not url:
        return None
    if browser is None:
        browser = ""
    return url, browser if isinstance(browser, str) else str(browser)


def _state(row: SeriesRow | None, key: SeriesKey) -> tuple[baseline.SeriesState, int]:
    if row is None:
        return baseline.SeriesState(), 0
    try:
        return baseline.SeriesState.from_json(row.state), row.regressions
    except ValueError as exc:
        # A lost baseline costs min_runs runs, never a false alarm.
        log.error("series_state_unreadable", series=series_id(key), error=str(exc))
        return baseline.SeriesState(), row.regressions


def judge(
    rule_list: Sequence[Rule],
    looked_up: Sequence[tuple[Job, TestRuns]],
    stored: dict[SeriesKey, SeriesRow],
    now: datetime,
) -> Judged:
    """Pure: each job's runs (jobs in the order they ran) against their series; the
    events that fire and the series as they are after them."""
    out = Judged()
    for job, runs in looked_up:
        metrics = metrics_for(rule_list, job)
        seen: set[tuple[str, str]] = set()
        for run in runs:
            page = _page(run)
            if page is None or page in seen:  # one value per series and job
                out.skipped += 1
                continue
            seen.add(page)
            clean = baseline.clean_run(
                "completed", run.get("resultCode"), rerun_of_failure=bool(job.rerun_of)
            )
            for metric, thresholds in metrics.items():
                key = (job.template, page[0], page[1], metric)
                _observe(out, key, job, run, thresholds, clean, stored, now)
    return out


def _observe(
    out: Judged,
    key: SeriesKey,
    job: Job,
    run: dict[str, object],
    thresholds: baseline.Thresholds,
    clean: bool,
    stored: dict[SeriesKey, SeriesRow],
    now: datetime,
) -> None:
    row = out.series.get(key) or stored.get(key)
    state, regressions = _state(row, key)
    new, verdict = baseline.observe(state, run.get(key[3]), thresholds, clean=clean)
    out.values += 1
    if verdict.skipped == "bad value":
        out.skipped += 1
    if verdict.fired == "regressed":
        regressions += 1
    if verdict.fired is not None:
        out.events.append(_event(key, job, run, verdict, max(regressions, 1), now))
    if row is None or new != state or regressions != row.regressions:
        out.series[key] = SeriesRow(key, new.to_json().decode(), regressions, now)


def _event(
    key: SeriesKey,
    job: Job,
    run: dict[str, object],
    verdict: baseline.Verdict,
    seq: int,
    now: datetime,
) -> Event:
    title = run.get("pageTitle")
    return Event(
        kind=EventKind.REGRESSED if verdict.fired == "regressed" else EventKind.IMPROVED,
        job=job,
        from_status=job.status,
        to_status=series_id(key),
        at=job.updated_at or now,
        seq=seq,
        perf={
            "metric": key[3],
            "value": verdict.value,
            "baseline": verdict.median,
            "delta": verdict.delta,
            "percent": verdict.percent,
            "page_title": title if isinstance(title, str) else "",
            "page_url": key[1],
            "browser": key[2],
            "runs": list(verdict.recent),
            "limit": verdict.limit,
        },
    )


@dataclass(frozen=True, slots=True)
class Measured:
    """What `measure` found, for the route and the commit."""

    events: list[Event]
    series: list[SeriesRow]
    queued: list[Lookup]  # new lookups left for a later cycle (over the cap, or failed)
    looked_up: list[str]  # stored lookups done (or given up)
    retried: list[str]  # stored lookups that failed again
    read: int = 0  # lookups tried this cycle


async def measure(
    client: Client,
    rule_list: Sequence[Rule],
    pending: Sequence[Lookup],
    completed: Sequence[Job],
    cap: int,
    now: datetime,
    load: Callable[[Sequence[SeriesKey]], Awaitable[dict[SeriesKey, SeriesRow]]],
) -> Measured:
    """Read the test runs of the stored lookups (`pending`, oldest first) then of the
    jobs completed this cycle that rules want (`completed`), at most `cap`; judge them."""
    stored_srefs = {p.job.sref for p in pending}
    new = [Lookup(j, now) for j in wanted(rule_list, completed) if j.sref not in stored_srefs]
    batch = [*pending, *new][:cap]
    later = new[max(cap - len(pending), 0) :]
    if later:
        log.info("test_run_lookups_deferred", count=len(later), cap=cap)
    found = await asyncio.gather(*(read(client, q.job) for q in batch))
    looked_up: list[str] = []
    retried: list[str] = []
    queued = list(later)
    good: list[tuple[Job, TestRuns]] = []
    for lookup, runs in zip(batch, found, strict=True):
        stored = lookup.job.sref in stored_srefs
        if runs is not None:
            good.append((lookup.job, runs))
            if stored:
                looked_up.append(lookup.job.sref)
        elif lookup.attempts + 1 >= MAX_ATTEMPTS:
            log.error("test_runs_given_up", sref=lookup.job.sref, attempts=lookup.attempts + 1)
            if stored:
                looked_up.append(lookup.job.sref)
        elif stored:
            retried.append(lookup.job.sref)
        else:
            queued.append(Lookup(lookup.job, now, attempts=1))
    keys = list(
        {
            (job.template, page[0], page[1], metric): None
            for job, runs in good
            for run in runs
            if (page := _page(run)) is not None
            for metric in metrics_for(rule_list, job)
        }
    )
    judged = judge(rule_list, good, await load(keys) if keys else {}, now)
    if judged.skipped:
        log.info("test_run_values_skipped", count=judged.skipped, values=judged.values)
    return Measured(
        events=judged.events,
        series=list(judged.series.values()),
        queued=queued,
        looked_up=looked_up,
        retried=retried,
        read=len(batch),
    )
