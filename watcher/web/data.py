"""What the API and the status page show, read from the store as plain dicts of JSON
values (the API serves them as they are; the page's templates lay them out). Nothing
here writes, and no secret is in any of it: channel URLs are never read, only names."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from watcher import chart, people, pictures
from watcher.baseline import Thresholds
from watcher.models import Alert, EventKind
from watcher.people import AlertRecord
from watcher.store import SeriesKey, SeriesRow, Store

RUNS_SHOWN = 20  # runs of each template, newest last
DAY = timedelta(days=1)
DAY_LIMIT = 2000  # alerts of the last day looked through for each template's latest
ALERTS_SHOWN = 500  # alerts listed, newest first
SERIES_SHOWN = 50  # series listed, updated last first: each is a chart on the page


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def describe(alert: Alert) -> str:
    """A short line about what an alert says, from its own fields (never a configured
    template: a page shows hundreds, and renders none of them)."""
    fields = people.alert_fields(alert)
    subject = fields.get("name") or alert.subject
    if alert.kind is EventKind.TRANSITION:
        return f"{subject} {alert.status}"
    if alert.kind is EventKind.STUCK:
        return f"{subject} stuck {alert.status}"
    if alert.kind is EventKind.MISSED:
        return f"{subject} did not run"
    return f"{subject} {alert.kind}"


def record(found: AlertRecord) -> dict[str, Any]:
    alert = found.alert
    return {
        "id": found.id,
        "title": describe(alert),
        "account": alert.account,
        "rule": alert.rule,
        "channel": alert.channel,
        "severity": str(alert.severity),
        "kind": str(alert.kind),
        "job": alert.sref or None,
        "template": alert.template or None,
        "status": alert.status or None,
        "state": found.state,
        "queued_at": iso(found.queued_at),
        "done_at": iso(found.done_at),
        "attempts": found.attempts,
        "last_error": found.last_error or None,
        "steps": [
            {"at": iso(step.at), "what": step.what, "detail": step.detail or None}
            for step in found.steps
        ],
    }


async def alerts(
    store: Store,
    since: datetime,
    *,
    channel: str | None = None,
    state: str | None = None,
    limit: int = ALERTS_SHOWN,
) -> list[dict[str, Any]]:
    """Alerts queued since `since`, newest first, each with its steps."""
    found = await store.alert_records(since, channel=channel, state=state, limit=limit)
    return [record(each) for each in found]


async def accounts(
    store: Store, names: Sequence[str], *, shared: bool, replica: str
) -> list[dict[str, Any]]:
    """Each account with its leader (with PostgreSQL: the lease's holder while it holds;
    alone on SQLite: this process) and the end of its last successful poll window."""
    leaders = {lead.account: lead for lead in await store.leaders()} if shared else {}
    shown: list[dict[str, Any]] = []
    for name in names:
        lead = leaders.get(name)
        holder = replica if not shared else lead.holder if lead and lead.expires_in > 0 else None
        shown.append(
            {
                "name": name,
                "leader": holder.split("/")[0] if holder else None,
                "last_poll": iso(await store.scoped(name).watermark()),
            }
        )
    return shown


async def day_of_alerts(store: Store, now: datetime) -> list[AlertRecord]:
    """The last day's alerts, newest first, as many as `templates` looks through."""
    return await store.alert_records(now - DAY, limit=DAY_LIMIT)


async def templates(
    store: Store,
    names: Sequence[str],
    now: datetime,
    recent: Sequence[AlertRecord] | None = None,
    per_template: int = RUNS_SHOWN,
) -> list[dict[str, Any]]:
    """Each watched template of each account: its recent runs (oldest first), its
    failure streak, and the latest alert about it in the last day (from `recent`, the
    `day_of_alerts` if the caller has read them already)."""
    if recent is None:
        recent = await day_of_alerts(store, now)
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for found in reversed(recent):
        if found.alert.template:
            latest[(found.alert.account, found.alert.template)] = record(found)
    shown: list[dict[str, Any]] = []
    for account in names:
        scoped = store.scoped(account)
        runs = await scoped.runs(per_template)
        for template, state in sorted((await scoped.templates()).items()):
            shown.append(
                {
                    "account": account,
                    "template": template,
                    "name": state.last_name,
                    "streak": state.streak,
                    "last_start": iso(state.last_start),
                    "runs": [
                        {
                            "job": run.sref,
                            "name": run.name,
                            "status": run.status,
                            "started_at": iso(run.started_at),
                        }
                        for run in runs.get(template, [])
                    ],
                    "last_alert": latest.get((account, template)),
                }
            )
    return shown


async def silences(
    store: Store, now: datetime, *, everything: bool = False
) -> list[dict[str, Any]]:
    """Silences active or to come (with `everything`, those that ended too)."""
    found = await store.silences(None if everything else now)
    return [silence.report(now) for silence in found]


async def acks(store: Store, *, everything: bool = False) -> list[dict[str, Any]]:
    """Acknowledgements in force (with `everything`, those over too)."""
    return [ack.report() for ack in await store.acks() if everything or ack.holds]


async def series(
    store: Store,
    names: Sequence[str],
    thresholds: Callable[[str, SeriesKey], Thresholds],
    *,
    limit: int = SERIES_SHOWN,
    charts: bool = False,
) -> list[dict[str, Any]]:
    """The series updated last (of every account, at most `limit`), newest first: the
    state of each (learning, ok, regressed; unreadable if its stored state is), its
    latest value, baseline median and limit, and its recent values, oldest first; with
    `charts`, its chart as an SVG `data:` URI (an image: the page's CSP allows it)."""
    found = [
        (account, row)
        for account in names
        for row in await store.scoped(account).latest_series(limit)
    ]
    found.sort(key=lambda pair: pair[1].updated_at, reverse=True)
    return [_series(account, row, thresholds, charts) for account, row in found[:limit]]


def _series(
    account: str,
    row: SeriesRow,
    thresholds: Callable[[str, SeriesKey], Thresholds],
    with_chart: bool,
) -> dict[str, Any]:
    template, page, browser, metric = row.key
    shown: dict[str, Any] = {
        "account": account,
        "template": template,
        "page_url": page,
        "browser": browser,
        "metric": metric,
        "unit": pictures.unit(metric),
        "updated_at": iso(row.updated_at),
        "regressions": row.regressions,
    }
    try:
        standing: pictures.Standing | None = pictures.standing(row, thresholds(account, row.key))
    except ValueError:  # the cycle logs it when it reads the series; here it is said so
        standing = None
    shown.update(
        state=standing.state if standing else "unreadable",
        latest=standing.latest if standing else None,
        median=standing.median if standing else None,
        limit=standing.limit if standing else None,
        baseline_runs=standing.runs if standing else 0,
        min_runs=standing.needed if standing else None,
        recent=list(standing.recent) if standing else [],
    )
    if with_chart:
        svg = chart.svg(standing.series).encode() if standing else None
        shown["chart"] = (
            f"data:image/svg+xml;base64,{base64.b64encode(svg).decode()}" if svg else None
        )
    return shown
