"""Scenarios: coroutines that change a World over real time, for demos and soak runs.

Every scenario takes ``(world, stop, *, seed, speed)``; sleeps are divided by
``speed`` and the scenario returns soon after ``stop`` is set.
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from watcher.simulator.world import SimJob, World


class Scenario(Protocol):
    def __call__(
        self, world: World, stop: asyncio.Event, *, seed: int = 0, speed: float = 1.0
    ) -> Coroutine[Any, Any, None]: ...


async def pause(stop: asyncio.Event, seconds: float, speed: float) -> bool:
    """Sleep ``seconds / speed`` of real time; True if ``stop`` was set meanwhile."""
    try:
        async with asyncio.timeout(max(seconds, 0.0) / speed):
            await stop.wait()
    except TimeoutError:
        return False
    return True


class _Stopped(Exception):
    """Unwinds a scripted story as soon as the scenario is asked to stop."""


class _Story:
    """Runs a linear script; while it waits, running jobs keep producing results and
    cues (actions set for a story time) happen, in order: a second line of the story
    that stays deterministic (the same jobs in the same order, so the same ids and the
    same test runs) because it runs in the script's own steps."""

    def __init__(self, world: World, stop: asyncio.Event, speed: float) -> None:
        self.world, self.stop, self.speed = world, stop, speed
        self.cast: list[SimJob] = []
        self.elapsed = 0.0  # story seconds (at speed 1)
        self._cues: list[tuple[float, int, Callable[[], object]]] = []

    def add(self, **kwargs: Any) -> SimJob:
        job = self.world.add_job(**kwargs)
        self.cast.append(job)
        return job

    def cue(self, at: float, action: Callable[[], object]) -> None:
        """Run `action` once the story has waited `at` seconds in all."""
        self._cues.append((at, len(self._cues), action))
        self._cues.sort()

    async def wait(self, seconds: float) -> None:
        while seconds > 0:
            step = min(1.0, seconds)
            if await pause(self.stop, step, self.speed):
                raise _Stopped
            seconds -= step
            self.elapsed += step
            for job in self.cast:
                if job.status == "running" and self.world.get(job.id) is job:
                    self.world.progress(job)
            while self._cues and self._cues[0][0] <= self.elapsed + 1e-9:
                self._cues.pop(0)[2]()


# Newest first, as GET /jobs lists them once the demo story has ended, but for the
# page-speed runs (DEMO_SPEED_RUNS of them, all completed, interleaved).
DEMO_END_STATE: tuple[tuple[str, str], ...] = (
    ("Nightly checkout", "completed"),
    ("Nightly checkout", "failed"),
    ("Basket API smoke test", "cancelled"),
    ("Mobile landing", "failed"),
    ("Site crawl", "expired"),
    ("Homepage", "completed"),
    ("Nightly checkout", "failed"),
    ("Homepage", "completed"),
    ("Weekly regression suite", "completed"),
    ("Product search", "failed"),
    ("Nightly checkout", "completed"),
)

