"""The SQLite state store, on real files: atomic cycles, dedup of events, the outbox, and
refusing files it does not recognise."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import pytest

from tests.unit.store.test_contract import (
    T0,
    T1,
    alert,
    cycle,
    event,
    failed_job,
    queued,
    state,
)
from watcher.store import SCHEMA_VERSION, OutboxCounts, SqliteStore, StoreError
from watcher.store.base import StagedRow
from watcher.store.schema import MIGRATIONS


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "watcher.db"


@pytest.fixture
async def store(path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(path)
    yield s
    await s.close()


# -- a new file -----------------------------------------------------------------------------


async def test_new_store_creates_the_folder_and_file(path: Path) -> None:
    """Opening creates the missing folder and an empty store at the current schema."""
    await SqliteStore(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


# -- commit_cycle ---------------------------------------------------------------------------


# -- reading states -------------------------------------------------------------------------


# -- outbox ---------------------------------------------------------------------------------


# -- reopening ------------------------------------------------------------------------------


async def test_reopening_keeps_everything(path: Path) -> None:
    """States, watermark, events and the outbox survive closing and reopening."""
    first = SqliteStore(path)
    await failed_job(first, "jobs/1")
    await first.commit_cycle(cycle([state("jobs/2")], now=T1))
    (item,) = await first.due(T1)
    await first.mark_retry([item.id], T1, "down", frozenset({0}), now=T0)
    await first.close()

    second = SqliteStore(path)
    try:
        assert await second.watermark() == T1
        assert (await second.states(["jobs/1", "jobs/2"])).keys() == {"jobs/1", "jobs/2"}
        assert list(await second.open_jobs()) == ["jobs/2"]
        (again,) = await second.due(T1)
        assert (again.id, again.attempts, again.done_targets) == (item.id, 1, frozenset({0}))
        assert await failed_job(second, "jobs/1") == 0  # the event is still known
    finally:
        await second.close()


async def test_readonly_reads_an_existing_store(path: Path) -> None:
    """A read-only store sees what was written."""
    writer = SqliteStore(path)
    await failed_job(writer)
    await writer.close()
    reader = SqliteStore(path, readonly=True)
    try:
        assert ((await reader.outbox_counts()).pending, await reader.known_jobs()) == (1, (1, 0))
    finally:
        await reader.close()


@pytest.mark.usefixtures("lenient_umask")
async def test_a_new_state_file_its_log_and_its_folder_are_owner_only(path: Path) -> None:
    """Under umask 022: the folder made for it 0700; the file, its -wal and -shm 0600."""
    store = SqliteStore(path)
    try:
        await failed_job(store)
        files = [path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")]
        modes = [stat.S_IMODE(p.stat().st_mode) for p in [path.parent, *files]]
    finally:
        await store.close()
    assert modes == [0o700, 0o600, 0o600, 0o600]


# -- files it must not use ------------------------------------------------------------------


def test_readonly_does_not_create_a_missing_file(path: Path) -> None:
    """A read-only open of a missing file fails and creates neither file nor folder."""
    with pytest.raises(StoreError, match=r"state\.path: cannot open"):
        SqliteStore(path, readonly=True)
    assert not path.parent.exists()


async def test_readonly_does_not_migrate(path: Path) -> None:
    """A read-only open of an empty database leaves it without tables."""
    path.parent.mkdir(parents=True)
    sqlite3.connect(path).close()
    await SqliteStore(path, readonly=True).close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0
        assert db.execute("PRAGMA user_version").fetchone()[0] == 0


def foreign(path: Path, user_version: int = 0) -> bytes:
    """Write an SQLite file that another program made; return its bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    db.execute("INSERT INTO customers (name) VALUES ('Ada')")
    db.execute(f"PRAGMA user_version = {user_version}")
    db.commit()
    db.close()
    return path.read_bytes()


def test_foreign_sqlite_file_is_refused(path: Path) -> None:
    """An SQLite file with other tables and no watcher version is a StoreError."""
    foreign(path)
    with pytest.raises(StoreError, match="holds tables that are not watcher state"):
        SqliteStore(path)


def test_foreign_sqlite_file_is_left_untouched(path: Path) -> None:
    """Refusing a foreign file leaves it byte for byte as it was."""
    before = foreign(path)
    with pytest.raises(StoreError):
        SqliteStore(path)
    assert path.read_bytes() == before


