"""The SQLite state store: job states, templates, the watermark and events (the outbox
half is in `outbox`, pruning and counting the history in `history`, silences and
acknowledgements in `people`).

One SQLite file opened once (WAL, busy timeout), created owner-only (`files`); which
process may write it is decided before it is opened (`lock`), so this store leads
every account (its leases are granted at once). Its coroutines never wait: the file
is local and the work is done on the event loop, as quick as it always was. A poll cycle's state
changes, events and the alerts they cause are written in one transaction, so a kill at
any moment leaves either all of a cycle or none of it. Never resets or rewrites a file
it does not recognise.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import itertools
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from watcher import fast
from watcher.models import DEFAULT_ACCOUNT, TERMINAL_STATUSES, JobState, TemplateState
from watcher.store import files
from watcher.store.base import (
    EVENT_COLUMNS,
    LOOKUP_COLUMNS,
    SERIES_COLUMNS,
    STATE_COLUMNS,
    TEMPLATE_COLUMNS,
    CycleCommit,
    Leader,
    Lease,
    Lookup,
    SeriesKey,
    SeriesRow,
    StagedRows,
    Store,
    StoreError,
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
from watcher.store.history import HistoryTables
from watcher.store.outbox import OutboxTables
from watcher.store.people import PeopleTables
from watcher.store.reruns import RerunTables
from watcher.store.schema import MIGRATIONS, SCHEMA_VERSION

_SELECT_STATES = f"SELECT {STATE_COLUMNS} FROM jobs WHERE account = ?"  # noqa: S608  # constant column names
_ROWS_A_STATEMENT = 500  # of a multi-row INSERT (see SqliteStore._insert)
_CHUNK = 900  # values per IN (...) query, under SQLite's oldest variable limit (999)


@functools.cache
def _multi_row(head: str, tail: str, width: int) -> str:
    marks = f"({','.join('?' * width)})"
    return f"{head} VALUES {','.join([marks] * _ROWS_A_STATEMENT)}{tail}"


_UPSERT_JOBS = (
    "INSERT INTO jobs (account, sref, status, status_since, first_seen, updated_at,"
    " started_at, template, name, ended)",
    " ON CONFLICT (account, sref) DO UPDATE SET status = excluded.status,"
    " status_since = excluded.status_since, updated_at = excluded.updated_at,"
    " started_at = excluded.started_at, template = excluded.template,"
    " name = excluded.name, ended = excluded.ended",
)


class SqliteStore(OutboxTables, HistoryTables, PeopleTables, RerunTables):
    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.account = DEFAULT_ACCOUNT
        self._readonly = readonly
        self._checkpointer: sqlite3.Connection | None = None
        # A FIFO would block SQLite's read-only open until a writer came, retrying through
        # signals; a device or a folder is no state file either.
        if path.exists() and not path.is_file():
            raise StoreError(f"state.path: {path} is not a regular file")
        try:
            if readonly:
                self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
            else:
                if str(path) != ":memory:":
                    files.private_folder(path)
                    files.private_file(path)
                self._db = sqlite3.connect(path, timeout=10.0, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"state.path: cannot open {path}: {exc}") from None
        try:
            self._db.execute("PRAGMA busy_timeout = 10000")
            self._check_version()  # before WAL mode rewrites the header of a foreign file
            if not readonly:
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute("PRAGMA synchronous = NORMAL")
                # Checkpoints (copying the log into the file, and its fsync) are not done
                # by the commit that fills the log, on the event loop, but by `checkpoint`.
                self._db.execute("PRAGMA wal_autocheckpoint = 0")
                self._migrate()
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(f"state.path: {path} is not a usable state file: {exc}") from None
        except StoreError:
            self._db.close()
            raise

    def scoped(self, account: str) -> Store:
        view = copy.copy(self)  # the same connection, another account's poll state
        view.account = account
        return view

    async def close(self) -> None:
        """Close; the last connection to close checkpoints the log and removes it."""
        if self._checkpointer is not None:
            self._checkpointer.close()
        self._db.close()

    async def checkpoint(self) -> None:
        """Copy what the log holds into the state file, without blocking readers or the
        writer (a PASSIVE checkpoint), in a worker thread, on a connection of its own:
        the commit of a large cycle is not slowed by it, nor the event loop."""
        await asyncio.to_thread(self._checkpoint)

    def _checkpoint(self) -> None:
        if self._readonly or str(self.path) == ":memory:":
            return
        try:
            if self._checkpointer is None:
                self._checkpointer = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False
                )
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"state.path: cannot checkpoint {self.path}: {exc}") from None

    def restore_from(self, source: sqlite3.Connection) -> None:
        """Replace this store's content with a copy of `source` (used for dry runs)."""
        source.backup(self._db)
        self._migrate()

    async def usable(self) -> bool:
        try:
            self._db.execute("SELECT 1 FROM meta LIMIT 1").fetchall()
        except sqlite3.Error:
            return False
        return True

    def _check_version(self) -> int:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master")}
        if version == 0 and tables:
            raise StoreError(f"state.path: {self.path} holds tables that are not watcher state")
        if self._readonly and 0 < version < SCHEMA_VERSION:
            raise StoreError(
                f"state.path: {self.path} was written by an older watcher (schema {version});"
                " start the daemon once to upgrade it"
            )
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"state.path: {self.path} was written by a newer watcher "
                f"(schema {version}, this one knows {SCHEMA_VERSION})"
            )
        return version

    def _migrate(self) -> None:
        version = self._check_version()
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self._transaction():
                self._db.executescript(
                    f"BEGIN IMMEDIATE; {MIGRATIONS[target]}; PRAGMA user_version = {target};"
                    " COMMIT;"
                )

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            yield self._db
        except BaseException:
            if self._db.in_transaction:
                self._db.rollback()
            raise

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; any SQLite failure (disk full, I/O error, a lock held
        too long) rolls it back whole and comes out as a StoreError."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            with self._transaction():
                yield self._db
                self._db.commit()
        except sqlite3.Error as exc:
            raise StoreError(f"state.path: cannot write {self.path}: {exc}") from None

    # -- poll state -------------------------------------------------------------------

    @property
    def _watermark_key(self) -> str:
        # the key of a file written before accounts existed is the default account's
        return "watermark" if self.account == DEFAULT_ACCOUNT else f"watermark/{self.account}"

    async def watermark(self) -> datetime | None:
        row = self._db.execute(
            "SELECT value FROM meta WHERE key = ?", (self._watermark_key,)
        ).fetchone()
        return datetime.fromisoformat(row[0]) if row else None

    def _in(self, sql: str, values: Sequence[str]) -> Iterator[Any]:
        """Rows of `sql` (its first parameter the account, its `{marks}` an IN list), for
        all `values`, in chunks."""
        for start in range(0, len(values), _CHUNK):
            chunk = values[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            yield from self._db.execute(sql.format(marks=marks), (self.account, *chunk))

    async def states(self, srefs: Sequence[str]) -> dict[str, JobState]:
        """The stored state of each of `srefs` that the store knows."""
        return job_states(self._in(_SELECT_STATES + " AND sref IN ({marks})", srefs))

    async def known_events(self, keys: Sequence[str]) -> set[str]:
        """Which of these event keys are recorded already."""
        return self._known_events(keys)

    def _known_events(self, keys: Sequence[str]) -> set[str]:
        sql = "SELECT key FROM events WHERE account = ? AND key IN ({marks})"
        return {row[0] for row in self._in(sql, keys)}

    async def seen(self, srefs: Sequence[str]) -> tuple[dict[str, str], dict[str, JobState]]:
        """What the store knows of `srefs`, in one pass: the status of those that ended
        (cheap: no JobState, and they are most of a window), the state of the others."""
        ended: dict[str, str] = {}
        unended: list[Any] = []
        sql = _SELECT_STATES.replace(" FROM", ", ended FROM") + " AND sref IN ({marks})"
        for row in self._in(sql, srefs):
            if row[8]:
                ended[row[0]] = row[1]
            else:
                unended.append(row)
        return ended, job_states(unended)

    async def open_jobs(self) -> dict[str, JobState]:
        """Jobs last seen unfinished that are still being followed."""
        sql = _SELECT_STATES + " AND ended = 0 AND followed = 1"
        return job_states(self._db.execute(sql, (self.account,)))

    def _insert(self, head: str, tail: str, rows: Iterable[tuple[object, ...]]) -> None:
        """`head` VALUES (...), (...), ... `tail` for all `rows`, `_ROWS_A_STATEMENT` rows
        a statement: SQLite takes a third less time than with a statement a row (each its
        own step, cursor and checks), and the rows are still made as they go in. The rows
        left over go one a statement: a statement for each count of rows would fill the
        statement cache, at half a megabyte each."""
        rows = iter(rows)
        variables = self._db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        while batch := list(itertools.islice(rows, _ROWS_A_STATEMENT)):
            width = len(batch[0])
            if len(batch) == _ROWS_A_STATEMENT and len(batch) * width <= variables:
                sql = _multi_row(head, tail, width)
                self._db.execute(sql, list(itertools.chain.from_iterable(batch)))
            else:
                self._db.executemany(f"{head} VALUES ({','.join('?' * width)}){tail}", batch)

    async def commit_cycle(self, commit: CycleCommit) -> tuple[int, set[str]]:
        """Write one cycle atomically; return how many alerts entered the outbox and the
        keys of the events recorded for the first time.

        An event already recorded (same key) is not recorded again, and neither are its
        alerts: this is the last line of defence against alerting twice. Rows are made
        as they are written (generators): a window of 100k jobs never exists twice in
        memory as lists of tuples.
        """
        stamps = fast.Stamps()
        with self._attached(commit.staged) as staged, self._write():
            self._write_jobs(commit, stamps, staged)
            self._write_templates(commit.templates)
            fresh = self._record_events(commit, stamps)
            queued = self._queue_alerts(commit, fresh)
            self._write_regressions(commit)
            self._write_reruns(self._db, commit.reruns, commit.now)
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (self._watermark_key, commit.watermark.isoformat()),
            )
        return queued, fresh

    @contextmanager
    def _attached(self, staged: StagedRows | None) -> Iterator[str | None]:
        """The staged rows' file attached as `scratch` (outside any transaction, as
        SQLite wants), and the query of its rows; None without staged rows."""
        if staged is None:
            yield None
            return
        path, query = staged.shared()
        try:
            self._db.execute("ATTACH DATABASE ? AS scratch", (str(path),))
        except sqlite3.Error as exc:
            raise StoreError(f"the first poll's scratch file {path}: {exc}") from None
        try:
            yield query
        finally:
            try:
                self._db.execute("DETACH DATABASE scratch")
            except sqlite3.Error as exc:
                raise StoreError(f"the first poll's scratch file {path}: {exc}") from None

    def _write_jobs(self, commit: CycleCommit, stamp: fast.Stamps, staged: str | None) -> None:
        when, now, account = commit.now, commit.now.timestamp(), self.account
        self._insert(
            *_UPSERT_JOBS,
            (
                (
                    account,
                    s.sref,
                    s.status,
                    now if s.status_since is when else s.status_since.timestamp(),
                    now if s.first_seen is when else s.first_seen.timestamp(),
                    stamp[s.updated_at] if s.updated_at else None,
                    stamp[s.started_at] if s.started_at else None,
                    s.template,
                    s.name,
                    1 if s.status in TERMINAL_STATUSES else 0,  # a bool is adapted, row by row
                )
                for s in commit.states  # the hot loop of a large window: no calls
            ),
        )
        if staged:  # "WHERE true": SQLite's parser wants it before an upsert's ON CONFLICT
            head, tail = _UPSERT_JOBS
            copy_rows = f"{head} SELECT ?, * FROM ({staged}) WHERE true{tail}"  # noqa: S608  # our own query
            self._db.execute(copy_rows, (account, now))
        self._db.executemany(
            "UPDATE jobs SET followed = 0 WHERE account = ? AND sref = ?",
            [(account, s) for s in commit.unfollowed],
        )

    def _write_templates(self, templates: Iterable[TemplateState]) -> None:
        self._db.executemany(
            "INSERT INTO templates (account, template, watching_since, streak, last_start,"
            " last_name) VALUES (?,?,?,?,?,?) ON CONFLICT (account, template) DO UPDATE SET"
            " streak = excluded.streak, last_start = excluded.last_start,"
            " last_name = excluded.last_name",
            (
                (
                    self.account,
                    t.template,
                    t.watching_since.timestamp(),
                    t.streak,
                    ts(t.last_start),
                    t.last_name,
                )
                for t in templates
            ),
        )

    def _record_events(self, commit: CycleCommit, stamp: fast.Stamps) -> set[str]:
        """Record the events not recorded yet; return their keys."""
        known = self._known_events([e.key for e in commit.events])
        fresh = {e.key: e for e in commit.events if e.key not in known}
        now, account = commit.now.timestamp(), self.account
        self._insert(
            "INSERT OR IGNORE INTO events (account, key, kind, sref, from_status, to_status,"
            " at, recorded_at, template, lasted)",
            "",
            (
                (
                    account,
                    key,
                    str(e.kind),
                    e.job.sref,
                    e.from_status,
                    e.to_status,
                    stamp[e.at],
                    now,
                    e.job.template,
                    e.stuck_for,
                )
                for key, e in fresh.items()
            ),
        )
        return set(fresh)

    def _queue_alerts(self, commit: CycleCommit, fresh: set[str]) -> int:
        """Queue the alerts of the events recorded now; return how many."""
        now = commit.now.timestamp()
        before = self._db.total_changes
        self._insert(
            "INSERT INTO outbox (event_key, rule, channel, severity, title, body, sref,"
            " created_at, next_attempt_at, kind, template, resolvable, vars, title_source,"
            " body_source, status, seq, account)",
            "",
            (
                (
                    key,
                    a.rule,
                    a.channel,
                    str(a.severity),
                    a.title,
                    a.body,
                    a.sref,
                    now,
                    now,
                    str(a.kind),
                    a.template,
                    int(a.resolvable),
                    a.variables,
                    a.title_source,
                    a.body_source,
                    a.status,
                    a.seq,
                    self.account,
                )
                for key, a in once_each(commit.alerts, fresh)
            ),
        )
        return self._db.total_changes - before

    def _write_regressions(self, commit: CycleCommit) -> None:
        """The series a cycle's lookups changed, and the lookups queued, failed and done."""
        account = self.account
        self._db.executemany(
            "INSERT INTO series (account, template, page, browser, metric, state, regressions,"
            " updated_at) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (account, template, page,"
            " browser, metric) DO UPDATE SET state = excluded.state,"
            " regressions = excluded.regressions, updated_at = excluded.updated_at",
            [
                (account, *r.key, r.state, r.regressions, r.updated_at.timestamp())
                for r in commit.series
            ],
        )
        self._db.executemany(
            "INSERT OR IGNORE INTO lookups (account, sref, job, started_at, queued_at, attempts)"
            " VALUES (?,?,?,?,?,?)",
            [
                (
                    account,
                    q.job.sref,
                    job_json(q.job),
                    ts(q.job.started_at),
                    q.queued_at.timestamp(),
                    q.attempts,
                )
                for q in commit.queued
            ],
        )
        self._db.executemany(
            "UPDATE lookups SET attempts = attempts + 1 WHERE account = ? AND sref = ?",
            [(account, sref) for sref in commit.retried],
        )
        self._db.executemany(
            "DELETE FROM lookups WHERE account = ? AND sref = ?",
            [(account, sref) for sref in commit.looked_up],
        )

    async def pending_lookups(self, limit: int) -> list[Lookup]:
        """The oldest `limit` jobs waiting for their test runs, in the order they ran."""
        return lookups(
            self._db.execute(
                f"SELECT {LOOKUP_COLUMNS} FROM lookups WHERE account = ?"  # noqa: S608  # constant column names
                " ORDER BY COALESCE(started_at, queued_at), queued_at, sref LIMIT ?",
                (self.account, limit),
            )
        )

    async def series(self, keys: Sequence[SeriesKey]) -> dict[SeriesKey, SeriesRow]:
        """The stored series of these keys (those the store knows)."""
        sql = (
            f"SELECT {SERIES_COLUMNS} FROM series WHERE account = ? AND template = ?"  # noqa: S608  # constant column names
            " AND page = ? AND browser = ? AND metric = ?"
        )
        rows = [r for key in keys for r in self._db.execute(sql, (self.account, *key))]
        return {row.key: row for row in series_rows(rows)}

    async def all_series(self, template: str | None = None) -> list[SeriesRow]:
        """Every series of the account (of one template), by key."""
        sql, params = all_series_query("?", self.account, template)
        return series_rows(self._db.execute(sql, params))

    async def latest_series(self, limit: int) -> list[SeriesRow]:
        """The account's series updated last, newest first, at most `limit`."""
        return series_rows(self._db.execute(latest_series_query("?"), (self.account, limit)))

    async def templates(self) -> dict[str, TemplateState]:
        sql = f"SELECT {TEMPLATE_COLUMNS} FROM templates WHERE account = ?"  # noqa: S608  # constant column names
        return template_states(self._db.execute(sql, (self.account,)))

    # -- reports (watcher status) -----------------------------------------------------

    async def known_jobs(self) -> tuple[int, int]:
        """(jobs known, jobs being followed)."""
        row = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(ended = 0 AND followed = 1), 0) FROM jobs"
        ).fetchone()
        return int(row[0]), int(row[1])

    async def recent_events(self, limit: int = 20) -> list[dict[str, object]]:
        rows = self._db.execute(
            f"SELECT {EVENT_COLUMNS} FROM events"  # noqa: S608  # constant column names
            " ORDER BY recorded_at DESC, rowid DESC LIMIT ?",
            (limit,),
        )
        return event_reports(rows)

    # -- leadership: one process holds the file (`lock`), so it leads every account ---

    async def acquire(self, account: str, holder: str, seconds: float) -> Lease | None:
        return Lease(account, holder, 1)

    async def renew(self, lease: Lease, seconds: float) -> bool:
        return True

    async def release(self, lease: Lease) -> None:
        return None

    async def leaders(self) -> list[Leader]:
        return []

    async def replicas(self, holder: str, seconds: float) -> int:
        return 1
