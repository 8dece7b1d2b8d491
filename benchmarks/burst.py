"""An alert burst: many alerts at once across five webhook channels, one of them slow.

The receivers (apprise ``json://`` targets) live in this process; the watcher runs in a
child: one cycle queues every alert (each failed job -> one alert per channel, group_wait
0), then its notifier delivers. Reported: seconds until the fast channels have all of
theirs, until the slow one has, and alerts per second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from benchmarks.harness import ROOT, Sim, child_env, simulator, watcher_doc

CHANNELS = 5


@dataclass
class Receiver:
    """A webhook endpoint that timestamps every message it accepts."""

    delay: float = 0.0
    port: int = 0
    arrivals: list[float] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    got: asyncio.Event = field(default_factory=asyncio.Event)
    expected: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.delay:
            await asyncio.sleep(self.delay)
        self.arrivals.append(time.time())
        self.titles.append(str(body.get("title", "")))
        if self.expected and len(self.arrivals) >= self.expected:
            self.got.set()
        return web.json_response({"ok": True})

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = next(int(a[1]) for a in self._runner.addresses if isinstance(a, tuple))
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


async def _deliver(
    sim: Sim, receivers: list[Receiver], state: Path, timeout: float
) -> dict[str, Any]:
    """Run the `deliver` child until every receiver has its share (or `timeout`)."""
    channels = {f"hook{n + 1}": r.url for n, r in enumerate(receivers)}
    doc = watcher_doc(sim, state, page_size=100, channels=channels)
    doc["delivery"] = {"group_wait": "0s", "retry_initial": "0.5s", "retry_max": "2s"}
    doc["rules"] = [doc["rules"][0]]  # failures only: one alert per failed job and channel
    spec = json.dumps({"doc": doc, "log_level": "warning"})
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.child",
        "deliver",
        spec,
        stdout=asyncio.subprocess.PIPE,
        env=child_env(),
        cwd=ROOT,
    )
    assert proc.stdout is not None
    try:
        queued = json.loads(await asyncio.wait_for(proc.stdout.readline(), 600))
        done = asyncio.gather(*(r.got.wait() for r in receivers))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done, timeout)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        tail = await asyncio.wait_for(proc.stdout.read(), 60)
        await proc.wait()
    final = json.loads(tail.decode().strip().splitlines()[-1]) if tail.strip() else {}
    return {"queued": queued["queued"], "queued_at": queued["at"], "child": final}


async def _measure(total: int, slow_delay: float) -> dict[str, Any]:
    per_channel = total // CHANNELS
    receivers = [Receiver(expected=per_channel) for _ in range(CHANNELS - 1)]
    receivers.append(Receiver(delay=slow_delay, expected=per_channel))
    for receiver in receivers:
        await receiver.start()
    try:
        with (
            simulator(jobs=per_channel, mix="failed", seed=3) as sim,
            tempfile.TemporaryDirectory(prefix="watcher-bench-") as tmp,
        ):
            timeout = per_channel * slow_delay * 3 + 60
            run = await _deliver(sim, receivers, Path(tmp) / "state.db", timeout)
    finally:
        for receiver in receivers:
            await receiver.stop()
    return _summary(run, receivers, per_channel, slow_delay)


def _summary(
    run: dict[str, Any], receivers: list[Receiver], per_channel: int, slow_delay: float
) -> dict[str, Any]:
    start = run["queued_at"]
    fast, slow = receivers[:-1], receivers[-1]
    fast_done = all(len(r.arrivals) >= per_channel for r in fast)
    slow_done = len(slow.arrivals) >= per_channel
    fast_seconds = max((max(r.arrivals, default=start) for r in fast), default=start) - start
    slow_seconds = max(slow.arrivals, default=start) - start
    received = sum(len(r.arrivals) for r in receivers)
    fast_received = sum(len(r.arrivals) for r in fast)
    return {
        "alerts": per_channel * CHANNELS,
        "queued": run["queued"],
        "channels": CHANNELS,
        "slow_delay": slow_delay,
        "received": received,
        "fast_complete": fast_done,
        "slow_complete": slow_done,
        "fast_seconds": fast_seconds,
        "slow_seconds": slow_seconds,
        "slow_floor_seconds": per_channel * slow_delay,
        "fast_alerts_per_second": fast_received / fast_seconds if fast_seconds > 0 else 0.0,
        "alerts_per_second": received / slow_seconds if slow_seconds > 0 else 0.0,
        "per_channel": [len(r.arrivals) for r in receivers],
    }


def measure(total: int, slow_delay: float) -> dict[str, Any]:
    return asyncio.run(_measure(total, slow_delay))
