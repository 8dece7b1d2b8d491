"""The status page in a real browser (headless Chromium, `tests/browser.py`) against a
real `watcher run` with real data: what a person sees, the forms, JavaScript off, a
phone's width, and nothing from elsewhere or secret in it.

Screenshots land in the test's folder; with WATCHER_SCREENSHOT=PATH the desktop one
is also written to PATH (`WATCHER_SCREENSHOT=docs/status-page.png` refreshes the
README's picture)."""

from __future__ import annotations

import asyncio
import os
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

from tests.browser import Tab, chromium
from tests.conftest import (
    SECRETS,
    Hook,
    assert_no_secret,
    config_document,
    free_port,
    write_config,
)
from tests.e2e import proc
from watcher.simulator.runner import SimulatorHandle
from watcher.simulator.world import World

API_TOKEN = "page-TOKEN-0c5e81f4a9"
SECRETS.add(API_TOKEN)
HOSTILE = "<script>alert(1)</script>"
NIGHTLY: dict[str, Any] = {
    "name": "Nightly checkout",
    "template": "jobTemplates/6789",
    "run_type": "scheduled",
}
HOMEPAGE: dict[str, Any] = {"name": "Homepage", "template": "jobTemplates/1101"}
SEARCH: dict[str, Any] = {"name": "Product search", "template": "jobTemplates/2204"}
CRAWL: dict[str, Any] = {"name": "Site crawl", "template": "jobTemplates/4410", "type": "Crawl"}
WEEKLY: dict[str, Any] = {"name": "Weekly regression suite", "template": "jobTemplates/5120"}
EVIL: dict[str, Any] = {"name": HOSTILE, "template": "jobTemplates/666"}

# What a person sees, read from the page: the same with JavaScript on and off.
SEEN = """(() => {
  const text = (el) => el ? el.textContent.replace(/\\s+/g, ' ').trim() : null;
  return {
    templates: [...document.querySelectorAll('#templates li.template')].map((row) => ({
      name: text(row.querySelector('.name')),
      runs: [...row.querySelectorAll('.run')].map((r) => r.className.replace('run ', '')),
      titles: [...row.querySelectorAll('.run')].map((r) => r.title),
      streak: text(row.querySelector('.streak .badge')),
    })),
    alerts: [...document.querySelectorAll('#alerts li.alert')].map((row) => ({
      state: text(row.querySelector('.badge')),
      title: text(row.querySelector('.name')),
      error: text(row.querySelector('.last-error')),
    })),
    silences: [...document.querySelectorAll('#silences li')].map(text),
    acks: [...document.querySelectorAll('#acks li')].map(text),
    error: text(document.querySelector('.error')),
    scripts: document.querySelectorAll('script').length,
  };
})()"""


def history(world: World, hours_ago: float, status: str, job: dict[str, Any]) -> None:
    """A job that ended long before the watcher started: recorded, not alerted."""
    start = world.now() - timedelta(hours=hours_ago)
    found = world.add_job(status=status, started_at=start, **job)
    found.updated_at = start + timedelta(minutes=20)


def yesterday_and_today(world: World) -> None:
    """A day of runs: a flaky nightly, a steady homepage, a search with a cancel."""
    for n, status in enumerate(["completed"] * 6 + ["failed", "completed", "completed"]):
        history(world, 20 - n * 2, status, NIGHTLY)
    for n in range(12):
        history(world, 23 - n * 1.5, "completed", HOMEPAGE)
    for n, status in enumerate(["completed", "failed", "completed", "cancelled", "completed"]):
        history(world, 15 - n * 2.5, status, SEARCH)
    for n in range(4):
        history(world, 22 - n * 5, "completed", CRAWL)
    history(world, 21, "completed", WEEKLY)


def config(tmp_path: Path, sim: SimulatorHandle, hook: Hook) -> tuple[str, int]:
    """The hook for failures and cancels; a pager nobody answers for expiries."""
    port = free_port()
    pager = f"json://127.0.0.1:{free_port()}/pager"
    rules = [
        {"name": "failures", "match": {"to": "failed"}, "notify": ["hook"]},
        {"name": "expiries", "match": {"to": "expired"}, "notify": ["pager"]},
        {
            "name": "cancels",
            "match": {"to": "cancelled"},
            "notify": ["hook"],
            "severity": "warning",
        },
    ]
    doc = config_document(
        sim,
        tmp_path,
        {"hook": hook.url, "pager": pager},
        poll={"interval": "0.3s", "lookback": "2d"},
        server={"listen": f"127.0.0.1:{port}", "api_token": API_TOKEN},
        rules=rules,
    )
    return str(write_config(tmp_path / "watcher.yaml", doc)), port


