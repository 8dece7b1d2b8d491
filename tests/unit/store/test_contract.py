"""The contract of a state store, the same tests against both: SQLite on a real file,
PostgreSQL on a real server (tests/postgres.py). What only one of them has (files,
schema files of older versions; leases that other replicas contend for) is tested
beside it: tests/unit/store/test_sqlite.py, test_postgres.py."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from watcher.models import Alert, Event, EventKind, Job, JobState, Severity
from watcher.store import CycleCommit, OutboxCounts, SqliteStore, Store
from watcher.store.base import StagedRow
from watcher.store.postgres import PgStore

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=1)


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened: Store
    if request.param == "sqlite":
        opened = SqliteStore(tmp_path / "state" / "watcher.db")
    else:
        opened = await PgStore.open(request.getfixturevalue("pg_url"))
    yield opened
    await opened.close()


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


async def failed_job(store: Store, sref: str = "jobs/1", channel: str = "ops") -> int:
    """Commit one failure of `sref` with one alert; return how many alerts were queued."""
    ev = event(sref)
    return await queued(store, cycle([state(sref, "failed")], [ev], [alert(ev, channel)]))


async def queued(store: Store, commit: CycleCommit) -> int:
    """Commit a cycle; return how many alerts entered the outbox."""
    count, _fresh = await store.commit_cycle(commit)
    return count


async def test_new_store_is_empty(store: Store) -> None:
    """A new store knows no jobs, no watermark and has an empty outbox."""
    assert (await store.watermark(), await store.open_jobs(), await store.states(["jobs/1"])) == (
        None,
        {},
        {},
    )
    assert await store.outbox_counts() == OutboxCounts(0, 0, 0)
    assert await store.due(T0 + timedelta(days=1)) == []


async def test_commit_cycle_writes_states(store: Store) -> None:
    """Committed states are read back field for field."""
    s = state("jobs/1")
    await store.commit_cycle(cycle([s]))
    assert await store.states(["jobs/1"]) == {"jobs/1": s}


class Staged:
    """Staged rows as `staging.Staged` gives them: in chunks, readable twice, or from a
    file of their own (their first-seen time is the commit's, as staging's are)."""

    def __init__(self, rows: list[StagedRow], folder: Path) -> None:
        self._rows = rows
        self._path = folder / "staged.db"

    def rows(self) -> Iterator[list[StagedRow]]:
        yield self._rows[:2]
        yield self._rows[2:]

    def shared(self) -> tuple[Path, str]:
        with contextlib.closing(sqlite3.connect(self._path)) as db, db:
            db.execute(
                "CREATE TABLE staged (sref, status, since, updated, started, template, name, ended)"
            )
            db.executemany(
                "INSERT INTO staged VALUES (?,?,?,?,?,?,?,?)", [r[:3] + r[4:] for r in self._rows]
            )
        query = "SELECT sref, status, since, ?, updated, started, template, name, ended"
        return self._path, query + " FROM scratch.staged"


async def test_commit_cycle_writes_staged_rows_as_states(store: Store, tmp_path: Path) -> None:
    """The first poll's staged jobs are written beside the cycle's states."""
    t0, t1 = T0.timestamp(), T1.timestamp()
    rows = [
        (f"jobs/{n}", "completed", t1, t1, t0, t0 - 60, "jobTemplates/1", f"Job {n}", True)
        for n in range(5)
    ]
    rows[3] = ("jobs/3", "failed", t1, t1, None, None, "", "Job 3", True)
    rows.append(("jobs/5", "running", t0 - 60, t1, t0, t0 - 60, "jobTemplates/1", "Job 5", False))
    commit = dataclasses.replace(cycle([state("jobs/9")], now=T1), staged=Staged(rows, tmp_path))
    await store.commit_cycle(commit)
    ended, unended = await store.seen([f"jobs/{n}" for n in range(10)])
    assert ended == {f"jobs/{n}": "failed" if n == 3 else "completed" for n in range(5)}
    assert sorted(unended) == ["jobs/5", "jobs/9"]
    assert unended["jobs/5"].status_since == T0 - timedelta(minutes=1)
    stored = await store.states(["jobs/0", "jobs/3"])
    assert stored["jobs/0"] == JobState(
        "jobs/0", "completed", T1, T1, T0, T0 - timedelta(minutes=1), "jobTemplates/1", "Job 0"
    )
    assert stored["jobs/3"] == JobState("jobs/3", "failed", T1, T1, None, None, "", "Job 3")
    assert sorted(await store.open_jobs()) == ["jobs/5", "jobs/9"]  # an unfinished one, followed


async def test_commit_cycle_writes_the_watermark(store: Store) -> None:
    """The watermark is the cycle's, read back as an aware datetime."""
    await store.commit_cycle(cycle(now=T1))
    assert await store.watermark() == T1


