"""Every event kind end to end: simulator -> daemon -> webhook, on a fixed clock that the
test moves (the simulator and the daemon share it), across restarts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from tests.conftest import CLIENT_ID, CLIENT_SECRET, REALM, Hook, Mailbox, config_document
from watcher import poller
from watcher.app import Daemon
from watcher.cycle import MAX_EVENT_LINES
from watcher.settings import Settings
from watcher.simulator.runner import SimulatorHandle, running_simulator
from watcher.simulator.tokens import TokenStore
from watcher.simulator.world import World

NIGHTLY = {"template": "jobTemplates/6789", "name": "Nightly checkout", "run_type": "scheduled"}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # a Monday

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


class FlakyRunsWorld(World):
    """The simulator's world, with test-run lookups that fail for chosen jobs."""

    broken_runs: set[str]

    def resolve(self, job: Any) -> Any:
        if isinstance(job, str) and job in getattr(self, "broken_runs", set()):
            raise RuntimeError("test runs unavailable")
        return super().resolve(job)


@pytest.fixture
async def timed(clock: Clock) -> AsyncIterator[SimulatorHandle]:
    world = FlakyRunsWorld(clock=clock)
    world.tokens = TokenStore()
    async with running_simulator(
        world, realm=REALM, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    ) as handle:
        yield handle


class Harness:
    def __init__(self, sim: SimulatorHandle, tmp_path: Path, clock: Clock, doc: dict[str, Any]):
        self.sim, self.clock, self.doc = sim, clock, doc
        self.daemon = Daemon(Settings(**doc), clock=clock, explain=True)

    @property
    def world(self) -> World:
        return self.sim.world

    async def cycle(self) -> None:
        assert await self.daemon.poll_once()
        await self.daemon.notifier.flush(budget=20)

    async def restart(self) -> None:
        await self.daemon.close()
        self.daemon = Daemon(Settings(**self.doc), clock=self.clock, explain=True)

    async def close(self) -> None:
        await self.daemon.close()


def harness(
    sim: SimulatorHandle,
    tmp_path: Path,
    clock: Clock,
    channels: dict[str, Any],
    rules: list[dict[str, Any]],
    **kw: Any,
) -> Harness:
    kw.setdefault("poll", {"max_catch_up": "3d", "follow_for": "3d"})
    doc = config_document(sim, tmp_path, channels, rules=rules, **kw)
    return Harness(sim, tmp_path, clock, doc)


Make = Callable[..., Harness]


@pytest.fixture
def make(timed: SimulatorHandle, clock: Clock, hook: Hook, tmp_path: Path) -> Make:
    """A harness whose alerts go to the `hook` channel: make(rules, **config)."""

    def build(rules: list[dict[str, Any]], **kw: Any) -> Harness:
        return harness(timed, tmp_path, clock, {"hook": hook.url}, rules, **kw)

    return build


async def test_a_stuck_job_alerts_once_then_reminds_and_stops_when_it_moves(
    make: Make, clock: Clock, hook: Hook
) -> None:
    """stuck after 2h fires once, repeat_after 6h reminds, a restart repeats nothing."""
    h = make(
        [
            {
                "name": "stuck",
                "match": {"event": "stuck", "status": "running", "after": "2h"},
                "notify": ["hook"],
                "repeat_after": "6h",
                "severity": "warning",
                "title": "{{ job.name }} stuck {{ event.to }}"
                " {{ (event.stuck_for // 3600) | int }}h",
            }
        ],
    )
    job = h.world.add_job(name="Crawl", status="running", started_at=clock.now)
    await h.cycle()
    clock.advance(hours=1)
    await h.cycle()
    assert hook.received == []
    clock.advance(hours=1, minutes=1)
    await h.cycle()
    await h.restart()
    clock.advance(hours=1)
    await h.cycle()
    assert hook.titles() == ["Crawl stuck running 2h"]
    clock.advance(hours=6)
    await h.cycle()
    assert hook.titles() == ["Crawl stuck running 2h", "Crawl stuck running 9h"]
    h.world.set_status(job, "completed")
    clock.advance(hours=6)
    await h.cycle()
    await h.close()
    assert len(hook.received) == 2


