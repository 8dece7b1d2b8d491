"""Operating `watcher run`: health endpoints, metrics, sd_notify and SIGHUP reloads."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.conftest import Hook, config_document, free_port, write_config
from tests.e2e import proc
from watcher.simulator.runner import SimulatorHandle
from watcher.simulator.world import World


def cfg(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook, interval: str = "0.3s", **kw: Any
) -> tuple[str, int]:
    """A configuration polling every `interval`, with the server on a free port; (its
    path, the port)."""
    port = free_port()
    doc = config_document(
        sim,
        tmp_path,
        {"hook": hook.url},
        poll={"interval": interval},
        server={"listen": f"127.0.0.1:{port}"},
        **kw,
    )
    return str(write_config(tmp_path / "watcher.yaml", doc)), port


async def get(port: int, path: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}") as resp,
    ):
        return resp.status, await resp.text()


def metric(text: str, name: str) -> float:
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name)]
    return sum(values)


async def test_health_readiness_and_metrics_follow_the_daemon(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook
) -> None:
    """/healthz answers, /readyz turns ready after a poll and 503 during an outage,
    /metrics counts polls, events and alerts."""
    path, port = cfg(tmp_path, sim, hook)
    daemon = await proc.Daemon(["run", "-c", path]).start()
    await daemon.wait_for_line('"server_listening"')
    assert (await get(port, "/healthz"))[0] == 200
    await daemon.wait_for_line('"poll_done"')
    assert await get(port, "/readyz") == (200, '{"status": "ready"}')
    world.add_job(name="Checkout", status="failed")
    world.add_job(name="Search", status="completed")  # no rule wants it: counted all the same
    await proc.eventually(lambda: hook.titles() == ["Checkout failed"])
    await asyncio.sleep(0.5)  # let the delivery's metrics land
    status, text = await get(port, "/metrics")
    assert status == 200
    assert metric(text, 'watcher_polls_total{account="default",outcome="ok"}') >= 2
    assert metric(text, 'watcher_events_total{account="default",kind="transition"}') == 2
    assert metric(text, 'watcher_alerts_total{channel="hook",outcome="sent"}') == 1
    assert metric(text, 'watcher_last_successful_poll_timestamp_seconds{account="default"}') > 0
    assert metric(text, 'watcher_leader{account="default"}') == 1
    assert 0 <= metric(text, "watcher_seconds_since_last_successful_poll") < 60
    assert metric(text, "watcher_outbox_pending") == 0
    assert all(line.startswith(("#", "watcher_")) for line in text.splitlines() if line)
    world.faults.down = True
    await proc.eventually(lambda: "no poll has succeeded" in daemon_ready_text(port), 30)
    status, _ = await get(port, "/readyz")
    assert status == 503
    world.faults.down = False
    await proc.eventually(lambda: daemon_ready_text(port) == '{"status": "ready"}', 30)
    assert await daemon.stop() == 0


def daemon_ready_text(port: int) -> str:
    """A blocking GET for use inside `eventually` (which cannot await)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return str(resp.read().decode())
    except urllib.error.HTTPError as exc:
        return str(exc.read().decode())
    except (urllib.error.URLError, OSError):
        return ""  # not listening yet


async def test_sd_notify_sends_ready_watchdog_and_stopping_in_order(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """A real NOTIFY_SOCKET receives READY=1, WATCHDOG=1 pings, then STOPPING=1."""
    path, _ = cfg(tmp_path, sim, hook)
    address = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.setblocking(False)
    messages: list[str] = []
    daemon = await proc.Daemon(
        ["run", "-c", path], NOTIFY_SOCKET=address, WATCHDOG_USEC="200000"
    ).start()

    def drain() -> bool:
        while True:
            try:
                messages.append(sock.recv(4096).decode())
            except BlockingIOError:
                return messages.count("WATCHDOG=1") >= 2

    await proc.eventually(drain)
    daemon.signal(signal.SIGTERM)
    assert await daemon.wait() == 0
    drain()
    sock.close()
    assert messages[0] == "READY=1"
    assert "STOPPING=1" in messages
    assert messages.index("STOPPING=1") > messages.index("WATCHDOG=1")
    assert set(messages) == {"READY=1", "WATCHDOG=1", "STOPPING=1"}


async def test_sighup_reloads_rules_and_refuses_a_broken_file(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook
) -> None:
    """A changed rule takes effect without a restart; a broken file changes nothing."""
    path, _ = cfg(tmp_path, sim, hook)
    daemon = await proc.Daemon(["run", "-c", path]).start()
    await daemon.wait_for_line('"poll_done"')
    doc = yaml.safe_load(Path(path).read_text())
    doc["rules"][0]["title"] = "RELOADED {{ job.name }}"
    Path(path).write_text(yaml.safe_dump(doc))
    daemon.signal(signal.SIGHUP)
    await daemon.wait_for_line('"configuration_reloaded"')
    world.add_job(name="A", status="failed")
    await proc.eventually(lambda: hook.titles() == ["RELOADED A"])
    Path(path).write_text("rules: [{name: x, match: {to: faild}, notify: [hook]}]\n")
    daemon.signal(signal.SIGHUP)
    await daemon.wait_for_line('"reload_refused"')
    world.add_job(name="B", status="failed")
    await proc.eventually(lambda: hook.titles() == ["RELOADED A", "RELOADED B"])
    assert await daemon.stop() == 0
