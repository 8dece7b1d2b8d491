"""Crash safety: `watcher run` killed with SIGKILL at random moments, again and again,
while jobs keep failing. Every failure must arrive; a repeat is only possible for the
one alert a kill catches between the channel's acceptance and the "sent" commit."""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
from collections import Counter
from pathlib import Path

from aiohttp import web

from tests.conftest import Hook, config_document, serve, write_config
from tests.e2e import proc
from watcher.simulator.runner import SimulatorHandle
from watcher.simulator.world import World

SEED = int(os.environ.get("WATCHER_KILL_SEED", "20261129"))  # replay a failure with its seed
KILLS = int(os.environ.get("WATCHER_KILLS", "50"))
MODES = ("anywhere", "during a poll", "during delivery", "right after a commit")


async def slow_hook(hook: Hook, delay: list[float]) -> tuple[web.AppRunner, int]:
    """A second receiver in front of `hook` whose answers can be slowed down."""

    async def handle(request: web.Request) -> web.Response:
        await asyncio.sleep(delay[0])
        hook.received.append(await request.json())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", handle)
    return await serve(app)


async def test_fifty_hard_kills_lose_no_alert_and_repeat_at_most_one_per_kill(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook
) -> None:
    """SIGKILL during polls, deliveries and commits: none lost, duplicates bounded."""
    rng = random.Random(SEED)
    delay = [0.0]
    runner, port = await slow_hook(hook, delay)
    url = f"json://127.0.0.1:{port}/hook"
    doc = config_document(
        sim, tmp_path, {"hook": url}, poll={"interval": "0.2s", "alert_on_first_run": True}
    )
    path = str(write_config(tmp_path / "watcher.yaml", doc))
    expected: list[str] = []
    modes: Counter[str] = Counter()
    for round_ in range(KILLS):
        mode = rng.choice(MODES)
        modes[mode] += 1
        world.faults.delay = 0.4 if mode == "during a poll" else 0.0
        delay[0] = 0.4 if mode == "during delivery" else 0.0
        for n in range(rng.randint(1, 3)):
            name = f"R{round_}-{n}"
            world.add_job(name=name, status="failed")
            expected.append(f"{name} failed")
        daemon = await proc.Daemon(["run", "-c", path]).start()
        if mode == "right after a commit":
            await daemon.wait_for_line('"poll_done"')
        await asyncio.sleep(rng.uniform(0.2, 1.5))
        await daemon.kill()
    world.faults.delay, delay[0] = 0.0, 0.0
    daemon = await proc.Daemon(["run", "-c", path]).start()
    await proc.eventually(lambda: set(hook.titles()) >= set(expected), timeout=120)
    await daemon.wait_for_line('"poll_done"')
    await asyncio.sleep(1)  # a few more cycles: nothing else may arrive
    assert await daemon.stop() == 0
    await runner.cleanup()
    received = Counter(hook.titles())
    duplicated = sum(n - 1 for n in received.values())
    figures = {
        "seed": SEED,
        "kills": KILLS,
        "modes": dict(modes),
        "alerts_expected": len(expected),
        "alerts_received": sum(received.values()),
        "distinct_received": len(received),
        "duplicated": duplicated,
        "lost": len(set(expected) - set(received)),
    }
    print("kill-test figures:", json.dumps(figures))
    assert set(received) == set(expected), figures
    assert duplicated <= KILLS, figures
    # A repeat can only be a delivery the kill cut short: the outbox holds each alert once.
    with sqlite3.connect(f"file:{tmp_path / 'state' / 'watcher.db'}?mode=ro", uri=True) as db:
        rows, alerts = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT event_key || ' ' || rule || ' ' || channel)"
            " FROM outbox"
        ).fetchone()
    assert rows == alerts == len(expected), figures
