"""sd_notify without a dependency: READY=1, WATCHDOG=1 and STOPPING=1 as datagrams to
`$NOTIFY_SOCKET` (a leading `@` is an abstract socket). Does nothing outside systemd."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Mapping

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

    def stopping(self) -> None:
        self.send("STOPPING=1")

    async def watchdog(self) -> None:
        """Ping from the event loop itself: a stuck loop stops the pings, systemd restarts."""
        if self.watchdog_interval is None:
            return
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_interval)
