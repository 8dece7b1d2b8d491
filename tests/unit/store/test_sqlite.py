"""The SQLite state store, on real files: atomic cycles, dedup of events, the outbox, and
refusing files it does not recognise."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.models import Alert, Event, EventKind, Job, JobState, Severity
from watcher.store import SCHEMA_VERSION, CycleCommit, OutboxCounts, SqliteStore, StoreError
from watcher.store.schema import MIGRATIONS

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=1)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "watcher.db"


@pytest.fixture
async def store(path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(path)
    yield s
    await s.close()


def state(sref: str, status: str = "running") -> JobState:
    return JobState(
        sref=sref,
        status=status,
        status_since=T0,
        first_seen=T0,
        updated_at=T0 + timedelta(seconds=30),
        started_at=T0 - timedelta(minutes=5),
        template="jobTemplates/6789",
        name=f"Job {sref}",
    )


def event(sref: str, to: str = "failed", from_: str = "running") -> Event:
    job = Job(sref=sref, name=f"Job {sref}", status=to, updated_at=T0)
    return Event(kind=EventKind.TRANSITION, job=job, from_status=from_, to_status=to, at=T0)


def alert(ev: Event, channel: str = "ops", rule: str = "failures") -> Alert:
    return Alert(
        kind=ev.kind,
        status=ev.to_status,
        rule=rule,
        channel=channel,
        severity=Severity.FAILURE,
        title=f"{ev.job.name} {ev.to_status}",
        body="body",
        sref=ev.job.sref,
    )


def cycle(
    states: list[JobState] | None = None,
    events: list[Event] | None = None,
    alerts: list[Alert] | None = None,
    *,
    now: datetime = T0,
    unfollowed: tuple[str, ...] = (),
) -> CycleCommit:
    return CycleCommit(
        states=states or [],
        events=events or [],
        alerts=alerts or [],
        watermark=now,
        now=now,
        unfollowed=unfollowed,
    )


async def failed_job(store: SqliteStore, sref: str = "jobs/1", channel: str = "ops") -> int:
    """Commit one failure of `sref` with one alert; return how many alerts were queued."""
    ev = event(sref)
    return await queued(store, cycle([state(sref, "failed")], [ev], [alert(ev, channel)]))


async def queued(store: SqliteStore, commit: CycleCommit) -> int:
    """Commit a cycle; return how many alerts entered the outbox."""
    count, _fresh = await store.commit_cycle(commit)
    return count


# -- a new file -----------------------------------------------------------------------------


async def test_new_store_creates_the_folder_and_file(path: Path) -> None:
    """Opening creates the missing folder and an empty store at the current schema."""
    await SqliteStore(path).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_new_store_is_empty(store: SqliteStore) -> None:
    """A new store knows no jobs, no watermark and has an empty outbox."""
    assert (await store.watermark(), await store.open_jobs(), await store.states(["jobs/1"])) == (
        None,
        {},
        {},
    )
    assert await store.outbox_counts() == OutboxCounts(0, 0, 0)
    assert await store.due(T0 + timedelta(days=1)) == []


# -- commit_cycle ---------------------------------------------------------------------------


async def test_commit_cycle_writes_states(store: SqliteStore) -> None:
    """Committed states are read back field for field."""
    s = state("jobs/1")
    await store.commit_cycle(cycle([s]))
    assert await store.states(["jobs/1"]) == {"jobs/1": s}


async def test_commit_cycle_writes_the_watermark(store: SqliteStore) -> None:
    """The watermark is the cycle's, read back as an aware datetime."""
    await store.commit_cycle(cycle(now=T1))
    assert await store.watermark() == T1


async def test_commit_cycle_updates_a_known_job(store: SqliteStore) -> None:
    """A later state of the same job replaces the earlier one but keeps first_seen."""
    await store.commit_cycle(cycle([state("jobs/1", "running")]))
    later = JobState(sref="jobs/1", status="failed", status_since=T1, first_seen=T1)
    await store.commit_cycle(cycle([later], now=T1))
    stored = (await store.states(["jobs/1"]))["jobs/1"]
    assert (stored.status, stored.status_since, stored.first_seen) == ("failed", T1, T0)


