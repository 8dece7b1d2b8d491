"""The first poll's scratch file (`staging`): what it gives back is what the in-memory
path would have made of the same jobs (`tracker.diff` with `baseline`)."""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher import staging, tracker
from watcher.models import Job, TemplateState
from watcher.staging import Staged

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
STATUSES = ("completed", "failed", "expired", "cancelled", "running", "pending")


def job(
    n: int, status: str, *, template: str = "jobTemplates/1", minute: int = 0, **kw: object
) -> Job:
    started = NOW - timedelta(hours=3) + timedelta(minutes=minute)
    updated = kw.pop("updated", started + timedelta(minutes=5))
    return Job(
        sref=f"jobs/{n}",
        name=f"Job {n}",
        status=status,
        started_at=started,
        updated_at=updated,  # type: ignore[arg-type]
        template=template,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def staged(tmp_path: Path) -> Staged:
    stage = Staged(tmp_path, NOW)
    yield stage  # type: ignore[misc]
    stage.close()


def test_take_keeps_the_unfinished_jobs_in_order_and_stages_the_ended(staged: Staged) -> None:
    jobs = [job(1, "running"), job(2, "failed"), job(3, "pending"), job(4, "completed")]
    assert [j.sref for j in staged.take(jobs, None)] == ["jobs/1", "jobs/3"]
    assert staged.count == 2
    assert staged.among(["jobs/1", "jobs/2", "jobs/4", "jobs/9"]) == {"jobs/2", "jobs/4"}


def test_unfinished_jobs_the_cycle_does_not_hold_are_staged_as_followed(tmp_path: Path) -> None:
    stage = Staged(tmp_path, NOW, keep=lambda j: j.sref == "jobs/3")
    try:
        jobs = [job(1, "running"), job(2, "failed"), job(3, "running"), job(4, "pending")]
        assert stage.take(jobs, None) == [jobs[2]]
        assert (stage.count, stage.finish()) == (3, 2)
        assert list(stage.ended(10)) == [("jobs/2", "failed")]
        rows = {r[0]: r for chunk in stage.rows() for r in chunk}
        now = NOW.timestamp()
        assert rows["jobs/1"][2:4] == (
            jobs[0].started_at.timestamp(),
            now,
        )  # running since its start
        assert rows["jobs/4"][2:4] == (now, now)
        assert [rows[s][8] for s in ("jobs/1", "jobs/2", "jobs/4")] == [False, True, False]
    finally:
        stage.close()


def test_a_job_listed_twice_counts_once_and_keeps_its_newer_record(staged: Staged) -> None:
    later = NOW - timedelta(minutes=10)
    staged.take([job(1, "failed")], None)
    staged.take([job(1, "completed", updated=later), job(2, "failed")], None)
    staged.take([job(1, "expired")], None)  # older than the completed record: ignored
    assert staged.count == 2
    rows = [row for chunk in staged.rows() for row in chunk]
    assert sorted((r[0], r[1]) for r in rows) == [("jobs/1", "completed"), ("jobs/2", "failed")]


def test_rows_are_the_first_sightings_of_ended_jobs_and_can_be_read_twice(staged: Staged) -> None:
    staged.take([job(n, "completed") for n in range(staging.CHUNK + 3)], None)
    chunks = list(staged.rows())
    assert [len(c) for c in chunks] == [staging.CHUNK, 3]
    assert list(staged.rows()) == chunks  # a retried commit reads them again
    sref, _status, since, first_seen, updated, started, template, name, ended = chunks[0][0]
    assert ended is True
    assert (since, first_seen) == (NOW.timestamp(), NOW.timestamp())
    assert started is not None
    assert updated is not None
    assert updated > started
    assert (template, name) == ("jobTemplates/1", f"Job {sref.split('/')[1]}")


def _random_jobs(rng: random.Random, count: int) -> list[Job]:
    jobs = []
    for n in range(count):
        template = f"jobTemplates/{rng.randint(1, 6)}" if rng.random() > 0.05 else ""
        status = rng.choice(STATUSES)
        minute = rng.randint(0, 150)
        updated = None if rng.random() < 0.05 else NOW - timedelta(minutes=rng.randint(0, 170))
        jobs.append(job(n, status, template=template, minute=minute, updated=updated))
    return jobs


@pytest.mark.parametrize("seed", range(25))
def test_templates_match_what_the_in_memory_diff_makes(tmp_path: Path, seed: int) -> None:
    """Newest start and failure streak per template, with templates known before (a
    streak that goes on) and without: the same as `tracker.diff` on the same jobs."""
    rng = random.Random(seed)
    jobs = _random_jobs(rng, rng.randint(1, 120))
    known = {
        "jobTemplates/1": TemplateState("jobTemplates/1", watching_since=NOW, streak=2),
        "jobTemplates/2": TemplateState(
            "jobTemplates/2", watching_since=NOW, streak=1, last_start=NOW, last_name="Late"
        ),
    }
    ended = [j for j in jobs if j.status in ("completed", "failed", "expired", "cancelled")]
    expected = tracker.diff({}, ended, NOW, templates=known, baseline=True).templates
    stage = Staged(tmp_path, NOW)
    try:
        for start in range(0, len(jobs), 10):  # a page at a time
            stage.take(jobs[start : start + 10], None)
        assert stage.templates(known) == expected
    finally:
        stage.close()


def test_a_small_window_stays_in_memory_as_its_first_page_says(staged: Staged) -> None:
    jobs = [job(1, "failed"), job(2, "running")]
    assert staged.take(jobs, staging.STAGE_FROM - 1) == jobs
    assert staged.take(jobs, staging.STAGE_FROM + 5) == jobs  # decided on the first page
    assert staged.count == 0


def test_the_file_goes_when_closed_and_a_dead_process_leftover_when_asked(tmp_path: Path) -> None:
    """The daemon removes leftovers at its first cycle (tests/pipeline/test_first_poll.py)."""
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    leftover = tmp_path / f"{staging.PREFIX}{int(dead.stdout)}-abc.db"
    leftover.write_bytes(b"")
    alive = tmp_path / f"{staging.PREFIX}{os.getppid()}-abc.db"  # a live process's
    alive.write_bytes(b"")
    stage = Staged(tmp_path, NOW)
    staging.remove_leftovers(tmp_path)
    assert stage.path.exists()  # this process's own, in use
    assert stage.path.parent == tmp_path
    assert not leftover.exists()
    assert alive.exists()
    stage.close()
    assert not stage.path.exists()


def test_no_scratch_file_where_none_can_be_made_means_the_poll_holds_its_jobs(
    tmp_path: Path,
) -> None:
    assert staging.open_for(tmp_path / "missing", NOW, bool) is None


def test_a_finished_file_gives_another_connection_the_rows(staged: Staged) -> None:
    """What a SQLite store copies itself (`shared`) is what `rows` gives."""
    staged.take([job(1, "failed"), job(2, "completed"), job(3, "running")], None)
    staged.finish()
    path, query = staged.shared()
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        db.execute("ATTACH DATABASE ? AS scratch", (str(path),))
        copied = {r[0]: (*r[:8], r[8] == 1) for r in db.execute(query, (NOW.timestamp(),))}
    assert copied == {r[0]: r for chunk in staged.rows() for r in chunk}
    assert sorted(copied) == ["jobs/1", "jobs/2"]  # the running one is held
