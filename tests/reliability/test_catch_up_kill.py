"""A catch-up too large for one cycle is read in steps, each committed (`poller.stepped`).
Stopped in the middle, by SIGTERM (the daemon ends after the step in flight) or SIGKILL
(the step in flight is lost), the next start goes on from the last committed step: every
job is recorded and every failure alerted exactly once."""

from __future__ import annotations

import json
import signal
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import Hook, config_document, write_config
from tests.e2e import proc
from watcher import poller
from watcher.simulator.runner import SimulatorHandle
from watcher.simulator.world import World

JOBS = 2 * poller.STEP_JOBS + 5_000  # three steps at least
FAILING = 30
DOWN = timedelta(minutes=10)


def real_now() -> datetime:
    return datetime.now(UTC)


def query(path: Path, sql: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def watermark(path: Path) -> datetime:
    (value,) = query(path, "SELECT value FROM meta WHERE key = 'watermark'")[0]
    return datetime.fromisoformat(str(value))


def fill(world: World) -> list[str]:
    """JOBS jobs started while the daemon was down, spread over those ten minutes; the
    names of the FAILING that failed."""
    start, span = real_now() - DOWN + timedelta(seconds=30), DOWN - timedelta(seconds=60)
    failing: list[str] = []
    for n in range(JOBS):
        fails = n % (JOBS // FAILING) == 0 and len(failing) < FAILING
        name = f"Failing-{len(failing):03d}" if fails else f"Fine {n}"
        world.add_job(
            name=name,
            status="failed" if fails else "completed",
            started_at=start + span * (n / JOBS),
        )
        if fails:
            failing.append(name)
    return failing


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
async def test_a_catch_up_stopped_between_steps_goes_on_and_alerts_each_failure_once(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook, stop: signal.Signals
) -> None:
    doc = config_document(sim, tmp_path, {"hook": hook.url}, poll={"interval": "1s"})
    doc["api"].update(page_size=100, max_pages=1000)
    config = str(write_config(tmp_path / "watcher.yaml", doc))
    state = Path(doc["state"]["path"])
    daemon = await proc.Daemon(["run", "-c", config]).start()
    await daemon.wait_for_line('"poll_done"')
    assert await daemon.stop() == 0
    # That last poll was ten minutes ago: the daemon was down since.
    db = sqlite3.connect(state)
    with db:
        last = (real_now() - DOWN).isoformat()
        db.execute("UPDATE meta SET value = ? WHERE key = 'watermark'", (last,))
    db.close()
    failing = fill(world)
    restarted_at = real_now()

    daemon = await proc.Daemon(["run", "-c", config]).start()
    await daemon.wait_for_line('"catch_up_step"', timeout=60)
    if stop is signal.SIGTERM:
        assert await daemon.stop(timeout=60) == 0  # after the step in flight
    else:
        await daemon.kill()
    assert watermark(state) < restarted_at - timedelta(minutes=1), "the catch-up had ended"

    daemon = await proc.Daemon(["run", "-c", config]).start()
    await proc.eventually(
        lambda: query(state, "SELECT COUNT(*) FROM outbox WHERE state = 'sent'")[0][0] == FAILING,
        120,
        "every failure alerted",
    )
    assert await daemon.stop() == 0
    assert watermark(state) >= restarted_at
    assert query(state, "SELECT COUNT(*) FROM jobs")[0][0] == JOBS
    assert query(state, "SELECT COUNT(*) FROM outbox")[0][0] == FAILING
    told = json.dumps(hook.received)
    assert sorted(name for name in failing if told.count(name) == 1) == failing
