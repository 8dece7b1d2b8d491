"""`watcher status`: what the state store knows, for a terminal or (`--json`) scripts."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime

from watcher import status, terminal
from watcher.arguments import EXIT_OK
from watcher.commands import configured


def run(args: argparse.Namespace) -> int:
    data = status.status(configured.load(args).settings)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        colour = terminal.colour_wanted(sys.stdout, os.environ)
        print(status.status_text(data, datetime.now(UTC), colour=colour))
    return EXIT_OK
