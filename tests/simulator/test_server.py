"""The simulated API over a real loopback socket: tokens, realm, date windows, paging,
single jobs, test runs and job creation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from watcher.simulator import REALM, SimulatorHandle, World

Json = Any


def encoded(base: str, **params: str) -> URL:
    """A URL with every query value percent-encoded the way the API documents."""
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
    return URL(f"{base}?{query}", encoded=True)


async def get(http: aiohttp.ClientSession, url: str | URL, headers: dict[str, str]) -> Json:
    async with http.get(url, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_token_with_good_credentials(
    http: aiohttp.ClientSession, sim: SimulatorHandle, basic: Callable[..., str]
) -> None:
    """Client credentials give an OAuth2-shaped bearer token."""
    async with http.post(
        sim.token_url, headers={"Authorization": basic()}, data={"grant_type": "client_credentials"}
    ) as resp:
        body = await resp.json()
    assert resp.status == 200
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600
    assert len(body["access_token"]) > 16


async def test_token_with_bad_secret_is_401(
    http: aiohttp.ClientSession, sim: SimulatorHandle, basic: Callable[..., str]
) -> None:
    """A wrong secret answers 401 with a JSON error."""
    async with http.post(
        sim.token_url,
        headers={"Authorization": basic(secret="wrong")},
        data={"grant_type": "client_credentials"},
    ) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"] == "invalid_client"


async def test_token_without_basic_auth_is_401(
    http: aiohttp.ClientSession, sim: SimulatorHandle
) -> None:
    """No Authorization header answers 401."""
    async with http.post(sim.token_url, data={"grant_type": "client_credentials"}) as resp:
        assert resp.status == 401


async def test_token_with_bad_grant_type_is_400(
    http: aiohttp.ClientSession, sim: SimulatorHandle, basic: Callable[..., str]
) -> None:
    """Any grant other than client_credentials answers 400."""
    async with http.post(
        sim.token_url, headers={"Authorization": basic()}, data={"grant_type": "password"}
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"] == "unsupported_grant_type"


async def test_expired_token_is_401(
    http: aiohttp.ClientSession,
    sim: SimulatorHandle,
    world: World,
    headers: dict[str, str],
    fetch_token: Callable[[], Awaitable[str]],
) -> None:
    """A token past token_ttl (real time, not the frozen world clock) answers 401."""
    world.faults.token_ttl = 0.05
    short = {"Realm": REALM, "Authorization": f"Bearer {await fetch_token()}"}
    await get(http, f"{sim.base_url}/jobs", short)
    await asyncio.sleep(0.1)
    async with http.get(f"{sim.base_url}/jobs", headers=short) as resp:
        assert resp.status == 401
        assert "Bearer" in resp.headers["WWW-Authenticate"]
    await get(http, f"{sim.base_url}/jobs", headers)  # the hour-long token still works


async def test_revoked_tokens_are_401(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World, headers: dict[str, str]
) -> None:
    """After expire_all every earlier token answers 401."""
    world.tokens.expire_all()
    async with http.get(f"{sim.base_url}/jobs", headers=headers) as resp:
        assert resp.status == 401


async def test_unknown_bearer_is_401(http: aiohttp.ClientSession, sim: SimulatorHandle) -> None:
    """A token the simulator never issued answers 401."""
    bad = {"Realm": REALM, "Authorization": "Bearer made-up"}
    async with http.get(f"{sim.base_url}/jobs", headers=bad) as resp:
        assert resp.status == 401


async def test_realm_is_required(
    http: aiohttp.ClientSession, sim: SimulatorHandle, headers: dict[str, str]
) -> None:
    """A missing or wrong Realm header answers 403 with a JSON error."""
    for realm in (None, "other-realm"):
        sent = {"Authorization": headers["Authorization"]}
        if realm is not None:
            sent["Realm"] = realm
        async with http.get(f"{sim.base_url}/jobs", headers=sent) as resp:
            assert resp.status == 403
            assert "error" in await resp.json()


async def test_date_window_is_inclusive_with_encoded_offsets(
    http: aiohttp.ClientSession,
    sim: SimulatorHandle,
    world: World,
    clock: Any,
    headers: dict[str, str],
) -> None:
    """fromDate/toDate sent as %2B00%3A00 bound startedAt inclusively; meta echoes them."""
    t0 = clock.now
    for minutes in (-1, 0, 30, 60, 61):
        world.add_job(name=f"at {minutes}", started_at=t0 + timedelta(minutes=minutes))
    start, end = t0.isoformat(), (t0 + timedelta(minutes=60)).isoformat()
    url = encoded(f"{sim.base_url}/jobs", fromDate=start, toDate=end)
    assert "%2B00%3A00" in str(url)
    body = await get(http, url, headers)
    assert [job["name"] for job in body["results"]] == ["at 60", "at 30", "at 0"]
    assert body["meta"]["fromDate"] == start
    assert body["meta"]["toDate"] == end
    assert body["meta"]["paginationTotalResults"] == 3


async def test_one_bound_alone(
    http: aiohttp.ClientSession,
    sim: SimulatorHandle,
    world: World,
    clock: Any,
    headers: dict[str, str],
) -> None:
    """fromDate alone is open-ended; meta leaves out the absent bound."""
    world.add_job(name="old", started_at=clock.now - timedelta(days=1))
    world.add_job(name="new")
    body = await get(http, encoded(f"{sim.base_url}/jobs", fromDate=clock.now.isoformat()), headers)
    assert [job["name"] for job in body["results"]] == ["new"]
    assert "toDate" not in body["meta"]


async def test_bad_dates_are_400_naming_the_parameter(
    http: aiohttp.ClientSession, sim: SimulatorHandle, headers: dict[str, str]
) -> None:
    """Garbage, an offset-less date, or an unencoded + (read as a space) answer 400."""
    for raw in ("yesterday", "2024-01-01T00:00:00", "2024-01-01T00:00:00 00:00"):
        async with http.get(encoded(f"{sim.base_url}/jobs", toDate=raw), headers=headers) as resp:
            assert resp.status == 400
            assert "toDate" in (await resp.json())["error"]


async def test_paging_reports_totals(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World, headers: dict[str, str]
) -> None:
    """25 jobs at pageSize 10: pages of 10, 10, 5 then empty, each with the full total."""
    for n in range(25):
        world.add_job(name=f"job {n}")
    sizes = []
    for page in (1, 2, 3, 4):
        body = await get(http, f"{sim.base_url}/jobs?page={page}&pageSize=10", headers)
        assert body["meta"]["paginationTotalResults"] == 25
        sizes.append(len(body["results"]))
    assert sizes == [10, 10, 5, 0]


async def test_page_size_defaults_to_100_and_caps_at_1000(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World, headers: dict[str, str]
) -> None:
    """No pageSize serves 100; pageSize above 1000 serves 1000."""
    for _ in range(1001):
        world.add_job()
    assert len((await get(http, f"{sim.base_url}/jobs", headers))["results"]) == 100
    body = await get(http, f"{sim.base_url}/jobs?pageSize=5000", headers)
    assert len(body["results"]) == 1000


async def test_bad_page_is_400(
    http: aiohttp.ClientSession, sim: SimulatorHandle, headers: dict[str, str]
) -> None:
    """page=0 or a non-number pageSize answers 400 naming the parameter."""
    for query, name in (("page=0", "page"), ("pageSize=many", "pageSize")):
        async with http.get(f"{sim.base_url}/jobs?{query}", headers=headers) as resp:
            assert resp.status == 400
            assert name in (await resp.json())["error"]


async def test_new_jobs_shift_items_to_later_pages(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World, headers: dict[str, str]
) -> None:
    """Newest first: a job starting between two page reads pushes an item onto page 2."""
    jobs = [world.add_job(name=f"job {n}") for n in range(4)]
    first = await get(http, f"{sim.base_url}/jobs?pageSize=2", headers)
    world.add_job(name="late")
    second = await get(http, f"{sim.base_url}/jobs?page=2&pageSize=2", headers)
    assert [j["sref"] for j in first["results"]] == [jobs[3].sref, jobs[2].sref]
    assert second["results"][0]["sref"] == jobs[2].sref  # seen twice: de-duplicate by sref


async def test_job_template_filter(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World, headers: dict[str, str]
) -> None:
    """jobTemplate=jobTemplates%2F6789 keeps only that template's jobs."""
    world.add_job(name="a", template="jobTemplates/1")
    world.add_job(name="b", template="jobTemplates/6789")
    body = await get(
        http, encoded(f"{sim.base_url}/jobs", jobTemplate="jobTemplates/6789"), headers
    )
    assert [j["name"] for j in body["results"]] == ["b"]
    assert body["meta"]["paginationTotalResults"] == 1


