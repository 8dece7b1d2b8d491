"""The outbox half of the SQLite store: alerts waiting for delivery, and what became of
them. Rows change state only after the outcome is known (sent only once accepted)."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from watcher.models import Alert, EventKind, OutboxItem, Severity
from watcher.people import AlertRecord, Step
from watcher.store.base import OutboxCounts, dt, need_dt

SELECT_ALERTS = (
    "SELECT status, rule, channel, severity, title, body, sref, kind, template,"
    " resolvable, vars, title_source, body_source, seq, account"
)
_ALERT_COLUMNS = 15


# A requeued alert is due, and may be given up, as if it were queued when requeued.
DUE_COLUMNS = (
    ", id, COALESCE(requeued_at, created_at), attempts, next_attempt_at, done_targets, held"
)


def outbox_item(row: Sequence[Any]) -> OutboxItem:
    """An OutboxItem from a row of `SELECT_ALERTS + DUE_COLUMNS` (either store)."""
    n = _ALERT_COLUMNS
    return OutboxItem(
        id=row[n],
        alert=_alert(row),
        created_at=need_dt(row[n + 1]),
        attempts=row[n + 2],
        next_attempt_at=need_dt(row[n + 3]),
        done_targets=frozenset(int(t) for t in row[n + 4].split(",") if t),
        held=bool(row[n + 5]),
    )


def report_item(row: Sequence[Any]) -> tuple[Alert, dict[str, object]]:
    """An alert and what a report shows beside its title, from a row of
    `SELECT_ALERTS + REPORT_COLUMNS` (either store)."""
    n = _ALERT_COLUMNS
    return (
        _alert(row),
        {
            "id": row[n],
            "rule": row[1],
            "channel": row[2],
            "account": row[14],
            "attempts": row[n + 1],
            "last_error": row[n + 2],
            "created_at": need_dt(row[n + 3]).isoformat(),
        },
    )


REPORT_COLUMNS = ", id, attempts, last_error, created_at"
RECORD_COLUMNS = ", id, state, created_at, done_at, attempts, last_error"
STEP_COLUMNS = "alert_id, at, what, detail"


def records_query(
    mark: str, since: datetime, channel: str | None, state: str | None, limit: int
) -> tuple[str, list[Any]]:
    """The query of `alert_records` (either store: `mark` is its parameter mark), newest
    first, with its parameters (the limit last)."""
    sql = (
        SELECT_ALERTS
        + RECORD_COLUMNS
        + f" FROM outbox WHERE COALESCE(requeued_at, created_at) >= {mark}"
    )
    params: list[Any] = [since.timestamp()]
    for column, value in (("channel", channel), ("state", state)):
        if value is not None:
            sql += f" AND {column} = {mark}"
            params.append(value)
    return sql + f" ORDER BY id DESC LIMIT {mark}", [*params, limit]


def record_id(row: Sequence[Any]) -> int:
    """The alert id of a row of `SELECT_ALERTS + RECORD_COLUMNS`."""
    return int(row[_ALERT_COLUMNS])


def alert_records(
    rows: Sequence[Sequence[Any]], step_rows: Iterable[Sequence[Any]]
) -> list[AlertRecord]:
    """AlertRecords from rows of `SELECT_ALERTS + RECORD_COLUMNS` and the rows of
    STEP_COLUMNS of those alerts, in the order they happened (either store)."""
    steps: dict[int, list[Step]] = defaultdict(list)
    for alert_id, at, what, detail in step_rows:
        steps[alert_id].append(Step(need_dt(at), what, detail))
    n = _ALERT_COLUMNS
    return [
        AlertRecord(
            id=row[n],
            alert=_alert(row),
            state=row[n + 1],
            queued_at=need_dt(row[n + 2]),
            done_at=dt(row[n + 3]),
            attempts=row[n + 4],
            last_error=row[n + 5],
            steps=tuple(steps.get(row[n], ())),
        )
        for row in rows
    ]


def _alert(row: Sequence[Any]) -> Alert:
    """An Alert from the first `_ALERT_COLUMNS` columns of a row of `SELECT_ALERTS`."""
    return Alert(
        kind=EventKind(row[7]),
        rule=row[1],
        channel=row[2],
        severity=Severity(row[3]),
        sref=row[6],
        template=row[8],
        status=row[0],
        seq=row[13],
        resolvable=bool(row[9]),
        variables=row[10],
        title_source=row[11],
        body_source=row[12],
        title=row[4],
        body=row[5],
        account=row[14],
    )


class OutboxTables:
    """Mixed into SqliteStore, which provides the connection and write transactions."""

    _db: sqlite3.Connection

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    async def due(
        self, now: datetime, limit: int = 1000, busy: Collection[str] = ()
    ) -> list[OutboxItem]:
        """Pending alerts whose next attempt is due, oldest first, leaving out the `busy`
        channels (so a slow channel's backlog cannot fill the batch for the others)."""
        sql = (
            SELECT_ALERTS
            + DUE_COLUMNS
            + " FROM outbox WHERE state = 'pending' AND next_attempt_at <= ?"
            " AND channel NOT IN ({marks}) ORDER BY id LIMIT ?"
        )
        marks = ",".join("?" * len(busy))
        rows = self._db.execute(sql.format(marks=marks), (now.timestamp(), *busy, limit))
        return [outbox_item(row) for row in rows]

    async def claim(self, ids: Sequence[int], holder: str, seconds: float) -> set[int]:
        """One process delivers from this file: every alert it asks for that is still
        pending is its own."""
        pending: set[int] = set()
        for start in range(0, len(ids), 900):  # under SQLite's oldest variable limit
            chunk = list(ids[start : start + 900])
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT id FROM outbox WHERE state = 'pending' AND id IN ({marks})"  # noqa: S608
            pending.update(row[0] for row in self._db.execute(sql, chunk))
        return pending

    async def next_due(self) -> datetime | None:
        row = self._db.execute(
            "SELECT MIN(next_attempt_at) FROM outbox WHERE state = 'pending'"
        ).fetchone()
        return dt(row[0])

    def _step(self, db: sqlite3.Connection, ids: Sequence[int], step: Step) -> None:
        """Record a step of these alerts' lives (their history), in the caller's
        transaction."""
        at = step.at.timestamp()
        db.executemany(
            "INSERT INTO alert_steps (alert_id, at, what, detail) VALUES (?, ?, ?, ?)",
            [(i, at, step.what, step.detail) for i in ids],
        )

    async def mark_sent(self, ids: Sequence[int], now: datetime) -> None:
        with self._write() as db:
            db.executemany(
                "UPDATE outbox SET state = 'sent', attempts = attempts + 1, done_at = ?,"
                " last_error = '' WHERE id = ?",
                [(now.timestamp(), i) for i in ids],
            )
            self._step(db, ids, Step(now, "sent"))

    async def mark_retry(
        self,
        ids: Sequence[int],
        next_at: datetime,
        error: str,
        done_targets: frozenset[int],
        *,
        now: datetime,
    ) -> None:
        """Try again at `next_at`; `done_targets` (URL indices) accepted and are not resent."""
        done = ",".join(str(t) for t in sorted(done_targets))
        with self._write() as db:
            db.executemany(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?,"
                " last_error = ?, done_targets = ? WHERE id = ?",
                [(next_at.timestamp(), error, done, i) for i in ids],
            )
            self._step(db, ids, Step(now, "attempt", error))

    async def mark_held(self, ids: Sequence[int], until: datetime, *, now: datetime) -> None:
        """Quiet hours: not before `until`; not an attempt, so no backoff grows."""
        with self._write() as db:
            db.executemany(
                "UPDATE outbox SET held = 1, next_attempt_at = ? WHERE id = ?",
                [(until.timestamp(), i) for i in ids],
            )
            self._step(db, ids, Step(now, "held", f"quiet hours until {until.isoformat()}"))

    async def mark_resolved(self, ids: Sequence[int], now: datetime) -> None:
        with self._write() as db:
            db.executemany(
                "UPDATE outbox SET state = 'resolved', done_at = ? WHERE id = ?",
                [(now.timestamp(), i) for i in ids],
            )
            self._step(db, ids, Step(now, "resolved", "over before quiet hours ended"))

    async def mark_dropped(self, ids: Sequence[int], step: Step) -> None:
        """Not sent because a person said so: `step.what` is the state (silenced, acked),
        `step.detail` which silence or acknowledgement."""
        with self._write() as db:
            db.executemany(
                "UPDATE outbox SET state = ?, done_at = ? WHERE id = ? AND state = 'pending'",
                [(step.what, step.at.timestamp(), i) for i in ids],
            )
            self._step(db, ids, step)

    async def requeue(self, ids: Sequence[int] | None, now: datetime) -> list[int]:
        """Given-up alerts (`ids`, or all of them) pending again, from now; the ids
        requeued (an alert in another state is left alone)."""
        with self._write() as db:
            if ids is None:
                found = [r[0] for r in db.execute("SELECT id FROM outbox WHERE state = 'given_up'")]
            else:
                found = [
                    i
                    for i in ids
                    if db.execute(
                        "SELECT 1 FROM outbox WHERE id = ? AND state = 'given_up'", (i,)
                    ).fetchone()
                ]
            db.executemany(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?,"
                " requeued_at = ?, held = 0, done_at = NULL WHERE id = ?",
                [(now.timestamp(), now.timestamp(), i) for i in found],
            )
            self._step(db, found, Step(now, "requeued"))
        return found

    async def alert_records(
        self,
        since: datetime,
        *,
        channel: str | None = None,
        state: str | None = None,
        ids: Sequence[int] | None = None,
        limit: int = 500,
    ) -> list[AlertRecord]:
        """Alerts queued (or requeued) since `since`, newest first, with their steps."""
        sql, params = records_query("?", since, channel, state, limit)
        if ids is not None:
            sql = sql.replace(" ORDER BY", f" AND id IN ({','.join('?' * len(ids))}) ORDER BY")
            params = [*params[:-1], *ids, params[-1]]
        rows = self._db.execute(sql, params).fetchall()
        found = [record_id(row) for row in rows]
        steps: list[Any] = []
        for start in range(0, len(found), 900):
            chunk = found[start : start + 900]
            steps += self._db.execute(
                f"SELECT {STEP_COLUMNS} FROM alert_steps"  # noqa: S608  # constant columns
                f" WHERE alert_id IN ({','.join('?' * len(chunk))}) ORDER BY at, rowid",
                chunk,
            ).fetchall()
        return alert_records(rows, steps)

    async def resolved(self, alert: Alert) -> bool:
        """Whether what an alert reported is over: a stuck job moved on, or a failed
        template has recovered since."""
        if alert.kind is EventKind.STUCK:
            row = self._db.execute(
                "SELECT status FROM jobs WHERE account = ? AND sref = ?",
                (alert.account, alert.sref),
            )
            current = row.fetchone()
            return current is not None and bool(alert.status) and current[0] != alert.status
        if alert.template:
            row = self._db.execute(
                "SELECT streak FROM templates WHERE account = ? AND template = ?",
                (alert.account, alert.template),
            ).fetchone()
            return row is not None and row[0] == 0
        return False

    async def mark_given_up(self, ids: Sequence[int], now: datetime, error: str) -> None:
        with self._write() as db:
            db.executemany(
                "UPDATE outbox SET state = 'given_up', attempts = attempts + 1, done_at = ?,"
                " last_error = ? WHERE id = ?",
                [(now.timestamp(), error, i) for i in ids],
            )
            self._step(db, ids, Step(now, "given_up", error))

    async def outbox_counts(self, *, sent: bool = True) -> OutboxCounts:
        """Pending and given-up alerts (each from a partial index, cheap), and unless
        `sent=False` the sent ones (a scan of the outbox: for reports, not hot paths)."""
        pending, given_up = self._db.execute(
            "SELECT (SELECT COUNT(*) FROM outbox WHERE state = 'pending'),"
            " (SELECT COUNT(*) FROM outbox WHERE state = 'given_up')"
        ).fetchone()
        done = 0
        if sent:
            query = "SELECT COUNT(*) FROM outbox WHERE state = 'sent'"
            done = self._db.execute(query).fetchone()[0]
        return OutboxCounts(pending=pending, sent=done, given_up=given_up)

    async def outbox_items(
        self, state: str, limit: int = 50
    ) -> list[tuple[Alert, dict[str, object]]]:
        """The latest alerts in `state`, each with what a report shows beside its title."""
        rows = self._db.execute(
            SELECT_ALERTS
            + REPORT_COLUMNS
            + " FROM outbox WHERE state = ? ORDER BY id DESC LIMIT ?",
            (state, limit),
        )
        return [report_item(row) for row in rows]
