"""Operating `watcher run`: health endpoints, metrics, sd_notify and SIGHUP reloads."""

from __future__ import annotations

import asyncio
import gzip
import signal
import socket
import time
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


async def get_raw(port: int, path: str, **headers: str) -> tuple[dict[str, str], bytes]:
    """The headers and the body as sent (not decompressed)."""
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(f"http://127.0.0.1:{port}{path}", headers=headers) as resp,
    ):
        return dict(resp.headers), await resp.read()


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
    assert metric(text, 'watcher_delivery_latency_seconds_count{channel="hook"}') == 1
    assert metric(text, "watcher_outbox_pending") == 0
    assert metric(text, "process_start_time_seconds") > 0
    own = ("#", "watcher_", "process_", "python_")
    assert all(line.startswith(own) for line in text.splitlines() if line)
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


async def test_metrics_exist_from_the_start_at_zero(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook
) -> None:
    """Before any failure the failure series are there at 0 (not absent), and no
    sentinel gauge says "never" with -1."""
    world.faults.down = True  # no poll succeeds: nothing but the start has happened
    path, port = cfg(tmp_path, sim, hook)
    daemon = await proc.Daemon(["run", "-c", path]).start()
    await daemon.wait_for_line('"server_listening"')
    _, text = await get(port, "/metrics")
    zero = [
        'watcher_polls_total{account="default",outcome="ok"}',
        'watcher_polls_total{account="default",outcome="crashed"}',
        'watcher_events_total{account="default",kind="missed"}',
        'watcher_alerts_total{channel="hook",outcome="given_up"}',
        'watcher_leader_changes_total{account="default",change="lost"}',
        'watcher_delivery_latency_seconds_count{channel="hook"}',
    ]
    for name in zero:
        assert f"{name} 0.0" in text.splitlines(), name
    assert metric(text, "watcher_poll_interval_seconds") == 0.3
    assert "watcher_last_successful_poll_timestamp_seconds{" not in text
    assert "watcher_seconds_since" not in text
    assert not [line for line in text.splitlines() if line.endswith(" -1.0")]
    assert await daemon.stop() == 0


async def test_metrics_are_negotiated_and_compressed(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """/metrics speaks OpenMetrics to a scraper that asks for it, and gzips for one that
    accepts it (prometheus_client's own handler)."""
    path, port = cfg(tmp_path, sim, hook)
    daemon = await proc.Daemon(["run", "-c", path]).start()
    await daemon.wait_for_line('"server_listening"')
    identity = {"Accept-Encoding": "identity"}  # aiohttp's client asks for gzip unless told
    headers, body = await get_raw(port, "/metrics", **identity)
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"# EOF" not in body
    accept = "application/openmetrics-text; version=1.0.0"
    headers, body = await get_raw(port, "/metrics", Accept=accept, **identity)
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")
    headers, body = await get_raw(port, "/metrics", **{"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip"
    assert b"watcher_polls_total" in gzip.decompress(body)
    assert await daemon.stop() == 0


def notify_socket(tmp_path: Path) -> tuple[str, socket.socket]:
    """A datagram socket bound where $NOTIFY_SOCKET will point, as systemd has one."""
    address = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.setblocking(False)
    return address, sock


def received(sock: socket.socket, into: list[str]) -> list[str]:
    """Every datagram waiting on `sock`, appended to `into` (returned)."""
    while True:
        try:
            into.append(sock.recv(4096).decode())
        except BlockingIOError:
            return into


async def test_sd_notify_sends_ready_watchdog_and_stopping_in_order(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """A real NOTIFY_SOCKET receives READY=1, WATCHDOG=1 pings, then STOPPING=1."""
    path, _ = cfg(tmp_path, sim, hook)
    address, sock = notify_socket(tmp_path)
    messages: list[str] = []
    daemon = await proc.Daemon(
        ["run", "-c", path], NOTIFY_SOCKET=address, WATCHDOG_USEC="200000"
    ).start()
    await proc.eventually(lambda: received(sock, messages).count("WATCHDOG=1") >= 2)
    daemon.signal(signal.SIGTERM)
    assert await daemon.wait() == 0
    received(sock, messages)
    sock.close()
    assert messages[0] == "READY=1"
    assert "STOPPING=1" in messages
    assert messages.index("STOPPING=1") > messages.index("WATCHDOG=1")
    others = {m for m in messages if not m.startswith("STATUS=")}
    assert others == {"READY=1", "WATCHDOG=1", "STOPPING=1"}


async def test_sd_notify_status_tells_the_last_poll(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook
) -> None:
    """After each cycle a STATUS= line sums up the poll, and says why one failed."""
    world.add_job(name="Checkout", status="running")
    path, _ = cfg(tmp_path, sim, hook)
    address, sock = notify_socket(tmp_path)
    messages: list[str] = []
    daemon = await proc.Daemon(["run", "-c", path], NOTIFY_SOCKET=address).start()

    def statuses() -> list[str]:
        return [m for m in received(sock, messages) if m.startswith("STATUS=")]

    await proc.eventually(lambda: any("default ok (1 job seen" in m for m in statuses()))
    assert statuses()[0].startswith("STATUS=last poll 2")
    world.faults.down = True
    await proc.eventually(lambda: "default failed (" in statuses()[-1])
    assert await daemon.stop() == 0
    sock.close()


async def test_sighup_tells_systemd_reloading_then_ready(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """SIGHUP sends RELOADING=1 with MONOTONIC_USEC (systemd 253+), then READY=1 once the
    file is read: taken or refused, the reload ends."""
    path, _ = cfg(tmp_path, sim, hook)
    address, sock = notify_socket(tmp_path)
    messages: list[str] = []
    daemon = await proc.Daemon(["run", "-c", path], NOTIFY_SOCKET=address).start()
    await proc.eventually(lambda: "READY=1" in received(sock, messages))
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    daemon.signal(signal.SIGHUP)
    await daemon.wait_for_line('"configuration_reloaded"')
    taken = "READY=1\nSTATUS=configuration reloaded"
    await proc.eventually(lambda: taken in received(sock, messages))
    Path(path).write_text("rules: [{name: x, match: {to: faild}, notify: [hook]}]\n")
    daemon.signal(signal.SIGHUP)
    refused = "READY=1\nSTATUS=reload refused (see the log): running on as before"
    await proc.eventually(lambda: refused in received(sock, messages))
    assert await daemon.stop() == 0
    sock.close()
    reloads = [n for n, m in enumerate(messages) if m.startswith("RELOADING=1\n")]
    assert len(reloads) == 2
    assert reloads[0] < messages.index(taken) < reloads[1] < messages.index(refused)
    usec = messages[reloads[0]].removeprefix("RELOADING=1\nMONOTONIC_USEC=")
    assert int(usec) >= before


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
