"""The history half of the SQLite store: forgetting what is older than the retention,
and counting the jobs of a span.

Both go by when rows were first written (`first_seen`, `recorded_at`, `created_at`):
rows are appended in that order, so its indexes cost little on the write of a large
cycle, and a prune or a count reads only the rows it is about, whatever the size of
the history, and whatever a clock did meanwhile.
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from datetime import datetime


class HistoryTables:
    """Mixed into SqliteStore, which provides the connection and write transactions."""

    _db: sqlite3.Connection
    account: str

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    async def prune(self, before: datetime, limit: int = 5000) -> int:
        """Forget ended jobs that started and were first seen, events recorded and alerts
        finished before `before` (and their steps), at most `limit` rows of each per call,
        silences that ended and acknowledgements given before it, series last fed and
        lookups queued before it; return how many rows went."""
        cutoff = before.timestamp()
        with self._write() as db:
            removed = db.execute(
                "DELETE FROM jobs WHERE rowid IN (SELECT rowid FROM jobs WHERE first_seen < ?"
                " AND COALESCE(started_at, first_seen) < ? AND (ended = 1 OR followed = 0)"
                " LIMIT ?)",
                (cutoff, cutoff, limit),
            ).rowcount
            removed += db.execute(
                "DELETE FROM events WHERE rowid IN (SELECT rowid FROM events"
                " WHERE recorded_at < ? LIMIT ?)",
                (cutoff, limit),
            ).rowcount
            # an alert finished before the cutoff was queued before it
            removed += db.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE created_at < ?"
                " AND state != 'pending' AND done_at < ? LIMIT ?)",
                (cutoff, cutoff, limit),
            ).rowcount
            removed += db.execute(
                "DELETE FROM alert_steps WHERE rowid IN (SELECT rowid FROM alert_steps"
                " WHERE at < ? LIMIT ?)",
                (cutoff, limit),
            ).rowcount
            removed += db.execute(
                "DELETE FROM silences WHERE MIN(ends_at, COALESCE(expired_at, ends_at)) < ?",
                (cutoff,),
            ).rowcount
            removed += db.execute("DELETE FROM acks WHERE created_at < ?", (cutoff,)).rowcount
            # a series no job has fed for the retention is forgotten (its baseline is old
            # news); a lookup still waiting after it never will be read
            removed += db.execute(
                "DELETE FROM series WHERE rowid IN (SELECT rowid FROM series"
                " WHERE updated_at < ? LIMIT ?)",
                (cutoff, limit),
            ).rowcount
            removed += db.execute("DELETE FROM lookups WHERE queued_at < ?", (cutoff,)).rowcount
            removed += db.execute("DELETE FROM reruns WHERE ended_at < ?", (cutoff,)).rowcount
        return removed

    async def count_started_between(self, start: datetime, end: datetime) -> int:
        """How many known jobs started in [start, end): an estimate (of how many pages a
        listing of that span takes) counted among the jobs first seen since `start`,
        which is where jobs that started then are, without reading the older history."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM jobs WHERE first_seen >= ? AND account = ?"
            " AND started_at >= ? AND started_at < ?",
            (start.timestamp(), self.account, start.timestamp(), end.timestamp()),
        ).fetchone()
        return int(row[0])
