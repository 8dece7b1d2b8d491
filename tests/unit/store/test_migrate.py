"""`watcher migrate`: a SQLite state copied into PostgreSQL reads the same through the
store interface, pending alerts included; a non-empty target is refused untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.store.test_contract import T0, T1, failed_job, state
from tests.unit.store.test_contract import cycle as make_cycle
from tests.unit.store.test_contract_reruns import held_failure
from watcher.people import Ack, Silence
from watcher.store import SqliteStore, StoreError
from watcher.store.migrate import migrate
from watcher.store.postgres import PgStore


async def sqlite_state(path: Path) -> None:
    store = SqliteStore(path)
    await failed_job(store, "jobs/1")  # pending
    await failed_job(store, "jobs/2", "mail")
    (sent, retried) = await store.due(T1)
    await store.mark_sent([sent.id], T1)
    await store.mark_retry([retried.id], T1, "delivery failed", frozenset({0}), now=T1)
    await failed_job(store.scoped("shop-uk"), "jobs/1")
    await store.commit_cycle(make_cycle([state("jobs/9")], now=T1))  # a job still running
    silence = Silence(0, (("name", "Nightly *"),), T0, T1, author="ann", comment="maintenance")
    await store.add_silence(silence, T0)
    ended = await store.add_silence(silence, T0)
    await store.expire_silence(ended, T0)
    await store.add_ack(Ack(0, "default", job="jobs/9", status="running", comment="on it"), T1)
    await store.add_ack(Ack(0, "shop-uk", job="jobs/1", status="failed"), T1)
    await held_failure(store, "jobs/4")  # a rerun due, holding its failure's alert
    await store.close()


async def test_everything_reads_the_same_after_the_copy(tmp_path: Path, pg_url: str) -> None:
    path = tmp_path / "watcher.db"
    await sqlite_state(path)
    copied = await migrate(path, pg_url)
    assert copied.rows == {
        "jobs": 5,
        "templates": 0,
        "events": 4,
        "outbox": 5,
        "alert_steps": 3,  # the sent alert's, the retried one's, the held one's
        "silences": 2,
        "acks": 2,
        "series": 0,
        "lookups": 0,
        "reruns": 1,
    }
    assert copied.pending == 3  # and one waiting for its rerun
    source, target = SqliteStore(path, readonly=True), await PgStore.open(pg_url)
    try:
        for name in ("default", "shop-uk"):
            a, b = source.scoped(name), target.scoped(name)
            srefs = ["jobs/1", "jobs/2", "jobs/9"]
            assert await b.states(srefs) == await a.states(srefs)
            assert await b.open_jobs() == await a.open_jobs()
            assert await b.watermark() == await a.watermark()
            keys = ["transition:jobs/1:failed", "transition:jobs/2:failed"]
            assert await b.known_events(keys) == await a.known_events(keys)
        assert await target.outbox_counts() == await source.outbox_counts()
        far = T1.replace(year=2100)
        assert await target.due(far) == await source.due(far)
        assert await target.outbox_items("sent") == await source.outbox_items("sent")
        assert await target.alert_records(T0) == await source.alert_records(T0)
        assert await target.silences() == await source.silences()
        assert await target.acks() == await source.acks()
        assert await target.reruns(T0) == await source.reruns(T0)
        assert [a.holds for a in await target.acks()] == [True, True]
        new = await target.add_silence(Silence(0, (("to", "*"),), T0, T1, comment="x"), T1)
        assert new > max(s.id for s in await source.silences())  # ids go on past the copy
        assert await failed_job(target, "jobs/3") == 1
        newest = max(i.id for i in await target.due(far))
        assert newest > max(i.id for i in await source.due(far))  # ids go on past the copy
    finally:
        await source.close()
        await target.close()


async def test_a_non_empty_target_is_refused_and_left_as_it_was(
    tmp_path: Path, pg_url: str
) -> None:
    path = tmp_path / "watcher.db"
    await sqlite_state(path)
    await migrate(path, pg_url)
    with pytest.raises(StoreError, match="already holds watcher state"):
        await migrate(path, pg_url)
    target = await PgStore.open(pg_url)
    try:
        assert (await target.outbox_counts()).pending == 3
    finally:
        await target.close()
