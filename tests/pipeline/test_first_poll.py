"""The first poll ever, over a window of many pages: its ended jobs are staged in a
scratch file as the pages come (`staging`), and the store ends up exactly as when the
whole window is held in memory."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from tests.conftest import config_document
from watcher import cycle, staging
from watcher.app import Daemon
from watcher.settings import Settings
from watcher.simulator.runner import SimulatorHandle
from watcher.simulator.world import World

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
STATUSES = ("completed", "completed", "failed", "expired", "cancelled", "running", "pending")


def fill(world: World, count: int, spacing: int = 5) -> None:
    """`count` jobs of five templates, each started at its own second (which of two
    jobs started in the same second is a template's last is not defined; the unit
    tests of `staging` hold ties among staged jobs to the listing's order)."""
    rng = random.Random(7)
    for n in rng.sample(range(count), count):  # listed out of the order they started
        started = NOW - timedelta(seconds=spacing * (n + 1))
        job = world.add_job(
            name=f"Job {n}",
            status=rng.choice(STATUSES),
            template=f"jobTemplates/{rng.randint(1, 5)}",
            started_at=started,
        )
        job.updated_at = started + timedelta(seconds=rng.randint(0, 600))


def rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    db = sqlite3.connect(path)
    try:
        return {
            "jobs": db.execute(
                "SELECT sref, status, status_since, first_seen, updated_at, started_at,"
                " template, name, ended, followed FROM jobs ORDER BY sref"
            ).fetchall(),
            "templates": db.execute("SELECT * FROM templates ORDER BY template").fetchall(),
            "events": db.execute("SELECT COUNT(*) FROM events").fetchall(),
        }
    finally:
        db.close()


STUCK = {"name": "stuck", "match": {"event": "stuck", "after": "30m"}, "notify": ["hook"]}


async def first_poll(
    sim: SimulatorHandle,
    folder: Path,
    extra: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> tuple[Daemon, Path]:
    doc = config_document(sim, folder, {"hook": "json://127.0.0.1:9/x"})
    doc["rules"] += extra
    doc["api"]["page_size"] = 25
    daemon = Daemon(Settings(**doc), clock=lambda: NOW)
    assert await daemon.poll_once()
    return daemon, Path(doc["state"]["path"])


@pytest.mark.parametrize("extra", [[], [STUCK]], ids=["failures", "and stuck after 30m"])
async def test_a_staged_first_poll_stores_what_one_held_in_memory_does(
    sim: SimulatorHandle,
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    extra: list[dict[str, Any]],
) -> None:
    """Every job row, template and event the same; running jobs a stuck rule fires
    for are held in memory, the other unfinished jobs staged as followed, and kept for
    the next cycle as the store follows them."""
    monkeypatch.setattr(staging, "STAGE_FROM", 100)
    staged_counts: list[int] = []
    close = staging.Staged.close

    def counted(self: staging.Staged) -> None:
        staged_counts.append(self.count)
        close(self)

    monkeypatch.setattr(staging.Staged, "close", counted)
    world.clock = lambda: NOW
    fill(world, 600)
    staged, staged_path = await first_poll(sim, tmp_path / "staged", extra)
    assert staged_counts[0] > 0
    account = staged.accounts["default"]
    report = account.last_report
    kept = account.followed.take(None)  # the next cycle's followed jobs, not read
    assert kept is not None
    assert kept == await account.store.open_jobs()
    await staged.close()
    monkeypatch.setattr(staging, "open_for", lambda folder, now, keep: None)
    held, held_path = await first_poll(sim, tmp_path / "held", extra)
    await held.close()
    held_report = held.accounts["default"].last_report
    assert report is not None
    assert held_report is not None
    assert (report.jobs_seen, report.followed) == (600, held_report.followed)
    assert report.events == held_report.events
    assert rows(staged_path) == rows(held_path)
    assert len(rows(staged_path)["jobs"]) == 600
    assert not list((tmp_path / "staged" / "state").glob(f"{staging.PREFIX}*"))


def _fails_at_once(self: staging.Staged) -> dict[str, object]:
    raise staging.StagingFailed("disk gone")


def _fails_halfway(self: staging.Staged, limit: int) -> Iterator[tuple[str, str]]:
    yield "jobs/1", "completed"
    raise staging.StagingFailed("disk gone")


@pytest.mark.parametrize(
    ("read", "fake", "said"),
    [
        ("followed", _fails_at_once, "followed_jobs_not_kept"),
        ("ended", _fails_halfway, "settled_jobs_not_kept"),
    ],
    ids=["followed", "ended"],
)
async def test_a_scratch_file_that_fails_after_the_commit_leaves_its_jobs_to_the_next_cycle(
    sim: SimulatorHandle,
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    read: str,
    fake: Callable[..., object],
    said: str,
) -> None:
    """Reading the staged jobs back fails after the commit: the cycle succeeds and says
    so, and keeps none of them (the next cycle reads the followed jobs from the store
    and parses the ended ones), and the next cycle finds nothing new."""
    monkeypatch.setattr(staging, "STAGE_FROM", 100)
    monkeypatch.setattr(staging.Staged, read, fake)
    world.clock = lambda: NOW
    fill(world, 300)
    with structlog.testing.capture_logs() as logged:
        daemon, _ = await first_poll(sim, tmp_path)
    account = daemon.accounts["default"]
    kept = {
        "followed": account.followed.take(None),
        "ended": [s for srefs in account.settled.by_status.values() for s in srefs],
    }[read]
    assert await daemon.poll_once()
    report = account.last_report
    await daemon.close()
    assert [e["error"] for e in logged if e["event"] == said] == ["disk gone"]
    assert not kept
    assert report is not None
    assert report.events == 0


async def test_many_staged_unfinished_jobs_are_left_to_the_store(
    sim: SimulatorHandle, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past `FOLLOWED_STAGED` the first cycle keeps no followed jobs (it would hold their
    states from its end on): the next cycle reads them from the store."""
    monkeypatch.setattr(staging, "STAGE_FROM", 100)
    monkeypatch.setattr(cycle, "FOLLOWED_STAGED", 1)
    world.clock = lambda: NOW
    fill(world, 300)
    daemon, _ = await first_poll(sim, tmp_path)
    account = daemon.accounts["default"]
    followed = await account.store.open_jobs()
    await daemon.close()
    assert len(followed) > 1
    assert account.followed.take(None) is None


async def test_a_full_scratch_file_reads_the_window_again_in_memory(
    sim: SimulatorHandle, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scratch file reaches its bound (SQLite says the database is full) halfway:
    the first poll says so and reads the window again, held in memory; nothing is lost."""
    monkeypatch.setattr(staging, "STAGE_FROM", 100)
    monkeypatch.setattr(staging, "MAX_BYTES", 64 * 1024)  # a few pages of the file
    world.clock = lambda: NOW
    fill(world, 3000, spacing=1)  # all within the first poll's hour
    with structlog.testing.capture_logs() as logged:
        daemon, path = await first_poll(sim, tmp_path)
        await daemon.close()
    fallback = [e for e in logged if e["event"] == "first_poll_in_memory"]
    assert len(fallback) == 1
    assert "full" in fallback[0]["error"]
    assert len(rows(path)["jobs"]) == 3000
    assert not list(path.parent.glob(f"{staging.PREFIX}*"))


def dead_pid() -> int:
    """The process id of a process that has exited."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


async def test_a_scratch_file_left_after_a_commit_goes_with_the_next_start(
    sim: SimulatorHandle, world: World, tmp_path: Path
) -> None:
    """A process killed between its first poll's commit and the file's removal: the next
    start is no first poll, and still removes the file it left."""
    world.clock = lambda: NOW
    fill(world, 30)
    daemon, path = await first_poll(sim, tmp_path)
    await daemon.close()
    leftover = path.parent / f"{staging.PREFIX}{dead_pid()}-x.db"
    leftover.write_bytes(b"")
    daemon, _ = await first_poll(sim, tmp_path)
    await daemon.close()
    assert not leftover.exists()
