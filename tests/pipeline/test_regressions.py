"""`regressed` and `improved` end to end: the simulator's test runs (log-normal noise,
injected shifts) -> the daemon's series -> the webhook, on a fixed clock, across
restarts, with lookups capped per cycle and test-run lookups that fail or read badly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CLIENT_ID, CLIENT_SECRET, REALM, Hook
from tests.pipeline.test_events import Clock, FlakyRunsWorld, Harness, harness
from watcher import explain
from watcher.settings import Settings
from watcher.simulator.runner import SimulatorHandle, running_simulator
from watcher.simulator.tokens import TokenStore
from watcher.simulator.world import SimJob

TEMPLATE = "jobTemplates/6789"
PAGE = ("Checkout", "https://shop.example.com/checkout")
RULES: list[dict[str, Any]] = [
    {
        "name": "slower",
        "match": {
            "event": "regressed",
            "template": [TEMPLATE],
            "metric": ["onLoad"],
            "baseline": {"runs": 20, "min_runs": 6},
            "consecutive": 2,
        },
        "notify": ["hook"],
        "severity": "warning",
    },
    {
        "name": "back",
        "match": {"event": "improved", "template": [TEMPLATE]},
        "notify": ["hook"],
        "severity": "success",
    },
]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def sim(clock: Clock) -> AsyncIterator[SimulatorHandle]:
    world = FlakyRunsWorld(clock=clock)
    world.tokens = TokenStore()
    world.perf.set_pages(TEMPLATE, [PAGE], browsers=["Chrome"])
    world.perf.error_rate = 0.0  # every run clean: the counts below are exact
    async with running_simulator(
        world, realm=REALM, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    ) as handle:
        yield handle


def make(sim: SimulatorHandle, tmp_path: Path, clock: Clock, hook: Hook, **kw: Any) -> Harness:
    return harness(sim, tmp_path, clock, {"hook": hook.url}, RULES, **kw)


def nightly(h: Harness, clock: Clock, template: str = TEMPLATE) -> SimJob:
    """A job of the template that completed an hour after the last one."""
    clock.advance(hours=1)
    return h.world.add_job(name="Nightly checkout", template=template, status="completed")


async def runs(h: Harness, clock: Clock, count: int) -> None:
    for _ in range(count):
        nightly(h, clock)
        await h.cycle()


async def test_a_step_fires_regressed_once_and_improved_once_across_restarts(
    sim: SimulatorHandle, tmp_path: Path, clock: Clock, hook: Hook
) -> None:
    """10 runs of baseline; onLoad x1.4: `regressed` at the 2nd slow run, once (a restart
    in the middle repeats nothing); back to normal: `improved` at the 2nd normal run."""
    h = make(sim, tmp_path, clock, hook)
    await h.cycle()  # the first poll: nothing to judge
    await runs(h, clock, 10)
    assert hook.received == []
    h.world.perf.shift(TEMPLATE, "onLoad", 1.4)
    await runs(h, clock, 1)
    assert hook.received == []  # one flagged run is not yet a regression
    await h.restart()
    await runs(h, clock, 1)
    assert len(hook.received) == 1
    title = hook.titles()[0]
    assert title.startswith("Checkout onLoad ")
    assert "slower than its baseline" in title, title
    await h.restart()
    await runs(h, clock, 3)
    assert len(hook.received) == 1  # once per regression
    h.world.perf.recover(TEMPLATE)
    await runs(h, clock, 1)
    await h.restart()
    await runs(h, clock, 1)
    assert len(hook.received) == 2
    assert hook.titles()[1].startswith("Checkout onLoad back to its baseline")
    await runs(h, clock, 3)
    await h.close()
    assert len(hook.received) == 2
    shown = await explain.series_report(Settings(**h.doc), TEMPLATE)
    assert "jobTemplates/6789 https://shop.example.com/checkout [Chrome] onLoad" in shown
    assert "baseline: median " in shown
    assert "in band; regressions so far 1" in shown
    assert "evidence of a regression " in shown  # what the next verdict waits on
    assert await explain.series_report(Settings(**h.doc), "jobTemplates/1") == (
        "no series recorded for jobTemplates/1"
    )


async def test_lookups_over_the_cap_wait_for_the_next_cycle(
    sim: SimulatorHandle, tmp_path: Path, clock: Clock, hook: Hook
) -> None:
    """With 2 lookups a cycle, 7 jobs completed at once are read over 4 cycles, each once,
    oldest first, and a restart loses none of the waiting ones."""
    h = make(sim, tmp_path, clock, hook, poll={"test_run_lookups": 2})
    await h.cycle()
    for _ in range(7):
        nightly(h, clock)
    reads: list[str] = []
    original = h.world.perf.runs

    def counted(job: SimJob) -> list[dict[str, object]]:
        reads.append(job.sref)
        return original(job)

    h.world.perf.runs = counted  # type: ignore[method-assign]
    await h.cycle()
    assert len(reads) == 2
    await h.restart()
    await h.cycle()
    assert len(reads) == 4
    await h.cycle()
    await h.cycle()
    await h.cycle()  # nothing left
    await h.close()
    assert len(reads) == 7
    assert len(set(reads)) == 7  # each job read once
    assert reads == sorted(reads, key=lambda sref: int(sref.split("/")[1]))  # oldest first
    store_rows = await series_rows(h)
    assert store_rows == 1  # one page, one browser, one metric


async def series_rows(h: Harness) -> int:
    h2 = Harness(h.sim, Path(), h.clock, h.doc)
    try:
        return len(await h2.daemon.store.all_series())
    finally:
        await h2.close()


async def test_bad_test_runs_and_a_failing_endpoint_give_no_false_regression(
    sim: SimulatorHandle, tmp_path: Path, clock: Clock, hook: Hook
) -> None:
    """Null, missing and string metrics, an unknown browser, a run without a URL and a
    testRuns endpoint answering 500: no crash, no `regressed`; the failed lookup is read
    on a later cycle."""
    h = make(sim, tmp_path, clock, hook, api={"retries": 0})
    await h.cycle()
    await runs(h, clock, 8)
    original = h.world.perf.runs
    bad_values: list[object] = [None, "2.5", "slow", True, -1, "NaN", [], {}]
    turn = iter(range(1000))

    def spoiled(job: SimJob) -> list[dict[str, object]]:
        good = original(job)
        n = next(turn)
        run = dict(good[0])
        if n % 3 == 0:
            run.pop("onLoad")
        else:
            run["onLoad"] = bad_values[n % len(bad_values)]
        odd = {**good[0], "browser": "Netscape Navigator", "onLoad": 99.0, "url": None}
        other = {**good[0], "browser": 42, "onLoad": "fast"}
        return [run, odd, other]

    h.world.perf.runs = spoiled  # type: ignore[method-assign]
    await runs(h, clock, 8)
    assert hook.received == []
    h.world.perf.runs = original  # type: ignore[method-assign]
    broken = nightly(h, clock)
    h.world.broken_runs = {broken.sref}  # type: ignore[attr-defined]
    await h.cycle()
    await h.cycle()
    assert hook.received == []
    h.world.broken_runs = set()  # type: ignore[attr-defined]
    reads: list[str] = []

    def counted(job: SimJob) -> list[dict[str, object]]:
        reads.append(job.sref)
        return original(job)

    h.world.perf.runs = counted  # type: ignore[method-assign]
    await h.cycle()
    await h.close()
    assert reads == [broken.sref]  # retried once the endpoint answers, and only then
    assert hook.received == []
