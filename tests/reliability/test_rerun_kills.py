"""The flake filter's start request as a fenced action: `watcher run` killed with
SIGKILL between the decision to rerun and `POST /jobs`, and between the POST (the
job created) and the commit of its answer. Either way, after a restart: exactly one
job started, exactly one outcome sent."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Hook, config_document, write_config
from tests.e2e import proc
from watcher.simulator.runner import SimulatorHandle
from watcher.simulator.world import World

TEMPLATE = "jobTemplates/6789"
FLAKY_TITLE = "Nightly checkout failed, then passed on a rerun"


def config(sim: SimulatorHandle, tmp_path: Path, hook: Hook) -> str:
    rules: list[dict[str, Any]] = [
        {
            "name": "retry-flaky",
            "match": {"to": ["failed"], "run_type": ["scheduled"]},
            "rerun": {"delay": "2s"},
            "notify": ["hook"],
            "title": "{{ job.name }} {{ event.to }}",
        },
        {"name": "flakes", "match": {"event": "flaky"}, "notify": ["hook"]},
    ]
    doc = config_document(
        sim,
        tmp_path,
        {"hook": hook.url},
        # a 1 s timeout: a lost answer is looked for 3 x 1 + 5 s after its claim
        api={"timeout": "1s", "retries": 0},
        poll={"interval": "0.3s", "alert_on_first_run": True},
        rules=rules,
    )
    return str(write_config(tmp_path / "watcher.yaml", doc))


def rerun_state(tmp_path: Path) -> str | None:
    path = tmp_path / "state" / "watcher.db"
    if not path.exists():
        return None
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        try:
            row = db.execute("SELECT state FROM reruns").fetchone()
        except sqlite3.OperationalError:  # not created yet
            return None
    return None if row is None else str(row[0])


def failing_nightly(world: World) -> None:
    world.launches.pending_for, world.launches.run_for = 0.5, 1.0
    world.fail_next(TEMPLATE, mode="flaky")
    world.add_job(
        name="Nightly checkout", template=TEMPLATE, status="completed", run_type="scheduled"
    )


async def finish(path: str, hook: Hook, world: World) -> None:
    """Run again until the outcome is sent, then a while more: nothing else comes."""
    daemon = await proc.Daemon(["run", "-c", path]).start()
    await proc.eventually(lambda: hook.titles() == [FLAKY_TITLE], timeout=60)
    await daemon.wait_for_line('"poll_done"')
    await daemon.wait_for_line('"poll_done"')
    assert await daemon.stop() == 0
    assert hook.titles() == [FLAKY_TITLE]
    assert len(world.launches.created[TEMPLATE]) == 1
    assert world.launches.posts[TEMPLATE] == 1


@pytest.mark.parametrize("restarts", [1, 2])
async def test_killed_between_the_decision_and_the_start_request(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook, restarts: int
) -> None:
    path = config(sim, tmp_path, hook)
    failing_nightly(world)
    for _ in range(restarts):
        daemon = await proc.Daemon(["run", "-c", path]).start()
        await proc.eventually(lambda: rerun_state(tmp_path) == "due", timeout=30)
        await daemon.kill()
    assert world.launches.posts[TEMPLATE] == 0
    assert hook.received == []
    await finish(path, hook, world)


async def test_killed_between_the_start_request_and_its_commit(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook
) -> None:
    path = config(sim, tmp_path, hook)
    failing_nightly(world)
    world.faults.create_delay = 5.0  # the job exists; its answer is late (the kill is sooner)
    daemon = await proc.Daemon(["run", "-c", path]).start()
    await proc.eventually(lambda: bool(world.launches.created.get(TEMPLATE)), timeout=30)
    await daemon.kill()
    world.faults.create_delay = 0.0
    assert rerun_state(tmp_path) == "starting"
    await finish(path, hook, world)