async def test_get_one_job(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World, headers: dict[str, str]
) -> None:
    """GET /jobs/{id} wraps the job object in results."""
    job = world.add_job(name="Homepage", status="completed")
    body = await get(http, f"{sim.base_url}/{job.sref}", headers)
    assert body == {"results": job.to_json()}


async def test_unknown_or_removed_job_is_404(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World, headers: dict[str, str]
) -> None:
    """An id never issued, a non-numeric id and a removed job all answer 404 JSON."""
    job = world.add_job()
    world.remove(job.id)
    for path in (job.sref, "jobs/999999", "jobs/abc"):
        async with http.get(f"{sim.base_url}/{path}", headers=headers) as resp:
            assert resp.status == 404
            assert await resp.json() == {"error": "not found"}


async def test_test_runs_are_deterministic(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World, headers: dict[str, str]
) -> None:
    """testRuns?job=jobs%2F<id> lists the same documented runs every time."""
    job = world.add_job(status="completed")
    url = f"{sim.base_url}/{job.to_json()['testRunsUri']}"
    first, again = await get(http, url, headers), await get(http, url, headers)
    assert first == again
    assert 1 <= len(first["results"]) == first["meta"]["paginationTotalResults"]
    run = first["results"][0]
    assert run["jobUri"] == job.sref
    assert {"sref", "pageTitle", "speedIndex", "visuallyComplete", "ranAt", "objectsUri"} <= set(
        run
    )