async def test_commit_cycle_queues_alerts_and_records_events(store: SqliteStore) -> None:
    """An event's alerts enter the outbox, one per channel, and the event is recorded."""
    ev = event("jobs/1")
    commit = cycle([state("jobs/1", "failed")], [ev], [alert(ev, "ops"), alert(ev, "mail")])
    assert await queued(store, commit) == 2
    assert [i.alert.channel for i in await store.due(T0)] == ["ops", "mail"]
    assert [e["sref"] for e in await store.recent_events()] == ["jobs/1"]


async def test_outbox_item_carries_the_alert(store: SqliteStore) -> None:
    """A queued alert comes back whole, new, due at its creation."""
    ev = event("jobs/1")
    await store.commit_cycle(cycle([], [ev], [alert(ev)]))
    (item,) = await store.due(T0)
    assert (item.alert, item.created_at, item.attempts, item.next_attempt_at) == (
        alert(ev),
        T0,
        0,
        T0,
    )
    assert item.done_targets == frozenset()


async def test_recorded_event_key_queues_nothing_again(store: SqliteStore) -> None:
    """An event whose key is already recorded gives no second outbox row."""
    assert await failed_job(store) == 1
    ev = event("jobs/1", from_="pending")  # same job and new status: same key
    assert await queued(store, cycle([], [ev], [alert(ev)], now=T1)) == 0
    assert (await store.outbox_counts()).pending == 1


async def test_recorded_event_key_queues_nothing_even_for_a_new_channel(store: SqliteStore) -> None:
    """A known event is not alerted again through a channel added since."""
    await failed_job(store)
    ev = event("jobs/1")
    assert await queued(store, cycle([], [ev], [alert(ev, "mail")], now=T1)) == 0


async def test_commit_cycle_returns_the_keys_recorded_for_the_first_time(
    store: SqliteStore,
) -> None:
    """commit_cycle says which of its events were new, leaving out those already known."""
    await failed_job(store, "jobs/1")
    old, new = event("jobs/1"), event("jobs/2")
    _count, fresh = await store.commit_cycle(cycle([], [old, new], now=T1))
    assert fresh == {new.key}


async def test_the_same_alert_twice_in_a_cycle_is_queued_once(store: SqliteStore) -> None:
    """An event listed twice in one cycle (or a channel named twice) queues one alert per
    event, rule and channel; another rule or channel is another alert."""
    ev, again = event("jobs/1"), event("jobs/1")
    alerts = [alert(ev), alert(again), alert(ev), alert(ev, "mail"), alert(ev, rule="other")]
    assert await queued(store, cycle([], [ev, again], alerts)) == 3
    assert [(i.alert.rule, i.alert.channel) for i in await store.due(T0)] == [
        ("failures", "ops"),
        ("failures", "mail"),
        ("other", "ops"),
    ]


async def test_alert_without_its_event_is_not_queued(store: SqliteStore) -> None:
    """An alert whose event is not in the same cycle is not queued."""
    ev = event("jobs/1")
    assert await queued(store, cycle([], [], [alert(ev)])) == 0


async def test_events_of_different_statuses_are_distinct(store: SqliteStore) -> None:
    """The same job reaching another status is a new event and alerts again."""
    await failed_job(store)
    ev = event("jobs/1", to="Exploded", from_="failed")
    assert await queued(store, cycle([], [ev], [alert(ev)], now=T1)) == 1


