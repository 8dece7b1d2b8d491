"""The state store under trouble, a wall clock that jumps, and TLS settings."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from tests.conftest import Hook, config_document, write_config
from tests.e2e import proc
from watcher.app import Daemon, utcnow
from watcher.settings import Settings
from watcher.simulator.runner import SimulatorHandle
from watcher.simulator.world import World


async def cycle(d: Daemon, *, expect_poll: bool = True) -> None:
    assert await d.poll_once() is expect_poll
    await d.notifier.flush(budget=20)


async def test_a_full_disk_fails_the_poll_and_loses_nothing(
    sim: SimulatorHandle, world: World, hook: Hook, tmp_path: Path
) -> None:
    """No room to commit: the poll fails cleanly, and once there is room, the alert goes."""
    d = Daemon(Settings(**config_document(sim, tmp_path, {"hook": hook.url})))
    await cycle(d)
    pages = d.store._db.execute("PRAGMA page_count").fetchone()[0]
    d.store._db.execute(f"PRAGMA max_page_count = {pages}")  # the "disk" is now full
    for n in range(200):
        world.add_job(name=f"J{n} " + "x" * 200, status="failed")
    with structlog.testing.capture_logs() as logged:
        await cycle(d, expect_poll=False)
    failure = next(e for e in logged if e["event"] == "poll_failed")
    assert "full" in failure["error"]
    assert hook.received == []
    d.store._db.execute("PRAGMA max_page_count = 1073741823")
    await cycle(d)
    await d.close()
    assert len(hook.received) == 200


async def test_an_unusable_state_path_is_refused_at_start(
    sim: SimulatorHandle, hook: Hook, tmp_path: Path
) -> None:
    """A state path under a regular file, or a file from a newer watcher: exit 2, named."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    newer = tmp_path / "newer.db"
    db = sqlite3.connect(newer)
    db.execute("PRAGMA user_version = 99")
    db.execute("CREATE TABLE meta (key TEXT)")
    db.close()
    for state, message in (
        (blocker / "state.db", "is not a folder"),
        (newer, "written by a newer watcher"),
    ):
        doc = config_document(sim, tmp_path, {"hook": hook.url}, state={"path": str(state)})
        path = str(write_config(tmp_path / "watcher.yaml", doc))
        code, out = await proc.run("once", "-c", path)
        assert code == 2, out
        assert "state.path: " in out
        assert str(state) in out
        assert message in out
        assert "Traceback" not in out


class JumpyClock:
    """The host's wall clock, which the test can throw forward or back."""

    def __init__(self) -> None:
        self.jump = timedelta()

    def __call__(self) -> datetime:
        return utcnow() + self.jump


async def test_a_jumping_wall_clock_causes_no_bogus_stuck_no_loss_and_no_repeat(
    sim: SimulatorHandle, world: World, hook: Hook, tmp_path: Path
) -> None:
    """Windows and timers follow the API's clock: a local jump of hours changes nothing."""
    rules: list[dict[str, Any]] = [
        {"name": "failures", "match": {"to": "failed"}, "notify": ["hook"]},
        {"name": "stuck", "match": {"event": "stuck", "after": "1h"}, "notify": ["hook"]},
    ]
    local = JumpyClock()
    doc = config_document(sim, tmp_path, {"hook": hook.url}, rules=rules)
    d = Daemon(Settings(**doc), local_clock=local)
    world.add_job(name="Long", status="running")
    await cycle(d)
    local.jump = timedelta(hours=3)  # NTP has not caught up yet: the host is 3h ahead
    world.add_job(name="A", status="failed")
    await cycle(d)
    await cycle(d)
    local.jump = timedelta(hours=-3)  # and now 3h behind
    world.add_job(name="B", status="failed")
    await cycle(d)
    await cycle(d)
    local.jump = timedelta()
    await cycle(d)
    await d.close()
    assert sorted(hook.titles()) == ["A failed", "B failed"]


async def test_turning_tls_verification_off_is_warned_about_at_start(
    sim: SimulatorHandle, hook: Hook, tmp_path: Path
) -> None:
    """api.verify_tls: false works, and says so at every start."""
    doc = config_document(sim, tmp_path, {"hook": hook.url}, api={"verify_tls": False})
    path = str(write_config(tmp_path / "watcher.yaml", doc))
    code, out = await proc.run("--log-format", "json", "once", "-c", path)
    assert code == 0, out
    assert '"tls_verification_disabled"' in out
