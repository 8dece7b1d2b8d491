"""`watcher check`: the configuration validated offline, and what it says (secrets masked).

Its rules' templates are tried in the render worker, a second Python process
(watcher.render_worker). That child is started first, before this process imports
what validation needs, so that the two start-ups overlap instead of adding up; hence
the imports inside `run`.
"""

from __future__ import annotations

import argparse
import os

from watcher import render_worker
from watcher.arguments import EXIT_OK


def run(args: argparse.Namespace) -> int:
    render_worker.shared().start()
    from watcher import report
    from watcher.commands import configured

    loaded = configured.load(args)
    print(report.summary(loaded.settings, report.provenance(loaded, os.environ)))
    if args.explain:
        from watcher import explain  # the rule engine's modules: only for the routing table

        print(explain.routing_table(loaded.settings))
    return EXIT_OK
