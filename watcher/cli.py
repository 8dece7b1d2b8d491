"""The command line: arguments -> the chosen command's module -> its exit code.

Only the grammar (watcher.arguments) is imported before the arguments are parsed: so
`--version` and `--help` answer without loading any command's code, and each command
loads only what it uses (watcher.commands).

Exit codes: 0 success; 1 a poll or delivery failed; 2 invalid configuration, an
unusable state file, a state file or `server.listen` that another process holds (the
message names the key or the holder, never a secret, no traceback); 64 a command-line
usage error (sysexits' EX_USAGE), so that a service manager can tell a mistyped command
line from a broken configuration.
"""

from __future__ import annotations

import argparse
import gc
import signal
import sys
from collections.abc import Sequence

from watcher import commands
from watcher.arguments import EXIT_CONFIG as EXIT_CONFIG
from watcher.arguments import EXIT_FAILED as EXIT_FAILED
from watcher.arguments import EXIT_OK as EXIT_OK
from watcher.arguments import EXIT_USAGE as EXIT_USAGE
from watcher.arguments import parser


def _stop_before_start(_signum: int, _frame: object) -> None:
    # Until the event loop installs its own handlers there is nothing to drain.
    raise SystemExit(EXIT_OK)


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _stop_before_start)
    args = parser().parse_args(argv)
    # Imported after parsing, which ends `--version` and `--help` before structlog loads.
    from watcher import logs

    logs.configure(
        fmt=args.log_format or "auto",
        level=args.log_level or "info",
        stream=commands.log_stream(args.command),
    )
    code = _run(args)
    # The process ends with this function. Left to the interpreter's finalization, the
    # cyclic collector would walk every object still alive (pydantic's validators,
    # apprise's plugins) several times over: a fifth of a second or more at the end of
    # `watcher check`. Frozen, they go with the process; atexit handlers still run and
    # the standard streams are still flushed.
    gc.freeze()
    return code


def _run(args: argparse.Namespace) -> int:
    try:
        return commands.run(args)
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:  # `watcher check | head`: the reader left, nothing to report
        sys.stderr.close()
        return EXIT_OK
    except Exception as exc:
        return _failed(exc)


def _failed(exc: Exception) -> int:
    """Says what stopped the command and returns its exit code. Each error's module is
    imported only once the errors before it are ruled out: a configuration error, the
    most common, costs neither the store's import nor the web server's (aiohttp)."""
    from watcher.config import ConfigError

    if isinstance(exc, ConfigError):
        print(f"watcher: invalid configuration\n{_indent(str(exc))}", file=sys.stderr)
        return EXIT_CONFIG
    from watcher.store import StoreError, Unreachable

    if isinstance(exc, Unreachable):
        print(f"watcher: {exc} (will be tried again when restarted)", file=sys.stderr)
        return EXIT_FAILED
    if isinstance(exc, StoreError):
        print(f"watcher: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from watcher.server import ListenError

    if isinstance(exc, ListenError):
        print(f"watcher: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    import structlog

    # Through the redacting log pipeline, never as a bare traceback on stderr.
    structlog.get_logger("watcher").exception("unexpected_error")
    return EXIT_FAILED


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())