async def test_commit_cycle_updates_a_known_job(store: Store) -> None:
    """A later state of the same job replaces the earlier one but keeps first_seen."""
    await store.commit_cycle(cycle([state("jobs/1", "running")]))
    later = JobState(sref="jobs/1", status="failed", status_since=T1, first_seen=T1)
    await store.commit_cycle(cycle([later], now=T1))
    stored = (await store.states(["jobs/1"]))["jobs/1"]
    assert (stored.status, stored.status_since, stored.first_seen) == ("failed", T1, T0)


async def test_commit_cycle_queues_alerts_and_records_events(store: Store) -> None:
    """An event's alerts enter the outbox, one per channel, and the event is recorded."""
    ev = event("jobs/1")
    commit = cycle([state("jobs/1", "failed")], [ev], [alert(ev, "ops"), alert(ev, "mail")])
    assert await queued(store, commit) == 2
    assert [i.alert.channel for i in await store.due(T0)] == ["ops", "mail"]
    assert [e["sref"] for e in await store.recent_events()] == ["jobs/1"]


async def test_recent_events_say_a_timers_template_and_how_long(store: Store) -> None:
    """A stuck job's event keeps how long it had been stuck; a missed template's, which has
    no job, the template and how long it went without a start."""
    stuck = Event(
        EventKind.STUCK,
        Job(sref="jobs/1", name="Job 1", status="running", template="jobTemplates/1"),
        "running",
        "running",
        T0,
        stuck_for=3 * 3600.0,
        rule="stuck",
    )
    missed = Event(
        EventKind.MISSED,
        Job(sref="", name="Nightly", status="", template="jobTemplates/2"),
        "",
        "missed",
        T0,
        stuck_for=26 * 3600.0,
        rule="nightly",
    )
    await store.commit_cycle(cycle([], [stuck, missed]))
    shown = {
        (e["kind"], e["sref"], e["template"], e["lasted"]) for e in await store.recent_events()
    }
    assert shown == {
        ("stuck", "jobs/1", "jobTemplates/1", 3 * 3600.0),
        ("missed", "", "jobTemplates/2", 26 * 3600.0),
    }


async def test_outbox_item_carries_the_alert(store: Store) -> None:
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


async def test_recorded_event_key_queues_nothing_again(store: Store) -> None:
    """An event whose key is already recorded gives no second outbox row."""
    assert await failed_job(store) == 1
    ev = event("jobs/1", from_="pending")  # same job and new status: same key
    assert await queued(store, cycle([], [ev], [alert(ev)], now=T1)) == 0
    assert (await store.outbox_counts()).pending == 1


async def test_recorded_event_key_queues_nothing_even_for_a_new_channel(store: Store) -> None:
    """A known event is not alerted again through a channel added since."""
    await failed_job(store)
    ev = event("jobs/1")
    assert await queued(store, cycle([], [ev], [alert(ev, "mail")], now=T1)) == 0


async def test_commit_cycle_returns_the_keys_recorded_for_the_first_time(
    store: Store,
) -> None:
    """commit_cycle says which of its events were new, leaving out those already known."""
    await failed_job(store, "jobs/1")
    old, new = event("jobs/1"), event("jobs/2")
    _count, fresh = await store.commit_cycle(cycle([], [old, new], now=T1))
    assert fresh == {new.key}


async def test_the_same_alert_twice_in_a_cycle_is_queued_once(store: Store) -> None:
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


async def test_alert_without_its_event_is_not_queued(store: Store) -> None:
    """An alert whose event is not in the same cycle is not queued."""
    ev = event("jobs/1")
    assert await queued(store, cycle([], [], [alert(ev)])) == 0


async def test_events_of_different_statuses_are_distinct(store: Store) -> None:
    """The same job reaching another status is a new event and alerts again."""
    await failed_job(store)
    ev = event("jobs/1", to="Exploded", from_="failed")
    assert await queued(store, cycle([], [ev], [alert(ev)], now=T1)) == 1


async def test_exception_inside_the_write_leaves_nothing_committed(store: Store) -> None:
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


async def test_store_is_usable_after_a_failed_write(store: Store) -> None:
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


async def test_states_returns_only_known_srefs(store: Store) -> None:
    """states() answers for the srefs it knows and leaves out the others."""
    await store.commit_cycle(cycle([state("jobs/1"), state("jobs/2")]))
    assert (await store.states(["jobs/2", "jobs/9"])).keys() == {"jobs/2"}


async def test_states_reads_more_srefs_than_one_query_holds(store: Store) -> None:
    """More than 500 srefs (one chunk) are all found."""
    srefs = [f"jobs/{n}" for n in range(1234)]
    await store.commit_cycle(cycle([state(s) for s in srefs]))
    found = await store.states([*srefs, "jobs/unknown"])
    assert sorted(found) == sorted(srefs)


