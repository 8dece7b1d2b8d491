"""The commands, one module each, imported only when their command runs: a command
loads only the code it uses (`watcher check` neither the poll cycle nor the HTTP
client). Each module's `run(args)` does its command and returns the exit code
(watcher.cli maps the errors it raises).

This module imports nothing of watcher's: the entry point reads it for every command.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import TextIO

PEOPLE = frozenset({"silence", "ack", "history", "retry"})
# Commands whose standard output is what they print (`status --json | jq`): their log
# lines go to standard error. The daemon's go to standard output, as SPEC says.
REPORTING = frozenset({"check", "explain", "status"}) | PEOPLE
# Commands that use the state and nothing else: they never call the API nor send, so
# its secrets and the channels' need not be in their environment (config.load offline).
STATE_ONLY = frozenset({"status"}) | PEOPLE

# command -> the module of this package that runs it
MODULES = {
    "run": "daemon",
    "once": "daemon",
    "check": "check",
    "explain": "explain",
    "notify-test": "notify_test",
    "status": "status",
    **dict.fromkeys(PEOPLE, "people"),
    "migrate": "migrate",
    "demo": "demo",
    "completion": "completion",
    "simulate": "simulate",
}


def log_stream(command: str) -> TextIO:
    return sys.stderr if command in REPORTING else sys.stdout


def run(args: argparse.Namespace) -> int:
    """Run the command that `args` name; its exit code."""
    module = importlib.import_module(f"{__name__}.{MODULES[args.command]}")
    command: Callable[[argparse.Namespace], int] = module.run
    return command(args)