async def test_recovery_and_consecutive_failures_of_a_template(
    make: Make, clock: Clock, hook: Hook
) -> None:
    """The 3rd failure in a row pages once; the next completion says it recovered."""
    h = make(
        [
            {
                "name": "third",
                "match": {"to": "failed", "consecutive": 3},
                "notify": ["hook"],
                "title": "{{ job.name }} failed {{ event.streak }} times in a row",
            },
            {
                "name": "back",
                "match": {"event": "recovered"},
                "notify": ["hook"],
                "severity": "success",
                "title": "{{ job.name }} recovered after {{ event.streak }} failures",
            },
        ],
    )
    await h.cycle()
    for status in ["failed", "failed", "cancelled", "failed", "failed", "completed"]:
        clock.advance(minutes=10)
        h.world.add_job(status=status, **NIGHTLY)
        await h.cycle()
        await h.restart()
    await h.close()
    assert hook.titles() == [
        "Nightly checkout failed 3 times in a row",
        "Nightly checkout recovered after 4 failures",
    ]


async def test_consecutive_with_repeat_every_fires_from_the_nth_on(
    make: Make, clock: Clock, hook: Hook
) -> None:
    """repeat: every alerts the Nth failure in a row and every one after it."""
    h = make(
        [
            {
                "name": "again",
                "match": {"to": "failed", "consecutive": 2, "repeat": "every"},
                "notify": ["hook"],
                "title": "{{ event.streak }}",
            }
        ],
    )
    await h.cycle()
    for _ in range(4):
        clock.advance(minutes=10)
        h.world.add_job(status="failed", **NIGHTLY)
        await h.cycle()
    await h.close()
    assert hook.titles() == ["2", "3", "4"]


async def test_a_scheduled_template_that_stops_running_is_missed_once_per_gap(
    make: Make, clock: Clock, hook: Hook
) -> None:
    """No start for every + grace: one alert; a new start ends the gap; the next gap alerts."""
    h = make(
        [
            {
                "name": "nightly-missing",
                "match": {
                    "event": "missed",
                    "template": "jobTemplates/6789",
                    "every": "24h",
                    "grace": "30m",
                },
                "notify": ["hook"],
                "title": "{{ job.name }} did not run",
            }
        ],
    )
    h.world.add_job(status="completed", started_at=clock.now, **NIGHTLY)
    await h.cycle()
    clock.advance(hours=24, minutes=20)
    await h.cycle()
    assert hook.received == []
    clock.advance(minutes=20)
    await h.cycle()
    await h.restart()
    clock.advance(hours=1)
    await h.cycle()
    assert hook.titles() == ["Nightly checkout did not run"]
    h.world.add_job(status="running", **NIGHTLY)
    await h.cycle()
    clock.advance(hours=25)
    await h.cycle()
    await h.close()
    assert hook.titles() == ["Nightly checkout did not run"] * 2


async def test_a_template_never_seen_is_missed_after_watching_began(
    make: Make, clock: Clock, hook: Hook
) -> None:
    """A watched template that never runs is missed every + grace after the watcher began."""
    h = make(
        [
            {
                "name": "m",
                "match": {"event": "missed", "template": "jobTemplates/404", "every": "1h"},
                "notify": ["hook"],
            }
        ],
    )
    await h.cycle()
    clock.advance(minutes=61)
    await h.cycle()
    await h.close()
    assert hook.titles() == ["jobTemplates/404 did not run"]


async def test_a_storm_within_group_wait_is_one_digest_per_channel(
    timed: SimulatorHandle, clock: Clock, hook: Hook, smtp: Mailbox, tmp_path: Path
) -> None:
    """50 failures and a few expiries in one window arrive as one message per channel."""
    h = harness(
        timed,
        tmp_path,
        clock,
        {"hook": hook.url, "mail": smtp.url},
        [{"name": "failures", "match": {"to": ["failed", "expired"]}, "notify": ["hook", "mail"]}],
        delivery={"group_wait": "10s"},
    )
    await h.cycle()
    for n in range(50):
        h.world.add_job(name=f"Job {n}", status="failed")
    for n in range(3):
        h.world.add_job(name=f"Crawl {n}", status="expired")
    clock.advance(seconds=5)
    await h.cycle()
    await h.close()
    assert hook.titles() == ["50 jobs failed, 3 expired"]
    assert len(hook.received[0]["message"].splitlines()) == 53
    assert len(smtp.messages) == 1
    assert "Subject: 50 jobs failed, 3 expired" in smtp.messages[0]


