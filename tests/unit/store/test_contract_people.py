"""The store's contract for what people say back (silences, acknowledgements) and for
each alert's history, the same tests against SQLite and PostgreSQL (`store` fixture of
test_contract)."""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from tests.unit.store.test_contract import T0, T1, alert, cycle, event, failed_job, state, store
from watcher.models import JobState
from watcher.people import Ack, Silence, Step
from watcher.store import Store

__all__ = ["store"]  # the parametrised fixture, shared with test_contract

HOUR = timedelta(hours=1)
TEMPLATE = "jobTemplates/6789"


def silence(**given: object) -> Silence:
    values: dict[str, object] = {
        "id": 0,
        "matchers": (("template", "jobTemplates/*"), ("name", "Nightly *")),
        "starts_at": T0,
        "ends_at": T0 + HOUR,
        "author": "ana",
        "comment": "maintenance",
    }
    return Silence(**{**values, **given})  # type: ignore[arg-type]


async def test_a_silence_reads_back_as_it_was_given(store: Store) -> None:
    number = await store.add_silence(silence(), T0)
    (found,) = await store.silences()
    assert found.id == number
    assert (found.matchers, found.starts_at, found.ends_at) == (
        (("template", "jobTemplates/*"), ("name", "Nightly *")),
        T0,
        T0 + HOUR,
    )
    assert (found.author, found.comment, found.created_at, found.expired_at) == (
        "ana",
        "maintenance",
        T0,
        None,
    )


async def test_silences_since_leaves_out_those_that_ended(store: Store) -> None:
    await store.add_silence(silence(ends_at=T0 + HOUR), T0)
    later = await store.add_silence(silence(ends_at=T0 + 3 * HOUR), T0)
    assert [s.id for s in await store.silences(T0 + 2 * HOUR)] == [later]
    assert len(await store.silences()) == 2


async def test_an_expired_silence_ends_when_it_was_expired(store: Store) -> None:
    number = await store.add_silence(silence(ends_at=T0 + 3 * HOUR), T0)
    expired = await store.expire_silence(number, T1)
    assert expired is not None
    assert expired.expired_at == T1
    assert expired.state(T1) == "expired"
    assert await store.silences(T1 + timedelta(seconds=1)) == []
    again = await store.expire_silence(number, T1 + HOUR)  # the first end stays
    assert again is not None
    assert again.expired_at == T1
    assert await store.expire_silence(9999, T1) is None


async def test_a_job_ack_holds_while_the_job_keeps_its_status(store: Store) -> None:
    await store.commit_cycle(cycle([state("jobs/1", "running")]))
    number = await store.add_ack(Ack(0, "default", job="jobs/1", status="running"), T0)
    (found,) = await store.acks()
    assert (found.id, found.now_status, found.holds) == (number, "running", True)
    await store.commit_cycle(cycle([state("jobs/1", "failed")], now=T1))
    (moved,) = await store.acks()
    assert (moved.now_status, moved.holds) == ("failed", False)


def run(sref: str, status: str, started: datetime) -> JobState:
    """A job of the template that started (and was first seen) at `started`."""
    return msgspec.structs.replace(state(sref, status), started_at=started, first_seen=started)


async def test_a_template_ack_holds_until_the_template_recovers(store: Store) -> None:
    """A failing template's acknowledgement holds through more failures and ends with
    the first completed run after it, for good (a later failure is news)."""
    await store.commit_cycle(cycle([run("jobs/1", "failed", T0)]))
    stamp = T0.timestamp()
    await store.add_ack(Ack(0, "default", template=TEMPLATE, streak=1, last_start=stamp), T0)
    await store.commit_cycle(cycle([run("jobs/2", "failed", T0 + HOUR)]))
    assert [a.holds for a in await store.acks()] == [True]
    await store.commit_cycle(cycle([run("jobs/3", "completed", T0 + 2 * HOUR)]))
    await store.commit_cycle(cycle([run("jobs/4", "failed", T0 + 3 * HOUR)]))
    assert [(a.now_runs, a.now_recoveries, a.holds) for a in await store.acks()] == [(3, 1, False)]


async def test_a_quiet_templates_ack_holds_until_it_runs_again(store: Store) -> None:
    await store.commit_cycle(cycle([run("jobs/1", "completed", T0)]))
    stamp = T0.timestamp()
    await store.add_ack(Ack(0, "default", template=TEMPLATE, last_start=stamp), T0)
    assert [a.holds for a in await store.acks()] == [True]
    await store.commit_cycle(cycle([run("jobs/2", "running", T0 + HOUR)]))
    assert [a.holds for a in await store.acks()] == [False]


