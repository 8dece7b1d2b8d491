"""The series page in a real browser (headless Chromium, `tests/browser.py`) against a
real `watcher run` whose simulator's test runs regress: a chart per series that the
browser loads under the page's CSP, the state, the numbers, a hostile page URL as text,
and the same regression's alert with its chart attached.

With WATCHER_SCREENSHOT_SERIES=PATH the desktop screenshot is also written to PATH."""

from __future__ import annotations

import base64
import os
import shutil
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.browser import chromium
from tests.conftest import Hook, assert_no_secret, config_document, free_port, write_config
from tests.e2e import proc
from tests.e2e.test_page import HOSTILE, fetch
from watcher.simulator.runner import SimulatorHandle
from watcher.simulator.world import World

TEMPLATE = "jobTemplates/6789"
HOME = "jobTemplates/1101"
CHECKOUT = ("Checkout", f"https://shop.example.com/checkout?{HOSTILE}")
NS = {"s": "http://www.w3.org/2000/svg"}

SEEN = """(() => {
  const text = (el) => el ? el.textContent.replace(/\\s+/g, ' ').trim() : null;
  return [...document.querySelectorAll('#series li.series')].map((row) => ({
    name: text(row.querySelector('.name')),
    page: text(row.querySelector('.page-url')),
    state: text(row.querySelector('.badge')),
    latest: text(row.querySelector('.latest')),
    median: text(row.querySelector('.median')),
    drawn: row.querySelector('img.chart') ? row.querySelector('img.chart').naturalWidth : 0,
  }));
})()"""


def rules() -> list[dict[str, Any]]:
    perf = {"metric": ["onLoad"], "baseline": {"runs": 20, "min_runs": 6}, "consecutive": 2}
    return [
        {
            "name": "slower",
            "match": {"event": "regressed", "template": [TEMPLATE, HOME], **perf},
            "notify": ["hook"],
            "severity": "warning",
        }
    ]


def completed(world: World, template: str, count: int, ago: float) -> None:
    """`count` jobs of the template, completed, started a second apart from `ago`
    seconds back (judged in that order; within the overlap of the daemon's windows)."""
    for n in range(count):
        start = world.now() - timedelta(seconds=ago - n)
        world.add_job(name="Nightly", template=template, status="completed", started_at=start)


async def polls(daemon: proc.Daemon, count: int) -> None:
    """Wait for `count` more polls than the daemon has logged so far."""
    seen = daemon.output().count('"poll_done"')
    await proc.eventually(lambda: daemon.output().count('"poll_done"') >= seen + count)


async def test_the_series_page_in_a_browser(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook
) -> None:
    """A checkout page that regressed (red runs, "regressed") and a homepage still
    learning, each with its chart loaded by the browser; the alert carries the same
    chart; the page URL's markup is text; nothing refused by the CSP."""
    world.perf.error_rate = 0.0
    world.perf.set_pages(TEMPLATE, [CHECKOUT], browsers=["Chrome"])
    world.perf.set_pages(HOME, [("Home", "https://shop.example.com/")], browsers=["Firefox"])
    port = free_port()
    doc = config_document(
        sim,
        tmp_path,
        {"hook": hook.url},
        poll={"interval": "0.3s", "lookback": "2d"},
        server={"listen": f"127.0.0.1:{port}"},
        rules=rules(),
    )
    daemon = await proc.Daemon(["run", "-c", str(write_config(tmp_path / "w.yaml", doc))]).start()
    await daemon.wait_for_line('"poll_done"')
    completed(world, TEMPLATE, 10, ago=60)
    completed(world, HOME, 2, ago=60)
    await polls(daemon, 2)  # the baseline's runs judged
    world.perf.shift(TEMPLATE, "onLoad", 1.8)
    slow = 0
    fired = '"kind": "regressed"'  # the daemon's log line of the event
    while fired not in daemon.output() and slow < 8:  # a baseline of 10 runs is loose
        slow += 1
        completed(world, TEMPLATE, 1, ago=40 - slow)
        await polls(daemon, 2)
    await proc.eventually(lambda: len(hook.received) == 1, what="the regressed alert")
    (attached,) = hook.received[0]["attachments"]
    svg = ET.fromstring(base64.b64decode(attached["base64"]))  # noqa: S314  # checked here
    assert len(svg.findall("s:circle", NS)) == 10 + slow

    url = f"http://127.0.0.1:{port}/series"
    async with chromium(tmp_path / "profile") as browser:
        tab = await browser.open()
        await tab.viewport(1100, 900)
        await tab.navigate(f"http://127.0.0.1:{port}/")
        assert await tab.evaluate("document.querySelector('nav a[href=\"/series\"]') !== null")
        await tab.navigate(url)
        rows: list[dict[str, Any]] = await tab.evaluate(SEEN)
        by_page = {row["page"]: row for row in rows}
        slow = by_page[CHECKOUT[1]]  # the hostile URL, shown as text
        assert slow["name"] == "onLoad · Chrome"
        assert slow["state"] == "regressed"
        assert slow["latest"].endswith(" s")
        assert slow["drawn"] == 480  # the data: image loaded under the CSP
        home = by_page["https://shop.example.com/"]
        assert home["state"] == "learning"
        assert home["median"] == "2 of 6 runs"
        assert home["drawn"] == 480
        assert await tab.evaluate("document.querySelectorAll('script').length") == 0
        assert not tab.seen("Page.javascriptDialogOpening")
        problems = [e for e in tab.seen("Log.entryAdded") if "Content" in str(e)]
        assert not problems
        await tab.screenshot(tmp_path / "series.png")
        if os.environ.get("WATCHER_SCREENSHOT_SERIES"):
            shutil.copyfile(tmp_path / "series.png", os.environ["WATCHER_SCREENSHOT_SERIES"])
        await tab.viewport(390, 844, mobile=True)
        await tab.navigate(url)
        assert await tab.evaluate("document.scrollingElement.scrollWidth <= innerWidth")
        await tab.screenshot(tmp_path / "series-phone.png")

    status, headers, html = await fetch(url)
    assert status == 200
    assert "img-src 'self' data:" in headers["Content-Security-Policy"]
    assert HOSTILE not in html
    assert "&lt;script&gt;" in html
    assert_no_secret(html, "the series page")
    assert await daemon.stop() == 0
