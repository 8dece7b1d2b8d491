"""End-to-end latency: from a job's status changing in the simulator to its alert
arriving at a webhook, with `watcher run` polling every second.

Three processes: the simulator, the daemon (`python -m watcher run`), and this one,
which drives the changes through the simulator's admin API (a new job with status
failed every 0.1-0.3 s) and receives the alerts. The floor is half the poll interval:
the mean wait for the next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from benchmarks.burst import Receiver
from benchmarks.harness import ROOT, Poll, Sim, child_env, simulator, watcher_doc

INTERVAL = 1.0
PROBE_TEMPLATE = "jobTemplates/9999"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], share: float) -> float:
    """Linear interpolation between closest ranks; nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = share * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


async def _ready(session: aiohttp.ClientSession, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(url) as resp:
                if resp.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the daemon was not ready within {timeout:.0f}s ({url})")


async def _drive(sim: Sim, session: aiohttp.ClientSession, changes: int) -> dict[str, float]:
    """Create `changes` failed jobs at random 0.1-0.3 s intervals; sref -> time sent."""
    rng = random.Random(11)
    sent: dict[str, float] = {}
    for n in range(changes):
        body = {"name": f"Latency probe {n}", "status": "failed", "template": PROBE_TEMPLATE}
        started = time.time()
        async with session.post(f"{sim.admin_url}/jobs", json=body) as resp:
            resp.raise_for_status()
            sent[str((await resp.json())["sref"])] = started
        await asyncio.sleep(rng.uniform(0.1, 0.3))
    return sent


async def _wait_for(receiver: Receiver, count: int, timeout: float) -> None:
    receiver.expected = count
    if len(receiver.arrivals) >= count:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(receiver.got.wait(), timeout)


def _write_config(sim: Sim, receiver: Receiver, tmp: Path, listen: str) -> Path:
    poll = Poll(lookback=3600.0, overlap=120.0, interval=INTERVAL, alert_on_first_run=False)
    doc = watcher_doc(
        sim, tmp / "state.db", page_size=100, poll=poll, channels={"hook": receiver.url}
    )
    doc["delivery"] = {"group_wait": "0s", "retry_initial": "0.2s", "retry_max": "1s"}
    doc["log"] = {"format": "json", "level": "warning"}
    doc["server"] = {"listen": listen}
    path = tmp / "watcher.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


async def _run(sim: Sim, receiver: Receiver, tmp: Path, changes: int) -> dict[str, float]:
    listen = f"127.0.0.1:{_free_port()}"
    config = _write_config(sim, receiver, tmp, listen)
    with (tmp / "watcher.log").open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "watcher",
            "run",
            "-c",
            str(config),
            stdout=log,
            stderr=log,
            env=child_env(),
            cwd=ROOT,
        )
        try:
            async with aiohttp.ClientSession() as session:
                await _ready(session, f"http://{listen}/readyz", 60)
                sent = await _drive(sim, session, changes)
                await _wait_for(receiver, changes, 10 * INTERVAL + 10)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    return sent


async def _measure(changes: int) -> dict[str, Any]:
    receiver = await Receiver().start()
    try:
        with (
            simulator(jobs=100, seed=5) as sim,
            tempfile.TemporaryDirectory(prefix="watcher-bench-") as name,
        ):
            sent = await _run(sim, receiver, Path(name), changes)
    finally:
        await receiver.stop()
    arrived: dict[str, float] = {}
    for title, at in zip(receiver.titles, receiver.arrivals, strict=True):
        arrived.setdefault(title.split(" ", 1)[0], at)
    latencies = [arrived[sref] - t for sref, t in sent.items() if sref in arrived]
    return {
        "changes": changes,
        "received": len(latencies),
        "duplicates": len(receiver.titles) - len(arrived),
        "poll_interval": INTERVAL,
        "floor": INTERVAL / 2,
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies, default=math.nan),
        "min": min(latencies, default=math.nan),
    }


def measure(changes: int) -> dict[str, Any]:
    return asyncio.run(_measure(changes))