async def fetch(url: str) -> tuple[int, dict[str, str], str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, dict(resp.headers), await resp.text()


async def post(url: str, form: dict[str, str]) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=form, allow_redirects=False) as resp,
    ):
        return resp.status, await resp.text()


async def seen(tab: Tab) -> dict[str, Any]:
    found: dict[str, Any] = await tab.evaluate(SEEN)
    return found


async def reload_until(tab: Tab, url: str, check: str, what: str) -> None:
    """Reload until the page shows `check` (a JavaScript expression): the daemon
    delivers on its own time."""
    for _ in range(100):
        await tab.navigate(url)
        if await tab.evaluate(check):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"the page never showed {what}")


async def test_the_status_page_in_a_browser(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook
) -> None:
    """Runs coloured by outcome, alerts with their state, a hostile name as text, a
    silence and an ack made through the forms, a wrong token refused, the same page
    with JavaScript off, a phone's width, a strict CSP, and no secret anywhere."""
    yesterday_and_today(world)
    weekly = world.add_job(status="running", **WEEKLY)
    path, port = config(tmp_path, sim, hook)
    url = f"http://127.0.0.1:{port}/"
    daemon = await proc.Daemon(["run", "-c", path]).start()
    await daemon.wait_for_line('"poll_done"')
    world.add_job(status="failed", **NIGHTLY)
    world.add_job(status="failed", **EVIL)
    world.add_job(status="cancelled", started_by="Priya Natarajan", **SEARCH)
    world.add_job(status="expired", **CRAWL)  # to the pager that never answers
    world.add_job(status="completed", **HOMEPAGE)
    world.progress(weekly)  # still running: a blue cell, newest right
    await proc.eventually(lambda: len(hook.received) == 3, what="three alerts delivered")
    world.add_job(status="failed", **NIGHTLY)
    await proc.eventually(lambda: len(hook.received) == 4, what="the nightly's second failure")

    async with chromium(tmp_path / "profile") as browser:
        tab = await browser.open()
        await tab.viewport(1100, 900)
        retrying = "document.querySelector('#alerts .state-retrying') !== null"
        await reload_until(tab, url, retrying, "the pager's alert retrying")
        page = await seen(tab)
        rows = {row["name"]: row for row in page["templates"]}
        assert rows["Nightly checkout"]["runs"][-3:] == ["ok", "bad", "bad"]  # newest right
        assert rows["Nightly checkout"]["streak"] == "2 failures in a row"
        assert set(rows["Homepage"]["runs"]) == {"ok"}
        assert rows["Weekly regression suite"]["runs"] == ["ok", "busy"]
        assert rows["Product search"]["runs"][-2:] == ["ok", "off"]
        assert "Nightly checkout · jobs/" in rows["Nightly checkout"]["titles"][-1]
        assert rows["Nightly checkout"]["titles"][-1].endswith("UTC")
        assert rows[HOSTILE]["runs"] == ["bad"]  # the hostile name, shown as text
        colours = await tab.evaluate(
            "['ok', 'bad', 'off'].map((c) => getComputedStyle("
            "document.querySelector('#templates .run.' + c)).backgroundColor)"
        )
        assert colours == ["rgb(47, 158, 91)", "rgb(214, 69, 69)", "rgb(154, 163, 173)"]
        states = {a["title"]: a for a in page["alerts"]}
        assert states["Nightly checkout failed"]["state"] == "sent"
        assert states[f"{HOSTILE} failed"]["state"] == "sent"
        assert states["Site crawl expired"]["state"] == "retrying"
        assert states["Site crawl expired"]["error"]  # apprise's own words
        assert page["scripts"] == 0
        assert not tab.seen("Page.javascriptDialogOpening")

        # A wrong token: the page again, the problem named, nothing written.
        await tab.submit(
            "#add-silence",
            {"matchers": "template=jobTemplates/4410", "comment": "crawl", "token": "nope" * 5},
        )
        page = await seen(tab)
        assert "not the configured server.api_token" in page["error"]
        assert page["silences"] == []
        assert await tab.evaluate("document.querySelector('[name=matchers]').value") == (
            "template=jobTemplates/4410"
        )

        # The right token: back on the page after the redirect, the silence on it.
        await tab.submit(
            "#add-silence",
            {
                "matchers": "template=jobTemplates/2204, name=Product *",
                "duration": "6h",
                "comment": "search index rebuild",
                "author": "Ada",
                "token": API_TOKEN,
            },
        )
        assert await tab.evaluate("location.pathname + location.search") == "/"
        page = await seen(tab)
        assert page["error"] is None
        (silence,) = page["silences"]
        assert "template=jobTemplates/2204 name=Product *" in silence
        assert "search index rebuild" in silence
        assert "by Ada" in silence
        await tab.submit(
            "#add-ack",
            {
                "target": "jobTemplates/6789",
                "comment": "payment sandbox is down",
                "author": "Ben",
                "token": API_TOKEN,
            },
        )
        assert "payment sandbox is down" in (await seen(tab))["acks"][0]

        # What the silence covers is recorded, not sent.
        world.add_job(status="failed", **SEARCH)
        silenced = "document.querySelector('#alerts .state-silenced') !== null"
        await reload_until(tab, url, silenced, "the search's failure silenced")
        assert (await seen(tab))["alerts"][0]["title"] == "Product search failed"
        assert len(hook.received) == 4
        shown = await seen(tab)
        await tab.screenshot(tmp_path / "desktop.png")
        if os.environ.get("WATCHER_SCREENSHOT"):
            shutil.copyfile(tmp_path / "desktop.png", os.environ["WATCHER_SCREENSHOT"])

        # JavaScript off: the same page, the same content (there is no script to miss).
        quiet = await browser.open()
        await quiet.javascript(False)
        await quiet.navigate("data:text/html,<p id=x>off</p><script>x.textContent='on'</script>")
        assert await quiet.evaluate("x.textContent") == "off"
        await quiet.viewport(1100, 900)
        await quiet.navigate(url)
        assert _steady(await seen(quiet)) == _steady(shown)

        # A phone: nothing wider than the screen.
        await tab.viewport(390, 844, mobile=True)
        await tab.navigate(url)
        assert await tab.evaluate("document.scrollingElement.scrollWidth <= innerWidth")
        await tab.screenshot(tmp_path / "phone.png")
        problems = [e for e in tab.seen("Log.entryAdded") if "Content" in str(e)]
        assert not problems  # the stylesheet is the page's own: the CSP refuses nothing

        # Expiring through the form: gone from the page.
        await tab.submit(".silence form", {"token": API_TOKEN})
        assert (await seen(tab))["silences"] == []

    status, headers, html = await fetch(url)
    assert status == 200
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert HOSTILE not in html
    assert_no_secret(html, "the status page")
    assert "hookuser" not in html
    assert "/pager" not in html
    assert (await fetch(url + "static/page.css"))[1]["Content-Type"].startswith("text/css")
    assert (await fetch(url + "static/../page.py"))[0] == 404
    assert await daemon.stop() == 0


