"""The PostgreSQL state store: what the SQLite store keeps, shared by replicas (its
outbox half and leases are in `pg_outbox`).

psycopg 3, async, with a small pool. PgBouncer in transaction mode keeps working: no
server-side prepared statements (`prepare_threshold=None`), no session state (the
timeouts are set per transaction with `set_config(..., true)`, the migration lock is
a transaction-scoped advisory lock). Each call is one transaction; one that loses its
connection (a restarted or failed-over server) is tried again on a fresh one within
WAIT_SECONDS, which is safe because every write here is idempotent: a cycle's events
are recorded by key, and an outbox row's state is set, not toggled.

Bulk writes send each column as one array (`unnest`): a window of 100k jobs is one
statement and one round trip.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import psycopg
import psycopg_pool
from psycopg import AsyncConnection, conninfo

from watcher.models import DEFAULT_ACCOUNT, TERMINAL_STATUSES, JobState, TemplateState
from watcher.store.base import (
    EVENT_COLUMNS,
    LOOKUP_COLUMNS,
    STATE_COLUMNS,
    TEMPLATE_COLUMNS,
    CycleCommit,
    Fenced,
    Lease,
    Lookup,
    SeriesKey,
    SeriesRow,
    Store,
    StoreError,
    Unreachable,
    all_series_query,
    event_reports,
    job_json,
    job_states,
    latest_series_query,
    lookups,
    once_each,
    series_rows,
    template_states,
    ts,
)
from watcher.store.pg_outbox import PgOutbox
from watcher.store.pg_people import PgPeople
from watcher.store.pg_reruns import PgReruns, write_change
from watcher.store.pg_schema import MIGRATION_LOCK, PG_MIGRATIONS, PG_SCHEMA_VERSION, TABLES

T = TypeVar("T")
Work = Callable[[AsyncConnection[Any]], Awaitable[T]]

STATEMENT_SECONDS = 30  # server side: a statement running longer is cancelled
IDLE_SECONDS = 60  # server side: a transaction left idle longer is ended
WAIT_SECONDS = 45.0  # client side: a call (with its retries) gives up after this
CONNECT_SECONDS = 10
POOL_SIZE = 4  # a cycle, deliveries and the lease keeper run at once
_TIMEOUTS = (
    "SELECT set_config('statement_timeout', %s, true),"
    " set_config('idle_in_transaction_session_timeout', %s, true)"
)
_SELECT_STATES = f"SELECT {STATE_COLUMNS} FROM jobs WHERE account = %s"  # noqa: S608  # constant column names


def where(url: str) -> str:
    """The database a URL names, without its credentials: for messages."""
    try:
        parts = conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "the configured database"
    return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"


def connect_args() -> dict[str, Any]:
    # TCP keepalives and a user timeout: a server that went silent (a partition, a
    # proxy that lost it) fails the call instead of hanging it.
    return {
        "prepare_threshold": None,
        "connect_timeout": CONNECT_SECONDS,
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
        "tcp_user_timeout": int(WAIT_SECONDS * 1000),
        "application_name": "watcher",
    }


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as columns, one list each (what `unnest` takes)."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width


class PgStore(PgOutbox, PgPeople, PgReruns):
    def __init__(self, url: str, pool: psycopg_pool.AsyncConnectionPool[Any]) -> None:
        self.url = url
        self.account = DEFAULT_ACCOUNT
        self._pool = pool

    @classmethod
    async def open(cls, url: str) -> PgStore:
        """Connect, check the schema and move it forward; StoreError says why not
        (unreachable, refused credentials, a foreign or newer database) without the URL's
        credentials."""
        try:
            async with await AsyncConnection.connect(url, **connect_args()) as conn:
                await _migrate(conn, url)
        except psycopg.Error as exc:
            message = f"state.url: cannot use {where(url)}: {_reason(exc)}"
            if isinstance(exc, psycopg.OperationalError) and not _refused(exc):
                raise Unreachable(message) from None
            raise StoreError(message) from None
        pool: psycopg_pool.AsyncConnectionPool[Any] = psycopg_pool.AsyncConnectionPool(
            url,
            min_size=1,
            max_size=POOL_SIZE,
            kwargs=connect_args(),
            open=False,
            timeout=WAIT_SECONDS,
            name="watcher",
        )
        await pool.open()
        return cls(url, pool)

    def scoped(self, account: str) -> Store:
        view = copy.copy(self)  # the same pool, another account's poll state
        view.account = account
        return view

    async def close(self) -> None:
        await self._pool.close()

    async def checkpoint(self) -> None:
        return None  # the server keeps its own log

    async def usable(self) -> bool:
        try:
            await self._run(lambda conn: conn.execute("SELECT 1"), budget=5.0)
        except StoreError:
            return False
        return True

    async def _run(self, work: Work[T], *, budget: float = WAIT_SECONDS) -> T:
        """`work` in one transaction, tried again on a fresh connection while the
        connection is what failed, within `budget` seconds; StoreError if it cannot be
        done. `Fenced` (a lease that ended) passes through."""
        deadline = time.monotonic() + budget
        delay = 0.2
        while True:
            try:
                async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                    async with self._pool.connection() as conn:
                        await conn.execute(_TIMEOUTS, (f"{STATEMENT_SECONDS}s", f"{IDLE_SECONDS}s"))
                        return await work(conn)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                lost = not isinstance(exc, psycopg.errors.QueryCanceled)
                if lost and time.monotonic() + delay < deadline:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                raise StoreError(f"state.url: {where(self.url)}: {_reason(exc)}") from None
            except psycopg.Error as exc:
                raise StoreError(f"state.url: {where(self.url)}: {_reason(exc)}") from None
            except TimeoutError:
                raise StoreError(
                    f"state.url: {where(self.url)} did not answer within {budget:g}s"
                ) from None

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async def work(conn: AsyncConnection[Any]) -> list[tuple[Any, ...]]:
            cursor = await conn.execute(sql, params)
            return await cursor.fetchall()

        return await self._run(work)

    # -- poll state ---------------------------------------------------------------------

    @property
    def _watermark_key(self) -> str:
        return f"watermark/{self.account}"

    async def watermark(self) -> datetime | None:
        rows = await self._rows("SELECT value FROM meta WHERE key = %s", (self._watermark_key,))
        return datetime.fromisoformat(rows[0][0]) if rows else None

    async def states(self, srefs: Sequence[str]) -> dict[str, JobState]:
        if not srefs:
            return {}
        return job_states(
            await self._rows(_SELECT_STATES + " AND sref = ANY(%s)", (self.account, list(srefs)))
        )

    async def seen(self, srefs: Sequence[str]) -> tuple[dict[str, str], dict[str, JobState]]:
        """The status of the listed jobs that ended, the state of the others."""
        if not srefs:
            return {}, {}
        sql = _SELECT_STATES.replace(" FROM", ", ended FROM") + " AND sref = ANY(%s)"
        ended: dict[str, str] = {}
        unended = []
        for row in await self._rows(sql, (self.account, list(srefs))):
            if row[8]:
                ended[row[0]] = row[1]
            else:
                unended.append(row)
        return ended, job_states(unended)

    async def open_jobs(self) -> dict[str, JobState]:
        sql = _SELECT_STATES + " AND NOT ended AND followed"
        return job_states(await self._rows(sql, (self.account,)))

    async def templates(self) -> dict[str, TemplateState]:
        sql = f"SELECT {TEMPLATE_COLUMNS} FROM templates WHERE account = %s"  # noqa: S608  # constant column names
        return template_states(await self._rows(sql, (self.account,)))

    async def known_events(self, keys: Sequence[str]) -> set[str]:
        if not keys:
            return set()
        sql = "SELECT key FROM events WHERE account = %s AND key = ANY(%s)"
        return {row[0] for row in await self._rows(sql, (self.account, list(keys)))}

    async def count_started_between(self, start: datetime, end: datetime) -> int:
        rows = await self._rows(
            "SELECT COUNT(*) FROM jobs WHERE account = %s AND first_seen >= %s"
            " AND started_at >= %s AND started_at < %s",
            (self.account, start.timestamp(), start.timestamp(), end.timestamp()),
        )
        return int(rows[0][0])

    async def commit_cycle(self, commit: CycleCommit) -> tuple[int, set[str]]:
        """One cycle in one transaction, as the SQLite store does, and only while
        `commit.fence` holds (checked in the same transaction, the lease row locked
        against a takeover until the commit ends). The rows are made before the
        transaction, so a try on a fresh connection writes the same ones."""
        account = self.account
        jobs = _columns(_job_rows(commit), 9)
        unfollowed = list(commit.unfollowed)
        templates = _columns(
            [
                (t.template, t.watching_since.timestamp(), t.streak, ts(t.last_start), t.last_name)
                for t in commit.templates
            ],
            5,
        )
        events = {e.key: e for e in commit.events}
        alerts = list(once_each(commit.alerts, events))
        now = commit.now.timestamp()
        series = _columns(
            [(*r.key, r.state, r.regressions, r.updated_at.timestamp()) for r in commit.series], 7
        )
        queued = _columns(
            [
                (
                    q.job.sref,
                    job_json(q.job),
                    ts(q.job.started_at),
                    q.queued_at.timestamp(),
                    q.attempts,
                )
                for q in commit.queued
            ],
            5,
        )
        retried, looked_up = list(commit.retried), list(commit.looked_up)

        async def work(conn: AsyncConnection[Any]) -> tuple[int, set[str]]:
            if commit.fence is not None:
                await _hold(conn, commit.fence)
            await conn.execute(_UPSERT_JOBS, (account, *jobs))
            for chunk in commit.staged.rows() if commit.staged else ():
                staged = _columns(chunk, 9)
                await conn.execute(_UPSERT_JOBS, (account, *staged))
            if unfollowed:
                await conn.execute(
                    "UPDATE jobs SET followed = FALSE WHERE account = %s AND sref = ANY(%s)",
                    (account, unfollowed),
                )
            await conn.execute(_UPSERT_TEMPLATES, (account, *templates))
            fresh = await _record_events(conn, account, events, now)
            sent = [(key, a) for key, a in alerts if key in fresh]
            await conn.execute(_QUEUE, (account, now, now, *_columns(_alert_rows(sent), 15)))
            if commit.series:
                await conn.execute(_UPSERT_SERIES, (account, *series))
            if commit.queued:
                await conn.execute(_QUEUE_LOOKUPS, (account, *queued))
            if retried:
                await conn.execute(
                    "UPDATE lookups SET attempts = attempts + 1"
                    " WHERE account = %s AND sref = ANY(%s)",
                    (account, retried),
                )
            if looked_up:
                await conn.execute(
                    "DELETE FROM lookups WHERE account = %s AND sref = ANY(%s)",
                    (account, looked_up),
                )
            for change in commit.reruns:
                await write_change(conn, account, change, commit.now)
            await conn.execute(
                "INSERT INTO meta (key, value) VALUES (%s, %s)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (self._watermark_key, commit.watermark.isoformat()),
            )
            return len(sent), fresh

        return await self._run(work)

    async def _fence(self, conn: AsyncConnection[Any], lease: Lease) -> None:
        await _hold(conn, lease)

    async def pending_lookups(self, limit: int) -> list[Lookup]:
        return lookups(
            await self._rows(
                f"SELECT {LOOKUP_COLUMNS} FROM lookups WHERE account = %s"  # noqa: S608  # constant column names
                " ORDER BY COALESCE(started_at, queued_at), queued_at, sref LIMIT %s",
                (self.account, limit),
            )
        )

    async def series(self, keys: Sequence[SeriesKey]) -> dict[SeriesKey, SeriesRow]:
        if not keys:
            return {}
        columns = _columns(list(keys), 4)
        rows = await self._rows(
            f"SELECT {_SERIES_SELECT} FROM series s JOIN unnest(%s::text[], %s::text[],"  # noqa: S608  # constant column names
            " %s::text[], %s::text[]) AS k(template, page, browser, metric)"
            " USING (template, page, browser, metric) WHERE s.account = %s",
            (*columns, self.account),
        )
        return {row.key: row for row in series_rows(rows)}

    async def all_series(self, template: str | None = None) -> list[SeriesRow]:
        sql, params = all_series_query("%s", self.account, template)
        return series_rows(await self._rows(sql, params))

    async def latest_series(self, limit: int) -> list[SeriesRow]:
        return series_rows(await self._rows(latest_series_query("%s"), (self.account, limit)))

    async def prune(self, before: datetime, limit: int = 5000) -> int:
        cutoff = before.timestamp()

        async def work(conn: AsyncConnection[Any]) -> int:
            removed = 0
            for sql, params in (
                (
                    "DELETE FROM jobs WHERE (account, sref) IN (SELECT account, sref FROM jobs"
                    " WHERE first_seen < %s AND COALESCE(started_at, first_seen) < %s"
                    " AND (ended OR NOT followed) LIMIT %s)",
                    (cutoff, cutoff, limit),
                ),
                (
                    "DELETE FROM events WHERE (account, key) IN (SELECT account, key FROM events"
                    " WHERE recorded_at < %s LIMIT %s)",
                    (cutoff, limit),
                ),
                (
                    "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE created_at < %s"
                    " AND state != 'pending' AND done_at < %s LIMIT %s)",
                    (cutoff, cutoff, limit),
                ),
                (
                    "DELETE FROM alert_steps WHERE ctid IN (SELECT ctid FROM alert_steps"
                    " WHERE at < %s LIMIT %s)",
                    (cutoff, limit),
                ),
                ("DELETE FROM silences WHERE LEAST(ends_at, expired_at) < %s", (cutoff,)),
                ("DELETE FROM acks WHERE created_at < %s", (cutoff,)),
                # replicas gone for a day: their names only fill `status`
                ("DELETE FROM replicas WHERE seen_until < now() - interval '1 day'", ()),
                (
                    "DELETE FROM series WHERE ctid IN (SELECT ctid FROM series"
                    " WHERE updated_at < %s LIMIT %s)",
                    (cutoff, limit),
                ),
                ("DELETE FROM lookups WHERE queued_at < %s", (cutoff,)),
                ("DELETE FROM reruns WHERE ended_at < %s", (cutoff,)),
            ):
                removed += (await conn.execute(sql, params)).rowcount
            return removed

        return await self._run(work)

    # -- reports ------------------------------------------------------------------------

    async def known_jobs(self) -> tuple[int, int]:
        rows = await self._rows(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE NOT ended AND followed) FROM jobs"
        )
        return int(rows[0][0]), int(rows[0][1])

    async def recent_events(self, limit: int = 20) -> list[dict[str, object]]:
        rows = await self._rows(
            f"SELECT {EVENT_COLUMNS} FROM events"  # noqa: S608  # constant column names
            " ORDER BY recorded_at DESC, key DESC LIMIT %s",
            (limit,),
        )
        return event_reports(rows)


_UPSERT_JOBS = (
    "INSERT INTO jobs (account, sref, status, status_since, first_seen, updated_at,"
    " started_at, template, name, ended)"
    " SELECT %s, * FROM unnest(%b::text[], %b::text[], %b::float8[], %b::float8[],"
    " %b::float8[], %b::float8[], %b::text[], %b::text[], %b::bool[])"
    " ON CONFLICT (account, sref) DO UPDATE SET status = excluded.status,"
    " status_since = excluded.status_since, updated_at = excluded.updated_at,"
    " started_at = excluded.started_at, template = excluded.template,"
    " name = excluded.name, ended = excluded.ended"
)
_UPSERT_TEMPLATES = (
    "INSERT INTO templates (account, template, watching_since, streak, last_start, last_name)"
    " SELECT %s, * FROM unnest(%b::text[], %b::float8[], %b::int[], %b::float8[], %b::text[])"
    " ON CONFLICT (account, template) DO UPDATE SET streak = excluded.streak,"
    " last_start = excluded.last_start, last_name = excluded.last_name"
)
_SERIES_SELECT = "template, page, browser, metric, s.state, s.regressions, s.updated_at"
_UPSERT_SERIES = (
    "INSERT INTO series (account, template, page, browser, metric, state, regressions,"
    " updated_at) SELECT %s, * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[],"
    " %b::text[], %b::int[], %b::float8[]) ON CONFLICT (account, template, page, browser,"
    " metric) DO UPDATE SET state = excluded.state, regressions = excluded.regressions,"
    " updated_at = excluded.updated_at"
)
_QUEUE_LOOKUPS = (
    "INSERT INTO lookups (account, sref, job, started_at, queued_at, attempts)"
    " SELECT %s, * FROM unnest(%b::text[], %b::text[], %b::float8[], %b::float8[], %b::int[])"
    " ON CONFLICT (account, sref) DO NOTHING"
)
_RECORD = (
    "INSERT INTO events (account, recorded_at, key, kind, sref, from_status, to_status, at,"
    " template, lasted) SELECT %s, %s, * FROM unnest(%b::text[], %b::text[], %b::text[],"
    " %b::text[], %b::text[], %b::float8[], %b::text[], %b::float8[])"
    " ON CONFLICT (account, key) DO NOTHING RETURNING key"
)
_QUEUE = (
    "INSERT INTO outbox (account, created_at, next_attempt_at, event_key, rule, channel,"
    " severity, title, body, sref, kind, template, resolvable, vars, title_source,"
    " body_source, status, seq)"
    " SELECT %s, %s, %s, * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[],"
    " %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::bool[], %b::text[],"
    " %b::text[], %b::text[], %b::text[], %b::int[])"
)


def _job_rows(commit: CycleCommit) -> list[tuple[Any, ...]]:
    """A row per job state, the last one of a job if a cycle holds it twice (one
    statement may not update a row twice)."""
    rows = {
        s.sref: (
            s.sref,
            s.status,
            s.status_since.timestamp(),
            s.first_seen.timestamp(),
            ts(s.updated_at),
            ts(s.started_at),
            s.template,
            s.name,
            s.status in TERMINAL_STATUSES,
        )
        for s in commit.states
    }
    return list(rows.values())


def _alert_rows(queued: Sequence[tuple[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (
            key,
            a.rule,
            a.channel,
            str(a.severity),
            a.title,
            a.body,
            a.sref,
            str(a.kind),
            a.template,
            a.resolvable,
            a.variables,
            a.title_source,
            a.body_source,
            a.status,
            a.seq,
        )
        for key, a in queued
    ]


async def _record_events(
    conn: AsyncConnection[Any], account: str, events: dict[str, Any], now: float
) -> set[str]:
    """Record the events not recorded yet; return their keys."""
    rows = [
        (
            key,
            str(e.kind),
            e.job.sref,
            e.from_status,
            e.to_status,
            e.at.timestamp(),
            e.job.template,
            e.stuck_for,
        )
        for key, e in events.items()
    ]
    cursor = await conn.execute(_RECORD, (account, now, *_columns(rows, 8)))
    return {row[0] for row in await cursor.fetchall()}


async def _hold(conn: AsyncConnection[Any], lease: Lease) -> None:
    """Raise Fenced unless `lease` still holds; lock its row until the transaction ends,
    so no other replica can take the account over in the middle of this commit."""
    cursor = await conn.execute(
        "SELECT 1 FROM leases WHERE account = %s AND holder = %s AND epoch = %s"
        " AND expires_at > now() FOR SHARE",
        (lease.account, lease.holder, lease.epoch),
    )
    if await cursor.fetchone() is None:
        raise Fenced(f"the lease on account {lease.account} (epoch {lease.epoch}) has ended")


async def _migrate(conn: AsyncConnection[Any], url: str) -> None:
    """Create or move the schema forward in one transaction, under the migration lock."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        version = await _version(conn, url)
        for target in range(version + 1, PG_SCHEMA_VERSION + 1):
            await conn.execute(PG_MIGRATIONS[target])
            await conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', %s)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(target),),
            )


