"""`watcher simulate`: the simulated API alone, on loopback, until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from watcher.arguments import EXIT_OK
from watcher.simulator.runner import serve


def run(args: argparse.Namespace) -> int:
    asyncio.run(_serve(args))
    return EXIT_OK


def _ready(port: int) -> None:
    print(
        f"simulator on http://127.0.0.1:{port}/pa/v1 (token: "
        f"http://127.0.0.1:{port}/authorisation/token)",
        flush=True,
    )


async def _serve(args: argparse.Namespace) -> None:
    task = asyncio.ensure_future(
        serve(
            "127.0.0.1",
            args.port,
            scenario=args.scenario,
            seed=args.seed,
            speed=args.speed,
            ready=_ready,
        )
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
