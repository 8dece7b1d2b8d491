"""`watcher completion SHELL`: the shell's completion script, written from the parser."""

from __future__ import annotations

import argparse

from watcher import completion
from watcher.arguments import EXIT_OK, parser


def run(args: argparse.Namespace) -> int:
    print(completion.script(parser(), args.shell), end="")
    return EXIT_OK