async def test_two_jobs_stuck_within_group_wait_are_one_digest_titled_stuck(
    make: Make, clock: Clock, hook: Hook
) -> None:
    """A digest of timer events says what happened ("2 jobs stuck"), not a reminder number."""
    h = make(
        [{"name": "stuck", "match": {"event": "stuck", "after": "1h"}, "notify": ["hook"]}],
        delivery={"group_wait": "10s"},
    )
    for name in ("Crawl", "Checkout"):
        h.world.add_job(name=name, status="running", started_at=clock.now)
    await h.cycle()
    clock.advance(hours=1, minutes=1)
    await h.cycle()
    clock.advance(seconds=11)
    await h.cycle()
    await h.close()
    assert hook.titles() == ["2 jobs stuck"]


async def test_a_storm_is_logged_in_bounded_lines_and_only_acted_on_events_are_recorded(
    make: Make, clock: Clock, hook: Hook
) -> None:
    """130 failures: 100 event lines and one line counting the other 30; the completed
    jobs beside them change state but are no event in the ledger."""
    h = make([{"name": "failures", "match": {"to": "failed"}, "notify": ["hook"]}])
    await h.cycle()
    for n in range(MAX_EVENT_LINES + 30):
        h.world.add_job(name=f"Job {n}", status="failed")
    done = h.world.add_job(name="Fine", status="completed")
    clock.advance(seconds=5)
    with structlog.testing.capture_logs() as logged:
        await h.cycle()
    lines = [e for e in logged if e["event"] == "job_event" and e["log_level"] == "info"]
    summary = [e for e in logged if e["event"] == "job_events_not_listed"]
    events = await h.daemon.store.recent_events(limit=1000)
    counts = await h.daemon.store.outbox_counts()
    state = await h.daemon.store.states([done.sref])
    await h.close()
    assert len(lines) == MAX_EVENT_LINES
    # explaining (as these tests do), every event has its line, the completed job's too
    assert len([e for e in logged if e["event"] == "job_event"]) == MAX_EVENT_LINES + 31
    assert [e["count"] for e in summary] == [30]
    assert len(events) == MAX_EVENT_LINES + 30
    assert all(e["to"] == "failed" for e in events)
    assert state[done.sref].status == "completed"
    assert counts.pending + counts.sent == MAX_EVENT_LINES + 30


async def test_quiet_hours_hold_alerts_until_the_window_ends_then_send_a_digest(
    make: Make, clock: Clock, hook: Hook
) -> None:
    """A failure at night waits for the morning; a stuck job that moved meanwhile is dropped."""
    quiet = [
        {
            "start": "11:00",
            "end": "14:00",
            "timezone": "Europe/London",
            "severities": ["warning", "failure"],
        }
    ]  # 12:00 UTC is 13:00 in London in June
    h = make(
        [
            {"name": "failures", "match": {"to": "failed"}, "notify": ["hook"]},
            {
                "name": "stuck",
                "match": {"event": "stuck", "after": "10m"},
                "notify": ["hook"],
                "severity": "warning",
            },
        ],
        delivery={"group_wait": "0s", "quiet_hours": quiet},
    )
    await h.cycle()
    h.world.add_job(name="A", status="failed")
    h.world.add_job(name="B", status="failed")
    slow = h.world.add_job(name="Slow", status="running")
    clock.advance(minutes=15)
    await h.cycle()
    assert hook.received == []
    h.world.set_status(slow, "completed")
    clock.advance(minutes=20)
    await h.cycle()
    assert hook.received == []
    await h.restart()
    clock.advance(minutes=30)  # 14:05 London: the window is over
    await h.cycle()
    await h.close()
    assert hook.titles() == ["2 jobs failed"]
    assert sorted(hook.received[0]["message"].splitlines()) == ["- A failed", "- B failed"]


async def test_failed_alerts_enriched_with_test_runs(make: Make, clock: Clock, hook: Hook) -> None:
    """include_test_runs lists the job's pages in the message."""
    h = make(
        [
            {
                "name": "failures",
                "match": {"to": "failed"},
                "notify": ["hook"],
                "include_test_runs": True,
                "body": "{% for r in job.test_runs %}{{ r.pageTitle }};{% endfor %}",
            }
        ],
    )
    await h.cycle()
    h.world.add_job(name="A", status="failed")
    await h.cycle()
    assert h.world.requests["testRuns"] == 1
    broken = h.world.add_job(name="B", status="failed")
    h.world.broken_runs = {broken.sref}  # type: ignore[attr-defined]
    await h.cycle()
    await h.close()
    assert hook.received[0]["message"].count(";") >= 1
    assert hook.titles() == ["A failed", "B failed"]