_SHOP = "https://shop.example.com"
_NIGHTLY: dict[str, Any] = {
    "name": "Nightly checkout",
    "type": "Scripted",
    "template": "jobTemplates/6789",
    "run_type": "scheduled",
    "url": f"{_SHOP}/checkout",
}
_HOMEPAGE: dict[str, Any] = {
    "name": "Homepage",
    "template": "jobTemplates/1101",
    "url": f"{_SHOP}/",
    "started_by": "Priya Natarajan",
}
_SEARCH: dict[str, Any] = {
    "name": "Product search",
    "type": "Multi",
    "template": "jobTemplates/2204",
    "url": f"{_SHOP}/search?q=shoes",
}
_WEEKLY: dict[str, Any] = {
    "name": "Weekly regression suite",
    "type": "Scripted",
    "template": "jobTemplates/5120",
    "started_by": "Priya Natarajan",
}
_CRAWL: dict[str, Any] = {
    "name": "Site crawl",
    "type": "Crawl",
    "template": "jobTemplates/4410",
    "url": f"{_SHOP}/",
}
_SMOKE: dict[str, Any] = {
    "name": "Basket API smoke test",
    "template": "jobTemplates/3021",
    "url": f"{_SHOP}/basket",
}
_SPEED: dict[str, Any] = {
    "name": "Checkout page speed",
    "template": "jobTemplates/6790",
    "run_type": "scheduled",
    "url": f"{_SHOP}/checkout",
}
# The flaky beat: a scheduled run that fails, and passes when started again.
_LANDING: dict[str, Any] = {
    "name": "Mobile landing",
    "template": "jobTemplates/1187",
    "run_type": "scheduled",
    "url": "https://m.example.com/",
}
DEMO_FLAKY_TEMPLATE = _LANDING["template"]
DEMO_SPEED_TEMPLATE = _SPEED["template"]
DEMO_SPEED_NAME = _SPEED["name"]
# The page-speed beat: a run every SPEED_EVERY s from SPEED_FROM; runs up to SPEED_NORMAL
# make the baseline (min_runs 6, and one judged), the next SPEED_SLOW are 50% slower
# to onLoad (`regressed` on the 2nd), the rest are back (`improved` within 2-3).
SPEED_FROM, SPEED_EVERY = 2.0, 3.0
SPEED_NORMAL, SPEED_SLOW, SPEED_BACK = 7, 2, 3
DEMO_SPEED_RUNS = SPEED_NORMAL + SPEED_SLOW + SPEED_BACK
SPEED_FACTOR = 1.5


async def demo(world: World, stop: asyncio.Event, *, seed: int = 0, speed: float = 1.0) -> None:
    """A scripted story of about 45 s at speed 1 (``seed`` is unused: it is fixed).

    Start: ended jobs from the past day (a completed "Nightly checkout" yesterday, a
    completed "Homepage", a failed "Product search") and "Weekly regression suite"
    running since 3 hours ago. Then, a few seconds apart: Nightly checkout #1 goes
    pending -> running -> failed; a new Homepage completes; a Site crawl expires;
    "Basket API smoke test" is cancelled; the weekly regression completes; Nightly
    checkout #2 fails again; Nightly checkout #3 completes (the recovery). A scheduled
    "Mobile landing" run fails after the crawl starts; a job of its template started
    through POST /jobs (the watcher's rerun) completes 4 s later. Meanwhile,
    every 3 s from 2 s on, a "Checkout page speed" run (one page, one browser, 2% noise)
    completes: 7 at its level, 2 with onLoad 50% slower (ending at 26 s and 29 s: the
    `regressed` alert), 3 back at its level (the last ends at 38 s: `improved`).

    End state, newest first (``DEMO_END_STATE``, reruns apart): Nightly checkout
    completed, Nightly checkout failed, Basket API smoke test cancelled, Mobile landing
    failed, Site crawl expired,
    Homepage completed, Nightly checkout failed, Homepage completed (2 h ago),
    Weekly regression suite completed, Product search failed (5 h ago), Nightly
    checkout completed (yesterday).
    """
    story = _Story(world, stop, speed)
    try:
        await _demo_script(world, story)
    except _Stopped:
        return


def _history(world: World, hours_ago: float, minutes: int, pages: int, **kw: Any) -> SimJob:
    start = world.now() - timedelta(hours=hours_ago)
    job = world.add_job(started_at=start, **kw)
    # Ended long ago: their last change was when they ended, not now.
    job.updated_at = start + timedelta(minutes=minutes)
    job.page_count = pages
    return job


def _speed_beat(world: World, story: _Story) -> None:
    """Cue the page-speed runs: each starts as the one before completes."""
    template = DEMO_SPEED_TEMPLATE
    world.perf.set_pages(template, [("Checkout", f"{_SHOP}/checkout")], ["Chrome"])
    world.perf.set_noise(template, 0.02)
    runs: list[SimJob] = []

    def step(n: int) -> None:
        if runs:
            world.set_status(runs[-1], "completed")
        if n == SPEED_NORMAL:
            world.perf.shift(template, "onLoad", SPEED_FACTOR)
        elif n == SPEED_NORMAL + SPEED_SLOW:
            world.perf.recover(template)
        if n < DEMO_SPEED_RUNS:
            runs.append(world.add_job(status="running", **_SPEED))

    for n in range(DEMO_SPEED_RUNS + 1):
        story.cue(SPEED_FROM + SPEED_EVERY * n, functools.partial(step, n))


