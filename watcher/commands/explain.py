"""`watcher explain`: which rules fire for one job change, or the numbers behind a series."""

from __future__ import annotations

import argparse
from pathlib import Path

from watcher import explain
from watcher.arguments import EXIT_OK
from watcher.commands import configured


def run(args: argparse.Namespace) -> int:
    settings = configured.load(args).settings
    if args.series is not None:
        print(explain.explain_series(settings, args.series or None))
    else:
        job = Path(args.job)
        print(explain.explain_job(settings, job, args.from_status, args.streak, args.event))
    return EXIT_OK
