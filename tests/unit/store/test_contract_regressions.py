"""The contract of the regression tables (series, lookups), the same on both stores."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from tests.unit.store.test_contract import store
from watcher.baseline import SeriesState
from watcher.models import Job
from watcher.store import CycleCommit, Lookup, SeriesRow, Store

T0 = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
KEY = ("jobTemplates/6789", "https://shop.example.com/checkout", "Chrome", "onLoad")
OTHER = ("jobTemplates/6789", "https://shop.example.com/checkout", "Firefox", "onLoad")


__all__ = ["store"]  # test_contract's fixture: each test on both stores


def commit(now: datetime = T0, **parts: object) -> CycleCommit:
    return CycleCommit(states=[], events=[], alerts=[], watermark=now, now=now, **parts)  # type: ignore[arg-type]


def row(key: tuple[str, str, str, str], values: tuple[float, ...], n: int = 0) -> SeriesRow:
    state = SeriesState(baseline=values).to_json().decode()
    return SeriesRow(key, state, n, T0)


def job(n: int, started: datetime | None) -> Job:
    return Job(
        sref=f"jobs/{n}",
        name="Nightly checkout",
        status="completed",
        started_at=started,
        updated_at=T0,
        template="jobTemplates/6789",
        run_type="scheduled",
        type="Single",
        started_by="Joe Bloggs",
        page_count=3,
        test_runs_uri=f"testRuns?job=jobs%2F{n}",
    )


async def test_series_are_written_with_the_cycle_and_read_back_by_key(store: Store) -> None:
    await store.commit_cycle(commit(series=[row(KEY, (1.5, 1.6)), row(OTHER, (2.0,), 1)]))
    found = await store.series([KEY, ("jobTemplates/1", "u", "b", "onLoad")])
    assert list(found) == [KEY]
    assert SeriesState.from_json(found[KEY].state).baseline == (1.5, 1.6)
    assert found[KEY].updated_at == T0
    later = T0 + timedelta(hours=1)
    await store.commit_cycle(
        commit(later, series=[dataclasses.replace(row(KEY, (1.7,), 2), updated_at=later)])
    )
    again = (await store.series([KEY]))[KEY]
    assert (SeriesState.from_json(again.state).baseline, again.regressions) == ((1.7,), 2)
    assert [r.key for r in await store.all_series()] == [KEY, OTHER]
    assert await store.all_series("jobTemplates/other") == []
    other = store.scoped("shop-uk")
    assert await other.series([KEY]) == {}
    assert await other.all_series() == []


async def test_the_latest_series_come_newest_first_within_the_limit(store: Store) -> None:
    """What the status page lists: the account's series updated last, at most `limit`."""
    third = ("jobTemplates/1101", "https://shop.example.com/", "Chrome", "onLoad")
    rows = [
        dataclasses.replace(row(key, (1.0,)), updated_at=T0 + timedelta(minutes=n))
        for n, key in enumerate([OTHER, KEY, third])
    ]
    await store.commit_cycle(commit(series=rows))
    assert [r.key for r in await store.latest_series(2)] == [third, KEY]
    assert [r.key for r in await store.latest_series(10)] == [third, KEY, OTHER]
    assert (await store.latest_series(1))[0].updated_at == T0 + timedelta(minutes=2)
    assert await store.scoped("shop-uk").latest_series(10) == []


async def test_lookups_wait_oldest_first_and_leave_when_done(store: Store) -> None:
    """Queued by one commit, kept (attempts counted) until a commit says they are done;
    the same job queued twice is one lookup."""
    jobs = [job(3, T0 + timedelta(hours=3)), job(1, T0 + timedelta(hours=1)), job(2, None)]
    await store.commit_cycle(commit(queued=[Lookup(j, T0) for j in jobs]))
    await store.commit_cycle(commit(queued=[Lookup(jobs[0], T0, attempts=5)]))
    pending = await store.pending_lookups(10)
    # by start; a job without one at when it was queued
    assert [p.job.sref for p in pending] == ["jobs/2", "jobs/1", "jobs/3"]
    assert pending[1].job == jobs[1]  # every field kept
    assert [p.attempts for p in pending] == [0, 0, 0]
    assert [p.job.sref for p in await store.pending_lookups(1)] == ["jobs/2"]
    await store.commit_cycle(commit(looked_up=["jobs/1"], retried=["jobs/3"]))
    left = await store.pending_lookups(10)
    assert [(p.job.sref, p.attempts) for p in left] == [("jobs/2", 0), ("jobs/3", 1)]
    assert await store.scoped("shop-uk").pending_lookups(10) == []


async def test_series_and_lookups_are_pruned_after_the_retention(store: Store) -> None:
    await store.commit_cycle(commit(series=[row(KEY, (1.0,))], queued=[Lookup(job(1, T0), T0)]))
    await store.prune(T0 - timedelta(seconds=1))
    assert len(await store.all_series()) == 1
    assert len(await store.pending_lookups(10)) == 1
    await store.prune(T0 + timedelta(seconds=1))
    assert await store.all_series() == []
    assert await store.pending_lookups(10) == []


async def test_a_failed_commit_writes_no_series_nor_lookup(store: Store) -> None:
    """One transaction: a cycle whose commit fails leaves series and lookups as they were."""
    await store.commit_cycle(commit(series=[row(KEY, (1.0,))], queued=[Lookup(job(1, T0), T0)]))
    broken = dataclasses.replace(
        commit(series=[row(KEY, (9.0,), 3)], looked_up=["jobs/1"]),
        watermark=None,  # not a datetime: the commit fails part way
    )
    with pytest.raises(Exception):  # noqa: B017, PT011  # whichever the store raises
        await store.commit_cycle(broken)
    assert SeriesState.from_json((await store.series([KEY]))[KEY].state).baseline == (1.0,)
    assert len(await store.pending_lookups(10)) == 1