async def test_an_expired_ack_no_longer_holds(store: Store) -> None:
    await store.commit_cycle(cycle([state("jobs/1", "running")]))
    number = await store.add_ack(Ack(0, "default", job="jobs/1", status="running"), T0)
    expired = await store.expire_ack(number, T1)
    assert expired is not None
    assert not expired.holds
    assert expired.expired_at == T1
    assert await store.expire_ack(9999, T1) is None


async def test_an_alerts_steps_are_kept_in_order(store: Store) -> None:
    await failed_job(store)
    (item,) = await store.due(T1)
    await store.mark_retry([item.id], T1, "HTTP 500", frozenset(), now=T0 + timedelta(seconds=5))
    await store.mark_sent([item.id], T1)
    (found,) = await store.alert_records(T0 - HOUR)
    assert (found.id, found.state, found.attempts) == (item.id, "sent", 2)
    assert [(s.what, s.detail) for s in found.steps] == [("attempt", "HTTP 500"), ("sent", "")]
    assert found.queued_at == T0
    assert found.done_at == T1


async def test_a_dropped_alert_is_not_due_and_says_why(store: Store) -> None:
    await failed_job(store)
    (item,) = await store.due(T1)
    await store.mark_dropped([item.id], Step(T1, "silenced", "silence 1: maintenance"))
    assert await store.due(T1 + HOUR) == []
    (found,) = await store.alert_records(T0 - HOUR, state="silenced")
    assert [(s.what, s.detail) for s in found.steps] == [("silenced", "silence 1: maintenance")]


async def test_alert_records_filter_by_channel_state_and_time(store: Store) -> None:
    await failed_job(store, "jobs/1", "ops")
    await failed_job(store, "jobs/2", "mail")
    assert [r.alert.channel for r in await store.alert_records(T0, channel="mail")] == ["mail"]
    assert len(await store.alert_records(T0, state="pending")) == 2
    assert await store.alert_records(T0, state="sent") == []
    assert await store.alert_records(T1) == []
    newest_first = await store.alert_records(T0)
    assert [r.alert.sref for r in newest_first] == ["jobs/2", "jobs/1"]


async def test_requeue_brings_back_given_up_alerts_only(store: Store) -> None:
    await failed_job(store, "jobs/1")
    await failed_job(store, "jobs/2")
    first, second = await store.due(T1)
    await store.mark_given_up([first.id], T1, "channel kept failing")
    later = T1 + HOUR
    assert await store.requeue([first.id, second.id], later) == [first.id]
    (again,) = [i for i in await store.due(later) if i.id == first.id]
    # due and given up as if queued now: a fresh give_up_after
    assert (again.attempts, again.created_at, again.held) == (0, later, False)
    (found,) = await store.alert_records(T0, ids=[first.id])
    assert [s.what for s in found.steps] == ["given_up", "requeued"]
    assert found.queued_at == T0
    assert await store.requeue(None, later) == []


async def test_requeue_of_every_given_up_alert(store: Store) -> None:
    for n in range(3):
        await failed_job(store, f"jobs/{n}")
    items = await store.due(T1)
    await store.mark_given_up([i.id for i in items[:2]], T1, "down")
    assert sorted(await store.requeue(None, T1 + HOUR)) == sorted(i.id for i in items[:2])


async def test_prune_forgets_old_steps_silences_and_acks(store: Store) -> None:
    await failed_job(store)
    (item,) = await store.due(T1)
    await store.mark_sent([item.id], T1)
    await store.add_silence(silence(ends_at=T0 + HOUR), T0)
    kept = await store.add_silence(silence(ends_at=T0 + 30 * HOUR), T0)
    await store.add_ack(Ack(0, "default", job="jobs/1", status="failed"), T0)
    await store.prune(T0 + 2 * HOUR)
    assert await store.alert_records(T0 - HOUR) == []
    assert [s.id for s in await store.silences()] == [kept]
    assert await store.acks() == []


async def test_runs_are_each_templates_latest_oldest_first(store: Store) -> None:
    states = [
        msgspec.structs.replace(state(f"jobs/{n}", "completed"), started_at=T0 + n * HOUR)
        for n in range(5)
    ]
    await store.commit_cycle(cycle(states))
    runs = await store.runs(3)
    assert [r.sref for r in runs["jobTemplates/6789"]] == ["jobs/2", "jobs/3", "jobs/4"]
    assert await store.scoped("other").runs(3) == {}


async def test_silences_and_acks_are_shared_by_every_account(store: Store) -> None:
    await store.add_silence(silence(), T0)
    assert len(await store.scoped("shop-de").silences()) == 1
    ev = event("jobs/1")
    assert alert(ev).account == "default"
