"""The /_sim admin routes that drive a simulator running in another process."""

from __future__ import annotations

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
