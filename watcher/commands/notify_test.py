"""`watcher notify-test CHANNEL`: a test message to each URL of one channel."""

from __future__ import annotations

import argparse
import asyncio
import sys

import apprise

from watcher import __version__, report
from watcher.arguments import EXIT_FAILED, EXIT_OK
from watcher.commands import configured
from watcher.plugins import target
from watcher.settings import Settings


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_notify_test(configured.load(args).settings, args.channel))


async def _notify_test(settings: Settings, channel: str) -> int:
    urls = settings.channels.get(channel)
    if urls is None:
        known = ", ".join(sorted(settings.channels)) or "none defined"
        print(f"watcher: no channel named {channel!r} ({known})", file=sys.stderr)
        return EXIT_FAILED
    failed = 0
    for url in urls:
        destination = target(url)
        masked = report.masked_url(url)
        ok = bool(
            await destination.async_notify(
                title="watcher test message",
                body=f"This is a test of channel {channel!r} from watcher {__version__}.",
                notify_type=apprise.NotifyType.INFO,
                body_format=apprise.NotifyFormat.TEXT,
            )
        )
        print(f"{'delivered' if ok else 'FAILED'}: {masked}")
        failed += not ok
    return EXIT_FAILED if failed else EXIT_OK
