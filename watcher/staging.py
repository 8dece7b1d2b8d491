"""The first poll's jobs, kept on disk while the window is read.

The first poll ever records the jobs that had already ended without an event for them
(`poll.alert_on_first_run: false`), and such a window can hold a million jobs. Held as
objects until the commit, they would cost the daemon about 650 bytes each (700 MB for
a million); here each page's jobs go to a scratch SQLite file as the page is read, but
for the unfinished ones that could make an event this cycle (the cycle's `keep`: a rule
wants their status, or they are stuck already), which stay in memory. What the cycle
needs of the staged jobs is read back from the file: each template's last start and
failure streak (two scans), the rows for the commit (a SQLite store attaches the file
and copies them in one statement; PostgreSQL takes them in chunks), the unfinished
ones (followed from now on), and the statuses of the ended ones for the next cycle's
listing.

The file is scratch, not state: no journal, no fsync, deleted when the cycle ends; a
file left by a killed process is deleted by the next process's first cycle
(`remove_leftovers`, called by the daemon).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import structlog

from watcher import fast
from watcher.models import FAILURE_STATUSES, TERMINAL_STATUSES, Job, JobState, TemplateState
from watcher.store.base import StagedRow, StoreError, job_states

log = structlog.get_logger("watcher.staging")
PREFIX = ".watcher-staged-"  # then the process id: a dead process's file is removed
CHUNK = 5_000  # rows a commit statement takes from the file at a time
# A window of fewer jobs is held in memory (under 15 MB), where it costs less CPU than
# the file: decided on the first page, by the total it gives, for the whole listing.
STAGE_FROM = 20_000
# The file's bound (about 85 bytes a job: 2.4M jobs); past it the listing starts again in
# memory. The Kubernetes manifests give /tmp room for it where the state is not a file.
MAX_BYTES = 200 * 2**20

_SCHEMA = (
    "CREATE TABLE staged (sref TEXT PRIMARY KEY, status TEXT NOT NULL, updated REAL,"
    " started REAL, template TEXT NOT NULL, name TEXT NOT NULL, since REAL NOT NULL,"
    " ended INTEGER NOT NULL, seq INTEGER NOT NULL) WITHOUT ROWID"
)
_INSERT = "INSERT OR IGNORE INTO staged VALUES (?,?,?,?,?,?,?,?,?)"
# The page cache while the listing writes (jobs come in no order the key follows: with
# a small cache each insert reads and writes pages of the file; 8 MiB holds 100k jobs'
# rows, and inserts them in three quarters of the time 2 MiB takes), and after.
_WRITE_CACHE_KIB = 8192
_READ_CACHE_KIB = 512
# A commit's rows (`StagedRows`), the first-seen time their parameter.
_ROWS = (
    "SELECT sref, status, since, ?, updated, started, template, name, ended FROM {schema}.staged"
)
# A job listed twice keeps its newer record and its first place (`seq`), as the
# in-memory listing does (`payload.newer`: the later updatedAt; a record with one over
# a record without); the listing's order breaks ties below, as it does in `tracker`.
_NEWER = (
    "UPDATE staged SET status = ?, updated = ?, started = ?, template = ?, name = ?,"
    " since = ?, ended = ? WHERE sref = ? AND ? IS NOT NULL AND (updated IS NULL OR ? > updated)"
)


Keep = Callable[[Job], bool]  # an unfinished job the cycle must hold in memory


def _every(_job: Job) -> bool:
    return True


def open_for(folder: Path | None, now: datetime, keep: Keep) -> Staged | None:
    """A scratch file in `folder` (None: the temporary folder), or None if none can be
    made there: the first poll then holds its jobs in memory, as any other does."""
    try:
        return Staged(folder, now, keep)
    except (OSError, sqlite3.Error) as exc:
        log.warning(
            "first_poll_in_memory",
            folder=str(folder or tempfile.gettempdir()),
            error=str(exc),
            hint="the first poll's jobs are staged in a scratch file there",
        )
        return None


class Staged:
    """A scratch file of the jobs first seen this cycle; `take` is the listing's sink."""

    def __init__(self, folder: Path | None, now: datetime, keep: Keep = _every) -> None:
        handle, name = tempfile.mkstemp(prefix=f"{PREFIX}{os.getpid()}-", suffix=".db", dir=folder)
        os.close(handle)
        self.path = Path(name)
        self._now = now
        self._keep = keep
        self._db = sqlite3.connect(self.path, isolation_level=None)
        try:
            self._prepare()
        except BaseException:
            self.close()
            raise
        self.count = 0  # distinct jobs staged
        self._seq = 0  # the listing's order
        self.on: bool | None = None  # staging, once the first page has told

    def _prepare(self) -> None:
        pragmas = ("journal_mode = OFF", "synchronous = OFF", f"cache_size = {-_WRITE_CACHE_KIB}")
        for pragma in pragmas:
            self._db.execute(f"PRAGMA {pragma}")
        page = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        self._db.execute(f"PRAGMA max_page_count = {max(MAX_BYTES // page, 16)}")
        self._db.execute(_SCHEMA)
        # One transaction while the listing writes (until `finish`): nobody else reads
        # the file meanwhile, and a commit a page would write the pages out each time.
        self._db.execute("BEGIN")

    def take(self, jobs: Sequence[Job], total: int | None) -> list[Job]:
        """Stage a page's jobs, if the listing is large (`total`, the page's count of
        the whole window, None if not given); return those to hold, in order."""
        if self.on is None:
            self.on = total is None or total >= STAGE_FROM
        if not self.on:
            return list(jobs)
        held = [j for j in jobs if j.status not in TERMINAL_STATUSES and self._keep(j)]
        if len(held) == len(jobs):
            return held
        kept = {id(j) for j in held}
        stamps = fast.Stamps()  # a page's jobs share dates; one a page keeps it small
        staging = (j for j in jobs if id(j) not in kept)
        staged = [self._row(j, self._seq + n, stamps) for n, j in enumerate(staging)]
        self._seq += len(staged)
        with self._scratch():
            before = self._db.total_changes
            self._db.executemany(_INSERT, staged)
            new = self._db.total_changes - before
            if new < len(staged):  # listed before (a shifted page): keep the newer record
                self._db.executemany(_NEWER, ((*r[1:8], r[0], r[2], r[2]) for r in staged))
        self.count += new
        return held

    def _row(self, job: Job, seq: int, stamp: fast.Stamps) -> tuple[object, ...]:
        """A job's row, `seq` its place in the listing; its status's start as a first
        sighting's (`fast.first_since`)."""
        updated, started = job.updated_at, job.started_at
        return (
            job.sref,
            job.status,
            stamp[updated] if updated else None,
            stamp[started] if started else None,
            job.template,
            job.name,
            stamp[fast.first_since(job, self._now)],
            job.status in TERMINAL_STATUSES,
            seq,
        )

    def among(self, srefs: Iterable[str]) -> set[str]:
        """Which of `srefs` are staged (a job listed both unfinished and ended: the
        ended record wins, a terminal status being final)."""
        found: set[str] = set()
        with self._scratch():
            for batch in _batches(srefs, 500):
                marks = ",".join("?" * len(batch))
                sql = f"SELECT sref FROM staged WHERE sref IN ({marks})"  # noqa: S608  # marks only
                found.update(row[0] for row in self._db.execute(sql, batch))
        return found

    def templates(self, known: dict[str, TemplateState]) -> dict[str, TemplateState]:
        """Each staged template's state after these jobs, over what was `known`: its
        newest start (for `missed`) and its failures in a row."""
        with self._scratch():
            newest, streaks = self._scan()
        out: dict[str, TemplateState] = {}
        for template, (started, _, name) in newest.items():
            state = self._state(template, known, out)
            when = datetime.fromtimestamp(started, UTC)
            if state.last_start is None or when > state.last_start:
                out[template] = dataclasses.replace(state, last_start=when, last_name=name)
        for template, (broken, failures) in streaks.items():
            state = self._state(template, known, out)
            streak = failures + (0 if broken else state.streak)
            out[template] = dataclasses.replace(state, streak=streak)
        return out

    def _scan(self) -> tuple[dict[str, tuple[float, int, str]], dict[str, tuple[bool, int]]]:
        """Two plain scans (SQLite's sort of the whole file costs more than these loops),
        holding a few values a template, never a job: template -> (newest start, -its
        place, its name), the first listed of two alike; template -> (a completed job
        broke the streak, failures after the last one), in the order the jobs ended,
        then started, then were listed, as `tracker` counts; cancelled jobs neither break
        nor extend a streak."""
        now = self._now.timestamp()
        newest: dict[str, tuple[float, int, str]] = {}
        cut: dict[str, tuple[float, float, int]] = {}  # template -> its last completion
        # a job's place in that order: (ended, started, seq), now for a date not given
        dates = "coalesce(updated, :now), coalesce(started, :now)"
        every = f"SELECT template, status, started, seq, name, {dates} FROM staged"  # noqa: S608
        for template, status, started, seq, name, ended_at, started_at in self._db.execute(
            every + " WHERE template != ''", {"now": now}
        ):
            if started is not None and (
                template not in newest or (started, -seq) > newest[template][:2]
            ):
                newest[template] = (started, -seq, name)
            if status == "completed":
                key = (ended_at, started_at, seq)
                if template not in cut or key > cut[template]:
                    cut[template] = key
        streaks = dict.fromkeys(cut, (True, 0))
        failed = " OR ".join(f"status = '{status}'" for status in sorted(FAILURE_STATUSES))
        failures = f"SELECT template, {dates}, seq FROM staged WHERE template != '' AND ({failed})"  # noqa: S608
        for template, ended_at, started_at, seq in self._db.execute(failures, {"now": now}):
            key = (ended_at, started_at, seq)
            if template not in cut or key > cut[template]:
                broken, count = streaks.get(template, (False, 0))
                streaks[template] = (broken, count + 1)
        return newest, streaks

    def _state(
        self, template: str, known: dict[str, TemplateState], out: dict[str, TemplateState]
    ) -> TemplateState:
        found = out.get(template) or known.get(template)
        return found or TemplateState(template=template, watching_since=self._now)

    def rows(self) -> Iterator[list[StagedRow]]:
        """The job rows for the commit, CHUNK at a time: (sref, status, status since,
        first seen, updated, started, template, name, ended); may be read more than once
        (a commit retried on a new connection)."""
        with self._scratch():
            cursor = self._db.execute(_ROWS.format(schema="main"), (self._now.timestamp(),))
            while chunk := cursor.fetchmany(CHUNK):
                yield [(*row[:8], row[8] == 1) for row in chunk]

    def shared(self) -> tuple[Path, str]:
        """The file, once `finish`ed (a SQLite store attaches it and copies the rows in
        one statement, a quarter of the time they take through Python), and the query of
        `rows`' columns from it attached as `scratch`, its one parameter the first-seen
        time."""
        return self.path, _ROWS.format(schema="scratch")

    def finish(self) -> int:
        """The listing is done: its rows are committed (another connection reads them
        from now on, see `shared`) and the page cache is given back (the listing's
        inserts wanted it large; what follows reads the file in order). How many staged
        jobs have not ended (followed from now on)."""
        with self._scratch():
            if self._db.in_transaction:
                self._db.execute("COMMIT")
            self._db.execute(f"PRAGMA cache_size = {-_READ_CACHE_KIB}")
            self._db.execute("PRAGMA shrink_memory")
            return int(
                self._db.execute("SELECT COUNT(*) FROM staged WHERE ended = 0").fetchone()[0]
            )

    def followed(self) -> dict[str, JobState]:
        """The staged jobs that have not ended, as `Store.open_jobs` reads them once
        committed (the same rows, made by the same function): the next cycle's start."""
        sql = _ROWS.format(schema="main") + " WHERE ended = 0"
        with self._scratch():
            return job_states(self._db.execute(sql, (self._now.timestamp(),)))

    def ended(self, limit: int) -> Iterator[tuple[str, str]]:
        """(sref, status) of at most `limit` staged jobs that have ended (settled for
        the next cycle's listing)."""
        sql = "SELECT sref, status FROM staged WHERE ended = 1 LIMIT ?"
        with self._scratch():
            yield from self._db.execute(sql, (limit,))

    def close(self) -> None:
        self._db.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    @contextlib.contextmanager
    def _scratch(self) -> Iterator[None]:
        try:
            yield
        except (sqlite3.Error, OSError) as exc:
            raise StagingFailed(f"the first poll's scratch file {self.path}: {exc}") from None


class StagingFailed(StoreError):
    """The scratch file could not be written or read (a full disk, say): the listing
    starts again in memory; later, the cycle fails and the store is left as it was."""


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


def _batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(items)
    while batch := list(itertools.islice(it, size)):
        yield batch