async def test_post_job_creates_pending_job(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World, headers: dict[str, str]
) -> None:
    """POST /jobs starts a pending job from the template and answers its jobUri."""
    async with http.post(
        f"{sim.base_url}/jobs", json={"jobTemplateUri": "jobTemplates/6789"}, headers=headers
    ) as resp:
        assert resp.status == 201
        uri = (await resp.json())["results"]["jobUri"]
    job = world.resolve(uri)
    assert (job.status, job.template, job.started_by) == (
        "pending",
        "jobTemplates/6789",
        "Performance Analyzer API",
    )


async def test_requests_are_counted_by_kind(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World, headers: dict[str, str]
) -> None:
    """world.requests counts tokens, lists, gets and errors."""
    await get(http, f"{sim.base_url}/jobs", headers)
    async with http.get(f"{sim.base_url}/jobs/1", headers=headers) as resp:
        assert resp.status == 404
    assert world.requests == {"token": 1, "list": 1, "get": 1, "error": 1}


async def test_test_runs_are_paged_like_jobs(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World, headers: dict[str, str]
) -> None:
    """page and pageSize page the runs; every page reports the total; a page past the
    end is empty; a bad page is 400."""
    world.perf.set_pages("jobTemplates/9", [(f"P{n}", f"https://x.example/{n}") for n in range(5)])
    job = world.add_job(template="jobTemplates/9", status="completed")
    everything = (await get(http, encoded(f"{sim.base_url}/testRuns", job=job.sref), headers))[
        "results"
    ]
    assert len(everything) == 5
    seen = []
    for page in (1, 2, 3, 4):
        url = encoded(f"{sim.base_url}/testRuns", job=job.sref, page=str(page), pageSize="2")
        body = await get(http, url, headers)
        assert body["meta"]["paginationTotalResults"] == 5
        seen.append(body["results"])
    assert [len(p) for p in seen] == [2, 2, 1, 0]
    assert [r for p in seen for r in p] == everything
    async with http.get(
        encoded(f"{sim.base_url}/testRuns", job=job.sref, page="0"), headers=headers
    ) as resp:
        assert resp.status == 400


async def test_test_runs_of_a_pending_or_unknown_job_are_empty(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World, headers: dict[str, str]
) -> None:
    """A job that has not run, and an unknown job, list no runs."""
    for sref in (world.add_job().sref, "jobs/999999"):
        body = await get(http, encoded(f"{sim.base_url}/testRuns", job=sref), headers)
        assert (body["results"], body["meta"]["paginationTotalResults"]) == ([], 0)


async def post_job(
    http: aiohttp.ClientSession, sim: SimulatorHandle, headers: dict[str, str], template: str
) -> aiohttp.ClientResponse:
    async with http.post(
        f"{sim.base_url}/jobs", json={"jobTemplateUri": template}, headers=headers
    ) as resp:
        await resp.read()
        return resp


async def test_posted_job_moves_on_with_the_clock(
    http: aiohttp.ClientSession,
    sim: SimulatorHandle,
    world: World,
    clock: Any,
    headers: dict[str, str],
) -> None:
    """A started job reads pending, then running, then completed as simulated time
    passes, and then has all its test runs."""
    world.launches.pending_for, world.launches.run_for = 5, 30
    world.add_job(name="Nightly", template="jobTemplates/6789", status="failed")
    resp = await post_job(http, sim, headers, "jobTemplates/6789")
    uri = (await resp.json())["results"]["jobUri"]
    seen = []
    for seconds in (0, 5, 30):
        clock.advance(seconds=seconds)
        seen.append((await get(http, f"{sim.base_url}/{uri}", headers))["results"]["status"])
    assert seen == ["pending", "running", "completed"]
    job = world.resolve(uri)
    assert job.name == "Nightly"
    runs = await get(http, encoded(f"{sim.base_url}/testRuns", job=uri), headers)
    assert len(runs["results"]) == len(world.perf.runs(job)) > 0


async def test_posted_rerun_of_a_flaky_or_broken_template(
    http: aiohttp.ClientSession,
    sim: SimulatorHandle,
    world: World,
    clock: Any,
    headers: dict[str, str],
) -> None:
    """After fail_next, the template's job fails; its rerun through POST /jobs
    completes when flaky and fails when broken."""
    ends = {}
    for template, mode in (("jobTemplates/1", "flaky"), ("jobTemplates/2", "broken")):
        world.fail_next(template, mode=mode)
        assert world.add_job(template=template, status="completed").status == "failed"
        resp = await post_job(http, sim, headers, template)
        ends[mode] = (await resp.json())["results"]["jobUri"]
    clock.advance(minutes=5)
    listing = await get(http, f"{sim.base_url}/jobs", headers)
    status = {job["sref"]: job["status"] for job in listing["results"]}
    assert (status[ends["flaky"]], status[ends["broken"]]) == ("completed", "failed")


async def test_post_job_faults_and_counts(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World, headers: dict[str, str]
) -> None:
    """create_fail_next makes valid starts answer create_fail_status (with Retry-After
    if set) and create nothing; posts counts every valid start per template."""
    template = "jobTemplates/6789"
    world.faults.create_fail_next, world.faults.create_fail_status = 1, 422
    assert (await post_job(http, sim, headers, template)).status == 422
    world.faults.create_fail_next, world.faults.create_fail_status = 1, 503
    world.faults.retry_after = "7"
    resp = await post_job(http, sim, headers, template)
    assert (resp.status, resp.headers.get("Retry-After")) == (503, "7")
    assert len(world) == 0
    assert (await post_job(http, sim, headers, template)).status == 201
    assert (await post_job(http, sim, headers, "nonsense")).status == 400
    assert world.launches.posts == {template: 3}
    assert world.launches.created == {template: [world.jobs()[0].sref]}
    assert world.requests["create"] == 4
