"""The people-facing half of the server: the JSON API under `/api/v1/` (`api`) and the
status page at `/` (`page`), both reading through `data` and writing only through the
store's methods for silences, acknowledgements and requeues."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web
from pydantic import SecretStr

from watcher.baseline import Thresholds
from watcher.store import SeriesKey, Store


def default_thresholds(_account: str, key: SeriesKey) -> Thresholds:
    """A series' thresholds when no rule is at hand: its metric's defaults."""
    return Thresholds.for_metric(key[3])


@dataclass(frozen=True, slots=True)
class Console:
    """What the API and the page are given by the daemon."""

    store: Store
    accounts: Sequence[str]
    clock: Callable[[], datetime]  # the daemon's (the API's) clock
    token: SecretStr | None  # server.api_token: writes need it; none, writes are refused
    shared: bool  # PostgreSQL with replicas: leaders come from the leases
    replica: str  # this replica's name
    wake: Callable[[], None]  # tell delivery that something changed (a requeue)
    # (account, series) -> the thresholds its rule judges it with, as configured now
    thresholds: Callable[[str, SeriesKey], Thresholds] = default_thresholds


def mount(app: web.Application, console: Console) -> None:
    """Add the API's and the page's routes to the server's application."""
    from watcher.web import api, page

    api.mount(app, console)
    page.mount(app, console)
