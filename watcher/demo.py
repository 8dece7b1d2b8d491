"""`watcher demo`: the simulator's scripted story, the real daemon against it, and a
local webhook receiver (apprise `json://`) that prints each alert as it arrives.

Needs no configuration and writes only to a temporary folder; ends by itself.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web

from watcher import logs
from watcher.app import Daemon
from watcher.settings import Settings
from watcher.simulator import scenarios
from watcher.simulator.runner import running_simulator
from watcher.simulator.server import CLIENT_ID, CLIENT_SECRET, REALM
from watcher.simulator.world import World

STORY_SECONDS = 45.0
TAIL_SECONDS = 8.0  # polls after the story ends, so its last change is alerted
_COLOURS = {"failure": "31", "warning": "33", "success": "32", "info": "36"}


def _printer(started: float, shown: list[str]) -> web.Application:
    tty = sys.stdout.isatty()

    async def receive(request: web.Request) -> web.Response:
        alert = await request.json()
        kind = str(alert.get("type", "info"))
        label = f"\033[{_COLOURS.get(kind, '0')}m{kind.upper():8}\033[0m" if tty else kind.upper()
        elapsed = time.monotonic() - started
        print(f"[{elapsed:5.1f}s] {label} {alert.get('title', '')}", flush=True)
        for line in str(alert.get("message", "")).splitlines()[:2]:
            print(f"          {line}", flush=True)
        shown.append(str(alert.get("title", "")))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/alerts", receive)
    return app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _settings(
    base_url: str,
    token_url: str,
    hook_port: int,
    state: Path,
    listen: str,
    token: str,
    interval: float = 2.0,
) -> Settings:
    return Settings(
        api={
            "base_url": base_url,
            "token_url": token_url,
            "realm": REALM,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
        poll={"interval": interval, "lookback": "6h", "overlap": "30s"},
        state={"path": state},
        channels={"terminal": f"json://127.0.0.1:{hook_port}/alerts"},
        rules=[
            {
                "name": "flaky-or-not",
                "match": {
                    "to": ["failed"],
                    "run_type": ["scheduled"],
                    "template": [scenarios.DEMO_FLAKY_TEMPLATE],
                },
                "rerun": {"delay": interval},
                "notify": ["terminal"],
                "stop": True,
            },
            {
                "name": "flaky",
                "match": {"event": "flaky"},
                "notify": ["terminal"],
                "severity": "info",
            },
            {
                "name": "keeps-failing",
                "match": {"to": ["failed", "expired"], "consecutive": 2, "repeat": "every"},
                "notify": ["terminal"],
                "title": "{{ job.name }} failed {{ event.streak }} times in a row",
                "stop": True,
            },
            {
                "name": "failures",
                "match": {"to": ["failed", "expired"]},
                "notify": ["terminal"],
                "title": "{{ job.name }} {{ event.to }} ({{ job.sref }})",
            },
            {
                "name": "cancelled",
                "match": {"to": "cancelled"},
                "notify": ["terminal"],
                "severity": "warning",
                "title": "{{ job.name }} was cancelled by {{ job.started_by }}",
            },
            {
                "name": "green-again",
                "match": {"event": "recovered"},
                "notify": ["terminal"],
                "severity": "success",
                "title": "{{ job.name }} is green again after {{ event.streak }} failed runs",
            },
            {
                "name": "stuck",
                "match": {"event": "stuck", "status": "running", "after": "2h"},
                "notify": ["terminal"],
                "severity": "warning",
            },
            {
                "name": "checkout-slower",
                "match": {
                    "event": "regressed",
                    "template": [scenarios.DEMO_SPEED_TEMPLATE],
                    "metric": ["onLoad"],
                },
                "notify": ["terminal"],
                "severity": "warning",
            },
            {
                "name": "checkout-back",
                "match": {"event": "improved", "template": [scenarios.DEMO_SPEED_TEMPLATE]},
                "notify": ["terminal"],
                "severity": "success",
            },
        ],
        delivery={"group_wait": 0, "retry_initial": 1},
        server={"listen": listen, "api_token": token},
    )


async def run(*, log_level: str | None = "warning", speed: float = 1.0) -> int:
    """The demo; `speed` runs the story and the polls that many times faster (the tests
    run it at 4: the same alerts in a quarter of the time). `log_level` None leaves the
    process's logging as it is (a test's: structlog caches loggers as first used)."""
    if log_level is not None:
        logs.configure(fmt="console", level=log_level, stream=sys.stderr)
    started = time.monotonic()
    shown: list[str] = []
    world = World()
    runner = web.AppRunner(_printer(started, shown), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook_port = next(int(a[1]) for a in runner.addresses if isinstance(a, tuple))
    listen = f"127.0.0.1:{_free_port()}"
    token = secrets.token_urlsafe(12)  # a throwaway, for the page's forms while it runs
    print("watcher demo: a simulated Performance Analyzer account; alerts appear below.")
    print(f"The status page: http://{listen}/ (its forms' token: {token})")
    print("The first poll records the jobs that had already ended without alerting.\n")
    with tempfile.TemporaryDirectory(prefix="watcher-demo-") as folder:
        async with running_simulator(world) as sim:
            state = Path(folder) / "s.db"
            settings = _settings(
                sim.base_url, sim.token_url, hook_port, state, listen, token, 2.0 / speed
            )
            daemon = Daemon(settings)
            stop = asyncio.Event()
            story = asyncio.create_task(scenarios.demo(world, stop, speed=speed))
            running = asyncio.create_task(daemon.run())
            await asyncio.wait({running}, timeout=(STORY_SECONDS + TAIL_SECONDS) / speed)
            daemon.stop.set()
            stop.set()
            code = await running
            await story
    await runner.cleanup()
    print(f"\ndemo over: {len(shown)} alerts in {time.monotonic() - started:.0f}s.")
    return code