async def _demo_script(world: World, story: _Story) -> None:
    _speed_beat(world, story)
    _history(world, 24, 18, 14, status="completed", **_NIGHTLY)
    _history(world, 5, 1, 0, status="failed", **_SEARCH)
    three_hours_ago = world.now() - timedelta(hours=3)
    weekly = story.add(status="running", started_at=three_hours_ago, **_WEEKLY)
    weekly.page_count = 37
    _history(world, 2, 2, 3, status="completed", **_HOMEPAGE)

    await story.wait(2)
    nightly = story.add(**_NIGHTLY)
    await story.wait(3)
    world.set_status(nightly, "running")
    await story.wait(1)
    home = story.add(**_HOMEPAGE)
    await story.wait(1)
    world.set_status(home, "running")
    await story.wait(2)
    world.set_status(nightly, "failed")
    await story.wait(2)
    world.set_status(home, "completed")
    await story.wait(1)
    crawl = story.add(status="running", **_CRAWL)
    await story.wait(1)
    # fails where it would have completed; a job started through POST /jobs passes
    world.fail_next(DEMO_FLAKY_TEMPLATE, mode="flaky")
    world.launches.pending_for, world.launches.run_for = 1 / story.speed, 3 / story.speed
    story.add(status="completed", **_LANDING)
    await story.wait(2)
    smoke = story.add(status="running", **_SMOKE)
    await story.wait(4)
    world.set_status(crawl, "expired")
    await story.wait(2)
    world.set_status(smoke, "cancelled")
    await story.wait(3)
    world.set_status(weekly, "completed")
    for pending_for, run_for, outcome in ((2, 4, "failed"), (2, 6, "completed")):
        await story.wait(3)
        job = story.add(**_NIGHTLY)
        await story.wait(pending_for)
        world.set_status(job, "running")
        await story.wait(run_for)
        world.set_status(job, outcome)
    await story.wait(1)


@dataclass(frozen=True)
class _Template:
    name: str
    type: str
    uri: str
    url: str


_TEMPLATES = (
    _Template("Homepage", "Single", "jobTemplates/1101", "https://shop.example.com/"),
    _Template("Nightly checkout", "Scripted", "jobTemplates/6789", ""),
    _Template("Site crawl", "Crawl", "jobTemplates/4410", "https://shop.example.com/"),
    _Template("Search results", "Multi", "jobTemplates/2204", "https://shop.example.com/search"),
    _Template("Mobile landing", "Single", "jobTemplates/1187", "https://m.example.com/"),
)
_PEOPLE = ("Joe Bloggs", "Priya Natarajan", "Sam Okafor")


@dataclass(frozen=True)
class _Plan:
    """A job's whole life, drawn up front so a seed fixes it whatever the timing."""

    template: _Template
    run_type: str
    started_by: str
    pending_for: float
    run_for: float
    outcome: str


def _draw(rng: random.Random) -> _Plan:
    template = rng.choice(_TEMPLATES)
    outcomes = ["completed", "failed", "cancelled"]
    weights = [85, 10, 5]
    if template.type == "Crawl":
        outcomes.append("expired")
        weights = [70, 8, 5, 17]
    return _Plan(
        template=template,
        run_type="scheduled" if rng.random() < 0.4 else "manual",
        started_by=rng.choice(_PEOPLE),
        pending_for=rng.uniform(1, 3),
        run_for=rng.uniform(5, 40),
        outcome=rng.choices(outcomes, weights)[0],
    )


def _start(world: World, plan: _Plan, **kw: Any) -> SimJob:
    t = plan.template
    return world.add_job(
        name=t.name,
        type=t.type,
        template=t.uri,
        url=t.url,
        run_type=plan.run_type,
        started_by=plan.started_by,
        **kw,
    )


async def _live(world: World, stop: asyncio.Event, job: SimJob, plan: _Plan, speed: float) -> None:
    if await pause(stop, plan.pending_for, speed):
        return
    world.set_status(job, "running")
    left = plan.run_for
    while left > 0:
        step = min(2.0, left)
        if await pause(stop, step, speed):
            return
        left -= step
        if world.get(job.id) is not job:
            return  # removed meanwhile
        world.progress(job)
    world.set_status(job, plan.outcome)


