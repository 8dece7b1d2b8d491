"""What `watcher check` and `watcher status` print, with every secret masked.

Reads settings and the state file; never writes either (status opens the file
read-only and does not create it).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

from watcher import regress, render, terminal
from watcher.config import Loaded
from watcher.logs import MASK, Redactor, escape_controls, hide_arguments, url_secrets
from watcher.models import FAILURE_STATUSES
from watcher.provenance import origins
from watcher.settings import ApiSettings, Rule, Settings
from watcher.store import SqliteStore, Store, StoreError

# libpq's URL: user info ends at the first "@" before any "/"; a password may also be a
# query parameter (any connection keyword may).
_DATABASE_PASSWORD = re.compile(r"(?P<head>^[^:/?#]+://[^:@/]*:)(?P<password>[^@/]*)(?=@)")
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:ssl)?password=)(?P<password>[^&#]*)", re.I)


def database_secrets(url: str) -> set[str]:
    """The passwords inside a PostgreSQL URL, as written and URL-decoded."""
    found = {m["password"] for m in _DATABASE_PASSWORD.finditer(url)}
    found |= {m["password"] for m in _QUERY_PASSWORD.finditer(url)}
    return {form for secret in found for form in (secret, unquote(secret), quote(secret, safe=""))}


def masked_database_url(url: str) -> str:
    """A PostgreSQL URL with its passwords masked: `postgresql://watcher:***@db/watcher`."""
    masked = _DATABASE_PASSWORD.sub(rf"\g<head>{MASK}", url)
    return _QUERY_PASSWORD.sub(rf"\g<head>{MASK}", masked)


def secrets(settings: Settings) -> list[str]:
    """Every configured value that must never be printed or logged: each account's client
    secret and token (from files too), the database password, the API's token, channels'
    credentials."""
    found: list[str] = []
    for api in settings.accounts_resolved().values():
        for secret in (api.client_secret, api.access_token):
            if secret is not None:
                found.append(secret.get_secret_value())
    if settings.state.url is not None:
        found.extend(database_secrets(settings.state.url.get_secret_value()))
    if settings.server.api_token is not None:
        found.append(settings.server.api_token.get_secret_value())
    for urls in settings.channels.values():
        for url in urls:
            found.extend(url_secrets(url))
    return found


def masked_url(url: str, redactor: Redactor | None = None) -> str:
    """apprise's private form of the URL, with what apprise leaves readable masked too:
    the values of plugin arguments (custom headers, `+Authorization=...`) and any of the
    URL's secrets (`redactor`, if given, must know them)."""
    from watcher.plugins import target  # deferred: apprise is only needed here

    urls = target(url).urls(privacy=True)
    if not urls:
        return "(invalid URL)"
    return (redactor or Redactor(url_secrets(url))).known(hide_arguments(urls[0]))


def matchers(rule: Rule) -> str:
    """A rule's matchers as `key=value` words, in the order they are written in SPEC."""
    m = rule.match
    parts = [f"event={m.event.value}"]
    for name in type(m).model_fields:
        if name == "event" or name not in m.model_fields_set:
            continue
        value = getattr(m, name)
        shown = (
            "|".join(value)
            if isinstance(value, list)
            else f"{value:g}s"
            if isinstance(value, float)
            else str(value)
        )
        if name == "schedule":
            shown = f'"{value}" timezone={m.timezone}'  # the zone shown even when UTC by default
        elif name == "timezone":
            continue
        parts.append(f"{name.rstrip('_')}={shown}")
    return " ".join(parts)


def _account(name: str, api: ApiSettings) -> str:
    auth = "fixed access token" if api.access_token else f"client credentials ({api.client_id})"
    return f"  {name}: {api.base_url} realm={api.realm} auth={auth} tls_verify={api.verify_tls}"


