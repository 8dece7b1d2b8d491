"""`watcher run` as a subprocess: signals, restarts and hard kills lose and repeat nothing."""

from __future__ import annotations

import asyncio
import random
import signal
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import Hook, config_document, write_config
from tests.e2e import proc
from watcher.simulator.runner import SimulatorHandle
from watcher.simulator.world import World


def cfg(tmp_path: Path, sim: SimulatorHandle, hook: Hook, *, first_run: bool = False) -> str:
    poll = {"interval": "0.3s", "alert_on_first_run": first_run}
    doc = config_document(sim, tmp_path, {"hook": hook.url}, poll=poll)
    return str(write_config(tmp_path / "watcher.yaml", doc))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_run_stops_cleanly_on_a_signal(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook, sig: signal.Signals
) -> None:
    """SIGTERM or SIGINT: the daemon finishes, logs its stop and exits 0."""
    daemon = await proc.Daemon(["run", "-c", cfg(tmp_path, sim, hook)]).start()
    await daemon.wait_for_line('"poll_done"')
    daemon.signal(sig)
    assert await daemon.wait() == 0
    assert '"watcher_stopped"' in daemon.output()


async def test_a_restart_neither_repeats_nor_loses_alerts(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook
) -> None:
    """Alerts before a restart are not sent again; failures while down are sent once."""
    path = cfg(tmp_path, sim, hook)
    first = world.add_job(name="First", status="running")
    daemon = await proc.Daemon(["run", "-c", path]).start()
    await daemon.wait_for_line('"poll_done"')
    world.set_status(first, "failed")
    await proc.eventually(lambda: hook.titles() == ["First failed"])
    assert await daemon.stop() == 0
    world.add_job(name="While down", status="expired")
    daemon = await proc.Daemon(["run", "-c", path]).start()
    await proc.eventually(lambda: len(hook.received) >= 2)
    await daemon.wait_for_line('"poll_done"')
    await asyncio.sleep(1)  # a few more cycles, to show nothing else arrives
    assert await daemon.stop() == 0
    assert hook.titles() == ["First failed", "While down expired"]


async def test_hard_kills_at_random_moments_lose_no_alert(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook
) -> None:
    """SIGKILL mid-cycle, again and again: every failure arrives, duplicates stay bounded."""
    rng = random.Random(20261129)  # seeded: a failing run can be replayed
    path = cfg(tmp_path, sim, hook, first_run=True)
    expected: list[str] = []
    kills = 8
    for round_ in range(kills):
        for n in range(rng.randint(1, 3)):
            name = f"R{round_}-{n}"
            world.add_job(name=name, status="failed")
            expected.append(f"{name} failed")
        daemon = await proc.Daemon(["run", "-c", path]).start()
        await asyncio.sleep(rng.uniform(0.3, 1.8))
        await daemon.kill()
    daemon = await proc.Daemon(["run", "-c", path]).start()
    await proc.eventually(lambda: set(hook.titles()) >= set(expected), timeout=60)
    await daemon.wait_for_line('"poll_done"')
    assert await daemon.stop() == 0
    received = Counter(hook.titles())
    assert set(received) == set(expected)
    duplicates = sum(n - 1 for n in received.values())
    # A kill between the channel's acceptance and the "sent" commit can repeat the one
    # alert in flight: at most one per kill.
    assert duplicates <= kills
