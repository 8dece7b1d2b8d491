"""`watcher silence`, `ack`, `history` and `retry` (watcher.people_cli)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from watcher import people_cli, terminal
from watcher.arguments import EXIT_CONFIG, EXIT_OK
from watcher.commands import configured
from watcher.people import Refused
from watcher.web.actions import Missing


def run(args: argparse.Namespace) -> int:
    settings = configured.load(args).settings
    colour = terminal.colour_wanted(sys.stdout, os.environ)
    try:
        print(asyncio.run(people_cli.run(settings, args, colour=colour)))
    except (Refused, Missing) as exc:
        print(f"watcher {args.command}: {exc.args[0]}", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK
