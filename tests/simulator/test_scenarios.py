"""Scenarios played at high speed, and ``serve`` running one behind a real port."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
import pytest

from watcher import baseline
from watcher.simulator import DEMO_END_STATE, SCENARIOS, World, serve
from watcher.simulator.scenarios import DEMO_SPEED_NAME, DEMO_SPEED_RUNS, DEMO_SPEED_TEMPLATE
from watcher.simulator.world import STATUSES, TERMINAL


async def test_demo_reaches_its_end_state() -> None:
    """The demo story, at speed 50, ends exactly as DEMO_END_STATE says, its page-speed
    runs apart: DEMO_SPEED_RUNS of them, all completed."""
    world = World()
    await asyncio.wait_for(SCENARIOS["demo"](world, asyncio.Event(), speed=50), 5)
    story = [job for job in world.jobs() if job.name != DEMO_SPEED_NAME]
    assert tuple((job.name, job.status) for job in story) == DEMO_END_STATE
    assert story[0].template == "jobTemplates/6789"
    speed = [job for job in world.jobs() if job.name == DEMO_SPEED_NAME]
    assert [job.status for job in speed] == ["completed"] * DEMO_SPEED_RUNS


async def test_the_demo_speed_runs_regress_then_recover() -> None:
    """The page-speed runs, oldest first: 7 at their level, 2 with onLoad 50% slower, 3
    back; judged by the watcher's statistics: `regressed` on the 2nd slow run, then
    `improved` within the 3 back (2% noise: the same with any job ids)."""
    for others in (0, 5, 13):  # other jobs first: other ids, other noise draws
        world = World()
        for _ in range(others):
            world.add_job(status="completed")
        await asyncio.wait_for(SCENARIOS["demo"](world, asyncio.Event(), speed=50), 5)
        speed = [job for job in reversed(world.jobs()) if job.name == DEMO_SPEED_NAME]
        onload = [world.perf.runs(job)[0]["onLoad"] for job in speed]
        assert all(job.template == DEMO_SPEED_TEMPLATE for job in speed)
        state, fired = baseline.SeriesState(), []
        for value in onload:
            state, verdict = baseline.observe(state, value, baseline.Thresholds())
            fired.append(verdict.fired)
        assert fired[:9] == [None] * 8 + ["regressed"], onload
        assert fired[9:].count("improved") == 1, onload


async def test_demo_stops_early_when_asked() -> None:
    """Setting stop ends the demo promptly, part-way through its story."""
    world, stop = World(), asyncio.Event()
    task = asyncio.create_task(SCENARIOS["demo"](world, stop, speed=10))
    await asyncio.sleep(0.3)
    stop.set()
    await asyncio.wait_for(task, 1)
    assert len(world) < len(DEMO_END_STATE)


async def _play_steady(seed: int, seconds: float) -> World:
    world, stop = World(), asyncio.Event()
    task = asyncio.create_task(SCENARIOS["steady"](world, stop, seed=seed, speed=100))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(task, 1)
    return world


async def test_steady_churns_jobs_to_end_states() -> None:
    """Steady at speed 100 starts jobs that run and end in known statuses."""
    world = await _play_steady(seed=1, seconds=1.0)
    statuses = Counter(job.status for job in world.jobs())
    assert set(statuses) <= set(STATUSES)
    assert len(world) > 10
    assert sum(statuses[s] for s in TERMINAL) > 6  # more than the 6 history jobs ended
    assert statuses["completed"] > statuses["failed"]


async def test_steady_is_seeded() -> None:
    """The same seed starts the same jobs in the same order."""
    first, second = await asyncio.gather(_play_steady(7, 0.3), _play_steady(7, 0.3))
    names = [[j.name for j in sorted(w.jobs(), key=lambda j: j.id)][:8] for w in (first, second)]
    assert names[0] == names[1]


async def test_idle_changes_nothing() -> None:
    """Idle leaves the world untouched until stopped."""
    world, stop = World(), asyncio.Event()
    world.add_job()
    task = asyncio.create_task(SCENARIOS["idle"](world, stop))
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 1)
    assert len(world) == 1


async def test_serve_reports_port_and_serves_scenario(http: aiohttp.ClientSession) -> None:
    """serve(port=0) tells ready() its port and serves the scenario's world until cancelled."""
    world, bound = World(), asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve(port=0, scenario="steady", speed=100, world=world, ready=bound.set_result)
    )
    port = await asyncio.wait_for(bound, 2)
    await asyncio.sleep(0.2)
    async with http.get(f"http://127.0.0.1:{port}/_sim/jobs") as resp:
        assert len(await resp.json()) == len(world) >= 6
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_serve_refuses_unknown_scenario() -> None:
    """An unknown scenario name is a ValueError listing the known ones."""
    with pytest.raises(ValueError, match="demo"):
        await serve(port=0, scenario="nope")


async def test_perf_tells_a_regression_a_recovery_and_a_flaky_failure() -> None:
    """The perf scenario: 24 runs of history, then live runs of which the 3rd to 5th
    are 40% slower on Checkout's onLoad, and the 8th fails (its template flaky)."""
    world, stop = World(), asyncio.Event()
    task = asyncio.create_task(SCENARIOS["perf"](world, stop, speed=100))
    for _ in range(500):  # at most 10 s, on a busy machine
        if len(world) >= 24 + 9:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 1)
    jobs = list(reversed(world.jobs()))  # oldest first
    live = jobs[24:]
    assert all(job.status == "completed" for job in jobs[:24])
    shifted = [job.perf.shifts if job.perf else None for job in live[:8]]
    assert shifted == [(), (), *[(("Checkout", "onLoad", 1.4),)] * 3, (), (), ()]
    assert [job.status for job in live[:8]] == ["completed"] * 7 + ["failed"]
    assert world.flakes() == {}  # healed once the failure happened
    assert {r["pageTitle"] for r in world.perf.runs(jobs[0])} == {"Basket", "Checkout"}
