"""The cycle's stages one by one, on a real SQLite store: each keeps its contract.

`observe` and `enrich` talk to the API and are exercised end to end in
tests/pipeline/test_events.py; the stages here take what `observe` would have returned.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from watcher import cycle, rules
from watcher.client import Client
from watcher.models import Event, EventKind, Job, JobState, Observation, Window
from watcher.settings import ApiSettings, PollSettings, Rule
from watcher.settled import Settled
from watcher.store import SqliteStore

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=3)
FAILURES = Rule(name="failures", match={"to": ["failed"]}, notify=["ops"])
STUCK = Rule(name="stuck", match={"event": "stuck", "after": "1h"}, notify=["ops"])


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "state.db")
    yield s
    await s.close()


def context(store: SqliteStore, *rule_list: Rule, **poll: Any) -> cycle.Context:
    return cycle.Context(
        client=Client(ApiSettings(realm="r", access_token="t")),  # never called here
        store=store,
        poll=PollSettings(**poll),
        rules=list(rule_list),
        settled=Settled(),
        clock=lambda: NOW,
    )


def job(sref: str, status: str, started: datetime = T0) -> Job:
    return Job(sref=sref, name=f"Job {sref}", status=status, started_at=started, template="t/1")


def seen(
    jobs: list[Job],
    *,
    first: bool = False,
    open_jobs: dict[str, JobState] | None = None,
    unfollow: tuple[str, ...] = (),
    ended: dict[str, str] | None = None,
) -> cycle.Seen:
    observation = Observation(
        window=Window(NOW - timedelta(hours=1), NOW),
        jobs=tuple(jobs),
        ended=ended or {},
        unfollow=unfollow,
    )
    return cycle.Seen(observation, NOW, first, open_jobs or {})


async def run_stages(ctx: cycle.Context, now_seen: cycle.Seen) -> tuple[cycle.Routed, set[str]]:
    """diff -> timers -> route -> commit -> settle, as run_cycle chains them."""
    router = rules.Router(ctx.rules)
    changes = await cycle.diff(ctx, now_seen, router)
    events = [*changes.found.events, *await cycle.due_timers(ctx, now_seen, changes)]
    routed = cycle.route(ctx, router, events)
    _, fresh = await cycle.commit(ctx, now_seen, changes, routed, {})
    cycle.settle(ctx, now_seen, changes)
    return routed, fresh


async def test_diff_on_a_first_cycle_records_ended_jobs_without_events(store: SqliteStore) -> None:
    """The first poll ever: jobs already ended are state, not news."""
    ctx = context(store, FAILURES)
    changes = await cycle.diff(
        ctx, seen([job("jobs/1", "failed")], first=True), rules.Router([FAILURES])
    )
    assert changes.found.events == []
    assert [s.sref for s in changes.found.states] == ["jobs/1"]


async def test_diff_leaves_out_ended_jobs_that_read_the_same(store: SqliteStore) -> None:
    """A known ended job listed again is reported as ended before, and not diffed."""
    ctx = context(store, FAILURES)
    await run_stages(ctx, seen([job("jobs/1", "failed")], first=True))
    changes = await cycle.diff(ctx, seen([job("jobs/1", "failed")]), rules.Router([FAILURES]))
    assert changes.ended == {"jobs/1": "failed"}
    assert changes.found.states == []


async def test_diff_begins_watching_templates_of_missed_rules(store: SqliteStore) -> None:
    missed = Rule(
        name="nightly",
        match={"event": "missed", "template": ["t/9"], "every": "1d"},
        notify=["ops"],
    )
    ctx = context(store, missed)
    changes = await cycle.diff(ctx, seen([], first=True), rules.Router([missed]))
    assert changes.templates["t/9"].watching_since == NOW
    assert "t/9" in changes.found.templates  # so that the commit stores it


async def test_jobs_still_followed_after_a_cycle(store: SqliteStore) -> None:
    """Ended and unfollowed jobs drop out; new unfinished ones come in."""
    ctx = context(store)
    open_jobs = {
        sref: JobState(sref=sref, status="running", status_since=T0, first_seen=T0)
        for sref in ("jobs/1", "jobs/2", "jobs/3")
    }
    now_seen = seen(
        [job("jobs/1", "completed"), job("jobs/4", "pending")],
        open_jobs=open_jobs,
        unfollow=("jobs/2",),
    )
    changes = await cycle.diff(ctx, now_seen, rules.Router([]))
    assert sorted(changes.open_after) == ["jobs/3", "jobs/4"]


async def test_the_followed_jobs_kept_are_those_the_store_follows(store: SqliteStore) -> None:
    """What a cycle keeps for the next is what `open_jobs` would read, cycle after
    cycle: new unfinished jobs, ends, an abandoned job, and that job listed again with a
    new status (the store holds it unfollowed still)."""
    ctx = context(store)
    cycles = [
        seen([job("jobs/1", "running"), job("jobs/2", "pending"), job("jobs/3", "failed")]),
        seen([job("jobs/1", "completed"), job("jobs/4", "pending")], unfollow=("jobs/2",)),
        seen([job("jobs/2", "running"), job("jobs/4", "running")]),
    ]
    followed: dict[str, JobState] = {}
    for number, each in enumerate(cycles):
        observed = cycle.Seen(each.observation, NOW, number == 0, followed)
        await run_stages(ctx, observed)
        kept = ctx.followed.take(ctx.fence)
        assert kept == await store.open_jobs()
        followed = kept
    assert sorted(followed) == ["jobs/4"]
    assert ctx.followed.take(ctx.fence) is None  # taken once: a failed cycle reads the store


async def test_timers_skip_events_already_recorded(store: SqliteStore) -> None:
    """A stuck event is due once: after its commit, the next cycle finds it known."""
    ctx = context(store, STUCK)
    running = [job("jobs/1", "running")]
    routed, fresh = await run_stages(ctx, seen(running, first=True))
    assert [e.kind for e in routed.events] == [EventKind.STUCK]  # no rule wants running
    assert len(fresh) == 1
    open_jobs = await store.open_jobs()
    changes = await cycle.diff(ctx, seen(running, open_jobs=open_jobs), rules.Router([STUCK]))
    assert await cycle.due_timers(ctx, seen(running, open_jobs=open_jobs), changes) == []


def test_the_ledger_holds_acted_on_events_and_timer_events() -> None:
    """A transition no rule wants is not recorded; a timer event always is."""
    quiet = Event(EventKind.TRANSITION, job("jobs/1", "running"), "new", "running", NOW)
    acted = Event(EventKind.TRANSITION, job("jobs/2", "failed"), "new", "failed", NOW)
    timer = Event(EventKind.STUCK, job("jobs/3", "running"), "running", "running", NOW, rule="x")
    routed = cycle.Routed([quiet, acted, timer], [[], [FAILURES], []])
    assert [e for e, _ in routed.ledger] == [acted, timer]


def test_route_explains_every_decision_when_asked(
    store: SqliteStore, capsys: pytest.CaptureFixture[str]
) -> None:
    """With `explain`, each rule's decision on each event is a debug line."""
    ctx = context(store, FAILURES, STUCK)
    explaining = cycle.Context(**{**_fields(ctx), "explain": True})
    event = Event(EventKind.TRANSITION, job("jobs/1", "failed"), "new", "failed", NOW)
    routed = cycle.route(explaining, rules.Router(ctx.rules), [event])
    assert routed.fired == [[FAILURES]]
    out = capsys.readouterr().out
    assert out.count('"rule_decision"') == 2


