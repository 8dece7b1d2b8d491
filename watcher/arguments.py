"""The command line's grammar: every command, option and help text, and nothing that
runs one (watcher.cli does). `watcher completion` walks this parser to write the shell
completion scripts, so an option added here completes without further work.

It imports only what `--help` shows, so that `watcher --version` and `--help` answer
at once (tests/unit/test_start_up.py): no command's code.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from watcher import __version__
from watcher.vocabulary import ALERT_STATES, SILENCE_KEYS

SHELLS = ("bash", "zsh")  # those that `watcher completion` writes a script for
# The exit codes (watcher.cli says which failure gives which). 64 is sysexits' EX_USAGE:
# argparse's own 2 is the configuration error's code.
EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_USAGE = 0, 1, 2, 64

BEFORE = "also accepted after the command, which wins if given in both places"
AFTER = "as before the command; given in both places, the one after the command wins"


class _Parser(argparse.ArgumentParser):
    """argparse with EX_USAGE instead of its 2, which is the configuration error's code.

    Subparsers are made of this class too (add_subparsers defaults to the parent's
    type), so an error that a command's own parser finds exits 64 as well.
    """

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _global_options(parser: argparse.ArgumentParser, default: str | None, text: str) -> None:
    # After the command the default is SUPPRESS: the command's parser then sets these
    # only when they are given, so it overrides a value before the command, never
    # resets it.
    parser.add_argument("--log-format", choices=["json", "console"], default=default, help=text)
    parser.add_argument(
        "--log-level", choices=["debug", "info", "warning", "error"], default=default, help=text
    )


def _scenario(name: str) -> str:
    # Checked here rather than with choices= so that the simulator is imported only
    # when `simulate` runs, not by every command.
    from watcher.simulator.scenarios import SCENARIOS

    if name not in SCENARIOS:
        names = ", ".join(map(repr, sorted(SCENARIOS)))
        raise argparse.ArgumentTypeError(f"invalid choice: {name!r} (choose from {names})")
    return name


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be more than 0: {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    """watcher's whole command line: every command, its options and their help."""
    parser = _Parser(
        prog="watcher",
        description="Alerts on Eggplant Web Performance Analyzer jobs.",
        epilog="--log-format and --log-level are accepted before or after the command; "
        "given in both places, the one after the command wins.",
    )
    parser.add_argument("--version", action="version", version=f"watcher {__version__}")
    _global_options(parser, None, BEFORE)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    globals_after = _Parser(add_help=False)
    _global_options(globals_after, argparse.SUPPRESS, AFTER)
    common = _Parser(add_help=False, parents=[globals_after])
    common.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="configuration file (default: $WATCHER_CONFIG, "
        "./watcher.yaml, /etc/watcher/watcher.yaml)",
    )
    _configured_commands(sub, common)
    _standalone_commands(sub, globals_after)
    return parser


def _configured_commands(sub: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    for name, text in (
        ("run", "the daemon, until SIGTERM or SIGINT"),
        ("once", "one poll cycle, then delivery; for cron and CI"),
    ):
        cmd = sub.add_parser(name, parents=[common], help=text)
        cmd.add_argument(
            "--dry-run",
            action="store_true",
            help="render and log alerts; send nothing, record nothing",
        )
    check = sub.add_parser("check", parents=[common], help="validate the configuration, offline")
    check.add_argument("--explain", action="store_true", help="also print the routing table")
    why = sub.add_parser(
        "explain", parents=[common], help="which rules fire for one job change, and why"
    )
    what = why.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--job",
        metavar="FILE",
        help="a file holding one job record as JSON, as the API gives it (the object, "
        "or GET /jobs/{id}'s answer with its results envelope)",
    )
    what.add_argument(
        "--series",
        nargs="?",
        const="",
        metavar="TEMPLATE",
        help="the numbers behind regressed/improved: each series' baseline (of one template)",
    )
    why.add_argument(
        "--from", dest="from_status", default="new", help="the previous status (default: new)"
    )
    why.add_argument(
        "--event",
        default="transition",
        choices=["transition", "recovered"],
        help="the event to explain: the job's status change, or a recovery after failures "
        "(default: transition)",
    )
    why.add_argument(
        "--streak", type=int, default=1, help="failures in a row of the template, this one included"
    )
    test = sub.add_parser("notify-test", parents=[common], help="send a test message")
    test.add_argument("channel", help="a channel's name under channels: in the configuration")
    status = sub.add_parser("status", parents=[common], help="what the state store knows")
    status.add_argument("--json", action="store_true", help="as JSON, for scripts")
    _people_commands(sub, common)
    move = sub.add_parser(
        "migrate", parents=[common], help="copy the SQLite state into an empty PostgreSQL database"
    )
    move.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="the target database, postgresql://user:password@host:port/database",
    )


def _people_commands(sub: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    """silence, ack, history and retry (watcher.people_cli runs them)."""
    # Options go after the verb (`silence list -c FILE`): given before it too, the
    # verb's defaults would silently replace them.
    silence = sub.add_parser("silence", help="silences: add, list, expire")
    verbs = silence.add_subparsers(dest="verb", required=True, metavar="VERB")
    add = verbs.add_parser("add", parents=[common], help="silence the alerts that match")
    add.add_argument(
        "--match",
        action="append",
        required=True,
        metavar="KEY=GLOB",
        help=f"repeatable; keys: {', '.join(SILENCE_KEYS)}; a key twice matches either",
    )
    span = add.add_mutually_exclusive_group(required=True)
    span.add_argument("--for", dest="duration", metavar="DURATION", help="e.g. 90m, 4h, 2d")
    span.add_argument("--until", metavar="TIME", help="ISO 8601 with offset")
    add.add_argument("--start", metavar="TIME", help="ISO 8601 with offset (default: now)")
    add.add_argument("--comment", required=True, help="why: shown wherever the silence is")
    add.add_argument("--by", help="author (default: your user name)")
    listing = verbs.add_parser("list", parents=[common], help="active and coming silences")
    listing.add_argument("--all", action="store_true", help="those that ended too")
    listing.add_argument("--json", action="store_true", help="as JSON, for scripts")
    expire = verbs.add_parser("expire", parents=[common], help="end a silence now")
    expire.add_argument("id", type=int, help="the silence's number, as silence list shows it")

    ack = sub.add_parser(
        "ack", parents=[common], help="stop reminders for a job or template until it moves on"
    )
    what = ack.add_mutually_exclusive_group(required=True)
    what.add_argument("--job", metavar="SREF", help="e.g. jobs/123")
    what.add_argument("--template", metavar="TEMPLATE", help="e.g. jobTemplates/6789")
    what.add_argument("--list", action="store_true", help="acknowledgements in force")
    what.add_argument("--expire", type=int, metavar="ID", help="withdraw an acknowledgement")
    ack.add_argument("--account", help="the account (default: the only one configured)")
    ack.add_argument("--comment", default="", help="why: shown with the acknowledgement")
    ack.add_argument("--by", help="author (default: your user name)")
    ack.add_argument("--json", action="store_true", help="with --list: as JSON, for scripts")

    history = sub.add_parser("history", parents=[common], help="every alert's life")
    history.add_argument("--since", default="1d", help="a duration back (1d) or an ISO time")
    history.add_argument("--channel", help="only the alerts for this channel (its name)")
    history.add_argument("--state", help=", ".join(ALERT_STATES))
    history.add_argument(
        "--limit", type=int, default=200, help="at most this many, newest first (default: 200)"
    )
    history.add_argument("--json", action="store_true", help="as JSON, for scripts")

    retry = sub.add_parser("retry", parents=[common], help="requeue given-up alerts")
    retry.add_argument(
        "ids", type=int, nargs="*", metavar="ID", help="the alerts' numbers, as history shows them"
    )
    retry.add_argument("--given-up", action="store_true", help="every given-up alert")


def _standalone_commands(sub: argparse._SubParsersAction[_Parser], globals_after: _Parser) -> None:
    sub.add_parser(
        "demo",
        parents=[globals_after],
        help="the daemon against the built-in simulator, for a minute",
    )
    shell = sub.add_parser(
        "completion",
        help="print the shell completion script: source <(watcher completion bash)",
    )
    shell.add_argument("shell", choices=SHELLS, help="the shell that will read it")
    sim = sub.add_parser(
        "simulate", parents=[globals_after], help="the simulated API alone, on loopback"
    )
    sim.add_argument(
        "--port", type=int, default=8080, help="the port on 127.0.0.1 (default: 8080; 0: any free)"
    )
    sim.add_argument(
        "--scenario",
        type=_scenario,
        default="steady",
        metavar="NAME",
        help="demo, idle, perf or steady (default)",
    )
    sim.add_argument(
        "--seed",
        type=int,
        default=0,
        help="the scenario's random seed: a seed plays the same way each time (default: 0)",
    )
    sim.add_argument(
        "--speed",
        type=_speed,
        default=1.0,
        help="the scenario plays this many times faster than real time (default: 1.0)",
    )
