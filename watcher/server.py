"""The operations endpoints: /healthz, /readyz and /metrics on `server.listen`.

Reads the daemon's state, never changes it; an empty `listen` disables the server.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from watcher.app import Daemon

log = structlog.get_logger("watcher.server")
READY_INTERVALS = 3  # /readyz fails once no poll has succeeded for this many intervals


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class HealthServer:
    def __init__(self, daemon: Daemon, listen: str) -> None:
        self._daemon = daemon
        self._listen = listen
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        if not self._listen:
            return
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        host, port = split_listen(self._listen)
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = next((int(a[1]) for a in self._runner.addresses if isinstance(a, tuple)), port)
        log.info("server_listening", host=host, port=self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        daemon = self._daemon
        limit = READY_INTERVALS * daemon.settings.poll.interval
        reason: str | None = None
        if not daemon.store.usable():
            reason = "the state store is unusable"
        elif daemon.last_success is None:
            reason = "no poll has succeeded yet"
        elif time.monotonic() - daemon.last_success > limit:
            reason = f"no poll has succeeded for more than {limit:.0f}s"
        if reason is None:
            return web.json_response({"status": "ready"})
        body = {"status": "not ready", "reason": reason, "last_error": daemon.last_error}
        return web.json_response(body, status=503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self._daemon.metrics.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )
