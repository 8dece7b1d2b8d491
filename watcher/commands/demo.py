"""`watcher demo`: the daemon against the built-in simulator, for a minute."""

from __future__ import annotations

import argparse
import asyncio

from watcher import demo


def run(args: argparse.Namespace) -> int:
    return asyncio.run(demo.run(log_level=args.log_level or "warning"))