def _fields(ctx: cycle.Context) -> dict[str, Any]:
    return {name: getattr(ctx, name) for name in cycle.Context.__dataclass_fields__}


async def test_settle_keeps_the_ended_jobs_the_store_confirms(store: SqliteStore) -> None:
    """After the commit, the next listing need not parse the ended jobs just stored."""
    ctx = context(store, FAILURES)
    now_seen = seen(
        [job("jobs/1", "failed"), job("jobs/2", "running")],
        first=True,
        ended={"jobs/1": "failed"},
    )
    await run_stages(ctx, now_seen)
    assert ctx.settled.by_status == {"failed": {"jobs/1": "jobs/1"}}


async def test_account_counts_only_events_new_to_the_ledger(store: SqliteStore) -> None:
    """An event an earlier cycle recorded is neither logged nor counted again."""
    ctx = context(store, FAILURES)
    changes = await cycle.diff(ctx, seen([], first=True), rules.Router([]))
    a = Event(EventKind.TRANSITION, job("jobs/1", "failed"), "new", "failed", NOW)
    b = Event(EventKind.TRANSITION, job("jobs/2", "failed"), "new", "failed", NOW)
    routed = cycle.Routed([a, b], [[FAILURES], [FAILURES]])
    kinds = cycle.account(ctx, seen([]), changes, routed, fresh={b.key})
    assert kinds == {EventKind.TRANSITION: 1}