def state_label(settings: Settings) -> str:
    """Where the state is, for a log line: the SQLite path or the masked URL."""
    url = settings.state.url
    return str(settings.state.path) if url is None else masked_database_url(url.get_secret_value())


def _store(settings: Settings) -> list[str]:
    state, ha = settings.state, settings.ha
    if state.url is None:
        lines = [f"state: SQLite {state.path}"]
        if "ha" in settings.model_fields_set:
            lines.append("ha: ignored with SQLite (one process; it applies with state.url)")
        return lines
    return [
        f"state: PostgreSQL {masked_database_url(state.url.get_secret_value())}",
        f"ha: replica {ha.replica}, lease {ha.lease:g}s",
    ]


_CHOSEN = {
    "-c": "given with -c",
    "WATCHER_CONFIG": "named by WATCHER_CONFIG",
    "default": "the first default path that exists",
}


def provenance(loaded: Loaded, env: Mapping[str, str]) -> list[str]:
    """Which file was read, and where each secret came from (never the secret)."""
    where = f"file: {loaded.path.resolve()} ({_CHOSEN[loaded.chosen_by]})"
    found = origins(loaded, env)
    return [
        where,
        "secrets (where each came from; values are never shown):",
        *(f"  {o.key}: {o.source}" for o in found),
        *([] if found else ["  (none)"]),
    ]


def summary(settings: Settings, provenance: Sequence[str] = ()) -> str:
    poll = settings.poll
    lines = [
        "configuration is valid",
        *provenance[:1],
        "accounts:",
        *(_account(name, api) for name, api in settings.accounts_resolved().items()),
        f"poll: every {poll.interval:g}s, first poll looks back {poll.lookback:g}s, "
        f"overlap {poll.overlap:g}s, catch-up at most {poll.max_catch_up:g}s, "
        f"alert on first run: {poll.alert_on_first_run}",
        *_store(settings),
        "channels:",
    ]
    redactor = Redactor(secrets(settings))  # one for all channels: one regex, not one each
    for name, urls in sorted(settings.channels.items()):
        lines.extend(f"  {name}: {masked_url(url, redactor)}" for url in urls)
    if not settings.channels:
        lines.append("  (none: alerts are recorded but not sent)")
    lines.append("rules:")
    for rule in settings.rules:
        options = [
            o
            for o, on in (
                ("stop", rule.stop),
                ("test runs", rule.include_test_runs),
                ("drop if resolved", rule.drop_if_resolved),
            )
            if on
        ]
        if rule.repeat_after:
            options.append(f"repeat after {rule.repeat_after:g}s")
        extra = f" ({', '.join(options)})" if options else ""
        lines.append(
            f"  {rule.name}: {matchers(rule)} -> {', '.join(rule.notify)} "
            f"[{rule.severity.value}]{extra}"
        )
    if not settings.rules:
        lines.append("  (none: no event will alert)")
    delivery = settings.delivery
    lines.append(
        f"delivery: group_wait {delivery.group_wait:g}s, retry {delivery.retry_initial:g}s"
        f"..{delivery.retry_max:g}s, give up after {delivery.give_up_after:g}s"
    )
    for window in delivery.quiet_hours:
        lines.append(
            f"  quiet {','.join(window.days)} {window.start}-{window.end} {window.timezone}"
            f" holds {'|'.join(window.severities)}"
        )
    lines += provenance[1:]
    return "\n".join(map(escape_controls, lines))


async def _outbox(store: Store, state: str) -> list[dict[str, object]]:
    items = await store.outbox_items(state)
    return [{**item, "title": render.title(alert)} for alert, item in items]


