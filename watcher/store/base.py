"""What every state store offers (SQLite, PostgreSQL), and the values that cross its
boundary. No I/O here.

Every operation is a coroutine: the PostgreSQL store waits on the network, the SQLite
store answers at once from a local file. A store is *scoped* to one account: the poll
state (jobs, templates, events, the watermark) is the account's own, the outbox and the
leases are shared by all (`scoped` gives the same store seen from another account)."""

from __future__ import annotations

import sys
from collections.abc import Collection, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import msgspec

from watcher import fast
from watcher.flakes import Change, Rerun
from watcher.models import Alert, Event, Job, JobState, OutboxItem, TemplateState
from watcher.people import Ack, AlertRecord, Silence, Step


class StoreError(Exception):
    """The state store cannot be used; the message says which file or database and why."""


class Unreachable(StoreError):
    """The database did not answer at start: perhaps for a while only (exit 1, so that a
    service manager tries again), unlike refused credentials or a foreign schema."""


class Fenced(StoreError):
    """This replica's lease on the account ended: its cycle commits nothing."""


def ts(value: datetime | None) -> float | None:
    return value.timestamp() if value else None


def dt(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def need_dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def once_each(alerts: Iterable[Alert], fresh: Container[str]) -> Iterator[tuple[str, Alert]]:
    """The alerts of the events recorded now (`fresh` keys), each (event, rule, channel)
    once, with their event's key: what keeps an alert from being queued twice, with the
    events' primary key."""
    queued: set[tuple[str, str, str]] = set()
    for alert in alerts:
        event = alert.key
        if event in fresh:
            key = (event, alert.rule, alert.channel)
            if key not in queued:
                queued.add(key)
                yield event, alert


# -- rows read back, the same from either store (the SELECTs name the columns in this order)
STATE_COLUMNS = "sref, status, status_since, first_seen, updated_at, started_at, template, name"
TEMPLATE_COLUMNS = "template, watching_since, streak, last_start, last_name"
EVENT_COLUMNS = "kind, sref, from_status, to_status, at, account, template, lasted"


def job_states(rows: Iterable[Sequence[Any]]) -> dict[str, JobState]:
    """sref -> JobState from rows of STATE_COLUMNS. The followed jobs' states live from
    one cycle to the next: statuses and templates (a handful of values) and dates (the
    rows share them) are one object each, not one a row (a fifth of their memory)."""
    when, intern = fast.Dates(), sys.intern
    return {
        row[0]: JobState(
            sref=row[0],
            status=intern(row[1]),
            status_since=when[row[2]],
            first_seen=when[row[3]],
            updated_at=None if row[4] is None else when[row[4]],
            started_at=None if row[5] is None else when[row[5]],
            template=intern(row[6]),
            name=row[7],
        )
        for row in rows
    }


def template_states(rows: Iterable[Sequence[Any]]) -> dict[str, TemplateState]:
    """template -> TemplateState from rows of TEMPLATE_COLUMNS."""
    return {
        row[0]: TemplateState(
            template=row[0],
            watching_since=need_dt(row[1]),
            streak=row[2],
            last_start=dt(row[3]),
            last_name=row[4],
        )
        for row in rows
    }


def event_reports(rows: Iterable[Sequence[Any]]) -> list[dict[str, object]]:
    """What `status` shows of each event, from rows of EVENT_COLUMNS: `lasted` is how long
    a stuck job had been in its status, or a missed template without a start (seconds)."""
    return [
        {
            "kind": k,
            "sref": s,
            "from": f,
            "to": t,
            "at": need_dt(at).isoformat(),
            "account": a,
            "template": template,
            "lasted": lasted,
        }
        for k, s, f, t, at, a, template, lasted in rows
    ]


@dataclass(frozen=True, slots=True)
class OutboxCounts:
    pending: int
    sent: int
    given_up: int


# -- regressions: a series of test-run values and the completed jobs waiting for a lookup
SeriesKey = tuple[str, str, str, str]  # template, page URL, browser, metric


@dataclass(frozen=True, slots=True)
class SeriesRow:
    """A series as stored: its statistics' state (`baseline.SeriesState` JSON) and how
    many regressions it had (the `seq` of the next `regressed` is one more)."""

    key: SeriesKey
    state: str
    regressions: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Lookup:
    """A completed job whose test runs a regressed/improved rule wants, queued until they
    are read: written by the commit of the cycle that saw it complete, removed by the
    commit of the cycle that read them (with the series they changed)."""

    job: Job
    queued_at: datetime
    attempts: int = 0  # lookups that failed so far


SERIES_COLUMNS = "template, page, browser, metric, state, regressions, updated_at"
LOOKUP_COLUMNS = "job, queued_at, attempts"


def all_series_query(mark: str, account: str, template: str | None) -> tuple[str, list[str]]:
    """The query of `all_series` (either store: `mark` is its parameter mark) and its
    parameters: every series of the account, or of one of its templates, by key."""
    sql = f"SELECT {SERIES_COLUMNS} FROM series WHERE account = {mark}"  # noqa: S608  # constant column names
    params = [account]
    if template is not None:
        sql += f" AND template = {mark}"
        params.append(template)
    return sql + " ORDER BY template, page, browser, metric", params


def latest_series_query(mark: str) -> str:
    """The query of `latest_series` (either store), on (account, limit): the account's
    series updated last, newest first (ties by key, so a page is stable)."""
    return (
        f"SELECT {SERIES_COLUMNS} FROM series WHERE account = {mark}"  # noqa: S608  # constant column names
        f" ORDER BY updated_at DESC, template, page, browser, metric LIMIT {mark}"
    )


def series_rows(rows: Iterable[Sequence[Any]]) -> list[SeriesRow]:
    return [
        SeriesRow((row[0], row[1], row[2], row[3]), row[4], row[5], need_dt(row[6])) for row in rows
    ]


def job_json(job: Job) -> str:
    """A job as a lookup keeps it."""
    return msgspec.json.encode(
        {
            "sref": job.sref,
            "name": job.name,
            "status": job.status,
            "started_at": ts(job.started_at),
            "updated_at": ts(job.updated_at),
            "url": job.url,
            "type": job.type,
            "run_type": job.run_type,
            "started_by": job.started_by,
            "page_count": job.page_count,
            "template": job.template,
            "rerun_of": job.rerun_of,
            "test_runs_uri": job.test_runs_uri,
        }
    ).decode()


def job_from_json(text: str) -> Job:
    doc = msgspec.json.decode(text)
    return Job(
        sref=doc["sref"],
        name=doc["name"],
        status=doc["status"],
        started_at=dt(doc["started_at"]),
        updated_at=dt(doc["updated_at"]),
        url=doc["url"],
        type=doc["type"],
        run_type=doc["run_type"],
        started_by=doc["started_by"],
        page_count=doc["page_count"],
        template=doc["template"],
        test_runs_uri=doc["test_runs_uri"],
        rerun_of=doc.get("rerun_of", ""),
    )


def lookups(rows: Iterable[Sequence[Any]]) -> list[Lookup]:
    return [Lookup(job_from_json(row[0]), need_dt(row[1]), row[2]) for row in rows]


# A staged job's row: (sref, status, status since, first seen, updated, started,
# template, name, ended), times as POSIX seconds.
StagedRow = tuple[str, str, float, float, float | None, float | None, str, str, bool]


class StagedRows(Protocol):
    """Rows of jobs kept out of memory (`staging.Staged`), in chunks; readable more
    than once (a commit retried on a new connection)."""

    def rows(self) -> Iterator[list[StagedRow]]: ...

    def shared(self) -> tuple[Path, str]:
        """The rows' SQLite file, readable by another connection from now on, and the
        query of `rows`' columns from it once attached as `scratch` (one parameter:
        the first-seen time), for a SQLite store to copy them without Python."""
        ...


@dataclass(frozen=True, slots=True)
class CycleCommit:
    """What one successful poll cycle writes, all at once."""

    states: Sequence[JobState]
    events: Sequence[Event]
    alerts: Iterable[Alert]  # read once
    watermark: datetime
    now: datetime
    unfollowed: Sequence[str] = ()
    templates: Sequence[TemplateState] = ()
    fence: Lease | None = None  # PostgreSQL: commit only while this lease holds
    series: Sequence[SeriesRow] = ()  # written whole (upserted)
    queued: Sequence[Lookup] = ()  # lookups to queue (a job queued already is kept)
    looked_up: Sequence[str] = ()  # srefs whose lookup is done (or given up): removed
    retried: Sequence[str] = ()  # srefs whose lookup failed this cycle: attempts + 1
    reruns: Sequence[Change] = ()  # the flake filter's new and changed reruns
    staged: StagedRows | None = None  # the first poll's jobs, written with `states`


@dataclass(frozen=True, slots=True)
class Lease:
    """An account's leadership as this replica holds it: `epoch` grows with every
    change of holder, so a deposed leader's writes can be told from the new one's."""

    account: str
    holder: str
    epoch: int


@dataclass(frozen=True, slots=True)
class Leader:
    """Who leads an account, as the store records it (for status and metrics)."""

    account: str
    holder: str
    epoch: int
    expires_in: float  # seconds, by the database's clock; negative once expired


class Store(Protocol):
    """The operations the pipeline needs; both backends implement exactly these."""

    account: str

    def scoped(self, account: str) -> Store: ...
    async def watermark(self) -> datetime | None: ...
    async def open_jobs(self) -> dict[str, JobState]: ...
    async def states(self, srefs: Sequence[str]) -> dict[str, JobState]: ...
    async def seen(self, srefs: Sequence[str]) -> tuple[dict[str, str], dict[str, JobState]]: ...
    async def templates(self) -> dict[str, TemplateState]: ...
    async def known_events(self, keys: Sequence[str]) -> set[str]: ...
    async def count_started_between(self, start: datetime, end: datetime) -> int: ...
    async def commit_cycle(self, commit: CycleCommit) -> tuple[int, set[str]]: ...
    async def reruns(self, since: datetime) -> list[Rerun]: ...
    async def save_rerun(
        self,
        change: Change,
        now: datetime,
        *,
        expect: tuple[str, int] | None = None,
        fence: Lease | None = None,
    ) -> bool: ...
    async def prune(self, before: datetime, limit: int = 5000) -> int: ...
    async def due(
        self, now: datetime, limit: int = 1000, busy: Collection[str] = ()
    ) -> list[OutboxItem]: ...
    async def claim(self, ids: Sequence[int], holder: str, seconds: float) -> set[int]: ...
    async def next_due(self) -> datetime | None: ...
    async def mark_sent(self, ids: Sequence[int], now: datetime) -> None: ...
    async def mark_retry(
        self,
        ids: Sequence[int],
        next_at: datetime,
        error: str,
        done_targets: frozenset[int],
        *,
        now: datetime,
    ) -> None: ...
    async def mark_held(self, ids: Sequence[int], until: datetime, *, now: datetime) -> None: ...
    async def mark_dropped(self, ids: Sequence[int], step: Step) -> None: ...
    async def requeue(self, ids: Sequence[int] | None, now: datetime) -> list[int]: ...
    async def alert_records(
        self,
        since: datetime,
        *,
        channel: str | None = None,
        state: str | None = None,
        ids: Sequence[int] | None = None,
        limit: int = 500,
    ) -> list[AlertRecord]: ...
    async def mark_resolved(self, ids: Sequence[int], now: datetime) -> None: ...
    async def mark_given_up(self, ids: Sequence[int], now: datetime, error: str) -> None: ...
    async def resolved(self, alert: Alert) -> bool: ...
    async def outbox_counts(self, *, sent: bool = True) -> OutboxCounts: ...
    async def outbox_items(
        self, state: str, limit: int = 50
    ) -> list[tuple[Alert, dict[str, object]]]: ...
    async def known_jobs(self) -> tuple[int, int]: ...
    async def recent_events(self, limit: int = 20) -> list[dict[str, object]]: ...
    async def acquire(self, account: str, holder: str, seconds: float) -> Lease | None: ...
    async def renew(self, lease: Lease, seconds: float) -> bool: ...
    async def release(self, lease: Lease) -> None: ...
    async def leaders(self) -> list[Leader]: ...
    async def replicas(self, holder: str, seconds: float) -> int: ...
    # -- people in the loop: shared by every account, like the outbox
    async def add_silence(self, silence: Silence, now: datetime) -> int: ...
    async def silences(self, since: datetime | None = None) -> list[Silence]: ...
    async def expire_silence(self, silence_id: int, now: datetime) -> Silence | None: ...
    async def add_ack(self, ack: Ack, now: datetime) -> int: ...
    async def acks(self) -> list[Ack]: ...
    async def expire_ack(self, ack_id: int, now: datetime) -> Ack | None: ...
    async def runs(self, per_template: int) -> dict[str, list[JobState]]: ...
    # -- regressions
    async def pending_lookups(self, limit: int) -> list[Lookup]: ...
    async def series(self, keys: Sequence[SeriesKey]) -> dict[SeriesKey, SeriesRow]: ...
    async def all_series(self, template: str | None = None) -> list[SeriesRow]: ...
    async def latest_series(self, limit: int) -> list[SeriesRow]: ...
    async def checkpoint(self) -> None: ...
    async def usable(self) -> bool: ...
    async def close(self) -> None: ...
