"""`watcher run` (the daemon, until SIGTERM or SIGINT) and `watcher once` (one cycle)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os

import structlog

from watcher import config
from watcher.app import Daemon, open_state
from watcher.commands import configured
from watcher.settings import Settings
from watcher.store import lock
from watcher.systemd import ServiceManager


def run(args: argparse.Namespace) -> int:
    settings = configured.load(args).settings
    with _writer(settings, args.command, dry_run=args.dry_run):
        return asyncio.run(
            _daemon(
                settings,
                once=args.command == "once",
                dry_run=args.dry_run,
                path=args.config,
                explain=(args.log_level or settings.log.level) == "debug",
            )
        )


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