async def steady(world: World, stop: asyncio.Event, *, seed: int = 0, speed: float = 1.0) -> None:
    """Seeded churn: some ended history, then a new job every 2-6 s, each running for
    5-40 s and ending completed (mostly), failed, cancelled or (crawls) expired."""
    rng = random.Random(seed)
    for hours_ago in (6, 5, 4, 3, 2, 1):
        plan = _draw(rng)
        start = world.now() - timedelta(hours=hours_ago)
        job = _start(world, plan, status=plan.outcome, started_at=start)
        job.updated_at = start + timedelta(seconds=plan.run_for)
        job.page_count = 0 if plan.outcome == "failed" else 1 + int(plan.run_for) // 4
    lives: set[asyncio.Task[None]] = set()
    try:
        while not await pause(stop, rng.uniform(2, 6), speed):
            plan = _draw(rng)
            task = asyncio.create_task(_live(world, stop, _start(world, plan), plan, speed))
            lives.add(task)
            task.add_done_callback(lives.discard)
    finally:
        for task in lives:
            task.cancel()
        await asyncio.gather(*lives, return_exceptions=True)


async def idle(world: World, stop: asyncio.Event, *, seed: int = 0, speed: float = 1.0) -> None:
    """Nothing happens: the world stays as it was given."""
    await stop.wait()


def history(
    world: World, count: int, every: timedelta, *, status: str = "completed", **kw: Any
) -> list[SimJob]:
    """``count`` ended jobs, ``every`` apart, the last one ``every`` ago, oldest first:
    a baseline of test runs for a template (``template=`` in ``kw``)."""
    jobs = []
    for n in range(count, 0, -1):
        start = world.now() - every * n
        job = world.add_job(started_at=start, status=status, **kw)
        job.updated_at = start + min(every / 2, timedelta(minutes=10))
        job.page_count = world.perf.run_count(job)
        jobs.append(job)
    return jobs


async def _run_once(
    world: World, stop: asyncio.Event, speed: float, pending: float, running: float, **kw: Any
) -> SimJob | None:
    """One job of ``kw``'s template, pending then running then completed (or failed,
    if ``fail_next`` says so); None if stopped meanwhile."""
    job = world.add_job(**kw)
    if await pause(stop, pending, speed):
        return None
    world.set_status(job, "running")
    if await pause(stop, running, speed):
        return None
    world.set_status(job, "completed")
    return job


async def perf(world: World, stop: asyncio.Event, *, seed: int = 0, speed: float = 1.0) -> None:
    """Nightly checkout's performance story, repeating (``seed`` shifts its pages):
    24 hourly completed runs of history, then a run every 5 s; the 3rd to 5th live
    runs are 40% slower to onLoad on the Checkout page (a regression), from the 6th
    they are back (the recovery); the 8th fails, and a rerun started through
    ``POST /jobs`` completes (a flaky failure). Then it starts over from the history's
    level with a new run every 5 s."""
    template = _NIGHTLY["template"]
    if seed:
        world.perf.noise = 0.05 + (seed % 5) / 100
    world.perf.set_pages(
        template,
        [("Basket", f"{_SHOP}/basket"), ("Checkout", f"{_SHOP}/checkout")],
        ["Chrome", "Firefox"],
    )
    world.launches.pending_for, world.launches.run_for = 1.0 / speed, 2.0 / speed
    history(world, 24, timedelta(hours=1), **_NIGHTLY)
    n = 0
    while True:
        n += 1
        step = (n - 1) % 10 + 1
        if step == 3:
            world.perf.shift(template, "onLoad", 1.4, page="Checkout")
        elif step == 6:
            world.perf.recover(template)
        elif step == 8:
            world.fail_next(template, mode="flaky")
        elif step == 9:
            world.heal(template)
        job = await _run_once(world, stop, speed, 1.0, 2.0, **_NIGHTLY)
        if job is None or await pause(stop, 2.0, speed):
            return


SCENARIOS: dict[str, Scenario] = {"demo": demo, "steady": steady, "idle": idle, "perf": perf}
