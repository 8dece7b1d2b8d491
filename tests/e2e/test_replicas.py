"""`watcher run` replicas sharing one real PostgreSQL: one polls, the others stand by,
a clean stop hands over at once, and no failure is lost or sent twice."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

from tests.conftest import Hook, config_document, write_config
from tests.e2e import proc
from watcher.simulator.runner import SimulatorHandle
from watcher.simulator.world import World


def ha_config(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook, url: str, name: str, lease: str = "3s"
) -> str:
    doc = config_document(sim, tmp_path, {"hook": hook.url}, poll={"interval": "0.3s"})
    doc["state"] = {"url": url}
    doc["ha"] = {"lease": lease, "replica": name}
    return str(write_config(tmp_path / f"{name}.yaml", doc))


def polls_of(daemon: proc.Daemon) -> int:
    return daemon.output().count('"poll_done"')


def leader_of(replicas: dict[str, proc.Daemon]) -> str:
    """The replica that took the lease last, by its log."""
    taken = [
        (json.loads(line)["timestamp"], name)
        for name, d in replicas.items()
        for line in d.lines
        if '"lease_taken"' in line
    ]
    return max(taken)[1]


async def test_two_replicas_poll_once_and_hand_over_on_a_clean_stop(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook, pg_url: str
) -> None:
    """One leader polls, the standby does not; SIGTERM the leader and the standby takes
    over; each failure is one alert throughout."""
    replicas = {
        name: await proc.Daemon(["run", "-c", ha_config(tmp_path, sim, hook, pg_url, name)]).start()
        for name in ("a", "b")
    }
    await proc.eventually(lambda: any(polls_of(d) for d in replicas.values()))
    first = leader_of(replicas)
    standby = "b" if first == "a" else "a"
    world.add_job(name="Checkout", status="failed")
    await proc.eventually(lambda: hook.titles() == ["Checkout failed"])
    assert polls_of(replicas[standby]) == 0
    assert await replicas[first].stop() == 0
    await replicas[standby].wait_for_line('"lease_taken"')
    world.add_job(name="Search", status="failed")
    await proc.eventually(lambda: len(hook.titles()) == 2)
    await asyncio.sleep(1)  # a few more cycles: nothing else arrives
    assert await replicas[standby].stop() == 0
    assert Counter(hook.titles()) == Counter(["Checkout failed", "Search failed"])