async def test_exception_inside_the_write_leaves_nothing_committed(store: SqliteStore) -> None:
    """A cycle that fails half-way writes none of its states, events, alerts or watermark."""
    await store.commit_cycle(cycle([state("jobs/0")]))
    good = event("jobs/1")
    broken = Event(
        kind=EventKind.TRANSITION,
        job=Job(sref="jobs/2", name="x", status="failed"),
        from_status="running",
        to_status="failed",
        at=None,  # type: ignore[arg-type]  # fails inside the transaction
    )
    with pytest.raises(AttributeError):
        await store.commit_cycle(
            cycle([state("jobs/1", "failed")], [good, broken], [alert(good)], now=T1)
        )
    assert (await store.states(["jobs/0", "jobs/1"])).keys() == {"jobs/0"}
    assert (
        await store.watermark(),
        (await store.outbox_counts()).pending,
        await store.recent_events(),
    ) == (T0, 0, [])


async def test_store_is_usable_after_a_failed_write(store: SqliteStore) -> None:
    """A rolled-back cycle leaves no transaction open: the next cycle commits."""
    broken = Event(
        kind=EventKind.TRANSITION,
        job=Job(sref="jobs/2", name="x", status="failed"),
        from_status="running",
        to_status="failed",
        at=None,  # type: ignore[arg-type]
    )
    with pytest.raises(AttributeError):
        await store.commit_cycle(cycle([], [broken]))
    assert await failed_job(store) == 1


# -- reading states -------------------------------------------------------------------------


async def test_states_returns_only_known_srefs(store: SqliteStore) -> None:
    """states() answers for the srefs it knows and leaves out the others."""
    await store.commit_cycle(cycle([state("jobs/1"), state("jobs/2")]))
    assert (await store.states(["jobs/2", "jobs/9"])).keys() == {"jobs/2"}


async def test_states_reads_more_srefs_than_one_query_holds(store: SqliteStore) -> None:
    """More than 500 srefs (one chunk) are all found."""
    srefs = [f"jobs/{n}" for n in range(1234)]
    await store.commit_cycle(cycle([state(s) for s in srefs]))
    found = await store.states([*srefs, "jobs/unknown"])
    assert sorted(found) == sorted(srefs)


async def test_seen_splits_ended_jobs_from_the_others_in_one_pass(store: SqliteStore) -> None:
    """seen() gives the status of ended jobs and the whole state of the others, for
    every chunk of srefs, and nothing for srefs it does not know."""
    srefs = [f"jobs/{n}" for n in range(1500)]
    statuses = ["failed", "running", "completed"]
    await store.commit_cycle(cycle([state(s, statuses[n % 3]) for n, s in enumerate(srefs)]))
    ended, unended = await store.seen([*srefs, "jobs/unknown"])
    assert ended == {s: statuses[n % 3] for n, s in enumerate(srefs) if n % 3 != 1}
    assert unended == await store.states(srefs[1::3])
    assert sorted(unended) == sorted(srefs[1::3])


async def test_states_of_nothing_is_empty(store: SqliteStore) -> None:
    """Asking for no srefs asks the database nothing and finds nothing."""
    await store.commit_cycle(cycle([state("jobs/1")]))
    assert await store.states([]) == {}


async def test_open_jobs_excludes_ended_jobs(store: SqliteStore) -> None:
    """Jobs last seen in a terminal status are not followed."""
    await store.commit_cycle(
        cycle(
            [
                state("jobs/1", "pending"),
                state("jobs/2", "running"),
                state("jobs/3", "failed"),
                state("jobs/4", "completed"),
                state("jobs/5", "cancelled"),
                state("jobs/6", "expired"),
                state("jobs/7", "Exploded"),
            ]
        )
    )
    assert sorted(await store.open_jobs()) == ["jobs/1", "jobs/2", "jobs/7"]


async def test_open_jobs_excludes_unfollowed_jobs(store: SqliteStore) -> None:
    """A job no longer followed (follow_for ran out, or 404) is not returned."""
    await store.commit_cycle(cycle([state("jobs/1"), state("jobs/2")]))
    await store.commit_cycle(cycle(now=T1, unfollowed=("jobs/1",)))
    assert list(await store.open_jobs()) == ["jobs/2"]
    assert await store.known_jobs() == (2, 1)


