"""SIGKILL in the middle of a large first poll, while its ended jobs are being staged in
the scratch file beside the state (`staging`): the next start removes the file the dead
process left, polls the window from the start, and records every job without alerting
on those that had ended."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from tests.conftest import Hook, config_document, write_config
from tests.e2e import proc
from watcher import staging
from watcher.simulator.runner import SimulatorHandle
from watcher.simulator.world import World

JOBS = staging.STAGE_FROM + 5_000  # a window large enough to be staged


def stored_jobs(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])
    finally:
        db.close()


async def test_a_first_poll_killed_while_staging_leaves_nothing_behind(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook
) -> None:
    for n in range(JOBS):
        world.add_job(name=f"Job {n}", status="failed" if n % 10 == 0 else "completed")
    doc = config_document(sim, tmp_path, {"hook": hook.url}, poll={"interval": "1s"})
    doc["api"].update(page_size=100, max_pages=1000)
    config = str(write_config(tmp_path / "watcher.yaml", doc))
    state = Path(doc["state"]["path"])
    world.faults.delay = 0.02  # about 6 s to list the window
    daemon = await proc.Daemon(["run", "-c", config]).start()
    await proc.eventually(
        lambda: any(state.parent.glob(f"{staging.PREFIX}*")), 30, "a scratch file"
    )
    await asyncio.sleep(1.0)  # well into the listing
    await daemon.kill()
    left = list(state.parent.glob(f"{staging.PREFIX}*"))
    assert left, "the kill came after the first poll"
    world.faults.delay = 0.0
    daemon = await proc.Daemon(["run", "-c", config]).start()
    await daemon.wait_for_line('"poll_done"', timeout=60)
    assert await daemon.stop() == 0
    assert not any(p.exists() for p in left)
    assert not list(state.parent.glob(f"{staging.PREFIX}*"))
    assert stored_jobs(state) == JOBS
    assert hook.received == []  # they had ended before the first poll: recorded, not told