async def _version(conn: AsyncConnection[Any], url: str) -> int:
    """The schema version of the database; 0 for an empty one. Refuses a database that
    holds other tables of ours' names without being watcher state, or a newer schema."""
    cursor = await conn.execute(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = current_schema() AND table_name = ANY(%s)",
        (list(TABLES),),
    )
    present = {row[0] for row in await cursor.fetchall()}
    if not present:
        return 0
    if "meta" not in present:
        raise StoreError(f"state.url: {where(url)} holds tables that are not watcher state")
    cursor = await conn.execute("SELECT value FROM meta WHERE key = 'schema_version'")
    row = await cursor.fetchone()
    if row is None:
        raise StoreError(f"state.url: {where(url)} holds tables that are not watcher state")
    version = int(row[0])
    if version > PG_SCHEMA_VERSION:
        raise StoreError(
            f"state.url: {where(url)} was written by a newer watcher "
            f"(schema {version}, this one knows {PG_SCHEMA_VERSION})"
        )
    return version


def _refused(exc: psycopg.Error) -> bool:
    """The server answered and said no (credentials, a database or role that does not
    exist): trying again cannot help."""
    text = str(exc)
    return exc.sqlstate is not None or any(
        words in text for words in ("authentication failed", "does not exist", "no pg_hba.conf")
    )


def _reason(exc: BaseException) -> str:
    """psycopg's message on one line: it names the host and the role, never a password."""
    return " ".join(str(exc).split()) or type(exc).__name__