async def test_job_that_ends_leaves_open_jobs(store: SqliteStore) -> None:
    """An open job whose new state is terminal is no longer open."""
    await store.commit_cycle(cycle([state("jobs/1", "running")]))
    await store.commit_cycle(cycle([state("jobs/1", "failed")], now=T1))
    assert await store.open_jobs() == {}


# -- outbox ---------------------------------------------------------------------------------


async def test_due_respects_next_attempt_time(store: SqliteStore) -> None:
    """An alert is due once its next attempt time has come, not before."""
    await failed_job(store)
    (item,) = await store.due(T0)
    await store.mark_retry([item.id], T0 + timedelta(minutes=5), "down", frozenset())
    assert await store.due(T0 + timedelta(minutes=4)) == []
    assert [i.id for i in await store.due(T0 + timedelta(minutes=5))] == [item.id]


async def test_due_is_oldest_first_and_limited(store: SqliteStore) -> None:
    """due() lists the oldest alerts first, at most `limit` of them."""
    for n in range(5):
        await failed_job(store, f"jobs/{n}")
    assert [i.alert.sref for i in await store.due(T0, limit=3)] == ["jobs/0", "jobs/1", "jobs/2"]


async def test_next_due_is_the_earliest_pending_attempt(store: SqliteStore) -> None:
    """next_due() is the earliest next attempt among pending alerts, or None."""
    assert await store.next_due() is None
    await failed_job(store, "jobs/1")
    await failed_job(store, "jobs/2")
    first, second = await store.due(T0)
    await store.mark_retry([first.id], T0 + timedelta(minutes=9), "down", frozenset())
    await store.mark_retry([second.id], T0 + timedelta(minutes=3), "down", frozenset())
    assert await store.next_due() == T0 + timedelta(minutes=3)


async def test_mark_sent_takes_the_alert_out_of_the_outbox(store: SqliteStore) -> None:
    """A sent alert is no longer due and is counted as sent."""
    await failed_job(store)
    (item,) = await store.due(T0)
    await store.mark_sent([item.id], T1)
    assert await store.due(T1 + timedelta(days=1)) == []
    assert await store.outbox_counts() == OutboxCounts(pending=0, sent=1, given_up=0)


async def test_mark_retry_counts_the_attempt_and_keeps_done_targets(store: SqliteStore) -> None:
    """A retried alert stays pending with one more attempt and the URLs that accepted."""
    await failed_job(store)
    (item,) = await store.due(T0)
    await store.mark_retry([item.id], T1, "delivery failed", frozenset({0, 2}))
    (again,) = await store.due(T1)
    assert (again.attempts, again.next_attempt_at, again.done_targets) == (
        1,
        T1,
        frozenset({0, 2}),
    )
    assert (await store.outbox_items("pending"))[0][1]["last_error"] == "delivery failed"


async def test_mark_retry_replaces_done_targets(store: SqliteStore) -> None:
    """Each retry records the full set of URLs that have accepted so far."""
    await failed_job(store)
    (item,) = await store.due(T0)
    await store.mark_retry([item.id], T1, "x", frozenset({1}))
    await store.mark_retry([item.id], T1, "x", frozenset({1, 3}))
    (again,) = await store.due(T1)
    assert (again.attempts, again.done_targets) == (2, frozenset({1, 3}))


async def test_mark_given_up_keeps_the_alert_as_given_up(store: SqliteStore) -> None:
    """A given-up alert is no longer due, is counted and listed with its reason."""
    await failed_job(store)
    (item,) = await store.due(T0)
    await store.mark_given_up([item.id], T1, "channel kept failing")
    assert await store.due(T1 + timedelta(days=1)) == []
    assert await store.outbox_counts() == OutboxCounts(pending=0, sent=0, given_up=1)
    ((kept, listed),) = await store.outbox_items("given_up")
    assert (kept, listed["id"], listed["last_error"], listed["attempts"]) == (
        item.alert,
        item.id,
        "channel kept failing",
        1,
    )