def _steady(page: dict[str, Any]) -> dict[str, Any]:
    """A page's content without what moves by itself between two loads (the ages)."""
    return {
        "templates": [(r["name"], r["runs"], r["streak"]) for r in page["templates"]],
        "alerts": [(a["state"], a["title"]) for a in page["alerts"]],
        "silences": len(page["silences"]),
        "acks": len(page["acks"]),
    }


async def test_the_forms_refuse_without_a_token_and_bad_input(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """Straight HTTP: no token configured, no forms and every write 403; with one, a
    missing token 401, bad input 400 with the problem escaped, an unknown id 404."""
    path, port = config(tmp_path, sim, hook)
    daemon = await proc.Daemon(["run", "-c", path]).start()
    await daemon.wait_for_line('"poll_done"')
    base = f"http://127.0.0.1:{port}"
    silence = {"matchers": "template=x", "comment": "why", "token": API_TOKEN}
    assert (await post(f"{base}/silences", {**silence, "token": ""}))[0] == 401
    status, html = await post(f"{base}/silences", {**silence, "matchers": "colour=<b>red</b>"})
    assert status == 400
    assert "matcher &#39;colour&#39;: unknown key" in html
    assert "<b>red</b>" not in html
    assert (await post(f"{base}/silences", {**silence, "duration": "forever"}))[0] == 400
    assert (await post(f"{base}/silences/99/expire", {"token": API_TOKEN}))[0] == 404
    assert (await post(f"{base}/acks", {"target": "jobs/1", "token": API_TOKEN}))[0] == 400
    assert (await post(f"{base}/silences", silence))[0] == 303
    assert await daemon.stop() == 0

    doc = config_document(sim, tmp_path, {"hook": hook.url}, server={"listen": f"127.0.0.1:{port}"})
    daemon = await proc.Daemon(["run", "-c", str(write_config(tmp_path / "w.yaml", doc))]).start()
    await daemon.wait_for_line('"poll_done"')
    status, html = await post(f"{base}/silences", silence)
    assert status == 403
    assert "no server.api_token is configured" in html
    _, _, html = await fetch(base + "/")
    assert 'action="/silences"' not in html
    assert "server.api_token" in html
    assert await daemon.stop() == 0
