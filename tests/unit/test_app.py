"""The daemon in-process against the simulator, a webhook receiver and an SMTP server,
driven cycle by cycle (no sleeping on the clock)."""

from __future__ import annotations

import gc
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from tests.conftest import Hook, Mailbox, config_document
from watcher import tracker
from watcher.app import Daemon
from watcher.settings import Settings
from watcher.simulator.runner import SimulatorHandle
from watcher.simulator.world import World


def daemon(sim: SimulatorHandle, tmp_path: Path, channels: dict[str, Any], **kw: Any) -> Daemon:
    return Daemon(Settings(**config_document(sim, tmp_path, channels, **kw)))


async def cycle(d: Daemon, *, expect_poll: bool = True) -> None:
    assert await d.poll_once() is expect_poll
    await d.notifier.flush(budget=20)


def ago(world: World, **delta: float) -> datetime:
    return world.now() - timedelta(**delta)


async def test_a_job_failing_between_polls_alerts_once_by_webhook_and_email(
    sim: SimulatorHandle, world: World, hook: Hook, smtp: Mailbox, tmp_path: Path
) -> None:
    """One failure -> exactly one alert, right title and body, at each channel."""
    d = daemon(sim, tmp_path, {"hook": hook.url, "mail": smtp.url})
    job = world.add_job(name="Nightly checkout", status="running")
    await cycle(d)
    world.set_status(job, "failed")
    await cycle(d)
    await cycle(d)
    await d.close()
    assert hook.titles() == ["Nightly checkout failed"]
    assert hook.received[0]["message"] == f"{job.sref} was running"
    assert hook.received[0]["type"] == "failure"
    assert len(smtp.messages) == 1
    assert "Subject: Nightly checkout failed" in smtp.messages[0]
    assert f"{job.sref} was running" in smtp.messages[0]


async def test_first_run_records_ended_jobs_without_alerting(
    sim: SimulatorHandle, world: World, hook: Hook, tmp_path: Path
) -> None:
    """The first poll ever is a baseline: history is not replayed as alerts."""
    world.add_job(name="Old failure", status="failed", started_at=ago(world, minutes=30))
    running = world.add_job(name="Still running", status="running")
    d = daemon(sim, tmp_path, {"hook": hook.url})
    await cycle(d)
    assert hook.received == []
    world.set_status(running, "expired")
    await cycle(d)
    await d.close()
    assert hook.titles() == ["Still running expired"]


async def test_alert_on_first_run_alerts_ended_jobs(
    sim: SimulatorHandle, world: World, hook: Hook, tmp_path: Path
) -> None:
    """With alert_on_first_run, jobs already ended at the first poll are alerted."""
    world.add_job(name="Old failure", status="failed", started_at=ago(world, minutes=30))
    d = daemon(sim, tmp_path, {"hook": hook.url}, poll={"alert_on_first_run": True})
    await cycle(d)
    await d.close()
    assert hook.titles() == ["Old failure failed"]


async def test_a_job_first_seen_already_failed_is_alerted(
    sim: SimulatorHandle, world: World, hook: Hook, tmp_path: Path
) -> None:
    """A job that started and failed between two polls is a transition from new."""
    d = daemon(
        sim,
        tmp_path,
        {"hook": hook.url},
        rules=[
            {
                "name": "new-failures",
                "match": {"from": "new", "to": "failed"},
                "notify": ["hook"],
                "title": "{{ job.name }}: {{ event.from }} -> {{ event.to }}",
            }
        ],
    )
    await cycle(d)
    world.add_job(name="Quick fail", status="failed")
    await cycle(d)
    await d.close()
    assert hook.titles() == ["Quick fail: new -> failed"]


async def test_a_long_job_that_left_the_window_is_followed_by_sref(
    sim: SimulatorHandle, world: World, hook: Hook, tmp_path: Path
) -> None:
    """A job started before the current window is re-read by sref until it ends."""
    job = world.add_job(name="Long crawl", status="running", started_at=ago(world, minutes=50))
    d = daemon(sim, tmp_path, {"hook": hook.url})
    await cycle(d)  # the first window (lookback 1h) still covers it
    await cycle(d)  # now the window is [last poll - 2m, now]: it is followed
    gets = world.requests["get"]
    assert gets >= 1
    world.set_status(job, "expired")
    await cycle(d)
    await d.close()
    assert hook.titles() == ["Long crawl expired"]
    assert world.requests["get"] > gets


