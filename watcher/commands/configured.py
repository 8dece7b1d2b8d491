"""What every command that reads the configuration does first."""

from __future__ import annotations

import argparse

from watcher import config, logs, report
from watcher.commands import STATE_ONLY, log_stream


def load(args: argparse.Namespace) -> config.Loaded:
    """The configuration that `args` name, validated (ConfigError if it is not); then
    logging as it says, with every secret it holds redacted from the log lines."""
    loaded = config.load_from(args.config, offline=args.command in STATE_ONLY)
    settings = loaded.settings
    logs.configure(
        fmt=args.log_format or settings.log.format,
        level=args.log_level or settings.log.level,
        stream=log_stream(args.command),
    )
    logs.protect(*report.secrets(settings))
    return loaded
