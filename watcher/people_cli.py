"""`watcher silence`, `ack`, `history` and `retry`: what people say back, from a shell.

They open the configured store beside a running daemon (SQLite: a short write in WAL
mode, without the daemon's lock; PostgreSQL: like any replica), go through the same
checked writes as the API (`web.actions`), and go by the wall clock. A silence or an
acknowledgement counts from the daemon's next delivery pass; a requeued alert goes
within its idle wake (30 s)."""

from __future__ import annotations

import argparse
import getpass
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from watcher import people, terminal
from watcher.logs import escape_controls
from watcher.people import Refused
from watcher.settings import Settings
from watcher.store import SqliteStore, Store
from watcher.web import Console, actions, data


def _author(given: str | None) -> str:
    if given:
        return given
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "cli"


@asynccontextmanager
async def _console(settings: Settings) -> AsyncIterator[Console]:
    if settings.state.url is not None:
        from watcher.store.postgres import PgStore  # psycopg only for PostgreSQL

        store: Store = await PgStore.open(settings.state.url.get_secret_value())
    else:
        store = SqliteStore(settings.state.path)
    try:
        yield Console(
            store=store,
            accounts=list(settings.accounts_resolved()),
            clock=lambda: datetime.now(UTC),
            token=None,
            shared=settings.state.url is not None,
            replica=settings.ha.replica,
            wake=lambda: None,
        )
    finally:
        await store.close()


async def run(settings: Settings, args: argparse.Namespace, *, colour: bool = False) -> str:
    """What the command prints (in colour if `colour`, terminal.colour_wanted); Refused
    or actions.Missing for what cannot be done."""
    paint = terminal.Paint(colour)
    async with _console(settings) as console:
        if args.command == "silence":
            return await _silence(console, args, paint)
        if args.command == "ack":
            return await _ack(console, args, paint)
        if args.command == "history":
            return await _history(console, args, paint)
        return await _retry(console, args)


async def _silence(console: Console, args: argparse.Namespace, paint: terminal.Paint) -> str:
    now = console.clock()
    if args.verb == "add":
        body = {
            "matchers": [
                dict(zip(("key", "value"), people.parse_matcher(m), strict=True))
                for m in args.match
            ],
            "starts_at": args.start,
            "ends_at": args.until,
            "duration": args.duration,
            "comment": args.comment,
            "author": _author(args.by),
        }
        return silence_lines([await actions.add_silence(console, body)], now, paint)
    if args.verb == "expire":
        return silence_lines([await actions.expire_silence(console, args.id)], now, paint)
    shown = await data.silences(console.store, now, everything=args.all)
    return json.dumps(shown, indent=2) if args.json else silence_lines(shown, now, paint)


async def _ack(console: Console, args: argparse.Namespace, paint: terminal.Paint) -> str:
    now = console.clock()
    if args.expire is not None:
        return ack_lines([await actions.expire_ack(console, args.expire)], now, paint)
    if args.list:
        shown = await data.acks(console.store)
        return json.dumps(shown, indent=2) if args.json else ack_lines(shown, now, paint)
    body = {
        "job": args.job,
        "template": args.template,
        "account": args.account,
        "comment": args.comment,
        "author": _author(args.by),
    }
    return ack_lines([await actions.add_ack(console, body)], now, paint)


async def _history(console: Console, args: argparse.Namespace, paint: terminal.Paint) -> str:
    now = console.clock()
    if args.limit < 1:
        raise Refused("--limit: must be 1 or more")
    shown = await data.alerts(
        console.store,
        actions.since("--since", args.since, now, assume_utc=True),
        channel=args.channel,
        state=args.state,
        limit=args.limit,
    )
    return json.dumps(shown, indent=2) if args.json else history_lines(shown, now, paint)


async def _retry(console: Console, args: argparse.Namespace) -> str:
    if args.given_up == bool(args.ids):
        raise Refused("retry: give alert IDs or --given-up, not both and not neither")
    if args.given_up:
        requeued = await console.store.requeue(None, console.clock())
        return f"requeued {len(requeued)} given-up alert(s)" + (
            f": {', '.join(map(str, requeued))}" if requeued else ""
        )
    for number in args.ids:
        await actions.retry(console, number)
    return f"requeued {', '.join(map(str, args.ids))}; the daemon sends them within 30 s"


# -- what a terminal shows: times in UTC with their age (terminal) ---------------------------


def silence_lines(shown: Sequence[dict[str, Any]], now: datetime, paint: terminal.Paint) -> str:
    if not shown:
        return "no silences"
    rows: list[list[terminal.Cell]] = [
        ["ID", "STATE", "FROM (UTC)", "UNTIL (UTC)", "ENDS", "BY", "MATCHERS / COMMENT"]
    ]
    for s in shown:
        until = (
            s["expired_at"] if s["expired_at"] and s["expired_at"] < s["ends_at"] else s["ends_at"]
        )
        matchers = " ".join(f"{m['key']}={m['value']}" for m in s["matchers"])
        rows.append(
            [
                str(s["id"]),
                (s["state"], "yellow" if s["state"] == "active" else ""),
                terminal.stamp(s["starts_at"]),
                terminal.stamp(until),
                terminal.ago(until, now),
                s["author"],
                f"{matchers}  # {s['comment']}",
            ]
        )
    return "\n".join(terminal.table(rows, paint))


def ack_lines(shown: Sequence[dict[str, Any]], now: datetime, paint: terminal.Paint) -> str:
    if not shown:
        return "no acknowledgements in force"
    rows: list[list[terminal.Cell]] = [
        ["ID", "ACCOUNT", "SUBJECT", "SINCE (UTC)", "AGO", "BY", "IN FORCE", "COMMENT"]
    ]
    for a in shown:
        subject = f"{a['job']} ({a['status']})" if a["job"] else a["template"]
        rows.append(
            [
                str(a["id"]),
                a["account"],
                subject,
                terminal.stamp(a["created_at"]),
                terminal.ago(a["created_at"], now),
                a["author"],
                "yes" if a["holds"] else "no",
                a["comment"],
            ]
        )
    return "\n".join(terminal.table(rows, paint))


_STATE_STYLE = {"sent": "green", "given_up": "red", "silenced": "dim", "acked": "dim"}


def history_lines(shown: Sequence[dict[str, Any]], now: datetime, paint: terminal.Paint) -> str:
    """An alert a line (newest first), each step of its life indented under it."""
    if not shown:
        return "no alerts in that span"
    lines = terminal.table(
        [["ID", "QUEUED (UTC)", "AGO", "CHANNEL", "RULE", "STATE", "TRIES", "ALERT"]]
        + [
            [
                str(a["id"]),
                terminal.stamp(a["queued_at"]),
                terminal.ago(a["queued_at"], now),
                a["channel"],
                a["rule"],
                (a["state"], _STATE_STYLE.get(a["state"], "")),
                str(a["attempts"]),
                a["title"],
            ]
            for a in shown
        ],
        paint,
    )
    out = [lines[0]]
    for line, alert in zip(lines[1:], shown, strict=True):
        out.append(line)
        for step in alert["steps"]:
            detail = f"  {escape_controls(step['detail'])}" if step["detail"] else ""
            out.append(paint(f"    {terminal.stamp(step['at'])}  {step['what']}{detail}", "dim"))
    return "\n".join(out)
