"""The history half of the SQLite store: forgetting what is older than the retention,
and counting the jobs of a span, both without an index on time.

Rows are appended as jobs are first seen, events recorded and alerts queued, so when
each row was first written grows with its rowid: old rows are found by bisection on
the rowid, and a prune or a count reads only the rows it is about, whatever the size
of the history.
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from datetime import datetime

# table -> (its last rowid, the first row from a rowid on and when it was first written)
_WRITTEN = {
    "jobs": (
        "SELECT MAX(rowid) FROM jobs",
        "SELECT rowid, first_seen FROM jobs WHERE rowid >= ? ORDER BY rowid LIMIT 1",
    ),
    "events": (
        "SELECT MAX(rowid) FROM events",
        "SELECT rowid, recorded_at FROM events WHERE rowid >= ? ORDER BY rowid LIMIT 1",
    ),
    "outbox": (
        "SELECT MAX(id) FROM outbox",
        "SELECT id, created_at FROM outbox WHERE id >= ? ORDER BY id LIMIT 1",
    ),
}


class HistoryTables:
    """Mixed into SqliteStore, which provides the connection and write transactions."""

    _db: sqlite3.Connection

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _first_since(self, table: str, since: float) -> int:
        """The first rowid of `table` (see `_WRITTEN`) from which rows were first written
        `since` or later, by bisection: rows are appended, so when each was first written
        (`first_seen`, `recorded_at`, `created_at`) grows with the rowid. A clock set back
        breaks that order by as much as it moved: a bound that much off."""
        last, first_from = _WRITTEN[table]
        low, high = 0, int(self._db.execute(last).fetchone()[0] or 0) + 1
        while low < high:
            middle = (low + high) // 2
            row = self._db.execute(first_from, (middle,)).fetchone()
            if row is None or row[1] >= since:
                high = middle
            else:
                low = row[0] + 1
        return low

    def prune(self, before: datetime, limit: int = 5000) -> int:
        """Forget ended jobs that started and were first seen, events recorded and alerts
        finished before `before`, at most `limit` rows of each per call; return how many
        rows went. No index to keep up on every write, and a call costs the same with a
        million rows kept or none."""
        cutoff = before.timestamp()
        with self._write() as db:
            removed = db.execute(
                "DELETE FROM jobs WHERE rowid IN (SELECT rowid FROM jobs WHERE rowid < ?"
                " AND first_seen < ? AND COALESCE(started_at, first_seen) < ?"
                " AND (ended = 1 OR followed = 0) LIMIT ?)",
                (self._first_since("jobs", cutoff), cutoff, cutoff, limit),
            ).rowcount
            removed += db.execute(
                "DELETE FROM events WHERE rowid IN (SELECT rowid FROM events"
                " WHERE rowid < ? AND recorded_at < ? LIMIT ?)",
                (self._first_since("events", cutoff), cutoff, limit),
            ).rowcount
            # an alert finished before the cutoff was queued before it
            removed += db.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox"
                " WHERE id < ? AND state != 'pending' AND done_at < ? LIMIT ?)",
                (self._first_since("outbox", cutoff), cutoff, limit),
            ).rowcount
        return removed

    def count_started_between(self, start: datetime, end: datetime) -> int:
        """How many known jobs started in [start, end): an estimate (of how many pages a
        listing of that span takes) counted among the jobs first seen since `start`, which
        is where jobs that started then are, without a scan of the whole history."""
        since = self._first_since("jobs", start.timestamp())
        row = self._db.execute(
            "SELECT COUNT(*) FROM jobs WHERE rowid >= ? AND started_at >= ? AND started_at < ?",
            (since, start.timestamp(), end.timestamp()),
        ).fetchone()
        return int(row[0])
