"""`watcher run` while the host's wall clock steps back and forward (libfaketime): the
polls keep coming every interval, alerts still go out, and /readyz stays 200."""

from __future__ import annotations

import asyncio
import glob
import json
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.conftest import Hook, require_tool
from tests.e2e import proc
from tests.e2e.test_operations import cfg
from watcher.simulator.runner import SimulatorHandle
from watcher.simulator.world import World

# Where distributions put the preload library (Debian and Ubuntu, Fedora, Arch, /usr/local).
LIBFAKETIME = (
    "/usr/lib/*/faketime/libfaketime.so.1",
    "/usr/lib*/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)
# The offsets written, one after the other: a step back, then a step forward.
STEPS = (("-10m", timedelta(minutes=-10)), ("+3h", timedelta(hours=3)))
POLLS_AFTER_A_STEP = 3
WAIT = 30.0  # seconds for those polls: at a 2 s interval they take about 6
# /readyz turns 503 after 3 intervals without a good poll: at 2 s, a shared machine's
# stall of a few seconds stays under that, while a readiness read off the wall clock
# would still turn 503 for up to an interval after the step forward.
INTERVAL = "2s"


def libfaketime() -> str:
    require_tool("faketime", "faketime")
    for pattern in LIBFAKETIME:
        if found := sorted(glob.glob(pattern)):
            return found[0]
    why = "faketime is installed, but libfaketime.so.1 is in none of " + ", ".join(LIBFAKETIME)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(why)
    pytest.skip(why)


def faked_clock(offsets: Path) -> dict[str, str]:
    """The environment that gives the daemon a wall clock this test steps by writing an
    offset into `offsets`; its monotonic clock stays the real one, as on a real host."""
    offsets.write_text("+0\n")
    return {
        "LD_PRELOAD": libfaketime(),
        "FAKETIME_TIMESTAMP_FILE": str(offsets),
        "FAKETIME_NO_CACHE": "1",  # read the file at every call: the step lands at once
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


def polls(daemon: proc.Daemon) -> list[datetime]:
    """When each poll_done was logged, by the daemon's own (faked) wall clock."""
    stamps = []
    for line in daemon.output().splitlines():
        if '"poll_done"' in line:
            stamps.append(datetime.fromisoformat(json.loads(line)["timestamp"]))
    return stamps


async def polls_after_step(daemon: proc.Daemon, step: timedelta, to: str) -> list[datetime]:
    """Wait for POLLS_AFTER_A_STEP polls stamped by the stepped clock; return them."""
    before = polls(daemon)[-1]

    def stepped() -> list[datetime]:
        # Stamps are seconds apart, steps minutes or hours: a stamp this far from the
        # last one before the step shows that the daemon's wall clock has moved.
        return [t for t in polls(daemon) if abs(t - (before + step)) < abs(step) / 2]

    await proc.eventually(
        lambda: len(stepped()) >= POLLS_AFTER_A_STEP, WAIT, f"polls after the step to {to}"
    )
    return stepped()


async def alerted(hook: Hook, title: str) -> None:
    await proc.eventually(lambda: title in hook.titles(), WAIT, f"the alert {title!r}")


@asynccontextmanager
async def running(args: list[str], extra_env: dict[str, str]) -> AsyncIterator[proc.Daemon]:
    """The daemon, killed if the block fails while it runs; its output is printed, for
    pytest to show with a failure."""
    daemon = await proc.Daemon(args, **extra_env).start()
    try:
        yield daemon
    finally:
        assert daemon.proc is not None
        if daemon.proc.returncode is None:
            await daemon.kill()
        print(daemon.output())


@asynccontextmanager
async def readiness(port: int) -> AsyncIterator[list[int]]:
    """Every /readyz status seen, asked five times a second while the block runs."""
    seen: list[int] = []

    async def ask() -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as resp:
                    seen.append(resp.status)
                await asyncio.sleep(0.2)

    task = asyncio.create_task(ask())
    try:
        yield seen
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_polling_and_readiness_survive_wall_clock_steps(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook
) -> None:
    """Stepped back 10 minutes, then forward 3 hours, then given a shorter interval by
    SIGHUP: each time the polls go on and a new failure is alerted; /readyz never turns
    503; SIGTERM still stops the daemon cleanly."""
    offsets = tmp_path / "faketime"
    path, port = cfg(tmp_path, sim, hook, interval=INTERVAL)
    async with running(["run", "-c", path], faked_clock(offsets)) as daemon:
        await proc.eventually(lambda: len(polls(daemon)) >= 2, WAIT, "the first polls")
        seen = await step_the_clock(daemon, offsets, port, world, hook)
        config = Path(path)
        doc = yaml.safe_load(config.read_text())
        doc["poll"]["interval"] = "1s"
        config.write_text(yaml.safe_dump(doc))
        count = len(polls(daemon))
        daemon.signal(signal.SIGHUP)
        await daemon.wait_for_line('"configuration_reloaded"')
        await proc.eventually(lambda: len(polls(daemon)) >= count + POLLS_AFTER_A_STEP, WAIT)
        assert await daemon.stop() == 0
    ready = seen[seen.index(200) :]
    assert set(ready) == {200}, f"/readyz answered {sorted(set(ready))} across the steps"
    assert '"watcher_stopped"' in daemon.output()
    assert hook.titles() == [f"After {text} failed" for text, _ in STEPS]


async def step_the_clock(
    daemon: proc.Daemon, offsets: Path, port: int, world: World, hook: Hook
) -> list[int]:
    """Each step of STEPS in turn, with its polls and an alert; the /readyz statuses."""
    async with readiness(port) as seen:
        await proc.eventually(lambda: 200 in seen, WAIT, "/readyz 200")
        previous = timedelta(0)
        for text, offset in STEPS:
            offsets.write_text(f"{text}\n")
            await polls_after_step(daemon, offset - previous, text)
            previous = offset
            world.add_job(name=f"After {text}", status="failed")
            await alerted(hook, f"After {text} failed")
    return seen
