"""The flake filter's rows, the same in both stores: a rerun decided in a cycle's commit
holds its failed job's alerts (`waiting`: never due); a change is compare-and-set on
the state and attempts it expects; a release sends the held alerts as if queued then,
drops them (flaky) or replaces them; ended reruns are pruned with the history."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from tests.unit.store.test_contract import T0, T1, alert, cycle, event, state, store
from watcher import flakes
from watcher.flakes import Change, Release, Rerun
from watcher.models import Job
from watcher.people import Step
from watcher.store import CycleCommit, Store

__all__ = ["store"]  # the parametrised fixture, shared with test_contract
FAR = T0.replace(year=2100)


def rerun(sref: str = "jobs/1", **changes: object) -> Rerun:
    job = Job(sref=sref, name=f"Job {sref}", status="failed", template="jobTemplates/6789")
    made = Rerun(
        failed=job,
        rules=("retry-flaky",),
        state=flakes.DUE,
        decided_at=T0,
        due_at=T0 + timedelta(minutes=2),
        deadline=T0 + timedelta(days=2),
    )
    return dataclasses.replace(made, **changes)  # type: ignore[arg-type]


async def held_failure(store: Store, sref: str = "jobs/1") -> Rerun:
    """Commit a failure whose rule asked for a rerun, with one other rule's alert."""
    ev = event(sref)
    planned = rerun(sref)
    commit = cycle([state(sref, "failed")], [ev], [alert(ev, rule="retry-flaky"), alert(ev)])
    change = Change(planned, new=True, holds=((ev.key, "retry-flaky"),))
    await store.commit_cycle(dataclasses.replace(commit, reruns=[change]))
    return planned


async def test_a_decided_rerun_holds_the_alerts_of_its_rules(store: Store) -> None:
    planned = await held_failure(store)
    assert await store.reruns(T0) == [planned]
    due = await store.due(FAR)
    assert [i.alert.rule for i in due] == ["failures"]  # the other rule's alert goes
    records = await store.alert_records(T0, state="waiting")
    assert [r.alert.rule for r in records] == ["retry-flaky"]
    assert records[0].steps[0].what == "waiting"


async def test_a_second_decision_for_one_failed_job_is_ignored(store: Store) -> None:
    planned = await held_failure(store)
    again = dataclasses.replace(planned, decided_at=T1, rules=("other",))
    await store.commit_cycle(dataclasses.replace(cycle(now=T1), reruns=[Change(again, new=True)]))
    assert await store.reruns(T0) == [planned]


async def test_a_change_is_written_only_from_the_state_it_expects(store: Store) -> None:
    planned = await held_failure(store)
    claim = dataclasses.replace(planned, state=flakes.STARTING, attempts=1, claimed_at=T1)
    assert await store.save_rerun(Change(claim), T1, expect=(flakes.DUE, 0))
    # a second claimer read the row before the first wrote: refused
    assert not await store.save_rerun(Change(claim), T1, expect=(flakes.DUE, 0))
    started = dataclasses.replace(claim, state=flakes.STARTED, rerun="jobs/2")
    assert await store.save_rerun(Change(started), T1, expect=(flakes.STARTING, 1))
    assert await store.reruns(T0) == [started]


async def test_a_release_sends_the_held_alerts_as_if_queued_then(store: Store) -> None:
    planned = await held_failure(store)
    later = T0 + timedelta(days=3)
    released = flakes.release(planned, later, "its rerun had not ended by the deadline")
    assert await store.save_rerun(released, later)
    due = await store.due(FAR)
    assert sorted(i.alert.rule for i in due) == ["failures", "retry-flaky"]
    held = next(i for i in due if i.alert.rule == "retry-flaky")
    assert held.created_at == later  # given up only give_up_after from the release
    (record,) = await store.alert_records(T0, state="pending", ids=[held.id])
    assert [s.what for s in record.steps] == ["waiting", "released"]
    assert (await store.reruns(T0))[0].state == flakes.RELEASED


async def test_flaky_and_replaced_alerts_are_never_sent(store: Store) -> None:
    for sref, state_ in (("jobs/1", flakes.FLAKY), ("jobs/3", flakes.REPLACED)):
        planned = await held_failure(store, sref)
        done = dataclasses.replace(planned, state=flakes.FLAKY, ended_at=T1)
        assert await store.save_rerun(Change(done, Release(state_, Step(T1, state_, "x"))), T1)
    assert [i.alert.rule for i in await store.due(FAR)] == ["failures", "failures"]
    assert len(await store.alert_records(T0, state=flakes.FLAKY)) == 1
    assert len(await store.alert_records(T0, state=flakes.REPLACED)) == 1


async def test_ended_reruns_are_pruned_open_ones_kept(store: Store) -> None:
    ended = await held_failure(store, "jobs/1")
    await store.save_rerun(flakes.release(ended, T1, "x"), T1)
    await held_failure(store, "jobs/3")
    await store.prune(T0 + timedelta(days=30))
    assert [r.sref for r in await store.reruns(T0)] == ["jobs/3"]


async def test_reruns_are_each_accounts_own(store: Store) -> None:
    await held_failure(store)
    assert await store.scoped("shop-uk").reruns(T0) == []


def test_a_commit_carries_no_rerun_by_default() -> None:
    assert CycleCommit(states=[], events=[], alerts=[], watermark=T0, now=T0).reruns == ()