def test_foreign_sqlite_file_is_refused_read_only(path: Path) -> None:
    """`watcher status` on a foreign file is refused too."""
    foreign(path)
    with pytest.raises(StoreError, match="not watcher state"):
        SqliteStore(path, readonly=True)


@pytest.mark.parametrize("readonly", [False, True], ids=["run", "status"])
def test_a_fifo_at_the_state_path_is_refused(path: Path, readonly: bool) -> None:
    """A FIFO is refused at once: SQLite's read-only open would wait for a writer, and
    retry through SIGTERM (`watcher status` hung unkillable)."""
    path.parent.mkdir()
    os.mkfifo(path)
    with pytest.raises(StoreError, match=r"^state\.path: .*watcher\.db is not a regular file$"):
        SqliteStore(path, readonly=readonly)


def test_newer_schema_is_refused(path: Path) -> None:
    """A file written by a newer watcher is a StoreError naming both versions."""
    foreign(path, user_version=SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match=rf"newer watcher \(schema {SCHEMA_VERSION + 1}"):
        SqliteStore(path)


def test_newer_schema_is_left_untouched(path: Path) -> None:
    """Refusing a newer file does not change it (a downgrade must not break the upgrade)."""
    before = foreign(path, user_version=SCHEMA_VERSION + 1)
    with pytest.raises(StoreError):
        SqliteStore(path)
    assert path.read_bytes() == before


def test_non_sqlite_file_is_refused(path: Path) -> None:
    """A file that is not SQLite at all is a StoreError, and is left as it was."""
    path.parent.mkdir(parents=True)
    junk = os.urandom(8192)
    path.write_bytes(junk)
    with pytest.raises(StoreError, match="is not a usable state file"):
        SqliteStore(path)
    assert path.read_bytes() == junk


def test_store_error_names_the_key_and_file(path: Path) -> None:
    """The message starts with the configuration key and names the file."""
    foreign(path)
    with pytest.raises(StoreError) as caught:
        SqliteStore(path)
    assert str(caught.value).startswith(f"state.path: {path} ")


def version_1(path: Path) -> None:
    """A state file as version 1 wrote it, with one pending alert rendered at queue time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[1] + "; PRAGMA user_version = 1;")
    db.execute(
        "INSERT INTO outbox (event_key, rule, channel, severity, title, body, sref, created_at,"
        " next_attempt_at) VALUES ('transition:jobs/1:failed', 'failures', 'ops', 'failure',"
        " 'Job 1 failed', 'went from running to failed', 'jobs/1', ?, ?)",
        (T0.timestamp(), T0.timestamp()),
    )
    db.commit()
    db.close()


async def test_a_version_1_file_is_migrated_and_its_queued_alerts_keep_their_text(
    path: Path,
) -> None:
    """Moving to rendering at send time loses no alert queued by the older version."""
    version_1(path)
    with pytest.raises(StoreError, match=r"older watcher \(schema 1\).*start the daemon"):
        SqliteStore(path, readonly=True)
    store = SqliteStore(path)
    try:
        (item,) = await store.due(T1)
    finally:
        await store.close()
    assert (item.alert.title, item.alert.body, item.alert.variables) == (
        "Job 1 failed",
        "went from running to failed",
        "",
    )
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 9


async def test_commits_leave_checkpoints_to_checkpoint(store: SqliteStore, path: Path) -> None:
    """A commit does not copy the log into the file, even a commit larger than SQLite's
    automatic checkpoint (1000 pages): the event loop would wait for it. `checkpoint`
    does, on its own connection, and the data is readable throughout."""
    await store.commit_cycle(cycle([state(f"jobs/{n}") for n in range(40_000)]))
    wal = path.with_name(path.name + "-wal")
    before = path.stat().st_size
    assert wal.stat().st_size > 4_000_000 > before
    assert await store.known_jobs() == (40_000, 40_000)
    await store.checkpoint()
    assert path.stat().st_size > 4_000_000
    assert await store.known_jobs() == (40_000, 40_000)


def version_2(path: Path) -> None:
    """A state file as version 2 wrote it: a job, an event, a sent, a given-up and a
    pending alert (ids 1 to 3)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[1] + MIGRATIONS[2] + "; PRAGMA user_version = 2;")
    db.execute(
        "INSERT INTO jobs (sref, status, status_since, first_seen, started_at, ended)"
        " VALUES ('jobs/1', 'failed', ?, ?, ?, 1)",
        (T0.timestamp(), T0.timestamp(), T0.timestamp()),
    )
    db.execute(
        "INSERT INTO events (key, kind, sref, from_status, to_status, at, recorded_at)"
        " VALUES ('transition:jobs/1:failed', 'transition', 'jobs/1', 'running', 'failed', ?, ?)",
        (T0.timestamp(), T0.timestamp()),
    )
    for channel, state_ in (("sent", "sent"), ("gone", "given_up"), ("ops", "pending")):
        db.execute(
            "INSERT INTO outbox (event_key, rule, channel, severity, title, body, sref,"
            " created_at, next_attempt_at, state, vars, title_source) VALUES"
            " ('transition:jobs/1:failed', 'failures', ?, 'failure', '', '', 'jobs/1', ?, ?, ?,"
            " '[1]', '{{ job.name }}')",
            (channel, T0.timestamp(), T0.timestamp(), state_),
        )
    db.commit()
    db.close()