async def test_jobs_that_end_while_the_daemon_is_down_are_alerted_once_on_return(
    sim: SimulatorHandle, world: World, hook: Hook, tmp_path: Path
) -> None:
    """After a restart the window reaches back to the last poll: changes meanwhile alert once."""
    a = world.add_job(name="A", status="running")
    b = world.add_job(name="B", status="pending")
    first = daemon(sim, tmp_path, {"hook": hook.url})
    await cycle(first)
    await first.close()
    world.set_status(a, "failed")
    world.set_status(b, "expired")
    world.add_job(name="C", status="failed")  # started and ended while down
    second = daemon(sim, tmp_path, {"hook": hook.url})
    await cycle(second)
    await cycle(second)
    await second.close()
    third = daemon(sim, tmp_path, {"hook": hook.url})
    await cycle(third)
    await third.close()
    assert sorted(hook.titles()) == ["A failed", "B expired", "C failed"]


async def test_overlapping_windows_never_alert_twice(
    sim: SimulatorHandle, world: World, hook: Hook, tmp_path: Path
) -> None:
    """Each window re-reads the overlap; a failure seen in several windows alerts once."""
    d = daemon(sim, tmp_path, {"hook": hook.url}, poll={"overlap": "1h"})
    await cycle(d)
    for n in range(5):
        world.add_job(name=f"J{n}", status="failed")
        await cycle(d)
    for _ in range(3):
        await cycle(d)
    await d.close()
    assert sorted(hook.titles()) == [f"J{n} failed" for n in range(5)]


async def test_a_channel_that_is_down_gets_the_alert_once_it_is_back(
    sim: SimulatorHandle, world: World, hook: Hook, tmp_path: Path
) -> None:
    """Delivery is retried while the channel fails and succeeds exactly once after."""
    d = daemon(sim, tmp_path, {"hook": hook.url})
    await cycle(d)
    hook.down = True
    world.add_job(name="Checkout", status="failed")
    await cycle(d)
    await cycle(d)
    assert hook.received == []
    assert (await d.store.outbox_counts()).pending == 1
    hook.down = False
    await cycle(d)
    await d.close()
    assert hook.titles() == ["Checkout failed"]
    assert hook.attempts >= 3


async def test_a_dead_url_does_not_resend_to_the_urls_that_accepted(
    sim: SimulatorHandle, world: World, hook: Hook, smtp: Mailbox, tmp_path: Path
) -> None:
    """A channel with two URLs retries only the one that failed."""
    d = daemon(sim, tmp_path, {"both": [smtp.url, hook.url]})
    await cycle(d)
    hook.down = True
    world.add_job(name="Checkout", status="failed")
    await cycle(d)
    await cycle(d)
    hook.down = False
    await cycle(d)
    await d.close()
    assert len(smtp.messages) == 1
    assert hook.titles() == ["Checkout failed"]


async def test_an_alert_is_given_up_after_give_up_after(
    sim: SimulatorHandle, world: World, hook: Hook, tmp_path: Path
) -> None:
    """A channel down past give_up_after: the alert is kept as given up, and logged."""
    d = daemon(sim, tmp_path, {"hook": hook.url}, delivery={"give_up_after": 0})
    await cycle(d)
    hook.down = True
    world.add_job(name="Checkout", status="failed")
    with structlog.testing.capture_logs() as logged:
        await cycle(d)
    counts = await d.store.outbox_counts()
    await d.close()
    assert (counts.pending, counts.given_up) == (0, 1)
    assert any(e["event"] == "alert_given_up" for e in logged)


async def test_an_expired_token_is_renewed(
    sim: SimulatorHandle, world: World, hook: Hook, tmp_path: Path
) -> None:
    """A 401 for an expired token fetches a new one and the poll succeeds."""
    d = daemon(sim, tmp_path, {"hook": hook.url})
    job = world.add_job(name="Checkout", status="running")
    await cycle(d)
    world.tokens.expire_all()
    world.set_status(job, "failed")
    await cycle(d)
    await d.close()
    assert world.requests["token"] == 2
    assert hook.titles() == ["Checkout failed"]


async def test_api_outage_changes_nothing_and_the_next_poll_catches_up(
    sim: SimulatorHandle, world: World, hook: Hook, tmp_path: Path
) -> None:
    """A failed poll changes no state; the jobs that ended meanwhile alert once after."""
    d = daemon(sim, tmp_path, {"hook": hook.url})
    job = world.add_job(name="Checkout", status="running")
    await cycle(d)
    watermark = await d.store.watermark()
    world.faults.down = True
    world.set_status(job, "failed")
    await cycle(d, expect_poll=False)
    assert await d.store.watermark() == watermark
    assert hook.received == []
    world.faults.down = False
    await cycle(d)
    await d.close()
    assert hook.titles() == ["Checkout failed"]


