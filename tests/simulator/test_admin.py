"""The /_sim admin routes that drive a simulator running in another process."""

from __future__ import annotations

from typing import Any

import aiohttp

from watcher.simulator import SimulatorHandle, World
from watcher.simulator.runner import running_simulator


async def test_admin_adds_job_with_start(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World
) -> None:
    """POST /_sim/jobs takes add_job's arguments, started_at as ISO, and answers the job."""
    body = {"name": "Crawl", "type": "Crawl", "started_at": "2024-01-01T10:00:00+01:00"}
    async with http.post(f"{sim.admin_url}/jobs", json=body) as resp:
        assert resp.status == 201
        job = await resp.json()
    assert job["startedAt"] == "2024-01-01T09:00:00+00:00"
    assert world.resolve(job["sref"]).type == "Crawl"


async def test_admin_rejects_unknown_job_fields(
    http: aiohttp.ClientSession, sim: SimulatorHandle
) -> None:
    """An unknown field or an offset-less started_at answers 400."""
    for body in ({"colour": "red"}, {"started_at": "2024-01-01T10:00:00"}):
        async with http.post(f"{sim.admin_url}/jobs", json=body) as resp:
            assert resp.status == 400


async def test_admin_sets_status(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World
) -> None:
    """POST /_sim/jobs/{id}/status changes the status; an unknown id is 404."""
    job = world.add_job()
    async with http.post(f"{sim.admin_url}/jobs/{job.id}/status", json={"status": "failed"}) as r:
        assert (await r.json())["status"] == "failed"
    assert job.status == "failed"
    async with http.post(f"{sim.admin_url}/jobs/1/status", json={"status": "failed"}) as r:
        assert r.status == 404


async def test_admin_removes_job(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World
) -> None:
    """DELETE /_sim/jobs/{id} removes the job."""
    job = world.add_job()
    async with http.delete(f"{sim.admin_url}/jobs/{job.id}") as resp:
        assert resp.status == 200
    assert world.get(job.id) is None


async def test_admin_lists_jobs(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World
) -> None:
    """GET /_sim/jobs answers every job newest first, as a bare list."""
    jobs = [world.add_job(name=n) for n in ("a", "b")]
    async with http.get(f"{sim.admin_url}/jobs") as resp:
        assert await resp.json() == [jobs[1].to_json(), jobs[0].to_json()]


async def test_admin_sets_faults(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World
) -> None:
    """POST /_sim/faults sets any knobs, malformed as a list, and answers them all."""
    change = {"down": True, "retry_after": "3", "malformed": ["jobs/7"], "delay": 1}
    async with http.post(f"{sim.admin_url}/faults", json=change) as resp:
        body = await resp.json()
    assert (body["down"], body["malformed"], body["delay"]) == (True, ["jobs/7"], 1.0)
    assert world.faults.malformed == {"jobs/7"}
    assert world.faults.retry_after == "3"


async def test_admin_refuses_bad_faults_whole(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World
) -> None:
    """An unknown knob or a wrongly typed value answers 400 and changes nothing."""
    for change in ({"down": True, "explode": 1}, {"down": True, "fail_next": "2"}):
        async with http.post(f"{sim.admin_url}/faults", json=change) as resp:
            assert resp.status == 400
    assert world.faults.down is False


async def test_admin_stats_and_admin_goes_uncounted(
    http: aiohttp.ClientSession, sim: SimulatorHandle, headers: dict[str, str]
) -> None:
    """GET /_sim/stats answers the request counters; admin calls are not counted."""
    async with http.get(f"{sim.base_url}/jobs", headers=headers):
        pass
    async with http.get(f"{sim.admin_url}/stats") as resp:
        assert await resp.json() == {"token": 1, "list": 1}


async def test_admin_expires_tokens(
    http: aiohttp.ClientSession, sim: SimulatorHandle, headers: dict[str, str]
) -> None:
    """POST /_sim/tokens/expire revokes issued tokens."""
    async with http.post(f"{sim.admin_url}/tokens/expire") as resp:
        assert await resp.json() == {"expired": 1}
    async with http.get(f"{sim.base_url}/jobs", headers=headers) as resp:
        assert resp.status == 401


async def test_admin_off_hides_routes(http: aiohttp.ClientSession, world: World) -> None:
    """With admin=False the /_sim routes do not exist."""
    async with (
        running_simulator(world, admin=False) as sim,
        http.get(f"{sim.admin_url}/jobs") as resp,
    ):
        assert resp.status == 404


async def post(http: aiohttp.ClientSession, url: str, body: object) -> tuple[int, object]:
    async with http.post(url, json=body) as resp:
        return resp.status, await resp.json()


