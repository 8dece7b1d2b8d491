"""Unit tests of the simulator's World: job store, date windows, status changes."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from watcher.simulator import World


def test_add_job_defaults_to_clock(world: World, clock: Any) -> None:
    """A new job starts and updates at the clock's now, pending, with no pages."""
    job = world.add_job(name="Homepage")
    assert (job.started_at, job.updated_at, job.status, job.page_count) == (
        clock.now,
        clock.now,
        "pending",
        0,
    )
    assert job.sref == f"jobs/{job.id}"
    assert world.get(job.id) is job


def test_ids_count_up_from_first_id() -> None:
    """Ids start at first_id and increase by one."""
    world = World(first_id=42)
    assert [world.add_job().id for _ in range(3)] == [42, 43, 44]


def test_to_json_matches_api_shape(world: World) -> None:
    """to_json renders the documented job object with +00:00 dates at seconds precision."""
    start = datetime(2017, 2, 27, 14, 19, 11, 512, tzinfo=timezone(timedelta(hours=1)))
    job = world.add_job(name="Homepage", status="completed", started_at=start)
    body = job.to_json()
    assert body["startedAt"] == "2017-02-27T13:19:11+00:00"
    assert body["testRunsUri"] == f"testRuns?job=jobs%2F{job.id}"
    assert set(body) == {
        "name", "url", "startedAt", "updatedAt", "startedBy", "type", "pageCount",
        "status", "sref", "jobTemplateUri", "runType", "testRunsUri",
    }  # fmt: skip


def test_naive_start_is_refused(world: World) -> None:
    """A naive started_at is an error, never silently taken as local time."""
    with pytest.raises(ValueError, match="timezone-aware"):
        world.add_job(started_at=datetime(2024, 1, 1))


def test_set_status_by_id_sref_or_job(world: World, clock: Any) -> None:
    """set_status accepts the job, its id or its sref, and moves updatedAt."""
    job = world.add_job()
    clock.advance(seconds=5)
    world.set_status(job.id, "running")
    world.set_status(job.sref, "running")
    world.set_status(job, "failed")
    assert (job.status, job.page_count, job.updated_at) == ("failed", 2, clock.now)


def test_set_status_unknown_job_raises(world: World) -> None:
    """An unknown job reference is a KeyError."""
    with pytest.raises(KeyError):
        world.set_status("jobs/999999", "failed")


def test_jobs_between_is_inclusive_and_newest_first(world: World, clock: Any) -> None:
    """Both bounds are inclusive; ties on startedAt order by id, newest first."""
    t0 = clock.now
    jobs = [world.add_job(started_at=t0 + timedelta(minutes=m)) for m in (0, 1, 1, 2, 3)]
    got = world.jobs_between(t0 + timedelta(minutes=1), t0 + timedelta(minutes=2))
    assert got == [jobs[3], jobs[2], jobs[1]]
    assert world.jobs_between(None, t0) == [jobs[0]]
    assert world.jobs_between(t0 + timedelta(minutes=3), None) == [jobs[4]]
    assert world.jobs() == list(reversed(jobs))


def test_remove_forgets_job(world: World) -> None:
    """A removed job is gone from get, jobs and windows."""
    keep, gone = world.add_job(), world.add_job()
    world.remove(gone.id)
    world.remove(gone.id)  # twice is harmless
    assert world.get(gone.id) is None
    assert world.jobs_between(None, None) == [keep]


def test_page_with_template_filter(world: World) -> None:
    """page() filters by template and reports the filtered total."""
    for n in range(6):
        world.add_job(template=f"jobTemplates/{n % 2}")
    items, total = world.page(None, None, template="jobTemplates/1", offset=1, limit=2)
    assert total == 3
    assert [j.template for j in items] == ["jobTemplates/1"] * 2


def test_100k_jobs_window_is_fast() -> None:
    """Paging through a 100k-job window touches only each page."""
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    world = World(clock=lambda: t0)
    for n in range(100_000):
        world.add_job(started_at=t0 + timedelta(seconds=n))
    started = time.perf_counter()
    seen = 0
    for page in range(100):
        items, total = world.page(t0, None, offset=page * 1000, limit=1000)
        seen += len(items)
    assert (seen, total) == (100_000, 100_000)
    assert time.perf_counter() - started < 1.0


def test_started_job_lives_on_the_clock(world: World, clock: Any) -> None:
    """start_job makes a pending job that tick moves to running after pending_for and to
    completed after run_for more, dated when each change happened."""
    world.launches.pending_for, world.launches.run_for = 10, 60
    job = world.start_job("jobTemplates/6789")
    t0 = clock.now
    clock.advance(seconds=9)
    world.tick()
    assert job.status == "pending"
    clock.advance(seconds=1)
    world.tick()
    assert (job.status, job.updated_at) == ("running", t0 + timedelta(seconds=10))
    clock.advance(hours=1)
    world.tick()
    assert (job.status, job.updated_at) == ("completed", t0 + timedelta(seconds=70))
    assert job.page_count == len(world.perf.runs(job)) > 0
    assert world.launches.created == {"jobTemplates/6789": [job.sref]}


def test_started_job_changed_by_hand_is_left_alone(world: World, clock: Any) -> None:
    """A started job cancelled or removed meanwhile is not moved on any more."""
    cancelled, removed = world.start_job("jobTemplates/1"), world.start_job("jobTemplates/1")
    world.set_status(cancelled, "cancelled")
    world.remove(removed.id)
    clock.advance(hours=1)
    world.tick()
    assert cancelled.status == "cancelled"


@pytest.mark.parametrize(("mode", "rerun_ends"), [("flaky", "completed"), ("broken", "failed")])
def test_fail_next_then_rerun(world: World, clock: Any, mode: str, rerun_ends: str) -> None:
    """fail_next makes the template's next job fail where it would complete; a job
    started for the template (a rerun) then completes (flaky) or fails (broken)."""
    template = "jobTemplates/6789"
    world.fail_next(template, mode=mode)
    nightly = world.add_job(template=template, run_type="scheduled")
    world.set_status(nightly, "running")
    world.set_status(nightly, "completed")
    other = world.add_job(template="jobTemplates/1", status="completed")
    rerun = world.start_job(template)
    clock.advance(hours=1)
    world.tick()
    assert (nightly.status, other.status, rerun.status) == ("failed", "completed", rerun_ends)
    assert world.add_job(template=template, status="completed").status == "completed"
    assert world.flakes() == {template: {"fail_next": 0, "rerun_outcome": rerun_ends}}


def test_fail_next_counts_and_heal(world: World) -> None:
    """fail_next(count=2) fails the next two jobs, not the third; heal undoes it all."""
    template = "jobTemplates/6789"
    world.fail_next(template, 2, mode="broken")
    statuses = [world.add_job(template=template, status="completed").status for _ in range(3)]
    assert statuses == ["failed", "failed", "completed"]
    world.fail_next(template, 1)
    world.heal(template)
    assert world.add_job(template=template, status="completed").status == "completed"
    assert world.flakes() == {}
    with pytest.raises(ValueError, match="mode"):
        world.fail_next(template, mode="sometimes")


def test_started_jobs_are_not_fail_next_jobs(world: World, clock: Any) -> None:
    """A job started through POST /jobs does not use up fail_next's count."""
    template = "jobTemplates/6789"
    world.fail_next(template, mode="flaky")
    rerun = world.start_job(template)
    clock.advance(hours=1)
    world.tick()
    assert rerun.status == "completed"
    assert world.add_job(template=template, status="completed").status == "failed"
