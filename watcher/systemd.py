"""sd_notify without a dependency: READY=1, WATCHDOG=1, STATUS=, RELOADING=1 and
STOPPING=1 as datagrams to `$NOTIFY_SOCKET` (a leading `@` is an abstract socket). Does
nothing outside systemd."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog

log = structlog.get_logger("watcher.systemd")


class ServiceManager:
    """systemd, as the service manager that started this process: told of its state."""

    def __init__(self, address: str, watchdog_usec: int | None) -> None:
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_interval = watchdog_usec / 2e6 if watchdog_usec else None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ServiceManager | None:
        address = env.get("NOTIFY_SOCKET")
        if not address:
            return None
        usec: int | None = None
        pid = env.get("WATCHDOG_PID")
        if env.get("WATCHDOG_USEC", "").isdigit() and (not pid or pid == str(os.getpid())):
            usec = int(env["WATCHDOG_USEC"])
        return cls(address, usec)

    def send(self, message: str) -> None:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self._address)
                sock.sendall(message.encode())
        except OSError as exc:
            log.warning("sd_notify_failed", message=message, error=str(exc))

    def ready(self) -> None:
        self.send("READY=1")

    def status(self, text: str) -> None:
        """One line for `systemctl status` (systemd shows the last one sent)."""
        self.send("STATUS=" + " ".join(text.split()))

    def reloading(self) -> None:
        """A reload began; READY=1 says it ended. systemd 253 and newer want the
        monotonic time with it, to tell this reload from an earlier one."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send(f"RELOADING=1\nMONOTONIC_USEC={usec}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    async def watchdog(self) -> None:
        """Ping from the event loop itself: a stuck loop stops the pings, systemd restarts."""
        if self.watchdog_interval is None:
            return
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_interval)


@dataclass(frozen=True, slots=True)
class AccountPoll:
    """How one account's last poll went, for the status line: what it saw, or why not."""

    account: str
    jobs_seen: int = 0
    events: int = 0
    alerts: int = 0
    error: str | None = None


def poll_status(polls: Sequence[AccountPoll], at: datetime) -> str:
    """The STATUS= line after a cycle: each account polled and how it went."""
    if not polls:
        return "standby: another replica polls every account; delivering alerts"
    parts = [
        f"{p.account} failed ({p.error})"
        if p.error
        else f"{p.account} ok ({_count(p.jobs_seen, 'job')} seen, {_count(p.events, 'event')}, "
        f"{_count(p.alerts, 'alert')} queued)"
        for p in polls
    ]
    return f"last poll {at:%Y-%m-%d %H:%M:%S}Z: " + "; ".join(parts)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
