"""What only the PostgreSQL store has, on a real server: leases and fencing between
replicas, claims that two replicas contend for, the schema moved forward under a lock,
databases it refuses, and PgBouncer in transaction mode in front of it."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import psycopg
import pytest

from tests.postgres import PostgresServer
from tests.unit.store.test_contract import T0, T1, alert, cycle, event, failed_job, state
from tests.unit.store.test_contract_reruns import held_failure
from watcher.flakes import Change
from watcher.store import Fenced, Lease, StoreError
from watcher.store.pg_schema import PG_SCHEMA_VERSION
from watcher.store.postgres import PgStore


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[PgStore]:
    opened = await PgStore.open(pg_url)
    yield opened
    await opened.close()


def sql(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)  # type: ignore[arg-type]


async def test_one_holder_at_a_time_and_a_new_epoch_on_each_change(store: PgStore) -> None:
    first = await store.acquire("shop-uk", "a", 30)
    assert first == Lease("shop-uk", "a", 1)
    assert await store.acquire("shop-uk", "b", 30) is None
    assert await store.renew(first, 30)
    await store.release(first)
    second = await store.acquire("shop-uk", "b", 30)
    assert second == Lease("shop-uk", "b", 2)
    assert not await store.renew(first, 30)  # deposed: its epoch is gone
    (leader,) = await store.leaders()
    assert (leader.account, leader.holder, leader.epoch) == ("shop-uk", "b", 2)
    assert 25 < leader.expires_in <= 30


async def test_an_expired_lease_is_taken_over(store: PgStore) -> None:
    old = await store.acquire("default", "a", 0.2)
    assert old is not None
    await asyncio.sleep(0.4)
    new = await store.acquire("default", "b", 30)
    assert new is not None
    assert new.epoch == old.epoch + 1


async def test_a_deposed_leader_commits_nothing(store: PgStore) -> None:
    """The fence is checked in the commit's transaction: a leader whose lease was taken
    over writes no state, no event, no alert, no watermark."""
    old = await store.acquire("default", "a", 0.2)
    assert old is not None
    await asyncio.sleep(0.4)
    assert await store.acquire("default", "b", 30) is not None
    ev = event("jobs/1")
    commit = cycle([state("jobs/1", "failed")], [ev], [alert(ev)], now=T1)
    with pytest.raises(Fenced, match="lease on account default"):
        await store.commit_cycle(dataclasses.replace(commit, fence=old))
    assert await store.states(["jobs/1"]) == {}
    assert await store.watermark() is None
    assert (await store.outbox_counts()).pending == 0


async def test_the_leader_commits_while_its_lease_holds(store: PgStore) -> None:
    lease = await store.acquire("default", "a", 30)
    ev = event("jobs/1")
    commit = cycle([state("jobs/1", "failed")], [ev], [alert(ev)], now=T1)
    queued, fresh = await store.commit_cycle(dataclasses.replace(commit, fence=lease))
    assert (queued, fresh) == (1, {ev.key})


async def test_two_replicas_never_claim_the_same_alert(store: PgStore, pg_url: str) -> None:
    other = await PgStore.open(pg_url)
    try:
        for n in range(50):
            await failed_job(store, f"jobs/{n}")
        ids = [i.id for i in await store.due(T1, limit=100)]
        a, b = await asyncio.gather(store.claim(ids, "a", 60), other.claim(ids, "b", 60))
        assert a | b == set(ids)
        assert not a & b
        assert await store.due(T1) == []  # claimed: due to nobody else meanwhile
    finally:
        await other.close()


async def test_replicas_starting_together_migrate_once(pg_url: str) -> None:
    stores = await asyncio.gather(*(PgStore.open(pg_url) for _ in range(4)))
    for opened in stores:
        await opened.close()
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    assert row == (str(PG_SCHEMA_VERSION),)


async def test_a_newer_schema_is_refused(pg_url: str) -> None:
    await (await PgStore.open(pg_url)).close()
    sql(pg_url, "UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match=r"newer watcher \(schema 99"):
        await PgStore.open(pg_url)


async def test_a_database_of_something_else_is_refused(pg_url: str) -> None:
    sql(pg_url, "CREATE TABLE jobs (id int)")
    with pytest.raises(StoreError, match="not watcher state"):
        await PgStore.open(pg_url)


async def test_a_wrong_password_is_named_without_the_password(postgres: PostgresServer) -> None:
    url = postgres.url(postgres.create_database().rsplit("/", 1)[1], password="not-it")
    with pytest.raises(StoreError) as caught:
        await PgStore.open(url)
    assert "password authentication failed" in str(caught.value)
    assert "not-it" not in str(caught.value)


async def test_an_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match=r"cannot use 127\.0\.0\.1:1/watcher"):
        await PgStore.open("postgresql://watcher:secret-x@127.0.0.1:1/watcher")


async def test_the_store_works_through_pgbouncer_in_transaction_mode(pgbouncer_url: str) -> None:
    """No server-side prepared statement or session state survives a transaction there:
    schema, cycles, claims and leases all work through it."""
    store = await PgStore.open(pgbouncer_url)
    try:
        for _ in range(3):  # statements repeat: nothing may rely on being prepared
            lease = await store.acquire("default", "a", 30)
            assert lease is not None
            await failed_job(store, f"jobs/{lease.epoch}")
        items = await store.due(T1)
        assert await store.claim([i.id for i in items], "a", 60) == {i.id for i in items}
        await store.mark_sent([i.id for i in items], T1)
        assert (await store.outbox_counts()).sent == 3
        assert await store.watermark() == T0
    finally:
        await store.close()


async def test_a_restarted_server_costs_no_call(own_postgres: PostgresServer) -> None:
    """The pool's connections die with the server; the next call is made on a fresh one."""
    store = await PgStore.open(own_postgres.create_database())
    try:
        await failed_job(store, "jobs/1")
        own_postgres.restart()
        assert (await store.outbox_counts()).pending == 1
        assert await failed_job(store, "jobs/2") == 1
    finally:
        await store.close()


async def test_a_deposed_leader_cannot_move_a_rerun(store: PgStore) -> None:
    """A start request's claim and its answer are fenced like a commit: once another
    replica holds the account, the old leader's claim is refused and writes nothing."""
    planned = await held_failure(store)
    old = await store.acquire("default", "a", 0.2)
    assert old is not None
    await asyncio.sleep(0.4)
    new = await store.acquire("default", "b", 30)
    assert new is not None
    claim = dataclasses.replace(planned, state="starting", attempts=1, claimed_at=T1)
    with pytest.raises(Fenced):
        await store.save_rerun(Change(claim), T1, expect=("due", 0), fence=old)
    assert await store.reruns(T0) == [planned]
    assert await store.save_rerun(Change(claim), T1, expect=("due", 0), fence=new)
