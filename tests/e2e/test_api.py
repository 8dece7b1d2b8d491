"""The HTTP API (SPEC "People in the loop") of a real `watcher run` on the simulator,
through a real HTTP client: every endpoint, silences and acknowledgements that change
what is delivered, a given-up alert retried, and bad input refused with a JSON error
that names the problem and changes nothing."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import SECRETS, Hook, config_document, free_port, receiving, write_config
from tests.e2e import proc
from watcher.simulator.runner import SimulatorHandle
from watcher.simulator.world import World

TOKEN = "api-TOKEN-5d8e2b7a91c4"  # a test's token, kept out of every output
SECRETS.add(TOKEN)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def broken() -> AsyncIterator[Hook]:
    """A second webhook receiver, down until a test brings it up."""
    async with receiving(Hook(down=True)) as receiver:
        yield receiver


def config(
    tmp_path: Path, sim: SimulatorHandle, channels: dict[str, Any], token: str | None, **kw: Any
) -> tuple[str, int]:
    port = free_port()
    server: dict[str, Any] = {"listen": f"127.0.0.1:{port}"}
    if token is not None:
        server["api_token"] = token
    doc = config_document(sim, tmp_path, channels, poll={"interval": "0.3s"}, server=server, **kw)
    return str(write_config(tmp_path / "watcher.yaml", doc)), port


class Api:
    """A real HTTP client of the daemon's API."""

    def __init__(self, session: aiohttp.ClientSession, port: int) -> None:
        self.session = session
        self.base = f"http://127.0.0.1:{port}/api/v1"

    async def call(
        self, method: str, path: str, *, auth: bool = True, **kw: Any
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        headers = {**(AUTH if auth and method != "GET" else {}), **kw.pop("headers", {})}
        async with self.session.request(method, self.base + path, headers=headers, **kw) as r:
            assert r.content_type == "application/json", (path, r.content_type)
            assert r.headers["Cache-Control"] == "no-store"
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            assert "Set-Cookie" not in r.headers
            return r.status, await r.json(), r

    async def get(self, path: str) -> Any:
        status, body, _ = await self.call("GET", path)
        assert status == 200, (path, body)
        return body

    async def alerts(self, **query: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self.get(
            "/alerts?" + "&".join(f"{k}={v}" for k, v in query.items())
        )
        return found


async def until(api: Api, path: str, check: Any, timeout: float = 30) -> Any:
    """GET `path` again until `check(body)` holds."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        body = await api.get(path)
        if check(body):
            return body
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting on {path}: {json.dumps(body)[:2000]}")
        await asyncio.sleep(0.1)


FAST_GIVE_UP = {
    "group_wait": "0s",
    "retry_initial": "0.2s",
    "retry_max": "0.5s",
    "give_up_after": "1s",
}


def silence_body(**extra: Any) -> dict[str, Any]:
    return {
        "matchers": [{"key": "name", "value": "Nightly *"}],
        "duration": "1h",
        "comment": "site maintenance",
        "author": "e2e",
        **extra,
    }


async def test_every_endpoint_against_a_running_daemon(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook, broken: Hook
) -> None:
    """Reads show real data; a silence stops an alert it covers (recorded silenced, not
    delivered) until it is expired; an ack is listed and withdrawn; a given-up alert is
    requeued and then delivered."""
    path, port = config(
        tmp_path,
        sim,
        {"hook": hook.url, "broken": broken.url},
        TOKEN,
        delivery=FAST_GIVE_UP,
    )
    daemon = await proc.Daemon(["run", "-c", path]).start()
    await daemon.wait_for_line('"poll_done"')
    async with aiohttp.ClientSession() as session:
        api = Api(session, port)
        world.add_job(name="Checkout", status="failed", template="jobTemplates/7")
        await proc.eventually(lambda: hook.titles() == ["Checkout failed"])

        # -- reads
        status = await until(api, "/status", lambda b: b["outbox"]["given_up"] == 1)
        assert status["accounts"][0]["name"] == "default"
        assert status["jobs"]["known"] == 1
        assert status["recent_events"][0]["to"] == "failed"
        assert (await api.get("/accounts"))[0]["leader"] == status["replica"]
        templates = await api.get("/templates")
        assert [(t["template"], t["streak"]) for t in templates] == [("jobTemplates/7", 1)]
        assert templates[0]["runs"][-1]["status"] == "failed"
        assert templates[0]["last_alert"]["template"] == "jobTemplates/7"
        events = await api.get("/events?limit=1")
        assert len(events) == 1
        assert events[0]["to"] == "failed"
        sent = await api.alerts(channel="hook")
        assert [(a["state"], a["title"]) for a in sent] == [("sent", "Checkout failed")]
        assert "sent" in [s["what"] for s in sent[0]["steps"]]
        given_up = await api.alerts(state="given_up", since="1h")
        assert [a["channel"] for a in given_up] == ["broken"]
        assert "given_up" in [s["what"] for s in given_up[0]["steps"]]
        assert await api.alerts(state="sent", channel="broken") == []
        document = await api.get("/openapi.json")
        assert document["openapi"].startswith("3.1")

        # -- retry a given-up alert: pending again, a requeued step, then delivered
        broken.down = False
        number = given_up[0]["id"]
        code, body, _ = await api.call("POST", f"/alerts/{number}/retry")
        assert (code, body) == (200, {"id": number, "state": "pending"})
        await proc.eventually(lambda: broken.titles() == ["Checkout failed"])
        retried = await until(api, "/alerts?channel=broken", lambda b: b[0]["state"] == "sent")
        assert "requeued" in [s["what"] for s in retried[0]["steps"]]
        code, body, _ = await api.call("POST", f"/alerts/{number}/retry")
        assert code == 409
        assert f"alert {number}" in body["error"]
        code, body, _ = await api.call("POST", "/alerts/999999/retry")
        assert code == 404
        assert "999999" in body["error"]

        # -- a silence: listed, covers what it matches, expired by DELETE
        code, silence, _ = await api.call("POST", "/silences", json=silence_body())
        assert code == 201
        assert silence["state"] == "active"
        assert [s["id"] for s in await api.get("/silences")] == [silence["id"]]
        world.add_job(name="Nightly build", status="failed")
        world.add_job(name="Daytime build", status="failed")
        await proc.eventually(lambda: "Daytime build failed" in hook.titles())
        silenced = await until(
            api,
            "/alerts?state=silenced",
            lambda b: len(b) == 2,  # one per channel
        )
        assert {a["title"] for a in silenced} == {"Nightly build failed"}
        assert "silenced" in [s["what"] for s in silenced[0]["steps"]]
        code, expired, _ = await api.call("DELETE", f"/silences/{silence['id']}")
        assert code == 200
        assert expired["state"] == "expired"
        assert await api.get("/silences") == []
        assert [s["id"] for s in await api.get("/silences?all=true")] == [silence["id"]]
        world.add_job(name="Nightly build 2", status="failed")
        await proc.eventually(lambda: "Nightly build 2 failed" in hook.titles())
        assert "Nightly build failed" not in hook.titles()
        code, body, _ = await api.call("DELETE", "/silences/424242")
        assert code == 404
        assert "silence 424242" in body["error"]

        # -- an acknowledgement: listed, withdrawn
        job = sent[0]["job"]
        code, ack, _ = await api.call("POST", "/acks", json={"job": job, "comment": "on it"})
        assert code == 201
        assert (ack["job"], ack["holds"]) == (job, True)
        assert [a["id"] for a in await api.get("/acks")] == [ack["id"]]
        code, gone, _ = await api.call("DELETE", f"/acks/{ack['id']}")
        assert (code, gone["holds"]) == (200, False)
        assert await api.get("/acks") == []
        assert len(await api.get("/acks?all=1")) == 1
    assert await daemon.stop() == 0
    assert TOKEN not in daemon.output()


JSON_TYPE = {"Content-Type": "application/json"}
TEXT_TYPE = {"Content-Type": "text/plain"}


async def ten_megabytes() -> AsyncIterator[bytes]:
    """A body sent chunked, with no Content-Length to refuse it by."""
    for _ in range(100):
        yield b" " * 100_000


def bad_writes() -> list[tuple[str, dict[str, Any], int, str]]:
    """(what, request keywords, status, a word the error must name); fresh each time, as
    a body generator is read once."""
    backwards = {"starts_at": "2030-01-02T00:00:00+00:00", "ends_at": "2030-01-01T00:00:00Z"}
    wrong = {"Authorization": "Bearer not-the-token-at-all"}
    return [
        ("unknown matcher key", {"json": silence_body(matchers={"colour": "red"})}, 422, "colour"),
        ("end before start", {"json": silence_body(duration=None, **backwards)}, 422, "ends_at"),
        ("unknown field", {"json": silence_body(colour="red")}, 422, "colour"),
        ("no comment", {"json": silence_body(comment="")}, 422, "comment"),
        ("malformed JSON", {"data": b'{"matchers": [', "headers": JSON_TYPE}, 400, "JSON"),
        ("not an object", {"json": [silence_body()]}, 400, "object"),
        ("not JSON", {"data": b"a=b", "headers": TEXT_TYPE}, 415, "Content-Type"),
        ("10 MB", {"data": io.BytesIO(b" " * 10_000_000), "headers": JSON_TYPE}, 413, "body"),
        ("10 MB chunked", {"data": ten_megabytes(), "headers": JSON_TYPE}, 413, "body"),
        ("wrong token", {"json": silence_body(), "headers": wrong}, 401, "token"),
        ("no token", {"json": silence_body(), "headers": {"Authorization": ""}}, 401, "Bearer"),
    ]


async def test_bad_input_is_refused_with_a_json_error_and_changes_nothing(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """Each bad request gets a 4xx JSON error naming the problem; the silences stay as
    they were; unknown paths and methods are JSON errors too."""
    path, port = config(tmp_path, sim, {"hook": hook.url}, TOKEN)
    daemon = await proc.Daemon(["run", "-c", path]).start()
    await daemon.wait_for_line('"server_listening"')
    async with aiohttp.ClientSession() as session:
        api = Api(session, port)
        code, kept, _ = await api.call("POST", "/silences", json=silence_body())
        assert code == 201
        before = await api.get("/silences?all=true")
        for what, request, status, word in bad_writes():
            headers = {**AUTH, **request.pop("headers", {})}
            if headers.get("Authorization") == "":
                del headers["Authorization"]
            code, body, resp = await api.call(
                "POST", "/silences", auth=False, headers=headers, **request
            )
            assert (code, word in body["error"]) == (status, True), (what, body)
            if status == 401:
                assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        for method, where, status, word in [
            ("GET", "/nowhere", 404, "no such endpoint"),
            ("PUT", "/silences", 405, "not allowed"),
            ("DELETE", "/silences/abc", 404, "no such endpoint"),
            ("GET", "/alerts?since=yesterday", 400, "since"),
            ("GET", "/alerts?state=lost", 400, "state"),
            ("GET", "/events?limit=0", 400, "limit"),
            ("GET", "/events?colour=red", 400, "colour"),
            ("POST", "/acks", 422, "job"),
        ]:
            code, body, _ = await api.call(method, where, json={} if method == "POST" else None)
            assert (code, word in body["error"]) == (status, True), (method, where, body)
        assert await api.get("/silences?all=true") == before
        assert [s["id"] for s in before] == [kept["id"]]
    assert await daemon.stop() == 0
    output = daemon.output()
    assert TOKEN not in output
    assert "Traceback" not in output


async def test_writes_are_refused_without_a_configured_token(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """No server.api_token: every write is 403 (reads still answer), whatever is sent."""
    path, port = config(tmp_path, sim, {"hook": hook.url}, None)
    daemon = await proc.Daemon(["run", "-c", path]).start()
    await daemon.wait_for_line('"server_listening"')
    async with aiohttp.ClientSession() as session:
        api = Api(session, port)
        for method, where in [
            ("POST", "/silences"),
            ("DELETE", "/silences/1"),
            ("POST", "/acks"),
            ("DELETE", "/acks/1"),
            ("POST", "/alerts/1/retry"),
        ]:
            code, body, _ = await api.call(method, where, json=silence_body())
            assert code == 403, (method, where, body)
            assert "api_token" in body["error"]
        assert await api.get("/silences?all=true") == []
    assert await daemon.stop() == 0


async def test_the_openapi_document_names_exactly_the_routes(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """Every /api/v1 route of the running server is in the document and the other way
    round, with the bearer scheme on exactly the writes."""
    from watcher.web import api as web_api

    path, port = config(tmp_path, sim, {"hook": hook.url}, TOKEN)
    daemon = await proc.Daemon(["run", "-c", path]).start()
    await daemon.wait_for_line('"server_listening"')
    async with aiohttp.ClientSession() as session:
        document = await Api(session, port).get("/openapi.json")
    assert await daemon.stop() == 0
    documented = {
        (method.upper(), where, "security" in op)
        for where, ops in document["paths"].items()
        for method, op in ops.items()
    }
    routes = {(r.method, r.path, r.write) for r in web_api.ROUTES}
    assert documented == routes
    app = web.Application()
    web_api.mount(app, None)  # type: ignore[arg-type]  # routes only: no request is made
    mounted = {
        (r.method, r.resource.canonical.replace(r"{id:\d{1,18}}", "{id}"))
        for r in app.router.routes()
        if r.resource is not None
    }
    assert mounted == {(m, web_api.PREFIX + p) for m, p, _ in routes}


async def test_a_silence_added_through_one_replica_holds_on_the_other(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook, pg_url: str
) -> None:
    """Two `watcher run` replicas on one PostgreSQL: a silence added through the
    standby's API is listed by the leader's, and the alert the leader queues for a job it
    covers is recorded silenced, not delivered, while the others still are."""
    from tests.e2e.test_replicas import ha_config

    ports = {"a": free_port(), "b": free_port()}

    def replica(name: str) -> proc.Daemon:
        server = {"listen": f"127.0.0.1:{ports[name]}", "api_token": TOKEN}
        path = ha_config(tmp_path, sim, hook, pg_url, name, first_run=True, server=server)
        return proc.Daemon(["run", "-c", path])

    leader = await replica("b").start()
    await leader.wait_for_line('"poll_done"')
    standby = await replica("a").start()
    await standby.wait_for_line('"server_listening"')
    async with aiohttp.ClientSession() as session:
        on_a, on_b = Api(session, ports["a"]), Api(session, ports["b"])
        assert [x["leader"] for x in await on_a.get("/accounts")] == ["b"]
        code, silence, _ = await on_a.call("POST", "/silences", json=silence_body())
        assert code == 201
        assert [s["id"] for s in await on_b.get("/silences")] == [silence["id"]]
        world.add_job(name="Nightly build", status="failed")
        world.add_job(name="Daytime build", status="failed")
        await proc.eventually(lambda: hook.titles() == ["Daytime build failed"])
        silenced = await until(on_b, "/alerts?state=silenced", lambda b: len(b) == 1)
        assert silenced[0]["title"] == "Nightly build failed"
        step = next(s for s in silenced[0]["steps"] if s["what"] == "silenced")
        assert f"silence {silence['id']}" in (step["detail"] or ""), step
        assert await on_a.alerts(state="silenced") == silenced
    assert "poll_done" not in standby.output()  # the standby never polled: B queued it
    assert await standby.stop() == 0
    assert await leader.stop() == 0
    assert hook.titles() == ["Daytime build failed"]
