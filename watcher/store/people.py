"""What people said, in the SQLite store: silences and acknowledgements, and the
recent runs of each template that the status page draws. Rows are read back through
the shared readers at the end (the PostgreSQL store uses them too)."""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from watcher.models import JobState
from watcher.people import Ack, Silence
from watcher.store.base import STATE_COLUMNS, dt, job_states

SILENCE_COLUMNS = "id, matchers, starts_at, ends_at, author, comment, created_at, expired_at"
# An acknowledgement with what became of what it acknowledged: the job's status now;
# for a template, how many of its jobs started after its last start when acknowledged,
# and how many of those completed (jobs first seen after that start: an index range).
_SINCE = (
    "(SELECT COUNT(*) FROM jobs j WHERE j.account = a.account AND j.template = a.template"
    " AND j.first_seen > COALESCE(a.last_start, 0) AND j.started_at > COALESCE(a.last_start, 0)"
)
ACK_SELECT = (
    "SELECT a.id, a.account, a.job, a.template, a.status, a.streak, a.last_start, a.author,"  # noqa: S608
    " a.comment, a.created_at, a.expired_at,"
    " (SELECT j.status FROM jobs j WHERE j.account = a.account AND j.sref = a.job),"
    f" {_SINCE} AND j.status = 'completed'), {_SINCE}) FROM acks a"
)
# Each template's latest runs: the jobs of it that started, newest first.
RUNS_SELECT = (
    "SELECT {columns} FROM (SELECT {columns}, ROW_NUMBER() OVER (PARTITION BY template"
    " ORDER BY started_at DESC) AS n FROM jobs WHERE account = {mark} AND template != ''"
    " AND started_at IS NOT NULL) AS latest WHERE n <= {mark} ORDER BY template, started_at"
)


def silence_row(silence: Silence, created_at: datetime) -> tuple[Any, ...]:
    """The values of SILENCE_COLUMNS but the id."""
    return (
        json.dumps([list(m) for m in silence.matchers]),
        silence.starts_at.timestamp(),
        silence.ends_at.timestamp(),
        silence.author,
        silence.comment,
        created_at.timestamp(),
        None,
    )


def ack_row(ack: Ack, created_at: datetime) -> tuple[Any, ...]:
    return (
        ack.account,
        ack.job,
        ack.template,
        ack.status,
        ack.streak,
        ack.last_start,
        ack.author,
        ack.comment,
        created_at.timestamp(),
    )


def silences_from(rows: Iterable[Sequence[Any]]) -> list[Silence]:
    """Silences from rows of SILENCE_COLUMNS."""
    return [
        Silence(
            id=row[0],
            matchers=tuple((k, v) for k, v in json.loads(row[1])),
            starts_at=dt(row[2]) or datetime.min,
            ends_at=dt(row[3]) or datetime.min,
            author=row[4],
            comment=row[5],
            created_at=dt(row[6]),
            expired_at=dt(row[7]),
        )
        for row in rows
    ]


def acks_from(rows: Iterable[Sequence[Any]]) -> list[Ack]:
    """Acknowledgements from rows of ACK_SELECT."""
    return [
        Ack(
            id=row[0],
            account=row[1],
            job=row[2],
            template=row[3],
            status=row[4],
            streak=row[5],
            last_start=row[6],
            author=row[7],
            comment=row[8],
            created_at=dt(row[9]),
            expired_at=dt(row[10]),
            now_status=row[11],
            now_recoveries=row[12],
            now_runs=row[13],
        )
        for row in rows
    ]


def runs_from(rows: Iterable[Sequence[Any]]) -> dict[str, list[JobState]]:
    """template -> its runs, oldest first, from rows of STATE_COLUMNS."""
    runs: dict[str, list[JobState]] = defaultdict(list)
    for state in job_states(rows).values():
        runs[state.template].append(state)
    return dict(runs)


class PeopleTables:
    """Mixed into SqliteStore, which provides the connection and write transactions."""

    _db: sqlite3.Connection
    account: str

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    async def add_silence(self, silence: Silence, now: datetime) -> int:
        with self._write() as db:
            cursor = db.execute(
                f"INSERT INTO silences ({SILENCE_COLUMNS})"  # noqa: S608  # constant columns
                " VALUES (NULL, ?, ?, ?, ?, ?, ?, ?)",
                silence_row(silence, now),
            )
        return int(cursor.lastrowid or 0)

    async def silences(self, since: datetime | None = None) -> list[Silence]:
        """Silences that end after `since` (None: all kept), newest first; expired or not."""
        sql = f"SELECT {SILENCE_COLUMNS} FROM silences"  # noqa: S608  # constant columns
        params: tuple[Any, ...] = ()
        if since is not None:
            sql += " WHERE MIN(ends_at, COALESCE(expired_at, ends_at)) > ?"
            params = (since.timestamp(),)
        return silences_from(self._db.execute(sql + " ORDER BY id DESC", params))

    async def expire_silence(self, silence_id: int, now: datetime) -> Silence | None:
        """End a silence now (one that already ended keeps its end); None if unknown."""
        with self._write() as db:
            db.execute(
                "UPDATE silences SET expired_at = ? WHERE id = ? AND expired_at IS NULL",
                (now.timestamp(), silence_id),
            )
            rows = db.execute(
                f"SELECT {SILENCE_COLUMNS} FROM silences WHERE id = ?",  # noqa: S608
                (silence_id,),
            )
            found = silences_from(rows)
        return found[0] if found else None

    async def add_ack(self, ack: Ack, now: datetime) -> int:
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO acks (account, job, template, status, streak, last_start, author,"
                " comment, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                ack_row(ack, now),
            )
        return int(cursor.lastrowid or 0)

    async def acks(self) -> list[Ack]:
        """Every acknowledgement kept, newest first, with the state of what it is about."""
        return acks_from(self._db.execute(ACK_SELECT + " ORDER BY a.id DESC"))

    async def expire_ack(self, ack_id: int, now: datetime) -> Ack | None:
        with self._write() as db:
            db.execute(
                "UPDATE acks SET expired_at = ? WHERE id = ? AND expired_at IS NULL",
                (now.timestamp(), ack_id),
            )
        found = acks_from(self._db.execute(ACK_SELECT + " WHERE a.id = ?", (ack_id,)))
        return found[0] if found else None

    async def runs(self, per_template: int) -> dict[str, list[JobState]]:
        """This account's templates' latest `per_template` runs each, oldest first."""
        sql = RUNS_SELECT.format(columns=STATE_COLUMNS, mark="?")
        return runs_from(self._db.execute(sql, (self.account, per_template)))