async def test_seen_splits_ended_jobs_from_the_others_in_one_pass(store: Store) -> None:
    """seen() gives the status of ended jobs and the whole state of the others, for
    every chunk of srefs, and nothing for srefs it does not know."""
    srefs = [f"jobs/{n}" for n in range(1500)]
    statuses = ["failed", "running", "completed"]
    await store.commit_cycle(cycle([state(s, statuses[n % 3]) for n, s in enumerate(srefs)]))
    ended, unended = await store.seen([*srefs, "jobs/unknown"])
    assert ended == {s: statuses[n % 3] for n, s in enumerate(srefs) if n % 3 != 1}
    assert unended == await store.states(srefs[1::3])
    assert sorted(unended) == sorted(srefs[1::3])


async def test_states_of_nothing_is_empty(store: Store) -> None:
    """Asking for no srefs asks the database nothing and finds nothing."""
    await store.commit_cycle(cycle([state("jobs/1")]))
    assert await store.states([]) == {}


async def test_open_jobs_excludes_ended_jobs(store: Store) -> None:
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


async def test_open_jobs_excludes_unfollowed_jobs(store: Store) -> None:
    """A job no longer followed (follow_for ran out, or 404) is not returned."""
    await store.commit_cycle(cycle([state("jobs/1"), state("jobs/2")]))
    await store.commit_cycle(cycle(now=T1, unfollowed=("jobs/1",)))
    assert list(await store.open_jobs()) == ["jobs/2"]
    assert await store.known_jobs() == (2, 1)


async def test_job_that_ends_leaves_open_jobs(store: Store) -> None:
    """An open job whose new state is terminal is no longer open."""
    await store.commit_cycle(cycle([state("jobs/1", "running")]))
    await store.commit_cycle(cycle([state("jobs/1", "failed")], now=T1))
    assert await store.open_jobs() == {}


async def test_due_respects_next_attempt_time(store: Store) -> None:
    """An alert is due once its next attempt time has come, not before."""
    await failed_job(store)
    (item,) = await store.due(T0)
    await store.mark_retry([item.id], T0 + timedelta(minutes=5), "down", frozenset(), now=T0)
    assert await store.due(T0 + timedelta(minutes=4)) == []
    assert [i.id for i in await store.due(T0 + timedelta(minutes=5))] == [item.id]


async def test_due_is_oldest_first_and_limited(store: Store) -> None:
    """due() lists the oldest alerts first, at most `limit` of them."""
    for n in range(5):
        await failed_job(store, f"jobs/{n}")
    assert [i.alert.sref for i in await store.due(T0, limit=3)] == ["jobs/0", "jobs/1", "jobs/2"]


async def test_next_due_is_the_earliest_pending_attempt(store: Store) -> None:
    """next_due() is the earliest next attempt among pending alerts, or None."""
    assert await store.next_due() is None
    await failed_job(store, "jobs/1")
    await failed_job(store, "jobs/2")
    first, second = await store.due(T0)
    await store.mark_retry([first.id], T0 + timedelta(minutes=9), "down", frozenset(), now=T0)
    await store.mark_retry([second.id], T0 + timedelta(minutes=3), "down", frozenset(), now=T0)
    assert await store.next_due() == T0 + timedelta(minutes=3)


async def test_mark_sent_takes_the_alert_out_of_the_outbox(store: Store) -> None:
    """A sent alert is no longer due and is counted as sent."""
    await failed_job(store)
    (item,) = await store.due(T0)
    await store.mark_sent([item.id], T1)
    assert await store.due(T1 + timedelta(days=1)) == []
    assert await store.outbox_counts() == OutboxCounts(pending=0, sent=1, given_up=0)


async def test_mark_retry_counts_the_attempt_and_keeps_done_targets(store: Store) -> None:
    """A retried alert stays pending with one more attempt and the URLs that accepted."""
    await failed_job(store)
    (item,) = await store.due(T0)
    await store.mark_retry([item.id], T1, "delivery failed", frozenset({0, 2}), now=T0)
    (again,) = await store.due(T1)
    assert (again.attempts, again.next_attempt_at, again.done_targets) == (
        1,
        T1,
        frozenset({0, 2}),
    )
    assert (await store.outbox_items("pending"))[0][1]["last_error"] == "delivery failed"


async def test_mark_retry_replaces_done_targets(store: Store) -> None:
    """Each retry records the full set of URLs that have accepted so far."""
    await failed_job(store)
    (item,) = await store.due(T0)
    await store.mark_retry([item.id], T1, "x", frozenset({1}), now=T0)
    await store.mark_retry([item.id], T1, "x", frozenset({1, 3}), now=T0)
    (again,) = await store.due(T1)
    assert (again.attempts, again.done_targets) == (2, frozenset({1, 3}))


