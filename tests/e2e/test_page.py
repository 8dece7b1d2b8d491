"""The status page of a real `watcher run` on the simulator, in a real headless Chromium
(tests/browser.py): what a person sees, a silence added through the page's form, the
page with JavaScript off and at a phone's width, hostile names shown as text, and no
secret anywhere in it. The desktop screenshot is kept (`docs/status-page.png` when
WATCHER_SCREENSHOT names that file, else in the test's folder)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from tests.browser import Browser, Tab, chromium
from tests.conftest import (
    CLIENT_SECRET,
    SECRETS,
    Hook,
    config_document,
    free_port,
    require_tool,
    write_config,
)
from tests.e2e import proc
from watcher.simulator.runner import SimulatorHandle
from watcher.simulator.world import World

TOKEN = "page-TOKEN-9c1f0e6b2d7a"
SECRETS.add(TOKEN)
SILENCE_FORM = {"matchers": "name=Nightly *", "duration": "2h", "comment": "maintenance"}
HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    require_tool("chromium", "chromium")
    async with chromium(tmp_path / "profile") as started:
        yield started


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook, token: str | None
) -> AsyncIterator[str]:
    """A daemon with a page to show: its address; stopped cleanly at the end."""
    port = free_port()
    server: dict[str, object] = {"listen": f"127.0.0.1:{port}"}
    if token:
        server["api_token"] = token
    doc = config_document(
        sim,
        tmp_path,
        {"hook": hook.url},
        poll={"interval": "0.3s", "alert_on_first_run": True},
        server=server,
        delivery={"group_wait": "0s"},
    )
    path = write_config(tmp_path / "watcher.yaml", doc)
    daemon = await proc.Daemon(["run", "-c", str(path)]).start()
    try:
        await daemon.wait_for_line('"poll_done"')
        yield f"http://127.0.0.1:{port}/"
    finally:
        assert await daemon.stop() == 0


def story(world: World) -> None:
    """Templates with a history (a run every 10 minutes of the last hour): green, red,
    one running, a hostile name."""
    runs = {
        ("Homepage", "jobTemplates/1101"): ["completed", "completed", "failed", "completed"],
        ("Nightly checkout", "jobTemplates/6789"): ["completed", "failed", "failed"],
        (HOSTILE, "jobTemplates/666"): ["failed"],
        ("Search", "jobTemplates/2204"): ["completed", "cancelled", "running"],
    }
    for (name, template), statuses in runs.items():
        for n, status in enumerate(statuses):
            started = world.now() - timedelta(minutes=10 * (len(statuses) - n))
            world.add_job(name=name, status=status, template=template, started_at=started)


async def text(tab: Tab) -> str:
    return str(await tab.evaluate("document.body.innerText"))


async def until_text(tab: Tab, url: str, wanted: str) -> str:
    """Load the page again until it shows `wanted` (the daemon delivers meanwhile)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while True:
        await tab.navigate(url)
        shown = await text(tab)
        if wanted in shown:
            return shown
        if loop.time() > deadline:
            raise AssertionError(f"the page never showed {wanted!r}: {shown[:2000]}")
        await asyncio.sleep(0.2)


async def test_what_a_person_sees_and_a_silence_added_through_the_form(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook, browser: Browser
) -> None:
    story(world)
    async with running(tmp_path, sim, hook, TOKEN) as url:
        tab = await browser.open()
        await tab.viewport(1280, 900)
        shown = await until_text(tab, url, "Nightly checkout failed")

        # the templates, their runs coloured by outcome (newest right), the streak
        assert "Homepage" in shown
        assert "2 failures in a row" in shown
        runs = await tab.evaluate(
            "[...document.querySelectorAll('li.template')].map(t => [t.querySelector('.name')"
            ".innerText, [...t.querySelectorAll('li.run')].map(r => r.className)])"
        )
        homepage = dict(runs)["Homepage"]
        assert homepage == ["run ok", "run ok", "run bad", "run ok"]
        colours = await tab.evaluate(
            "[...new Set([...document.querySelectorAll('li.run')]"
            ".map(r => getComputedStyle(r).backgroundColor))].length"
        )
        assert colours >= 3  # completed, failed, running look different

        # an alert's delivery state; the hostile name as text, never as markup
        assert "sent" in shown
        assert HOSTILE in shown
        assert await tab.evaluate("document.querySelectorAll('script, img[src=x]').length") == 0
        assert tab.seen("Page.javascriptDialogOpening") == []

        # a silence through the form: a wrong token is refused and named; the right one adds it
        await tab.submit(
            "#add-silence",
            {
                "matchers": "name=Nightly *",
                "duration": "2h",
                "comment": "maintenance",
                "token": "x",
            },
        )
        assert "not the configured server.api_token" in await text(tab)
        await tab.navigate(url)
        await tab.submit(
            "#add-silence",
            {
                "matchers": "name=Nightly *",
                "duration": "2h",
                "comment": "maintenance",
                "token": TOKEN,
            },
        )
        assert await tab.evaluate("location.pathname") == "/"
        shown = await text(tab)
        assert "name=Nightly *" in shown
        assert "maintenance" in shown
        world.add_job(name="Nightly checkout", status="failed", template="jobTemplates/6789")
        shown = await until_text(tab, url, "silenced")

        shot = Path(os.environ.get("WATCHER_SCREENSHOT") or tmp_path / "status-page.png")
        await tab.screenshot(shot)
        assert shot.stat().st_size > 10_000

        html = await tab.html()
        for secret in [TOKEN, CLIENT_SECRET, *SECRETS]:
            assert secret not in html


async def test_the_page_without_javascript_and_at_a_phones_width(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook, browser: Browser
) -> None:
    story(world)
    async with running(tmp_path, sim, hook, None) as url:
        tab = await browser.open()
        await until_text(tab, url, "Nightly checkout failed")
        with_script = await text(tab)
        await tab.javascript(enabled=False)
        await tab.navigate(url)
        html = await tab.html()
        assert "Nightly checkout failed" in html
        assert "Homepage" in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "server.api_token" in html  # no token: no forms, and it says why
        assert 'id="add-silence"' not in html
        await tab.javascript(enabled=True)

        await tab.viewport(390, 844, mobile=True)
        await tab.navigate(url)
        assert await tab.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth")
        assert (await text(tab)).split() == with_script.split() or "Homepage" in await text(tab)
        await tab.screenshot(tmp_path / "status-page-phone.png")


async def test_the_page_is_sent_with_a_strict_policy_and_its_forms_need_the_token(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook
) -> None:
    story(world)
    async with running(tmp_path, sim, hook, None) as url, aiohttp.ClientSession() as session:
        async with session.get(url) as page:
            assert page.status == 200
            policy = page.headers["Content-Security-Policy"]
            assert "default-src 'none'" in policy
            assert "script-src" not in policy  # none: default-src 'none' covers it
            assert page.headers["X-Content-Type-Options"] == "nosniff"
        form = {"matchers": "name=x", "duration": "1h", "comment": "c", "token": TOKEN}
        async with session.post(url + "silences", data=form, allow_redirects=False) as refused:
            assert refused.status == 403
            assert "no server.api_token is configured" in await refused.text()
        async with session.get(url + "api/v1/silences") as listed:
            assert await listed.json() == []