async def test_outbox_counts_by_state(store: SqliteStore) -> None:
    """outbox_counts() counts pending, sent and given-up alerts separately."""
    for n in range(6):
        await failed_job(store, f"jobs/{n}")
    items = await store.due(T0)
    await store.mark_sent([items[0].id, items[1].id], T1)
    await store.mark_given_up([items[2].id], T1, "x")
    await store.mark_retry([items[3].id], T1, "x", frozenset())
    assert await store.outbox_counts() == OutboxCounts(pending=3, sent=2, given_up=1)


# -- reopening ------------------------------------------------------------------------------


async def test_reopening_keeps_everything(path: Path) -> None:
    """States, watermark, events and the outbox survive closing and reopening."""
    first = SqliteStore(path)
    await failed_job(first, "jobs/1")
    await first.commit_cycle(cycle([state("jobs/2")], now=T1))
    (item,) = await first.due(T1)
    await first.mark_retry([item.id], T1, "down", frozenset({0}))
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
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5


async def test_queued_alerts_keep_their_variables_and_templates(store: SqliteStore) -> None:
    """What the cycle queues comes back from the outbox as it went in."""
    queued = dataclasses.replace(
        alert(event("jobs/1")), title="", body="", variables='{"job": {}}', title_source="{{ x }}"
    )
    await store.commit_cycle(cycle([state("jobs/1", "failed")], [event("jobs/1")], [queued]))
    (item,) = await store.due(T1)
    assert item.alert == queued


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
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"jobs_first_seen", "events_recorded", "outbox_created"} <= indexes
        assert "jobs_started" not in indexes


# -- old rows, found by rowid -----------------------------------------------------------------


async def written_at(
    store: SqliteStore, when: datetime, srefs: list[str], status: str = "failed"
) -> None:
    """A cycle at `when` that first sees `srefs` (started an hour before) and records an
    event for each."""
    states = [
        dataclasses.replace(
            state(s, status),
            first_seen=when,
            status_since=when,
            started_at=when - timedelta(hours=1),
        )
        for s in srefs
    ]
    await store.commit_cycle(cycle(states, [event(s) for s in srefs], now=when))


async def test_prune_forgets_what_is_older_than_the_cutoff_and_nothing_else(
    store: SqliteStore,
) -> None:
    """Ended jobs first seen and started before the cutoff, and events recorded before it,
    go; newer ones and unfinished jobs stay, however many cycles wrote them."""
    for day in range(10):
        await written_at(store, T0 + timedelta(days=day), [f"jobs/{day}-{n}" for n in range(3)])
    await written_at(store, T0, ["jobs/open"], status="running")
    cutoff = T0 + timedelta(days=6)
    assert await store.prune(cutoff) == 2 * 6 * 3 + 1  # and the open job's event
    kept = await store.states(
        [f"jobs/{d}-{n}" for d in range(10) for n in range(3)] + ["jobs/open"]
    )
    assert sorted(kept) == sorted(
        [f"jobs/{d}-{n}" for d in range(6, 10) for n in range(3)] + ["jobs/open"]
    )
    assert await store.known_events([event(f"jobs/{d}-0").key for d in range(10)]) == {
        event(f"jobs/{d}-0").key for d in range(6, 10)
    }
    assert await store.prune(cutoff) == 0


async def test_prune_goes_in_batches(store: SqliteStore) -> None:
    await written_at(store, T0, [f"jobs/{n}" for n in range(7)])
    later = T0 + timedelta(days=1)
    assert await store.prune(later, limit=5) == 10
    assert await store.prune(later, limit=5) == 4
    assert await store.known_jobs() == (0, 0)


async def test_prune_keeps_a_job_that_started_after_the_cutoff(store: SqliteStore) -> None:
    """Seen before the cutoff, started after it (a clock that was behind): kept, as a
    listing could still show it."""
    late = dataclasses.replace(state("jobs/1", "failed"), started_at=T1 + timedelta(days=2))
    await store.commit_cycle(cycle([late]))
    assert await store.prune(T0 + timedelta(days=1)) == 0
    assert await store.known_jobs() == (1, 0)


