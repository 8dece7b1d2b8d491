"""The flake filter's rows (`flakes.Rerun`), in the SQLite store; the SQL and the row
readers are shared with the PostgreSQL store (`pg_reruns`), written here with `?` marks.

A rerun's row and the alerts its failed job holds change in one transaction: a change
of state (`flakes.Change`) carries what becomes of the held alerts (`flakes.Release`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from watcher import flakes
from watcher.flakes import Change, Rerun
from watcher.people import Step
from watcher.store.base import Lease, dt, job_from_json, job_json, need_dt

RERUN_COLUMNS = (
    "job, rules, state, decided_at, due_at, deadline, attempts, claimed_at, rerun,"
    " rerun_status, last_error, ended_at"
)
SELECT_RERUNS = (
    f"SELECT {RERUN_COLUMNS} FROM reruns WHERE account = ?"  # noqa: S608  # constant columns
    " AND (decided_at >= ? OR state IN ('due', 'starting', 'started')) ORDER BY decided_at"
)
INSERT_RERUN = (
    f"INSERT INTO reruns (account, failed, template, {RERUN_COLUMNS})"  # noqa: S608
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
# Every column a change may move; `expect` adds the state and attempts it must find.
UPDATE_RERUN = (
    "UPDATE reruns SET state = ?, due_at = ?, deadline = ?, attempts = ?, claimed_at = ?,"
    " rerun = ?, rerun_status = ?, last_error = ?, ended_at = ? WHERE account = ? AND failed = ?"
)
EXPECTING = " AND state = ? AND attempts = ?"
HELD = "SELECT id FROM outbox WHERE account = ? AND sref = ? AND state = 'waiting'"
HOLD = (
    "SELECT id FROM outbox WHERE account = ? AND event_key = ? AND rule = ?"
    " AND state = 'pending' AND created_at = ?"
)


def rerun_row(account: str, rerun: Rerun) -> tuple[Any, ...]:
    """The values of INSERT_RERUN."""
    return (
        account,
        rerun.sref,
        rerun.failed.template,
        job_json(rerun.failed),
        json.dumps(list(rerun.rules)),
        *_moving(rerun)[:1],
        rerun.decided_at.timestamp(),
        *_moving(rerun)[1:],
    )


def _moving(rerun: Rerun) -> tuple[Any, ...]:
    """The values of the columns a change may move, in UPDATE_RERUN's order."""
    return (
        rerun.state,
        rerun.due_at.timestamp(),
        rerun.deadline.timestamp(),
        rerun.attempts,
        rerun.claimed_at.timestamp() if rerun.claimed_at else None,
        rerun.rerun,
        rerun.rerun_status,
        rerun.last_error[:500],
        rerun.ended_at.timestamp() if rerun.ended_at else None,
    )


def update_params(
    account: str, rerun: Rerun, expect: tuple[str, int] | None
) -> tuple[str, tuple[Any, ...]]:
    """The UPDATE of a change (compare-and-set on `expect`: state, attempts) and its
    parameters."""
    params = (*_moving(rerun), account, rerun.sref)
    if expect is None:
        return UPDATE_RERUN, params
    return UPDATE_RERUN + EXPECTING, (*params, *expect)


def reruns_from(rows: Iterable[Sequence[Any]]) -> list[Rerun]:
    return [
        Rerun(
            failed=job_from_json(row[0]),
            rules=tuple(json.loads(row[1])),
            state=row[2],
            decided_at=need_dt(row[3]),
            due_at=need_dt(row[4]),
            deadline=need_dt(row[5]),
            attempts=row[6],
            claimed_at=dt(row[7]),
            rerun=row[8],
            rerun_status=row[9],
            last_error=row[10],
            ended_at=dt(row[11]),
        )
        for row in rows
    ]


def release_update(state: str, now: datetime) -> tuple[str, tuple[Any, ...]]:
    """How held alerts move to `state` (the ids follow the parameters): sent from now
    as if queued now (`pending`), or done (flaky, replaced)."""
    stamp = now.timestamp()
    if state == flakes.PENDING:
        return (
            "UPDATE outbox SET state = 'pending', next_attempt_at = ?, requeued_at = ?"
            " WHERE state = 'waiting' AND id = ?",
            (stamp, stamp),
        )
    return (
        "UPDATE outbox SET state = ?, done_at = ? WHERE state = 'waiting' AND id = ?",
        (state, stamp),
    )


def hold_step(change: Change) -> Step:
    due = change.rerun.due_at.isoformat(timespec="seconds")
    return Step(change.rerun.decided_at, flakes.WAITING, f"for a rerun of the job, due at {due}")


class RerunTables:
    """Mixed into SqliteStore, which provides these."""

    account: str
    _db: sqlite3.Connection

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _step(self, db: sqlite3.Connection, ids: Sequence[int], step: Step) -> None:
        raise NotImplementedError

    async def reruns(self, since: datetime) -> list[Rerun]:
        """The reruns decided since `since`, and every one still open."""
        return reruns_from(self._db.execute(SELECT_RERUNS, (self.account, since.timestamp())))

    async def save_rerun(
        self,
        change: Change,
        now: datetime,
        *,
        expect: tuple[str, int] | None = None,
        fence: Lease | None = None,
    ) -> bool:
        """Write a rerun's change and release its held alerts, if the row still has the
        state and attempts of `expect` (when given). Whether it was written. (One process
        holds the file: no lease to check.)"""
        with self._write() as db:
            return self._change(db, change, now, expect)

    def _change(
        self,
        db: sqlite3.Connection,
        change: Change,
        now: datetime,
        expect: tuple[str, int] | None = None,
    ) -> bool:
        if change.new:
            db.execute(INSERT_RERUN, rerun_row(self.account, change.rerun))
            stamp = now.timestamp()
            for key, rule in change.holds:
                ids = [r[0] for r in db.execute(HOLD, (self.account, key, rule, stamp))]
                db.executemany(
                    "UPDATE outbox SET state = 'waiting' WHERE id = ?", [(i,) for i in ids]
                )
                self._step(db, ids, hold_step(change))
        else:
            sql, params = update_params(self.account, change.rerun, expect)
            if db.execute(sql, params).rowcount == 0:
                return False
        if change.release is not None:
            ids = [r[0] for r in db.execute(HELD, (self.account, change.rerun.sref))]
            sql, params = release_update(change.release.state, now)
            db.executemany(sql, [(*params, i) for i in ids])
            self._step(db, ids, change.release.step)
        return True

    def _write_reruns(
        self, db: sqlite3.Connection, changes: Sequence[Change], now: datetime
    ) -> None:
        """A cycle's reruns, in its commit (which queued the alerts they hold)."""
        for change in changes:
            self._change(db, change, now)
