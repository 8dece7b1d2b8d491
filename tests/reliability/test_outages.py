"""Outages: the API down for many cycles in every way it can be down, channels down for
long and for good, and one dead channel beside a healthy one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    REALM,
    Hook,
    config_document,
    free_port,
    serve,
    write_config,
)
from tests.e2e import proc
from tests.e2e.test_operations import cfg, daemon_ready_text, get
from watcher.simulator.runner import SimulatorHandle, running_simulator
from watcher.simulator.world import World


@pytest.mark.parametrize(
    "outage", ["connection refused", "timeouts", "5xx", "429 storm", "broken bodies"]
)
async def test_an_api_outage_raises_no_false_alert_and_the_catch_up_finds_every_ending(
    tmp_path: Path, world: World, hook: Hook, outage: str
) -> None:
    """Down for many cycles: /readyz turns 503, nothing is alerted; back: each ending once."""
    api_port = free_port()
    kwargs = {"realm": REALM, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    sim_context = running_simulator(world, port=api_port, **kwargs)
    sim = await sim_context.__aenter__()
    path, ready_port = cfg(tmp_path, sim, hook, api={"timeout": "0.5s", "retries": 1})
    running = [world.add_job(name=f"J{n}", status="running") for n in range(4)]
    daemon = await proc.Daemon(["run", "-c", path]).start()
    await proc.eventually(lambda: daemon_ready_text(ready_port) == '{"status": "ready"}')
    if outage == "connection refused":
        await sim_context.__aexit__(None, None, None)
    elif outage == "timeouts":
        world.faults.delay = 2.0
    elif outage == "5xx":
        world.faults.down = True
    elif outage == "429 storm":
        world.faults.fail_status, world.faults.retry_after, world.faults.fail_next = 429, "0", 10**6
    else:
        world.faults.truncate_next = 10**6
    for job, status in zip(running, ["failed", "expired", "completed", "failed"], strict=True):
        world.set_status(job, status)
    world.add_job(name="Started and failed while down", status="failed")
    await proc.eventually(lambda: "no poll has succeeded" in daemon_ready_text(ready_port), 30)
    await daemon.wait_for_line('"poll_failed"')
    assert hook.received == []
    if outage == "connection refused":
        sim_context = running_simulator(world, port=api_port, **kwargs)
        await sim_context.__aenter__()
    world.faults.delay, world.faults.down, world.faults.fail_next = 0.0, False, 0
    world.faults.truncate_next = 0
    expected = ["J0 failed", "J1 expired", "J3 failed", "Started and failed while down failed"]
    await proc.eventually(lambda: sorted(hook.titles()) == expected, 30)
    await proc.eventually(lambda: daemon_ready_text(ready_port) == '{"status": "ready"}')
    await asyncio.sleep(1)
    assert await daemon.stop() == 0
    await sim_context.__aexit__(None, None, None)
    assert sorted(hook.titles()) == expected


async def test_a_channel_down_for_many_retries_gets_the_alert_once(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook
) -> None:
    """Ten failed tries, then the channel returns: the alert arrives exactly once."""
    doc = config_document(
        sim,
        tmp_path,
        {"hook": hook.url},
        poll={"interval": "0.3s"},
        delivery={"retry_initial": "0.05s", "retry_max": "0.2s"},
    )
    path = str(write_config(tmp_path / "watcher.yaml", doc))
    daemon = await proc.Daemon(["run", "-c", path]).start()
    await daemon.wait_for_line('"poll_done"')
    hook.down = True
    world.add_job(name="Checkout", status="failed")
    await proc.eventually(lambda: hook.attempts >= 10, 60)
    hook.down = False
    await proc.eventually(lambda: hook.titles() == ["Checkout failed"])
    await asyncio.sleep(1)
    assert await daemon.stop() == 0
    assert hook.titles() == ["Checkout failed"]


async def test_a_channel_down_past_give_up_after_is_given_up_logged_counted_and_listed(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook
) -> None:
    """give_up_after passes: the alert is kept as given up, in the log, metrics and status."""
    path, port = cfg(
        tmp_path,
        sim,
        hook,
        delivery={"retry_initial": "0.1s", "retry_max": "0.2s", "give_up_after": "1s"},
    )
    hook.down = True
    daemon = await proc.Daemon(["run", "-c", path]).start()
    await daemon.wait_for_line('"poll_done"')
    world.add_job(name="Checkout", status="failed")
    await daemon.wait_for_line('"alert_given_up"')
    await asyncio.sleep(0.3)
    _, metrics = await get(port, "/metrics")
    assert await daemon.stop() == 0
    assert 'watcher_alerts_total{channel="hook",outcome="given_up"} 1.0' in metrics
    assert "watcher_outbox_given_up 1.0" in metrics
    code, out = await proc.run("status", "-c", path, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["outbox"]["given_up"] == 1
    assert data["given_up"][0]["title"] == "Checkout failed"
    assert hook.received == []


@pytest.fixture
async def hanging_hook() -> AsyncIterator[tuple[str, asyncio.Event, list[str]]]:
    """A receiver that holds every request until released."""
    release = asyncio.Event()
    got: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        await release.wait()
        got.append((await request.json())["title"])
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner, port = await serve(app)
    yield f"json://127.0.0.1:{port}/hook?rto=30", release, got
    release.set()
    await runner.cleanup()


async def test_a_hanging_channel_does_not_delay_the_others(
    tmp_path: Path,
    sim: SimulatorHandle,
    world: World,
    hook: Hook,
    hanging_hook: tuple[str, asyncio.Event, list[str]],
) -> None:
    """While one channel's request hangs, the next alerts reach the healthy channel."""
    url, release, got = hanging_hook
    doc = config_document(
        sim, tmp_path, {"hook": hook.url, "stuck": url}, poll={"interval": "0.3s"}
    )
    path = str(write_config(tmp_path / "watcher.yaml", doc))
    daemon = await proc.Daemon(["run", "-c", path]).start()
    await daemon.wait_for_line('"poll_done"')
    world.add_job(name="First", status="failed")
    await proc.eventually(lambda: hook.titles() == ["First failed"])
    world.add_job(name="Second", status="failed")
    await proc.eventually(lambda: hook.titles() == ["First failed", "Second failed"])
    assert got == []  # the other channel is still hanging on the first alert
    release.set()
    await proc.eventually(lambda: sorted(got) == ["First failed", "Second failed"])
    assert await daemon.stop() == 0