async def test_prune_is_not_thrown_by_a_clock_that_jumped(store: SqliteStore) -> None:
    """A cycle stamped a year ahead (the API's Date header went wild once), then back:
    the rows written after it still go when they are old, and nothing newer than the
    cutoff goes, that year-ahead cycle's included."""
    await written_at(store, T0, ["jobs/a"])
    await written_at(store, T0 + timedelta(days=365), ["jobs/ahead"])
    await written_at(store, T0 + timedelta(hours=1), ["jobs/b"])
    await written_at(store, T0 + timedelta(days=10), ["jobs/c"])
    assert await store.prune(T0 + timedelta(days=5)) == 4
    assert sorted(await store.states(["jobs/a", "jobs/ahead", "jobs/b", "jobs/c"])) == [
        "jobs/ahead",
        "jobs/c",
    ]


async def test_count_started_between_counts_the_jobs_of_a_span(store: SqliteStore) -> None:
    """Jobs started in [start, end), among those first seen since start (a catch-up sees
    jobs long after they started: they count)."""
    for hour in range(6):
        await written_at(
            store, T0 + timedelta(hours=hour), [f"jobs/{hour}-{n}" for n in range(hour + 1)]
        )
    # a catch-up at hour 9 first sees jobs that started at hours 1 and 2
    catch_up = [
        dataclasses.replace(
            state(f"jobs/late-{n}", "failed"),
            first_seen=T0 + timedelta(hours=9),
            started_at=T0 + timedelta(hours=1 + n % 2, minutes=10),
        )
        for n in range(4)
    ]
    await store.commit_cycle(cycle(catch_up, now=T0 + timedelta(hours=9)))
    # started at hours 1..3 (written an hour later): written at 2, 3, 4 -> 3 + 4 + 5
    start, end = T0 + timedelta(hours=1), T0 + timedelta(hours=4)
    assert await store.count_started_between(start, end) == 3 + 4 + 5 + 4
    assert await store.count_started_between(end, start) == 0


async def test_prune_forgets_finished_alerts_only(store: SqliteStore) -> None:
    """Alerts sent or given up before the cutoff go; pending ones stay, however old, and
    so do those finished after it."""
    for day, sref in enumerate(["jobs/sent", "jobs/pending", "jobs/gone", "jobs/late"]):
        ev = event(sref)
        await store.commit_cycle(cycle([], [ev], [alert(ev)], now=T0 + timedelta(days=day)))
    ids = {i.alert.sref: i.id for i in await store.due(T0 + timedelta(days=9))}
    await store.mark_sent([ids["jobs/sent"]], T0 + timedelta(days=4))
    await store.mark_given_up([ids["jobs/gone"]], T0 + timedelta(days=4), "refused")
    await store.mark_sent([ids["jobs/late"]], T0 + timedelta(days=6))
    await store.prune(T0 + timedelta(days=5))
    assert [i.alert.sref for i in await store.due(T0 + timedelta(days=9))] == ["jobs/pending"]
    assert await store.outbox_counts() == OutboxCounts(pending=1, sent=1, given_up=0)


@pytest.mark.parametrize("variables", [32766, 999], ids=["many rows a statement", "low limit"])
async def test_a_large_cycle_writes_every_row(store: SqliteStore, variables: int) -> None:
    """Rows go in many to a statement, the rest one by one, or all one by one under an
    SQLite built with a low variable limit: every row arrives whole, either way."""
    store._db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, variables)
    srefs = [f"jobs/{n}" for n in range(1234)]
    states = [dataclasses.replace(state(s, "failed"), name=f"Job {n}") for n, s in enumerate(srefs)]
    events = [event(s) for s in srefs]
    assert await queued(store, cycle(states, events, [alert(e) for e in events])) == 1234
    assert await store.states(srefs) == {s.sref: s for s in states}
    assert await store.known_events([e.key for e in events]) == {e.key for e in events}
    due = await store.due(T1, limit=2000)
    assert [i.alert for i in due] == [alert(e) for e in events]
    assert (await store.outbox_counts()).pending == 1234
