"""The API client against the simulator over a real socket: auth, paging, faults."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import structlog

from tests.conftest import CLIENT_ID, CLIENT_SECRET, REALM
from watcher.client import ApiError, Client, JobGone
from watcher.settings import ApiSettings
from watcher.simulator.runner import SimulatorHandle
from watcher.simulator.world import SimJob, World


def settings(sim: SimulatorHandle, **kw: Any) -> ApiSettings:
    base: dict[str, Any] = {
        "base_url": sim.base_url,
        "token_url": sim.token_url,
        "realm": REALM,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "retries": 2,
        "timeout": 5,
    }
    return ApiSettings(**(base | kw))


async def no_sleep(_seconds: float) -> None:
    return None


@pytest.fixture
async def client(sim: SimulatorHandle) -> AsyncIterator[Client]:
    async with Client(settings(sim, page_size=10), sleep=no_sleep) as c:
        yield c


def span(world: World) -> tuple[datetime, datetime]:
    now = world.now()
    return now - timedelta(hours=1), now


def add_jobs(world: World, n: int) -> list[SimJob]:
    now = world.now()
    return [
        world.add_job(name=f"J{i}", status="completed", started_at=now - timedelta(seconds=i))
        for i in range(n)
    ]


async def test_all_pages_are_read_and_each_job_is_listed_once(client: Client, world: World) -> None:
    """35 jobs at 10 a page: 4 pages, every job once."""
    jobs = add_jobs(world, 35)
    listing = await client.list_jobs(*span(world))
    assert sorted(listing.jobs) == sorted(j.sref for j in jobs)
    assert listing.pages == 4


async def test_jobs_starting_while_paging_shift_items_but_none_is_lost(
    sim: SimulatorHandle, world: World
) -> None:
    """New jobs pushing items onto later pages cause duplicates, never gaps."""
    jobs = add_jobs(world, 30)
    start, end = span(world)
    original_page = world.page

    def shifting_page(*args: Any, **kwargs: Any) -> Any:
        jobs.append(world.add_job(name="late", status="running", started_at=end))
        return original_page(*args, **kwargs)

    world.page = shifting_page  # type: ignore[method-assign]
    async with Client(settings(sim, page_size=10), sleep=no_sleep) as c:
        listing = await c.list_jobs(start, end)
    srefs = list(listing.jobs)
    assert len(srefs) == len(set(srefs))
    assert {j.sref for j in jobs[:30]} <= set(srefs)
    assert listing.pages >= 4


async def test_a_silent_page_size_cap_does_not_end_the_listing_early(
    client: Client, world: World
) -> None:
    """The server serving 7 where 10 were asked is followed to the end."""
    jobs = add_jobs(world, 30)
    world.faults.page_size_cap = 7
    listing = await client.list_jobs(*span(world))
    assert len(listing.jobs) == len(jobs)


async def test_without_a_total_the_listing_ends_at_a_shorter_page(
    client: Client, world: World
) -> None:
    """No paginationTotalResults and a silent cap: read until a shorter or empty page."""
    add_jobs(world, 30)
    world.faults.page_size_cap, world.faults.omit_total = 7, True
    listing = await client.list_jobs(*span(world))
    assert len(listing.jobs) == 30


async def test_a_next_link_is_followed(client: Client, world: World) -> None:
    """When meta carries a next link, it is followed instead of counting pages."""
    add_jobs(world, 25)
    world.faults.next_links = True
    listing = await client.list_jobs(*span(world))
    assert len(listing.jobs) == 25


async def test_more_pages_than_max_pages_fails_the_poll(sim: SimulatorHandle, world: World) -> None:
    """The hard page cap stops a runaway listing with an error that names the key."""
    add_jobs(world, 50)
    async with Client(settings(sim, page_size=10, max_pages=2), sleep=no_sleep) as c:
        with pytest.raises(ApiError, match=r"api\.max_pages"):
            await c.list_jobs(*span(world))


async def test_dates_are_sent_url_encoded_with_their_offset(client: Client, world: World) -> None:
    """The simulator answers 400 to an unencoded '+': a good listing proves the encoding."""
    add_jobs(world, 3)
    listing = await client.list_jobs(*span(world))
    assert len(listing.jobs) == 3
    assert world.requests["error"] == 0


async def test_the_token_is_reused_until_it_expires(client: Client, world: World) -> None:
    """One token serves many requests."""
    add_jobs(world, 3)
    for _ in range(5):
        await client.list_jobs(*span(world))
    assert world.requests["token"] == 1


async def test_a_short_token_lifetime_is_renewed_before_it_runs_out(
    client: Client, world: World
) -> None:
    """expires_in is honoured: a token with no life left is replaced before use."""
    world.faults.token_ttl = 0.2
    add_jobs(world, 3)
    await client.list_jobs(*span(world))
    await asyncio.sleep(0.3)  # outlive the token
    await client.list_jobs(*span(world))
    assert world.requests["token"] == 2
    assert world.requests["error"] == 0


async def test_a_fixed_access_token_is_used_as_is(sim: SimulatorHandle, world: World) -> None:
    """access_token instead of client credentials: no token request is made."""
    async with Client(settings(sim), sleep=no_sleep) as c:
        token = await c._bearer()
    fixed = settings(sim, client_id=None, client_secret=None, access_token=token)
    async with Client(fixed, sleep=no_sleep) as c:
        add_jobs(world, 2)
        assert len((await c.list_jobs(*span(world))).jobs) == 2
    assert world.requests["token"] == 1


async def test_wrong_credentials_fail_without_retrying(sim: SimulatorHandle, world: World) -> None:
    """A refused client secret is an error that names neither the secret nor a token."""
    async with Client(settings(sim, client_secret="wrong-secret"), sleep=no_sleep) as c:
        with pytest.raises(ApiError, match="refused the client credentials") as caught:
            await c.list_jobs(*span(world))
    assert "wrong-secret" not in str(caught.value)
    assert world.requests["token"] == 1


async def test_a_wrong_realm_is_an_error(sim: SimulatorHandle, world: World) -> None:
    """The Realm header is sent on every request; a wrong one is refused."""
    async with Client(settings(sim, realm="other"), sleep=no_sleep) as c:
        with pytest.raises(ApiError, match="HTTP 403"):
            await c.list_jobs(*span(world))


async def test_a_job_the_api_no_longer_knows_is_gone(client: Client, world: World) -> None:
    """404 on GET /jobs/{id} raises JobGone, so the job stops being followed."""
    job = world.add_job(name="J", status="running")
    assert (await client.get_job(job.sref)) is not None
    world.remove(job)
    with pytest.raises(JobGone):
        await client.get_job(job.sref)


async def test_persistent_server_errors_fail_after_the_retries(
    client: Client, world: World
) -> None:
    """5xx on every try: retried, then an error naming the status."""
    world.faults.down = True
    with pytest.raises(ApiError, match="HTTP 503"):
        await client.list_jobs(*span(world))
    assert world.requests["list"] + world.requests["error"] >= 3


async def test_connection_refused_is_an_api_error() -> None:
    """Nothing listening: an ApiError, not a crash."""
    dead = ApiSettings(
        base_url="http://127.0.0.1:9/pa/v1",
        token_url="http://127.0.0.1:9/token",
        realm="r",
        access_token="t0k3n-value",
        retries=1,
    )
    async with Client(dead, sleep=no_sleep) as c:
        with pytest.raises(ApiError, match="connection error"):
            await c.get_job("jobs/1")


async def test_a_body_nested_too_deep_to_read_is_retried(client: Client, world: World) -> None:
    """JSON nested past every reader's recursion limit is an unreadable body: retried,
    then the listing is read in full."""
    jobs = add_jobs(world, 3)
    world.faults.nest_next = 1
    with structlog.testing.capture_logs() as logged:
        listing = await client.list_jobs(*span(world))
    assert sorted(listing.jobs) == sorted(j.sref for j in jobs)
    assert world.requests["nested"] == 1
    retries = [e["problem"] for e in logged if e["event"] == "api_retry"]
    assert retries == ["GET jobs: body is not readable JSON"]


async def test_a_long_retry_after_fails_the_poll_instead_of_hanging(
    client: Client, world: World
) -> None:
    """Retry-After beyond the client's patience ends this poll; the next one retries."""
    world.faults.fail_status, world.faults.retry_after, world.faults.fail_next = 429, "3600", 1
    with pytest.raises(ApiError, match="Retry-After"):
        await client.list_jobs(*span(world))