async def test_admin_shifts_and_recovers(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World
) -> None:
    """POST /_sim/perf/shift and /_sim/perf/recover change new jobs' levels; GET
    /_sim/perf lists the shifts in force."""
    shift = {"template": "jobTemplates/1", "metric": "onLoad", "factor": 1.3, "page": "Home"}
    status, body = await post(http, f"{sim.admin_url}/perf/shift", shift)
    assert status == 200
    assert body["shifts"] == [  # type: ignore[index]
        {"template": "jobTemplates/1", "metric": "onLoad", "page": "Home", "factor": 1.3}
    ]
    snap = world.add_job(template="jobTemplates/1").perf
    assert snap is not None
    assert snap.shifts == (("Home", "onLoad", 1.3),)
    status, body = await post(http, f"{sim.admin_url}/perf/recover", {"template": "jobTemplates/1"})
    assert (status, body["shifts"]) == (200, [])  # type: ignore[index]
    async with http.get(f"{sim.admin_url}/perf") as resp:
        assert (await resp.json())["noise"] == 0.05


async def test_admin_refuses_bad_perf_changes(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World
) -> None:
    """Unknown metrics, bad factors, unknown knobs and rates past 1 answer 400."""
    cases = [
        ("perf/shift", {"template": "jobTemplates/1", "metric": "speed", "factor": 2}),
        ("perf/shift", {"template": "jobTemplates/1", "metric": "onLoad", "factor": -1}),
        ("perf/shift", {"template": "jobTemplates/1", "metric": "onLoad"}),
        ("perf/recover", {"metric": "onLoad"}),
        ("perf", {"noise": 0.1, "error_rate": 2}),
        ("perf", {"colour": 1}),
        ("flakes", {"template": "jobTemplates/1", "mode": "sometimes"}),
        ("launches", {"run_for": -1}),
    ]
    for path, body in cases:
        status, _ = await post(http, f"{sim.admin_url}/{path}", body)
        assert status == 400, (path, body)
    assert world.perf.noise == 0.05
    assert world.perf.shifts() == []


async def test_admin_sets_noise_and_pages(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World
) -> None:
    """POST /_sim/perf sets global knobs or one template's noise; /_sim/perf/pages
    sets and reads a template's pages and browsers."""
    await post(http, f"{sim.admin_url}/perf", {"noise": 0.1, "null_rate": 0})
    await post(http, f"{sim.admin_url}/perf", {"template": "jobTemplates/1", "noise": 0.2})
    assert (world.perf.noise, world.perf.null_rate) == (0.1, 0.0)
    assert world.perf.snapshot("jobTemplates/1").noise == 0.2
    pages = {"template": "jobTemplates/1", "pages": [{"title": "Home", "url": "https://e/"}]}
    status, _ = await post(http, f"{sim.admin_url}/perf/pages", {**pages, "browsers": ["Edge"]})
    assert status == 200
    async with http.get(f"{sim.admin_url}/perf/pages?template=jobTemplates/1") as resp:
        assert await resp.json() == {**pages, "browsers": ["Edge"]}


async def test_admin_flakes_and_launches(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World, clock: Any
) -> None:
    """/_sim/flakes sets fail_next and heals; /_sim/launches tunes started jobs and
    shows the POSTs and the jobs they created, per template."""
    status, body = await post(
        http, f"{sim.admin_url}/flakes", {"template": "jobTemplates/1", "mode": "broken"}
    )
    assert body == {"jobTemplates/1": {"fail_next": 1, "rerun_outcome": "failed"}}
    assert world.add_job(template="jobTemplates/1", status="completed").status == "failed"
    status, body = await post(http, f"{sim.admin_url}/launches", {"pending_for": 0, "run_for": 1})
    assert (body["pending_for"], body["run_for"]) == (0.0, 1.0)  # type: ignore[index]
    job = world.start_job("jobTemplates/1")
    world.launches.posts["jobTemplates/1"] += 1
    clock.advance(seconds=1)
    async with http.get(f"{sim.admin_url}/launches") as resp:
        launches = await resp.json()
    assert launches["posts"] == {"jobTemplates/1": 1}
    assert launches["created"] == {"jobTemplates/1": [job.sref]}
    assert job.status == "failed"  # the admin request ticked the world
    status, body = await post(http, f"{sim.admin_url}/flakes/heal", {"template": "jobTemplates/1"})
    assert (status, body) == (200, {})


async def test_admin_sets_post_faults(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World
) -> None:
    """create_fail_next and create_fail_status are fault knobs like the others."""
    change = {"create_fail_next": 2, "create_fail_status": 404}
    status, body = await post(http, f"{sim.admin_url}/faults", change)
    assert (status, body["create_fail_next"]) == (200, 2)  # type: ignore[index]
    assert world.faults.create_fail_status == 404
