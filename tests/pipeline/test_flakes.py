"""The flake filter end to end, on a fixed clock: a scheduled failure is held and its
job started again through the simulator's `POST /jobs`; the rerun's end decides what
goes out (a `flaky` event, or one alert naming both jobs), across restarts; the caps,
refused and failing start requests, and reruns that never end."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import Hook
from tests.pipeline.test_events import Clock, Harness, Make, clock, make, timed

__all__ = ["clock", "make", "timed"]  # the fixtures, shared with test_events
from watcher import status
from watcher.app import Daemon
from watcher.settings import Settings
from watcher.simulator.world import SimJob

TEMPLATE = "jobTemplates/6789"
NIGHTLY: dict[str, Any] = {"name": "Nightly checkout", "template": TEMPLATE}
RULES: list[dict[str, Any]] = [
    {
        "name": "retry-flaky",
        "match": {"to": ["failed"], "run_type": ["scheduled"]},
        "rerun": {"delay": "2m", "per_template_per_hour": 2},
        "notify": ["hook"],
        "title": "{{ job.name }} {{ event.to }}"
        "{% if job.rerun_of %} (rerun of {{ job.rerun_of }}){% endif %}",
        "body": "{{ job.sref }}",
    },
    {
        "name": "flakes",
        "match": {"event": "flaky"},
        "notify": ["hook"],
        "severity": "info",
    },
]


def scheduled_failure(h: Harness, mode: str = "flaky") -> SimJob:
    """A scheduled nightly run that fails; its reruns end as `mode` says."""
    h.world.fail_next(TEMPLATE, mode=mode)
    return h.world.add_job(status="completed", run_type="scheduled", **NIGHTLY)


async def until_rerun_ends(h: Harness, clock: Clock) -> None:
    """Cycles past the delay (the start request), then past the rerun's 35 s."""
    for _ in range(3):
        clock.advance(minutes=1)
        await h.cycle()
    for _ in range(2):
        clock.advance(seconds=30)
        await h.cycle()


async def test_a_flaky_failure_is_not_alerted_and_its_flaky_event_is(
    make: Make, clock: Clock, hook: Hook
) -> None:
    h = make(RULES)
    await h.cycle()
    failed = scheduled_failure(h)
    clock.advance(minutes=1)
    await h.cycle()
    await h.restart()  # the held alert and the planned rerun survive it
    assert hook.received == []
    await until_rerun_ends(h, clock)
    await h.restart()
    for _ in range(3):
        clock.advance(minutes=5)
        await h.cycle()
    await h.close()
    (rerun,) = h.world.launches.created[TEMPLATE]
    assert h.world.launches.posts[TEMPLATE] == 1
    assert hook.titles() == ["Nightly checkout failed, then passed on a rerun"]
    body = str(hook.received[0]["message"])
    assert f"jobs/{failed.id}" in body
    assert rerun in body
    data = await asyncio.to_thread(status.status, Settings(**h.doc))
    shown = status.status_text(data, clock.now)
    assert f"  jobs/{failed.id} ({TEMPLATE}) flaky: {rerun} completed" in shown
    assert f"jobs/{failed.id}  flaky: failed, its rerun completed" in shown


async def test_a_rerun_that_fails_too_sends_one_alert_naming_both_jobs(
    make: Make, clock: Clock, hook: Hook
) -> None:
    h = make(RULES)
    await h.cycle()
    failed = scheduled_failure(h, mode="broken")
    clock.advance(minutes=1)
    await h.cycle()
    await until_rerun_ends(h, clock)
    for _ in range(3):
        clock.advance(minutes=5)
        await h.cycle()
    await h.close()
    (rerun,) = h.world.launches.created[TEMPLATE]
    assert hook.titles() == [f"Nightly checkout failed (rerun of jobs/{failed.id})"]
    registry = h.daemon.metrics.registry
    for outcome, count in (("started", 1), ("failed", 1), ("flaky", 0), ("released", 0)):
        labels = {"account": "default", "outcome": outcome}
        assert registry.get_sample_value("watcher_reruns_total", labels) == count
    assert hook.received[0]["message"] == rerun


async def test_no_rerun_after_a_failed_run_nor_past_the_hourly_cap(
    make: Make, clock: Clock, hook: Hook
) -> None:
    """Two failures in a row: the second is alerted at once. Past two reruns an hour
    (each rerun completing in between), the third failure is alerted at once."""
    h = make(RULES)
    await h.cycle()
    h.world.add_job(status="failed", run_type="scheduled", **NIGHTLY)
    await h.cycle()
    clock.advance(seconds=10)
    h.world.add_job(status="failed", run_type="scheduled", **NIGHTLY)
    await h.cycle()
    assert hook.titles() == ["Nightly checkout failed"]  # the second: the first waits
    await until_rerun_ends(h, clock)
    for _ in range(2):
        scheduled_failure(h)
        clock.advance(seconds=10)
        await h.cycle()
        await until_rerun_ends(h, clock)
    await h.close()
    assert h.world.launches.posts[TEMPLATE] == 2
    flaky = "Nightly checkout failed, then passed on a rerun"
    # the first rerun is flaky too: a failure alerted at once does not stop it
    assert hook.titles() == ["Nightly checkout failed", flaky, flaky, "Nightly checkout failed"]


async def test_a_refused_start_releases_the_alert_at_once(
    make: Make, clock: Clock, hook: Hook
) -> None:
    h = make(RULES)
    await h.cycle()
    h.world.faults.create_fail_next, h.world.faults.create_fail_status = 1, 403
    scheduled_failure(h)
    await until_rerun_ends(h, clock)
    await h.close()
    assert h.world.launches.posts[TEMPLATE] == 1
    assert h.world.launches.created.get(TEMPLATE, []) == []
    assert hook.titles() == ["Nightly checkout failed"]


async def test_a_failing_start_is_tried_again_later_and_starts_once(
    make: Make, clock: Clock, hook: Hook
) -> None:
    h = make(RULES)
    await h.cycle()
    h.world.faults.create_fail_next, h.world.faults.create_fail_status = 2, 503
    scheduled_failure(h)
    for _ in range(8):
        clock.advance(minutes=1)
        await h.cycle()
    await h.close()
    assert h.world.launches.posts[TEMPLATE] == 3
    assert len(h.world.launches.created[TEMPLATE]) == 1
    assert hook.titles() == ["Nightly checkout failed, then passed on a rerun"]


async def test_a_rerun_that_never_ends_releases_the_alert_at_the_deadline(
    make: Make, clock: Clock, hook: Hook
) -> None:
    h = make(RULES, poll={"max_catch_up": "3d", "follow_for": "30m"})
    h.world.launches.run_for = 86400.0
    await h.cycle()
    scheduled_failure(h)
    await until_rerun_ends(h, clock)
    assert hook.received == []
    clock.advance(minutes=31)
    await h.cycle()
    await h.close()
    assert hook.titles() == ["Nightly checkout failed"]
    assert h.world.launches.posts[TEMPLATE] == 1


async def test_a_dry_run_starts_no_job(make: Make, clock: Clock, hook: Hook) -> None:
    h = make(RULES)
    await h.daemon.close()
    h.daemon = Daemon(Settings(**h.doc), clock=clock, dry_run=True)
    await h.cycle()
    scheduled_failure(h)
    await until_rerun_ends(h, clock)
    await h.close()
    assert h.world.launches.posts.get(TEMPLATE, 0) == 0
    assert hook.received == []