async def test_a_version_2_file_keeps_its_jobs_events_and_alerts(path: Path) -> None:
    """Version 3 rebuilds the outbox and trades an index: every row stays, with its id,
    and the ids of new alerts follow the old ones."""
    version_2(path)
    store = SqliteStore(path)
    try:
        assert await store.known_jobs() == (1, 0)
        assert await store.known_events(["transition:jobs/1:failed"]) == {
            "transition:jobs/1:failed"
        }
        (pending,) = await store.due(T1)
        assert (pending.id, pending.alert.channel, pending.alert.variables) == (3, "ops", "[1]")
        assert pending.alert.title_source == "{{ job.name }}"
        assert [seen["id"] for _alert, seen in await store.outbox_items("given_up")] == [2]
        assert await store.outbox_counts() == OutboxCounts(pending=1, sent=1, given_up=1)
        await failed_job(store, "jobs/2")
        assert [i.id for i in await store.due(T1)] == [3, 4]
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 9
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"jobs_first_seen", "events_recorded", "outbox_created"} <= indexes
        assert "jobs_started" not in indexes


# -- old rows, found by rowid -----------------------------------------------------------------


@pytest.mark.parametrize("variables", [32766, 999], ids=["many rows a statement", "low limit"])
async def test_a_large_cycle_writes_every_row(store: SqliteStore, variables: int) -> None:
    """Rows go in many to a statement, the rest one by one, or all one by one under an
    SQLite built with a low variable limit: every row arrives whole, either way."""
    store._db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, variables)
    srefs = [f"jobs/{n}" for n in range(1234)]
    states = [
        msgspec.structs.replace(state(s, "failed"), name=f"Job {n}") for n, s in enumerate(srefs)
    ]
    events = [event(s) for s in srefs]
    assert await queued(store, cycle(states, events, [alert(e) for e in events])) == 1234
    assert await store.states(srefs) == {s.sref: s for s in states}
    assert await store.known_events([e.key for e in events]) == {e.key for e in events}
    due = await store.due(T1, limit=2000)
    assert [i.alert for i in due] == [alert(e) for e in events]
    assert (await store.outbox_counts()).pending == 1234


# -- a first poll's staged rows ---------------------------------------------------------------


class _Gone:
    """Staged rows whose file is gone by the commit (rows as `Staged` would give them)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "gone.db"

    def rows(self) -> Iterator[list[StagedRow]]:
        yield []

    def shared(self) -> tuple[Path, str]:
        return (
            self.path,
            "SELECT sref, status, since, ?, updated, started, template, name, ended"
            " FROM scratch.staged",
        )


async def test_staged_rows_that_cannot_be_read_fail_the_whole_cycle(
    store: SqliteStore, tmp_path: Path
) -> None:
    """The scratch file gone before the commit: a StoreError, nothing of the cycle
    written, and the store's next commit works (the file was detached)."""
    commit = dataclasses.replace(cycle([state("jobs/9")], now=T1), staged=_Gone(tmp_path))
    with pytest.raises(StoreError, match=r"no such table: scratch\.staged"):
        await store.commit_cycle(commit)
    assert await store.watermark() is None
    assert await store.states(["jobs/9"]) == {}
    await store.commit_cycle(cycle([state("jobs/9")], now=T1))
    assert list(await store.states(["jobs/9"])) == ["jobs/9"]