def status(settings: Settings) -> dict[str, Any]:
    """What the state store knows; raises StoreError if it is not usable."""
    accounts = list(settings.accounts_resolved())
    if settings.state.url is not None:
        return asyncio.run(_database_status(settings.state.url.get_secret_value(), accounts))
    path = settings.state.path
    # Empty: made by a daemon that has not written its schema yet (SQLite, too, takes an
    # empty file for a new database).
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return {"state": str(path), "exists": False}
    store = SqliteStore(path, readonly=True)
    try:
        return {"state": str(path), "exists": True, **asyncio.run(_read_status(store, accounts))}
    except sqlite3.Error as exc:
        raise StoreError(f"state.path: {path} is not a usable state file: {exc}") from None


async def _database_status(url: str, accounts: list[str]) -> dict[str, Any]:
    from watcher.store.postgres import PgStore  # psycopg is loaded only for PostgreSQL

    store = await PgStore.open(url)
    return {
        "state": masked_database_url(url),
        "exists": True,
        **await _read_status(store, accounts),
    }


async def _read_status(store: Store, accounts: list[str]) -> dict[str, Any]:
    try:
        leaders = {leader.account: leader for leader in await store.leaders()}
        each = []
        for name in accounts:
            watermark = await store.scoped(name).watermark()
            leader = leaders.get(name)
            each.append(
                {
                    "name": name,
                    "last_poll": watermark.isoformat() if watermark else None,
                    "leader": leader.holder if leader and leader.expires_in > 0 else None,
                }
            )
        known, followed = await store.known_jobs()
        counts = await store.outbox_counts()
        return {
            "last_poll": each[0]["last_poll"],
            "accounts": each,
            "jobs_known": known,
            "jobs_followed": followed,
            "recent_events": await store.recent_events(),
            "outbox": {"pending": counts.pending, "sent": counts.sent, "given_up": counts.given_up},
            "pending": await _outbox(store, "pending"),
            "given_up": await _outbox(store, "given_up"),
            "reruns": await _reruns(store, accounts),
        }
    finally:
        await store.close()


async def _reruns(store: Store, accounts: list[str]) -> list[dict[str, Any]]:
    """The flake filter's reruns of the day before each account's last poll, and every
    one still open."""
    found = []
    for name in accounts:
        scoped = store.scoped(name)
        since = (await scoped.watermark() or datetime.now(UTC)) - timedelta(days=1)
        found += [(name, r) for r in await scoped.reruns(since)]
    return [
        {
            "account": name,
            "failed": r.sref,
            "template": r.failed.template,
            "state": r.state,
            "rerun": r.rerun or None,
            "rerun_status": r.rerun_status or None,
            "due_at": r.due_at.isoformat(),
            "attempts": r.attempts,
            "last_error": r.last_error or None,
        }
        for name, r in found
    ]


def _rerun_line(r: dict[str, Any], now: datetime) -> str:
    what = {
        "due": f"due {terminal.ago(r['due_at'], now)}",
        "starting": "start requested, answer not known yet",
    }.get(r["state"], r["state"])
    if r["rerun"]:
        what += f": {r['rerun']} {r['rerun_status'] or ''}".rstrip()
    if r["last_error"] and r["state"] in ("due", "starting", "released"):
        what += f" ({r['last_error']})"
    return f"  {r['failed']} ({r['template']}) {what}"


def _account_lines(data: dict[str, Any], now: datetime) -> list[str]:
    """A line per account when there are several or replicas share the state."""
    accounts, shared = data.get("accounts", []), data.get("shared", False)
    if len(accounts) < 2 and not shared:
        return []
    return [
        f"  account {a['name']}: last poll {terminal.when(a['last_poll'], now)}"
        + (f", polled by {a['leader'] or 'no replica now'}" if shared else "")
        for a in accounts
    ]


def status_text(data: dict[str, Any], now: datetime, *, colour: bool = False) -> str:
    """The status for a terminal: times in one format (UTC) with their age, events and
    alerts in aligned columns, colour only if `colour`. What the API named (job names in
    titles, srefs) is printed with control and bidi characters escaped."""
    paint = terminal.Paint(colour)
    return "\n".join(_status_lines(data, now, paint))