async def test_mark_given_up_keeps_the_alert_as_given_up(store: Store) -> None:
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


async def test_outbox_counts_by_state(store: Store) -> None:
    """outbox_counts() counts pending, sent and given-up alerts separately."""
    for n in range(6):
        await failed_job(store, f"jobs/{n}")
    items = await store.due(T0)
    await store.mark_sent([items[0].id, items[1].id], T1)
    await store.mark_given_up([items[2].id], T1, "x")
    await store.mark_retry([items[3].id], T1, "x", frozenset(), now=T0)
    assert await store.outbox_counts() == OutboxCounts(pending=3, sent=2, given_up=1)


async def test_queued_alerts_keep_their_variables_and_templates(store: Store) -> None:
    """What the cycle queues comes back from the outbox as it went in."""
    queued = dataclasses.replace(
        alert(event("jobs/1")), title="", body="", variables='{"job": {}}', title_source="{{ x }}"
    )
    await store.commit_cycle(cycle([state("jobs/1", "failed")], [event("jobs/1")], [queued]))
    (item,) = await store.due(T1)
    assert item.alert == queued


async def written_at(
    store: Store, when: datetime, srefs: list[str], status: str = "failed"
) -> None:
    """A cycle at `when` that first sees `srefs` (started an hour before) and records an
    event for each."""
    states = [
        msgspec.structs.replace(
            state(s, status),
            first_seen=when,
            status_since=when,
            started_at=when - timedelta(hours=1),
        )
        for s in srefs
    ]
    await store.commit_cycle(cycle(states, [event(s) for s in srefs], now=when))


async def test_prune_forgets_what_is_older_than_the_cutoff_and_nothing_else(
    store: Store,
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


async def test_prune_goes_in_batches(store: Store) -> None:
    await written_at(store, T0, [f"jobs/{n}" for n in range(7)])
    later = T0 + timedelta(days=1)
    assert await store.prune(later, limit=5) == 10
    assert await store.prune(later, limit=5) == 4
    assert await store.known_jobs() == (0, 0)


async def test_prune_keeps_a_job_that_started_after_the_cutoff(store: Store) -> None:
    """Seen before the cutoff, started after it (a clock that was behind): kept, as a
    listing could still show it."""
    late = msgspec.structs.replace(state("jobs/1", "failed"), started_at=T1 + timedelta(days=2))
    await store.commit_cycle(cycle([late]))
    assert await store.prune(T0 + timedelta(days=1)) == 0
    assert await store.known_jobs() == (1, 0)


async def test_prune_is_not_thrown_by_a_clock_that_jumped(store: Store) -> None:
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


async def test_count_started_between_counts_the_jobs_of_a_span(store: Store) -> None:
    """Jobs started in [start, end), among those first seen since start (a catch-up sees
    jobs long after they started: they count)."""
    for hour in range(6):
        await written_at(
            store, T0 + timedelta(hours=hour), [f"jobs/{hour}-{n}" for n in range(hour + 1)]
        )
    # a catch-up at hour 9 first sees jobs that started at hours 1 and 2
    catch_up = [
        msgspec.structs.replace(
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


async def test_prune_forgets_finished_alerts_only(store: Store) -> None:
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


# -- accounts, claims ---------------------------------------------------------------------


async def test_accounts_keep_their_own_jobs_events_templates_and_watermark(store: Store) -> None:
    """One sref in two accounts is two jobs; an event recorded for one is news to the other."""
    uk, de = store.scoped("shop-uk"), store.scoped("shop-de")
    assert await failed_job(uk, "jobs/1") == 1
    assert await de.states(["jobs/1"]) == {}
    assert await de.watermark() is None
    assert await failed_job(de, "jobs/1") == 1
    assert (await uk.states(["jobs/1"])).keys() == (await de.states(["jobs/1"])).keys()
    accounts = sorted(i.alert.account for i in await store.due(T1))
    assert accounts == ["shop-de", "shop-uk"]
    assert await store.scoped("default").known_events(["transition:jobs/1:failed"]) == set()


async def test_a_claimed_alert_is_the_claimers_until_its_outcome_is_recorded(store: Store) -> None:
    """One replica's claim keeps an alert from another; recording the outcome ends it."""
    await failed_job(store)
    (item,) = await store.due(T1)
    assert await store.claim([item.id], "replica-a", 60) == {item.id}
    assert await store.claim([item.id], "replica-a", 60) == {item.id}  # its own, again
    await store.mark_retry([item.id], T0, "delivery failed", frozenset(), now=T0)
    assert await store.claim([item.id], "replica-b", 60) == {item.id}
    await store.mark_sent([item.id], T1)
    assert await store.claim([item.id], "replica-a", 60) == set()  # sent: nobody's
