"""The command line: arguments -> settings -> logging -> the chosen command.

Exit codes: 0 success; 1 a poll or delivery failed; 2 invalid configuration, an
unusable state file, a state file or `server.listen` that another process holds (the
message names the key or the holder, never a secret, no traceback); 64 a command-line
usage error (sysexits' EX_USAGE), so that a service manager can tell a mistyped command
line from a broken configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import structlog

from watcher import __version__, completion, config, explain, logs, people_cli, report, terminal
from watcher.arguments import EXIT_USAGE as EXIT_USAGE
from watcher.arguments import parser
from watcher.people import Refused
from watcher.server import ListenError
from watcher.settings import Settings
from watcher.store import StoreError, Unreachable, lock
from watcher.web.actions import Missing

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2

# Commands whose standard output is what they print (`status --json | jq`): their log
# lines go to standard error. The daemon's go to standard output, as SPEC says.
PEOPLE = frozenset({"silence", "ack", "history", "retry"})  # people_cli
REPORTING = frozenset({"check", "explain", "status"}) | PEOPLE
# Commands that use the state and nothing else: they never call the API nor send, so
# its secrets and the channels' need not be in their environment (config.load offline).
STATE_ONLY = frozenset({"status"}) | PEOPLE


def _log_stream(args: argparse.Namespace) -> TextIO:
    return sys.stderr if args.command in REPORTING else sys.stdout


def _load(args: argparse.Namespace) -> config.Loaded:
    loaded = config.load_from(args.config, offline=args.command in STATE_ONLY)
    settings = loaded.settings
    logs.configure(
        fmt=args.log_format or settings.log.format,
        level=args.log_level or settings.log.level,
        stream=_log_stream(args),
    )
    logs.protect(*report.secrets(settings))
    return loaded


def _stop_before_start(_signum: int, _frame: object) -> None:
    # Until the event loop installs its own handlers there is nothing to drain.
    raise SystemExit(EXIT_OK)


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _stop_before_start)
    args = parser().parse_args(argv)
    logs.configure(
        fmt=args.log_format or "auto", level=args.log_level or "info", stream=_log_stream(args)
    )
    try:
        return _dispatch(args)
    except config.ConfigError as exc:
        print(f"watcher: invalid configuration\n{_indent(str(exc))}", file=sys.stderr)
        return EXIT_CONFIG
    except Unreachable as exc:
        print(f"watcher: {exc} (will be tried again when restarted)", file=sys.stderr)
        return EXIT_FAILED
    except (StoreError, ListenError) as exc:
        print(f"watcher: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:  # `watcher check | head`: the reader left, nothing to report
        sys.stderr.close()
        return EXIT_OK
    except Exception:
        # Through the redacting log pipeline, never as a bare traceback on stderr.
        structlog.get_logger("watcher").exception("unexpected_error")
        return EXIT_FAILED


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def _dispatch(args: argparse.Namespace) -> int:
    command: str = args.command
    if command == "demo":
        from watcher import demo

        return asyncio.run(demo.run(log_level=args.log_level or "warning"))
    if command == "simulate":
        return _simulate(args)
    if command == "completion":
        print(completion.script(parser(), args.shell), end="")
        return EXIT_OK
    loaded = _load(args)
    settings = loaded.settings
    if command == "check":
        print(report.summary(settings, report.provenance(loaded, os.environ)))
        if args.explain:
            print(explain.routing_table(settings))
        return EXIT_OK
    if command == "explain" and args.series is not None:
        print(explain.explain_series(settings, args.series or None))
        return EXIT_OK
    if command == "explain":
        print(
            explain.explain_job(settings, Path(args.job), args.from_status, args.streak, args.event)
        )
        return EXIT_OK
    if command == "status":
        data = report.status(settings)
        if args.json:
            print(json.dumps(data, indent=2))
        else:
            print(report.status_text(data, datetime.now(UTC), colour=_colour()))
        return EXIT_OK
    if command == "notify-test":
        return asyncio.run(_notify_test(settings, args.channel))
    if command == "migrate":
        return _migrate(settings, args.to)
    if command in PEOPLE:
        try:
            print(asyncio.run(people_cli.run(settings, args, colour=_colour())))
        except (Refused, Missing) as exc:
            print(f"watcher {command}: {exc.args[0]}", file=sys.stderr)
            return EXIT_CONFIG
        return EXIT_OK
    with _writer(settings, command, dry_run=args.dry_run):
        return asyncio.run(
            _daemon(
                settings,
                once=command == "once",
                dry_run=args.dry_run,
                path=args.config,
                explain=(args.log_level or settings.log.level) == "debug",
            )
        )


def _colour() -> bool:
    return terminal.colour_wanted(sys.stdout, os.environ)


def _migrate(settings: Settings, url: str) -> int:
    from watcher.store import migrate  # psycopg is loaded only for PostgreSQL

    if not url.startswith(("postgresql://", "postgres://")):
        raise StoreError("--to: not a PostgreSQL URL (postgresql://user:password@host/db)")
    if settings.state.url is not None:
        raise StoreError("migrate copies a SQLite state: state.path is the source, not state.url")
    logs.protect(*report.database_secrets(url))
    with lock.hold(settings.state.path, "watcher migrate"):
        copied = asyncio.run(migrate.migrate(settings.state.path, url))
    print(copied)
    print("next: set state.url to that database, remove state.path, start the replicas")
    return EXIT_OK


def _writer(
    settings: Settings, command: str, *, dry_run: bool
) -> contextlib.AbstractContextManager[None]:
    """The state file's lock, for the whole life of `run` or `once` (taken before the file
    is opened, so before its first migration). A dry run records nothing, so, like
    `status`, it reads beside a running daemon without the lock."""
    if dry_run or settings.state.url is not None:  # with PostgreSQL, leases decide
        return contextlib.nullcontext()
    return lock.hold(settings.state.path, f"watcher {command}")


async def _daemon(
    settings: Settings, *, once: bool, dry_run: bool, path: str | None, explain: bool
) -> int:
    """`run` or `once`; at log level debug, every rule's decision on every event is logged."""
    from watcher.app import Daemon, open_state
    from watcher.systemd import ServiceManager

    store = await open_state(settings, dry_run=dry_run)
    daemon = Daemon(
        settings, store=store, dry_run=dry_run, reload=lambda: config.load(path), explain=explain
    )
    if not settings.api.verify_tls:
        structlog.get_logger("watcher").warning(
            "tls_verification_disabled", hint="api.verify_tls is false"
        )
    if once:
        return await daemon.once()
    return await daemon.run(systemd=ServiceManager.from_env(os.environ))


async def _notify_test(settings: Settings, channel: str) -> int:
    import apprise

    from watcher.plugins import target

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


def _simulate(args: argparse.Namespace) -> int:
    from watcher.simulator.runner import serve

    def ready(port: int) -> None:
        print(
            f"simulator on http://127.0.0.1:{port}/pa/v1 (token: "
            f"http://127.0.0.1:{port}/authorisation/token)",
            flush=True,
        )

    async def main() -> None:
        task = asyncio.ensure_future(
            serve(
                "127.0.0.1",
                args.port,
                scenario=args.scenario,
                seed=args.seed,
                speed=args.speed,
                ready=ready,
            )
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(main())
    return EXIT_OK