def _status_lines(data: dict[str, Any], now: datetime, paint: terminal.Paint) -> list[str]:
    if not data["exists"]:
        return [escape_controls(f"no state yet at {data['state']} (the daemon has not polled)")]
    outbox = data["outbox"]
    given_up = f"{outbox['given_up']} given up"
    last = terminal.when(data["last_poll"], now)
    lines = [
        escape_controls(f"state: {data['state']}"),
        f"last successful poll: {paint(last, 'yellow') if data['last_poll'] is None else last}",
        *map(escape_controls, _account_lines(data, now)),
        f"jobs known: {data['jobs_known']}, being followed: {data['jobs_followed']}",
        f"outbox: {outbox['pending']} pending, {outbox['sent']} sent, "
        + (paint(given_up, "red") if outbox["given_up"] else given_up),
        "recent events:",
    ]
    lines += _events_table(data, now, paint) or ["  (none)"]
    if data.get("reruns"):
        lines.append("reruns (flake filter):")
        lines += [escape_controls(_rerun_line(r, now)) for r in data["reruns"]]
    for label in ("pending", "given_up"):
        if data[label]:
            lines.append(f"{label.replace('_', ' ')}:")
            lines += _alerts_table(data[label], now, paint, "red" if label == "given_up" else "")
    return lines


def _events_table(data: dict[str, Any], now: datetime, paint: terminal.Paint) -> list[str]:
    events = data["recent_events"]
    if not events:
        return []
    several = len(data.get("accounts", [])) > 1
    rows: list[list[terminal.Cell]] = [
        ["WHEN (UTC)", "AGO", *(["ACCOUNT"] if several else []), "SUBJECT", "EVENT"]
    ]
    for e in events:
        rows.append(
            [
                terminal.stamp(e["at"]),
                terminal.ago(e["at"], now),
                *([e.get("account", "")] if several else []),
                e["sref"] or e.get("template", ""),
                event_text(e),
            ]
        )
    return terminal.table(rows, paint, indent="  ")


_GOOD, _BAD, _NOTE = "green", "red", "yellow"


def event_text(e: dict[str, Any]) -> tuple[str, str]:
    """What an event was, in words, and its colour: `running -> failed`, `stuck in running
    for 3h`, `missed: no start for 26h`, `regressed: onLoad of https://... (chrome)`."""
    kind, lasted = e["kind"], e.get("lasted")
    held = f" for {terminal.duration(lasted)}" if lasted is not None else ""
    if kind == "stuck":
        return f"stuck in {e['from']}{held}", _NOTE
    if kind == "missed":
        return f"missed: no start{held}", _NOTE
    if kind == "recovered":
        return f"recovered: {e['from']} -> {e['to']}", _GOOD
    if kind == "flaky":
        return f"flaky: {e['from']}, its rerun {e['to']}", ""
    if kind in ("regressed", "improved"):
        series = regress.series_of(e["to"])
        what = f"{series[3]} of {series[1]} ({series[2]})" if series else e["to"]
        return f"{kind}: {what}", _NOTE if kind == "regressed" else _GOOD
    colour = _BAD if e["to"] in FAILURE_STATUSES else _GOOD if e["to"] == "completed" else ""
    return f"{e['from']} -> {e['to']}", colour


def _alerts_table(
    items: list[dict[str, Any]], now: datetime, paint: terminal.Paint, style: str
) -> list[str]:
    rows: list[list[terminal.Cell]] = [
        ["ID", "QUEUED", "CHANNEL", "RULE", "TRIES", "LAST ERROR", "ALERT"]
    ]
    for i in items:
        rows.append(
            [
                (f"#{i['id']}", style),
                terminal.ago(i.get("created_at"), now),
                i["channel"],
                i["rule"],
                str(i["attempts"]),
                i["last_error"] or "not tried yet",
                i["title"],
            ]
        )
    return terminal.table(rows, paint, indent="  ")
