"""Fixtures for the simulator tests: a fake clock, a world on it, the simulator served
on a loopback port, an HTTP client and authenticated data headers. Helpers are handed
out as fixtures so test modules never import this file.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from watcher.simulator import CLIENT_ID, CLIENT_SECRET, REALM, SimulatorHandle, World
from watcher.simulator.runner import running_simulator

T0 = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


Basic = Callable[..., str]
TokenFetcher = Callable[[], Awaitable[str]]


def _basic(client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@pytest.fixture
def basic() -> Basic:
    """Build a Basic Authorization header value (good credentials by default)."""
    return _basic


@pytest.fixture
def fetch_token(http: aiohttp.ClientSession, sim: SimulatorHandle) -> TokenFetcher:
    """Get a fresh access token through the token endpoint."""

    async def fetch() -> str:
        async with http.post(
            sim.token_url,
            headers={"Authorization": _basic()},
            data={"grant_type": "client_credentials"},
        ) as resp:
            assert resp.status == 200
            token: str = (await resp.json())["access_token"]
            return token

    return fetch


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def world(clock: FakeClock) -> World:
    return World(clock=clock)


@pytest.fixture
async def sim(world: World) -> AsyncIterator[SimulatorHandle]:
    async with running_simulator(world) as handle:
        yield handle


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def headers(fetch_token: TokenFetcher) -> dict[str, str]:
    """Realm and bearer headers for data requests."""
    return {"Realm": REALM, "Authorization": f"Bearer {await fetch_token()}"}
