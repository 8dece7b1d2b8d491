"""`watcher check`: the configuration validated offline, and what it says (secrets masked)."""

from __future__ import annotations

import argparse
import os

from watcher import report
from watcher.arguments import EXIT_OK
from watcher.commands import configured


def run(args: argparse.Namespace) -> int:
    loaded = configured.load(args)
    print(report.summary(loaded.settings, report.provenance(loaded, os.environ)))
    if args.explain:
        from watcher import explain  # the rule engine's modules: only for the routing table

        print(explain.routing_table(loaded.settings))
    return EXIT_OK
