"""The first poll's ended jobs, kept on disk while the window is read.

The first poll ever records the jobs that had already ended without an event for them
(`poll.alert_on_first_run: false`), and such a window can hold a million jobs. Held as
objects until the commit, they would cost the daemon about 650 bytes each (700 MB for
a million); here each page's ended jobs go to a scratch SQLite file as the page is read,
and only the unfinished ones stay in memory for the rest of the cycle. What the
cycle needs of the staged jobs is read back from the file: each template's last start
and failure streak (an ordered scan, a template at a time), the rows for the commit
(in chunks), and the statuses for the next cycle's listing.

The file is scratch, not state: no journal, no fsync, deleted when the cycle ends, and
a file left by a killed process is deleted by the next cycle that stages.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import structlog

from watcher.models import FAILURE_STATUSES, TERMINAL_STATUSES, Job, TemplateState
from watcher.store.base import StagedRow

log = structlog.get_logger("watcher.staging")
PREFIX = ".watcher-staged-"  # beside the state file; a leftover of a killed cycle is removed
CHUNK = 5_000  # rows a commit statement takes from the file at a time

_SCHEMA = (
    "CREATE TABLE staged (sref TEXT PRIMARY KEY, status TEXT NOT NULL, updated REAL,"
    " started REAL, template TEXT NOT NULL, name TEXT NOT NULL, seq INTEGER NOT NULL)"
    " WITHOUT ROWID"
)
# A job listed twice keeps its newer record and its first place (`seq`), as the
# in-memory listing does (`payload.newer`: the later updatedAt; a record with one over
# a record without), whose order breaks ties below as it does in `tracker`.
_UPSERT = (
    "INSERT INTO staged VALUES (?,?,?,?,?,?,?) ON CONFLICT (sref) DO UPDATE SET"
    " status = excluded.status, updated = excluded.updated, started = excluded.started,"
    " template = excluded.template, name = excluded.name"
    " WHERE excluded.updated IS NOT NULL"
    " AND (staged.updated IS NULL OR excluded.updated > staged.updated)"
)


def open_for(folder: Path | None, now: datetime) -> Staged | None:
    """A scratch file in `folder` (None: the temporary folder), or None if none can be
    made there: the first poll then holds its jobs in memory, as any other does."""
    try:
        return Staged(folder, now)
    except (OSError, sqlite3.Error) as exc:
        log.warning(
            "first_poll_in_memory",
            folder=str(folder or tempfile.gettempdir()),
            error=str(exc),
            hint="the first poll's ended jobs are staged in a scratch file there",
        )
        return None


# Each template's newest start (of two alike, the first listed).
_NEWEST = (
    "SELECT template, started, name FROM (SELECT template, started, name,"
    " ROW_NUMBER() OVER (PARTITION BY template ORDER BY started DESC, seq) AS n"
    " FROM staged WHERE template != '' AND started IS NOT NULL) WHERE n = 1"
)
# Each template's failures after its last completed job (all of them if none completed:
# `broken` is 0, and the streak goes on from the one known), in the order they ended.
_FAILED = ",".join(f"'{status}'" for status in sorted(FAILURE_STATUSES))
_STREAKS = f"""
WITH ordered AS (
    SELECT template, status, ROW_NUMBER() OVER (PARTITION BY template
        ORDER BY COALESCE(updated, ?1), COALESCE(started, ?2), seq) AS n
    FROM staged WHERE template != '' AND status != 'cancelled'
), cut AS (
    SELECT template, MAX(CASE WHEN status = 'completed' THEN n END) AS reset
    FROM ordered GROUP BY template
)
SELECT template, reset IS NOT NULL,
    SUM(status IN ({_FAILED}) AND (reset IS NULL OR n > reset))
FROM ordered JOIN cut USING (template) GROUP BY template
"""  # noqa: S608  # the statuses are our own constants


class Staged:
    """A scratch file of ended jobs first seen this cycle; `take` is the listing's sink."""

    def __init__(self, folder: Path | None, now: datetime) -> None:
        if folder is not None:
            remove_leftovers(folder)
        handle, name = tempfile.mkstemp(prefix=f"{PREFIX}{os.getpid()}-", suffix=".db", dir=folder)
        os.close(handle)
        self.path = Path(name)
        self._now = now
        self._db = sqlite3.connect(self.path, isolation_level=None)
        for pragma in ("journal_mode = OFF", "synchronous = OFF", "cache_size = -2048"):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.execute(_SCHEMA)
        # One transaction for the file's whole life: nobody else reads it, and a commit
        # a page would write the pages out each time.
        self._db.execute("BEGIN")
        self.count = 0  # distinct jobs staged
        self._seq = 0  # the listing's order

    def take(self, jobs: Sequence[Job]) -> list[Job]:
        """Stage the ended jobs of a page; return the others (unfinished), in order."""
        ended = [j for j in jobs if j.status in TERMINAL_STATUSES]
        if not ended:
            return list(jobs)
        srefs = {j.sref for j in ended}
        self.count += len(srefs - self.among(srefs))
        seq = self._seq
        self._seq += len(ended)
        self._db.executemany(
            _UPSERT,
            (
                (j.sref, j.status, _ts(j.updated_at), _ts(j.started_at), j.template, j.name, n)
                for n, j in enumerate(ended, seq)
            ),
        )
        return [j for j in jobs if j.status not in TERMINAL_STATUSES]

    def among(self, srefs: Iterable[str]) -> set[str]:
        """Which of `srefs` are staged (a job listed both unfinished and ended: the
        ended record wins, a terminal status being final)."""
        found: set[str] = set()
        for batch in _batches(srefs, 500):
            marks = ",".join("?" * len(batch))
            sql = f"SELECT sref FROM staged WHERE sref IN ({marks})"  # noqa: S608  # marks only
            found.update(row[0] for row in self._db.execute(sql, batch))
        return found

    def templates(self, known: dict[str, TemplateState]) -> dict[str, TemplateState]:
        """Each staged template's state after these jobs: its newest start (for
        `missed`) and its failures in a row (counted as `tracker` counts them: by end,
        then start; cancelled jobs neither break nor extend a streak)."""
        out: dict[str, TemplateState] = {}
        for template, started, name in self._db.execute(_NEWEST):
            state = self._state(template, known, out)
            when = datetime.fromtimestamp(started, UTC)
            if state.last_start is None or when > state.last_start:
                out[template] = dataclasses.replace(state, last_start=when, last_name=name)
        now = self._now.timestamp()
        for template, broken, failures in self._db.execute(_STREAKS, (now, now)):
            state = self._state(template, known, out)
            streak = failures + (0 if broken else state.streak)
            out[template] = dataclasses.replace(state, streak=streak)
        return out

    def _state(
        self, template: str, known: dict[str, TemplateState], out: dict[str, TemplateState]
    ) -> TemplateState:
        found = out.get(template) or known.get(template)
        return found or TemplateState(template=template, watching_since=self._now)

    def rows(self) -> Iterator[list[StagedRow]]:
        """The job rows for the commit, CHUNK at a time: (sref, status, status since,
        first seen, updated, started, template, name); may be read more than once (a
        commit retried on a new connection)."""
        now = self._now.timestamp()
        cursor = self._db.execute(
            "SELECT sref, status, ?, ?, updated, started, template, name FROM staged", (now, now)
        )
        while chunk := cursor.fetchmany(CHUNK):
            yield chunk

    def statuses(self, limit: int) -> dict[str, str]:
        """sref -> status of at most `limit` staged jobs (for the next cycle's listing)."""
        return dict(self._db.execute("SELECT sref, status FROM staged LIMIT ?", (limit,)))

    def close(self) -> None:
        self._db.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def remove_leftovers(folder: Path) -> None:
    """Scratch files of processes that were killed before they could remove their own
    (named by process id: another live process's file, such as another replica's on
    the same host, is left alone)."""
    for stale in folder.glob(f"{PREFIX}*.db"):
        pid = stale.name.removeprefix(PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _ts(when: datetime | None) -> float | None:
    return None if when is None else when.timestamp()


def _batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(items)
    while batch := list(itertools.islice(it, size)):
        yield batch
