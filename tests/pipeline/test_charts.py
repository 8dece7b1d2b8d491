"""A `regressed` alert carries its series' chart: the simulator's test runs -> the
daemon's series -> an SVG attachment through apprise to a real JSON webhook and a real
SMTP server, while a channel that takes no files (Gotify) gets the text alone, and a
rule with `chart: false` sends none."""

from __future__ import annotations

import base64
import email
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from email.message import Message
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.conftest import Hook, Mailbox, serve
from tests.pipeline.test_events import Clock, harness
from tests.pipeline.test_regressions import RULES, TEMPLATE, clock, nightly, runs, sim
from watcher.simulator.runner import SimulatorHandle
from watcher.web import mount

__all__ = ["clock", "sim"]  # the regression tests' fixtures: a fixed clock, one page

NS = {"s": "http://www.w3.org/2000/svg"}
RED, GREEN = "#d64545", "#2f9e5b"
HOME = "jobTemplates/1101"


class Gotify:
    """A local Gotify server: apprise's gotify:// plugin takes no attachments."""

    def __init__(self) -> None:
        self.port = 0
        self.received: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"gotify://127.0.0.1:{self.port}/AbCdEfGhIjKlMnO"

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        return web.json_response({"id": len(self.received)})


@pytest.fixture
async def gotify() -> AsyncIterator[Gotify]:
    server = Gotify()
    app = web.Application()
    app.router.add_post("/message", server.handle)
    runner, server.port = await serve(app)
    try:
        yield server
    finally:
        await runner.cleanup()


def points(svg: str) -> list[str | None]:
    """The colour of each run drawn, oldest first."""
    root = ET.fromstring(svg)  # noqa: S314  # the watcher's own output, checked here
    return [c.get("fill") for c in root.findall("s:circle", NS)]


def svg_part(mail: str) -> Message | None:
    message = email.message_from_string(mail)
    return next((p for p in message.walk() if p.get_content_type() == "image/svg+xml"), None)


async def test_a_regression_alert_carries_its_chart_where_the_channel_takes_files(
    sim: SimulatorHandle,
    tmp_path: Path,
    clock: Clock,
    hook: Hook,
    smtp: Mailbox,
    gotify: Gotify,
) -> None:
    """10 runs of baseline, 2 at 1.4x: the webhook and the e-mail get an SVG of the 12
    runs, the last 2 red; Gotify gets the same alert without it; `improved` too."""
    channels = {"team": [hook.url, smtp.url, gotify.url]}
    rules = [{**rule, "notify": ["team"]} for rule in RULES]
    h = harness(sim, tmp_path, clock, channels, rules)
    await h.cycle()
    await runs(h, clock, 10)
    h.world.perf.shift(TEMPLATE, "onLoad", 1.4)
    await runs(h, clock, 2)
    assert len(hook.received) == 1
    (attached,) = hook.received[0]["attachments"]
    assert attached["mimetype"] == "image/svg+xml"
    assert attached["filename"].endswith(".svg")
    svg = base64.b64decode(attached["base64"]).decode()
    assert points(svg) == [GREEN] * 10 + [RED] * 2
    assert "https://shop.example.com/checkout" not in attached["filename"]

    assert len(smtp.messages) == 1
    part = svg_part(smtp.messages[0])
    assert part is not None
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    assert points(payload.decode()) == [GREEN] * 10 + [RED] * 2

    assert [m["title"] for m in gotify.received] == [hook.received[0]["title"]]

    h.world.perf.recover(TEMPLATE)
    await runs(h, clock, 4)  # improved needs its own evidence: 2 to 4 runs back
    await h.close()
    assert len(hook.received) == 2
    assert hook.titles()[1].startswith("Checkout onLoad back to its baseline")
    (back,) = hook.received[1]["attachments"]
    assert RED not in points(base64.b64decode(back["base64"]).decode())
    assert len(gotify.received) == 2


async def test_a_rule_with_chart_false_sends_the_text_alone(
    sim: SimulatorHandle, tmp_path: Path, clock: Clock, hook: Hook
) -> None:
    """`chart: false` on the rule: the same alert, no attachment."""
    rules = [{**RULES[0], "chart": False}]
    h = harness(sim, tmp_path, clock, {"hook": hook.url}, rules)
    await h.cycle()
    await runs(h, clock, 10)
    h.world.perf.shift(TEMPLATE, "onLoad", 1.4)
    await runs(h, clock, 2)
    await h.close()
    assert len(hook.received) == 1
    assert "slower than its baseline" in hook.titles()[0]
    assert hook.received[0]["attachments"] == []


async def test_the_api_and_the_series_page_show_the_same_series(
    sim: SimulatorHandle, tmp_path: Path, clock: Clock, hook: Hook
) -> None:
    """After a regression: GET /api/v1/series says regressed with its numbers, the
    series page draws the same 12 runs, and a series still learning says so."""
    home = {**RULES[0], "name": "home", "match": {"event": "regressed", "template": [HOME]}}
    h = harness(sim, tmp_path, clock, {"hook": hook.url}, [*RULES, home])
    await h.cycle()
    await runs(h, clock, 10)
    h.world.perf.shift(TEMPLATE, "onLoad", 1.4)
    await runs(h, clock, 2)
    h.world.perf.set_pages(HOME, [("Home", "https://shop.example.com/")])
    nightly(h, clock, HOME)
    await h.cycle()
    app = web.Application()
    mount(app, h.daemon.console())
    runner, port = await serve(app)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/api/v1/series") as resp:
                found = await resp.json()
            async with session.get(f"http://127.0.0.1:{port}/series") as resp:
                html = await resp.text()
                policy = resp.headers["Content-Security-Policy"]
    finally:
        await runner.cleanup()
        await h.close()
    shown = {(s["template"], s["browser"]): s for s in found}
    slow = shown[(TEMPLATE, "Chrome")]
    assert (slow["state"], slow["metric"], slow["unit"], slow["regressions"]) == (
        "regressed",
        "onLoad",
        "s",
        1,
    )
    assert len(slow["recent"]) == 12
    assert slow["latest"] == slow["recent"][-1]
    assert slow["median"] < slow["limit"] < slow["latest"]
    assert "chart" not in slow  # the API gives numbers; the page draws them
    learning = [s for s in found if s["template"] == HOME]
    assert {s["state"] for s in learning} == {"learning"}
    assert found[0]["template"] == HOME  # updated last, first

    assert "img-src 'self' data:" in policy
    charts = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', html)
    assert len(charts) == len(found)
    drawn = [points(base64.b64decode(c).decode()) for c in charts]
    assert [GREEN] * 10 + [RED] * 2 in drawn
