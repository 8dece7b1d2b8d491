"""A tiny driver for a real headless Chromium over the DevTools protocol, with aiohttp's
websocket client: the system's `chromium` (Debian's package, which `tests/run`
installs), never a downloaded build, and nothing to install in the venv.

One browser per test: `Browser.start(folder)` runs it with a profile in `folder` and
`--remote-debugging-port=0`, reads the websocket address it prints on stderr, and
`open()` gives a `Tab` (a target attached in flat mode: one socket, one session per
tab) to navigate, evaluate JavaScript, and take screenshots. `close()` kills it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import require_tool

_LISTENING = re.compile(rb"DevTools listening on (ws://\S+)")
FLAGS = (
    "--headless=new",
    "--remote-debugging-port=0",
    "--no-sandbox",  # the suite runs as root in CI, where Chromium's sandbox refuses
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-gpu",
    "--disable-extensions",
    "--disable-background-networking",  # no call home while a test runs
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",  # screenshots without a scrollbar's width
    "--mute-audio",
)


class BrowserError(Exception):
    """A DevTools command failed, or the page's script threw."""


@dataclass
class Tab:
    browser: Browser
    session: str
    events: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        return await self.browser.send(method, params, session=self.session)

    async def navigate(self, url: str, timeout: float = 20) -> None:
        """Go to `url` and wait for its load event (the page and its stylesheet)."""
        loaded = self.browser.expect("Page.loadEventFired", self.session)
        await self.send("Page.navigate", url=url)
        await asyncio.wait_for(loaded, timeout)

    async def submit(self, selector: str, values: dict[str, str], timeout: float = 20) -> None:
        """Fill the form's fields by name, press its submit button, wait for the page
        it lands on (after a redirect: the redirect's target)."""
        loaded = self.browser.expect("Page.loadEventFired", self.session)
        await self.evaluate(
            f"""(() => {{
              const form = document.querySelector({_js(selector)});
              for (const [name, value] of Object.entries({_js(values)}))
                form.elements[name].value = value;
              form.querySelector('button[type=submit]').click();
            }})()"""
        )
        await asyncio.wait_for(loaded, timeout)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON values only)."""
        found = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in found:
            raise BrowserError(str(found["exceptionDetails"])[:500])
        return found["result"].get("value")

    async def html(self) -> str:
        """The document as the browser holds it (without the page's script: with
        JavaScript disabled, Runtime.evaluate would still run, this reads the DOM)."""
        root = await self.send("DOM.getDocument", depth=-1)
        found = await self.send("DOM.getOuterHTML", nodeId=root["root"]["nodeId"])
        return str(found["outerHTML"])

    async def screenshot(self, path: Path, *, full: bool = True) -> Path:
        """A PNG of the page (with `full`, the whole page, not just the viewport)."""
        # A tab behind another paints no frames, and Chromium's capture waits for one.
        await self.send("Page.bringToFront")
        params: dict[str, Any] = {"format": "png"}
        if full:
            metrics = await self.send("Page.getLayoutMetrics")
            size = metrics["cssContentSize"]
            params["captureBeyondViewport"] = True
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"]}
            params["clip"]["scale"] = 1
        shot = await self.send("Page.captureScreenshot", **params)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    async def viewport(self, width: int, height: int, *, mobile: bool = False) -> None:
        """The window's size in CSS pixels; `mobile`: a phone's (touch, 3x pixels)."""
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=3 if mobile else 1,
            mobile=mobile,
        )

    async def javascript(self, enabled: bool) -> None:
        await self.send("Emulation.setScriptExecutionDisabled", value=not enabled)

    def seen(self, method: str) -> list[dict[str, Any]]:
        """The events of `method` this tab has had so far (dialogs, log entries)."""
        return [e["params"] for e in self.events if e["method"] == method]


class Browser:
    def __init__(self, proc: asyncio.subprocess.Process, ws: aiohttp.ClientWebSocketResponse):
        self.proc = proc
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._waiting: list[tuple[str, str | None, asyncio.Future[dict[str, Any]]]] = []
        self._tabs: dict[str, Tab] = {}
        self._reader = asyncio.create_task(self._read())
        assert proc.stderr is not None
        # Chromium chatters on stderr: drain it, or a full pipe would block it.
        self._drain = asyncio.create_task(_drain(proc.stderr))

    @classmethod
    async def start(cls, folder: Path, session: aiohttp.ClientSession) -> Browser:
        binary = require_tool("chromium", "chromium")
        proc = await asyncio.create_subprocess_exec(
            binary,
            *FLAGS,
            f"--user-data-dir={folder}",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            url = await asyncio.wait_for(_devtools_url(proc), 30)
            ws = await session.ws_connect(url, max_msg_size=0)  # screenshots are big
        except BaseException:
            _kill(proc)
            await proc.wait()
            raise
        return cls(proc, ws)

    async def send(
        self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None
    ) -> dict[str, Any]:
        number = next(self._ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        answer = self._pending[number] = asyncio.get_running_loop().create_future()
        await self._ws.send_json(message)
        found = await asyncio.wait_for(answer, 30)
        if "error" in found:
            raise BrowserError(f"{method}: {found['error']}")
        result: dict[str, Any] = found.get("result", {})
        return result

    def expect(self, method: str, session: str | None) -> asyncio.Future[dict[str, Any]]:
        """A future for the next event `method` (set up before the command causing it)."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append((method, session, future))
        return future

    async def open(self) -> Tab:
        """A new tab, attached, with the Page, Runtime, DOM and Log domains on."""
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        tab = Tab(self, attached["sessionId"])
        self._tabs[tab.session] = tab
        for domain in ("Page", "Runtime", "DOM", "Log"):
            await tab.send(f"{domain}.enable")
        return tab

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            found: dict[str, Any] = message.json()
            if "id" in found:
                answer = self._pending.pop(found["id"], None)
                if answer is not None and not answer.done():
                    answer.set_result(found)
                continue
            self._event(found)

    def _event(self, event: dict[str, Any]) -> None:
        session = event.get("sessionId")
        if session in self._tabs:
            self._tabs[session].events.append(event)
        for waiter in list(self._waiting):
            method, wanted, future = waiter
            if method == event.get("method") and wanted in (None, session):
                self._waiting.remove(waiter)
                if not future.done():
                    future.set_result(event.get("params", {}))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.send("Browser.close"), 5)
        await self._ws.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except TimeoutError:
            _kill(self.proc)
            await self.proc.wait()
        for task in (self._reader, self._drain):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def chromium(folder: Path) -> AsyncIterator[Browser]:
    """A headless Chromium with its profile in `folder`, killed at the end."""
    async with aiohttp.ClientSession() as session:
        browser = await Browser.start(folder, session)
        try:
            yield browser
        finally:
            await browser.close()


async def _devtools_url(proc: asyncio.subprocess.Process) -> str:
    """The browser's websocket, from its stderr."""
    assert proc.stderr is not None
    seen: list[bytes] = []
    async for line in proc.stderr:
        seen.append(line)
        found = _LISTENING.search(line)
        if found:
            return found.group(1).decode()
    raise BrowserError("chromium ended before listening: " + b"".join(seen[-5:]).decode())


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


def _js(value: object) -> str:
    import json

    return json.dumps(value)
