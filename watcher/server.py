"""The server on `server.listen`: the operations endpoints /healthz, /readyz and
/metrics, and, given a console, the API and the status page (`watcher.web`).

Shows what it is handed (a readiness check and a metrics registry), never changes it;
an empty `listen` disables the server.
"""

from __future__ import annotations

import errno
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from watcher import web as web_console
from watcher.web import Console

log = structlog.get_logger("watcher.server")


class ListenError(Exception):
    """`server.listen` cannot be bound (most often: another daemon has the port)."""


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether the daemon is ready; if not, why, and the last poll's error."""

    reason: str | None = None  # None: ready
    last_error: str | None = None
    replica: str | None = None  # with PostgreSQL: this replica's name
    leads: tuple[str, ...] = ()  # and the accounts it polls now (none: a standby)


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def _why(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "the address is in use (another watcher? give each its own port, or none)"
    return exc.strerror or str(exc)


class HealthServer:
    def __init__(
        self,
        listen: str,
        readiness: Callable[[], Awaitable[Readiness]],
        registry: CollectorRegistry,
        console: Console | None = None,
    ) -> None:
        self._listen = listen
        self._console = console
        self._readiness = readiness
        self._registry = registry
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        if not self._listen:
            return
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        # prometheus_client's own handler: OpenMetrics when the scraper asks for it, gzip
        # when it accepts it.
        app.router.add_get("/metrics", make_aiohttp_handler(self._registry))
        if self._console is not None:
            web_console.mount(app, self._console)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        host, port = split_listen(self._listen)
        site = web.TCPSite(self._runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            await self.stop()
            raise ListenError(
                f"server.listen: cannot listen on {self._listen}: {_why(exc)}"
            ) from None
        self.port = next((int(a[1]) for a in self._runner.addresses if isinstance(a, tuple)), port)
        log.info("server_listening", host=host, port=self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        readiness = await self._readiness()
        roles: dict[str, object] = {}
        if readiness.replica is not None:
            roles = {"replica": readiness.replica, "leads": list(readiness.leads)}
        if readiness.reason is None:
            return web.json_response({"status": "ready", **roles})
        body = {
            "status": "not ready",
            "reason": readiness.reason,
            "last_error": readiness.last_error,
            **roles,
        }
        return web.json_response(body, status=503)