async def test_transient_faults_are_retried_within_the_poll(
    sim: SimulatorHandle, world: World, hook: Hook, tmp_path: Path
) -> None:
    """A 503, a truncated body and a 429 with Retry-After are each retried, then read."""
    d = daemon(sim, tmp_path, {"hook": hook.url}, poll={"alert_on_first_run": True})
    world.add_job(name="Checkout", status="failed")
    world.faults.fail_next = 1
    await cycle(d)
    world.add_job(name="Search", status="failed")
    world.faults.truncate_next = 1
    await cycle(d)
    world.add_job(name="Crawl", status="expired")
    world.faults.fail_status, world.faults.retry_after, world.faults.fail_next = 429, "1", 1
    with structlog.testing.capture_logs() as logged:
        await cycle(d)
    await d.close()
    assert sorted(hook.titles()) == ["Checkout failed", "Crawl expired", "Search failed"]
    retries = [e for e in logged if e["event"] == "api_retry"]
    assert [r["delay"] for r in retries] == [1.0]


async def test_a_malformed_record_is_skipped_and_its_neighbours_used(
    sim: SimulatorHandle, world: World, hook: Hook, tmp_path: Path
) -> None:
    """One broken job record is logged and skipped; the rest of its page is processed."""
    d = daemon(sim, tmp_path, {"hook": hook.url})
    await cycle(d)
    bad = world.add_job(name="Broken", status="failed")
    world.add_job(name="Fine", status="failed")
    world.faults.malformed.add(bad.sref)
    with structlog.testing.capture_logs() as logged:
        await cycle(d)
    assert hook.titles() == ["Fine failed"]
    assert any(e["event"] == "job_record_skipped" and e["sref"] == bad.sref for e in logged)
    world.faults.malformed.clear()
    await cycle(d)
    await d.close()
    assert sorted(hook.titles()) == ["Broken failed", "Fine failed"]


async def test_dry_run_sends_nothing_and_records_nothing(
    sim: SimulatorHandle, world: World, hook: Hook, tmp_path: Path
) -> None:
    """--dry-run logs the alert, sends nothing and leaves the state file as it was."""
    doc = config_document(sim, tmp_path, {"hook": hook.url})
    real = Daemon(Settings(**doc))
    await cycle(real)
    await real.close()
    world.add_job(name="Checkout", status="failed")
    dry = Daemon(Settings(**doc), dry_run=True)
    with structlog.testing.capture_logs() as logged:
        await cycle(dry)
    await dry.close()
    assert hook.received == []
    assert [e["title"] for e in logged if e["event"] == "alert_dry_run"] == ["Checkout failed"]
    again = Daemon(Settings(**doc))
    await cycle(again)
    await again.close()
    assert hook.titles() == ["Checkout failed"]


async def test_many_followed_jobs_are_read_by_widening_the_window_not_one_by_one(
    sim: SimulatorHandle, world: World, hook: Hook, tmp_path: Path
) -> None:
    """30 unfinished jobs that left the window cost one extra page, not 30 GETs."""
    jobs = [
        world.add_job(name=f"Crawl {n}", status="running", started_at=ago(world, minutes=50 - n))
        for n in range(30)
    ]
    d = daemon(sim, tmp_path, {"hook": hook.url})
    await cycle(d)
    await cycle(d)
    for job in jobs[:3]:
        world.set_status(job, "failed")
    lists = world.requests["list"]
    await cycle(d)
    await d.close()
    assert world.requests["get"] == 0
    assert world.requests["list"] - lists == 2  # the window, and the span back to the oldest
    assert sorted(hook.titles()) == ["Crawl 0 failed", "Crawl 1 failed", "Crawl 2 failed"]


async def test_the_collector_is_paused_only_while_a_cycle_runs(
    sim: SimulatorHandle, world: World, hook: Hook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cycle runs without garbage collection and gives it back, failed or not."""
    d = daemon(sim, tmp_path, {"hook": hook.url})
    during: list[bool] = []
    world.add_job(name="Checkout", status="failed")
    real_diff = tracker.diff

    def watching(*args: Any, **kwargs: Any) -> Any:  # a spy: the real diff runs
        during.append(gc.isenabled())
        return real_diff(*args, **kwargs)

    monkeypatch.setattr(tracker, "diff", watching)
    assert await d.poll_once()
    world.faults.down = True
    assert not await d.poll_once()
    await d.close()
    assert (during, gc.isenabled()) == ([False], True)
