"""The API's guard rails on a real aiohttp server with a store that fails: a database
away is a JSON 503, anything unexpected a JSON 500 that says nothing of the cause, and
only the API's paths are touched by its middleware."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from tests.conftest import serve
from watcher.store import Store, StoreError
from watcher.web import Console, api

TOKEN = "unit-TOKEN-0123456789"


class FailingStore:
    """Every store call raises `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def scoped(self, _account: str) -> FailingStore:
        return self

    def __getattr__(self, name: str) -> Any:
        async def fail(*_args: object, **_kw: object) -> None:
            raise self.error

        return fail


async def other(_request: web.Request) -> web.Response:
    return web.Response(text="not the API's")


@pytest.fixture
def failure() -> list[Exception]:
    return [StoreError("database at postgresql://watcher@db is away")]


@pytest.fixture
async def base(failure: list[Exception]) -> AsyncIterator[str]:
    console = Console(
        store=cast(Store, FailingStore(failure[0])),
        accounts=["default"],
        clock=lambda: datetime(2026, 1, 1, tzinfo=UTC),
        token=SecretStr(TOKEN),
        shared=False,
        replica="r1",
        wake=lambda: None,
    )
    app = web.Application()
    app.router.add_get("/elsewhere", other)
    api.mount(app, console)
    runner, port = await serve(app)
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def fetch(url: str, method: str = "GET", **kw: Any) -> tuple[int, Any, str]:
    async with aiohttp.ClientSession() as session, session.request(method, url, **kw) as r:
        return (
            r.status,
            await r.json() if r.content_type == "application/json" else None,
            r.headers.get("Cache-Control", ""),
        )


async def test_a_store_away_is_a_json_503(base: str) -> None:
    for path in [
        "/status",
        "/accounts",
        "/templates",
        "/series",
        "/events",
        "/alerts",
        "/silences",
        "/acks",
    ]:
        code, body, cache = await fetch(base + api.PREFIX + path)
        assert (code, cache) == (503, "no-store"), path
        assert "state store" in body["error"]
        assert "postgresql" not in body["error"]


@pytest.mark.parametrize("failure", [[RuntimeError("internal detail xyz")]])
async def test_an_unexpected_failure_is_a_json_500_that_says_nothing_internal(
    base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    code, body, _ = await fetch(base + api.PREFIX + "/silences/3", "DELETE", headers=headers)
    assert code == 500
    assert "xyz" not in body["error"]
    assert "api_failed" in capsys.readouterr().out  # logged, for whoever runs it
    assert TOKEN not in capsys.readouterr().out


async def test_other_paths_are_left_alone(base: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(base + "/elsewhere") as r:
        assert (r.status, await r.text()) == (200, "not the API's")
        assert "Cache-Control" not in r.headers
    code, body, _ = await fetch(base + "/api/v2/anything")
    assert code == 404
    assert "no such endpoint" in body["error"]


def test_since_takes_a_duration_or_an_iso_time() -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    assert api.since_of({"since": "1d"}, now) == datetime(2026, 1, 1, tzinfo=UTC)
    assert api.since_of({"since": "2025-12-31T00:00:00Z"}, now) == datetime(
        2025, 12, 31, tzinfo=UTC
    )
    assert api.since_of({}, now) == datetime(2026, 1, 1, tzinfo=UTC)
    for bad in ["yesterday", "2025-12-31T00:00:00"]:
        with pytest.raises(api.Problem, match="since"):
            api.since_of({"since": bad}, now)