async def test_history_older_than_retention_is_pruned_without_realerting(
    make: Make, clock: Clock, hook: Hook
) -> None:
    """Ended jobs, events and sent alerts older than state.retention are forgotten."""
    h = make(
        [{"name": "f", "match": {"to": "failed"}, "notify": ["hook"]}],
        poll={"max_catch_up": "1h", "lookback": "1h"},
        state={"retention": "2h"},
    )
    await h.cycle()
    h.world.add_job(name="Old", status="failed")
    await h.cycle()
    store = h.daemon.store
    assert await store.known_jobs() == (1, 0)
    clock.advance(hours=3)
    h.world.add_job(name="New", status="failed")
    await h.cycle()
    await h.cycle()
    assert await store.known_jobs() == (1, 0)
    assert (await store.outbox_counts()).sent == 1
    await h.close()
    assert hook.titles() == ["Old failed", "New failed"]


@pytest.mark.parametrize(
    ("counted", "api"),
    [(True, {}), (False, {}), (True, {"page_size": 2, "max_pages": 4})],
    ids=["in-steps", "no-count-read-whole", "in-steps-past-max-pages"],
)
async def test_a_catch_up_too_large_for_one_cycle_is_read_in_steps_each_change_alerted_once(
    make: Make,
    clock: Clock,
    hook: Hook,
    monkeypatch: pytest.MonkeyPatch,
    counted: bool,
    api: dict[str, int],
) -> None:
    """Six hours down, a job of a watched template every ten minutes, every third
    failed: read in steps of five new jobs, each committed, within one poll. Each
    failure is alerted once; a job that failed while the daemon was down is no stuck
    job; the template is not missed (its later jobs are in later steps). An API that
    gives no count is read in one cycle, with the same alerts. Steps of a few pages each
    read a catch-up of more pages than api.max_pages (which one cycle could not read).
    The metric of how far behind the catch-up is falls to 0 at its last step."""
    monkeypatch.setattr(poller, "STEP_JOBS", 5)
    h = make(
        [
            {
                "name": "failures",
                "match": {"to": "failed"},
                "notify": ["hook"],
                "title": "{{ job.name }} failed",
            },
            {
                "name": "stuck",
                "match": {"event": "stuck", "status": "running", "after": "2h"},
                "notify": ["hook"],
                "title": "{{ job.name }} stuck",
            },
            {
                "name": "hourly",
                "match": {"event": "missed", "template": "jobTemplates/7", "every": "1h"},
                "notify": ["hook"],
            },
        ],
        api=api,
    )
    h.world.faults.omit_total = not counted
    long_run = h.world.add_job(name="Long run", status="running")
    h.world.add_job(name="Hourly", status="completed", template="jobTemplates/7")
    await h.cycle()
    down_at = clock.now
    clock.advance(hours=6)
    h.world.set_status(long_run, "failed")
    for n in range(36):
        h.world.add_job(
            name=f"Job {n}",
            status="failed" if n % 3 == 0 else "completed",
            template="jobTemplates/7",
            started_at=down_at + timedelta(minutes=10 * n + 5),
        )
    h.world.add_job(name="Still running", status="running", started_at=down_at + timedelta(hours=1))
    behind: list[float | None] = []
    cycle_of = Daemon._run_cycle

    async def gauged(daemon: Daemon, account: Any) -> Any:
        report = await cycle_of(daemon, account)
        sample = {"account": account.name}
        registry = daemon.metrics.registry
        behind.append(registry.get_sample_value("watcher_catch_up_behind_seconds", sample))
        return report

    monkeypatch.setattr(Daemon, "_run_cycle", gauged)
    with structlog.testing.capture_logs() as logged:
        await h.cycle()
    steps = [e for e in logged if e["event"] == "catch_up_step"]
    watermark = await h.daemon.store.watermark()
    monkeypatch.undo()
    await h.cycle()  # the next poll finds nothing new
    await h.close()
    failed = [f"Job {n} failed" for n in range(0, 36, 3)]
    assert sorted(hook.titles()) == sorted([*failed, "Long run failed", "Still running stuck"])
    assert watermark == clock.now
    assert len(steps) >= (36 // 5 if counted else 0)
    assert counted or steps == []
    assert len(behind) == len(steps) + 1
    assert all(seconds is not None and seconds > 0 for seconds in behind[:-1])
    assert behind[-1] == 0
