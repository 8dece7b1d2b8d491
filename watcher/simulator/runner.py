"""Running the simulator: ``serve`` for ``watcher simulate``/``watcher demo`` (server
plus scenario until cancelled) and ``running_simulator`` for in-process tests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from watcher.simulator.scenarios import SCENARIOS
from watcher.simulator.server import make_app
from watcher.simulator.world import World


@dataclass(frozen=True)
class Endpoints:
    """Where a simulator listens, and its URLs."""

    port: int
    host: str = "127.0.0.1"

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/pa/v1"

    @property
    def token_url(self) -> str:
        return f"{self.root_url}/authorisation/token"

    @property
    def admin_url(self) -> str:
        return f"{self.root_url}/_sim"


@dataclass(frozen=True, kw_only=True)
class SimulatorHandle(Endpoints):
    """A simulator running in this process, with its world at hand."""

    world: World


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        # IPv4 (host, port) and IPv6 (host, port, flow, scope) both carry the port second.
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError("the simulator is not listening on a TCP port")


@contextlib.asynccontextmanager
async def _listening(app: web.Application, host: str, port: int) -> AsyncIterator[int]:
    # No access log: tests and demos would drown in one line per poll request.
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        yield _bound_port(runner)
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def running_simulator(
    world: World, *, host: str = "127.0.0.1", port: int = 0, **make_app_kwargs: Any
) -> AsyncIterator[SimulatorHandle]:
    """Serve ``world`` on loopback (a free port by default) for the block's duration."""
    async with _listening(make_app(world, **make_app_kwargs), host, port) as bound:
        yield SimulatorHandle(port=bound, world=world, host=host)


async def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    scenario: str | None = "steady",
    seed: int = 0,
    speed: float = 1.0,
    world: World | None = None,
    ready: Callable[[int], None] | None = None,
) -> None:
    """Serve the simulated API and play ``scenario`` until cancelled.

    ``port=0`` picks a free port; ``ready(port)`` is told the bound one. A scenario
    that ends (the demo) leaves the server running with the final state.
    """
    play = None if scenario is None else SCENARIOS.get(scenario)
    if scenario is not None and play is None:
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(sorted(SCENARIOS))}")
    if speed <= 0:
        raise ValueError("speed must be positive")
    world = world if world is not None else World()
    stop = asyncio.Event()
    async with _listening(make_app(world), host, port) as bound:
        if ready is not None:
            ready(bound)
        task = (
            None if play is None else asyncio.create_task(play(world, stop, seed=seed, speed=speed))
        )
        try:
            if task is not None:
                await task
            await asyncio.Event().wait()  # serve until cancelled
        finally:
            stop.set()
            if task is not None and not task.done():
                # Give the scenario its chance to wind down, then insist.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(task), 2)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
