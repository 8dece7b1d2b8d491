"""Each fault knob of the simulated API, observed over a real loopback socket."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import pytest

from watcher.simulator import SimulatorHandle, World


async def test_down_answers_503_html_but_tokens_still_work(
    http: aiohttp.ClientSession,
    sim: SimulatorHandle,
    world: World,
    headers: dict[str, str],
    fetch_token: Any,
) -> None:
    """down makes every data request a 503 gateway page; the token endpoint is unaffected."""
    world.faults.down = True
    async with http.get(f"{sim.base_url}/jobs", headers=headers) as resp:
        assert resp.status == 503
        assert resp.content_type == "text/html"
        assert "Service Unavailable" in await resp.text()
    assert await fetch_token()


async def test_fail_next_fails_n_requests_with_retry_after(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World, headers: dict[str, str]
) -> None:
    """fail_next=2 fails exactly two requests with fail_status and Retry-After."""
    world.faults.fail_next, world.faults.fail_status, world.faults.retry_after = 2, 502, "1"
    statuses = []
    for _ in range(3):
        async with http.get(f"{sim.base_url}/jobs", headers=headers) as resp:
            statuses.append(resp.status)
            if resp.status == 502:
                assert resp.headers["Retry-After"] == "1"
                assert "Bad Gateway" in await resp.text()
    assert statuses == [502, 502, 200]
    assert world.faults.fail_next == 0


async def test_429_failure_has_json_body(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World, headers: dict[str, str]
) -> None:
    """A non-gateway fail_status such as 429 answers a JSON error body."""
    world.faults.fail_next, world.faults.fail_status = 1, 429
    async with http.get(f"{sim.base_url}/jobs", headers=headers) as resp:
        assert resp.status == 429
        assert "error" in await resp.json()
        assert "Retry-After" not in resp.headers


async def test_faults_come_before_auth(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World
) -> None:
    """A failing gateway answers before the realm and token are even looked at."""
    world.faults.fail_next = 1
    async with http.get(f"{sim.base_url}/jobs") as resp:
        assert resp.status == 503


async def test_token_fail_next_fails_the_token_endpoint(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World, fetch_token: Any
) -> None:
    """token_fail_next fails the next token request; the one after succeeds."""
    world.faults.token_fail_next = 1
    with pytest.raises(AssertionError):
        await fetch_token()
    assert await fetch_token()


async def test_delay_slows_data_requests(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World, headers: dict[str, str]
) -> None:
    """delay sleeps before each data answer."""
    world.faults.delay = 0.2
    started = time.perf_counter()
    async with http.get(f"{sim.base_url}/jobs", headers=headers) as resp:
        assert resp.status == 200
    assert time.perf_counter() - started >= 0.2


async def test_truncate_next_cuts_body_in_half(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World, headers: dict[str, str]
) -> None:
    """truncate_next answers 200 with half a JSON body, once."""
    world.add_job(name="Homepage")
    world.faults.truncate_next = 1
    async with http.get(f"{sim.base_url}/jobs", headers=headers) as resp:
        assert resp.status == 200
        text = await resp.text()
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    async with http.get(f"{sim.base_url}/jobs", headers=headers) as resp:
        assert len(await resp.text()) >= 2 * len(text)
        await resp.json()


async def test_truncate_waits_for_a_successful_answer(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World, headers: dict[str, str]
) -> None:
    """An error answer does not use up truncate_next."""
    world.faults.truncate_next = 1
    async with http.get(f"{sim.base_url}/jobs/1", headers=headers) as resp:
        assert resp.status == 404
    assert world.faults.truncate_next == 1


async def test_malformed_records_in_list_and_get(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World, headers: dict[str, str]
) -> None:
    """A malformed sref keeps its sref but breaks startedAt, status and pageCount."""
    good, bad = world.add_job(name="good"), world.add_job(name="bad")
    world.faults.malformed = {bad.sref}
    async with http.get(f"{sim.base_url}/jobs", headers=headers) as resp:
        listed = (await resp.json())["results"]
    async with http.get(f"{sim.base_url}/{bad.sref}", headers=headers) as resp:
        single = (await resp.json())["results"]
    broken = {"sref": bad.sref, "startedAt": "not-a-date", "status": 42, "pageCount": "x"}
    assert listed[0].items() >= broken.items()
    assert single.items() >= broken.items()
    assert listed[1] == good.to_json()


async def test_page_size_cap_is_silent(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World, headers: dict[str, str]
) -> None:
    """page_size_cap serves fewer items than asked while the total stays right."""
    for _ in range(12):
        world.add_job()
    world.faults.page_size_cap = 5
    seen = []
    for page in (1, 2, 3):
        async with http.get(f"{sim.base_url}/jobs?page={page}&pageSize=100", headers=headers) as r:
            body = await r.json()
        assert body["meta"]["paginationTotalResults"] == 12
        seen += [job["sref"] for job in body["results"]]
    assert len(seen) == len(set(seen)) == 12


async def test_next_links_walk_every_page(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World, headers: dict[str, str]
) -> None:
    """next_links puts a full next-page URL in meta until the last page."""
    for _ in range(5):
        world.add_job()
    world.faults.next_links = True
    url: str | None = f"{sim.base_url}/jobs?pageSize=2&fromDate=2000-01-01T00%3A00%3A00%2B00%3A00"
    seen: list[str] = []
    while url is not None:
        async with http.get(url, headers=headers) as resp:
            assert resp.status == 200
            body = await resp.json()
        seen += [job["sref"] for job in body["results"]]
        url = body["meta"].get("next")
        assert url is None or url.startswith(sim.base_url)
    assert len(set(seen)) == 5


async def test_omit_total_drops_pagination_total(
    http: aiohttp.ClientSession, sim: SimulatorHandle, world: World, headers: dict[str, str]
) -> None:
    """omit_total leaves paginationTotalResults out of meta."""
    world.faults.omit_total = True
    async with http.get(f"{sim.base_url}/jobs", headers=headers) as resp:
        meta: dict[str, Any] = (await resp.json())["meta"]
    assert "paginationTotalResults" not in meta
    assert "response_in_sec" in meta
