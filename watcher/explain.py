"""`watcher check --explain` and `watcher explain`: the routing table, and for one job
change, which rules fire, which do not and why (the reason enum), with the messages
they would send. Offline: sends nothing, reads no state.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

from watcher import baseline, cycle, files, logs, payload, regress, render, report, rules
from watcher.config import ConfigError
from watcher.models import Event, EventKind
from watcher.settings import Settings
from watcher.store import SeriesRow, SqliteStore, Store


def routing_table(settings: Settings) -> str:
    rows = [("#", "rule", "matchers", "channels", "severity", "stop")]
    for index, rule in enumerate(settings.rules, 1):
        rows.append(
            (
                str(index),
                rule.name,
                report.matchers(rule),
                ", ".join(rule.notify),
                rule.severity.value,
                "stop" if rule.stop else "",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["routing (rules are tried in order; a matching rule with stop ends the search):"]
    lines += [
        "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return "\n".join(lines)


MAX_JOB_BYTES = files.MIB  # one job record, as the API gives it, is a few hundred bytes


def explain_job(
    settings: Settings, job_file: Path, from_status: str, streak: int, kind: str
) -> str:
    """What the rules would do with one job record (the API's JSON) and a previous status."""
    try:
        document = json.loads(files.read_text(job_file, MAX_JOB_BYTES))
    except files.FileProblem as exc:
        raise ConfigError([f"--job: cannot read {job_file}: {exc}"]) from None
    except (ValueError, RecursionError):
        raise ConfigError([f"--job: {job_file} is not JSON"]) from None
    record = document.get("results", document) if isinstance(document, dict) else document
    job = payload.parse_job(record, str(job_file))
    if job is None:
        raise ConfigError([f"--job: {job_file} is not a usable job record (see the log)"])
    event = Event(
        kind=EventKind(kind),
        job=job,
        from_status=from_status,
        to_status=job.status,
        at=job.updated_at or datetime.now(UTC),
        streak=streak,
    )
    lines = [f"{kind} of {job.sref} ({job.name}): {from_status} -> {job.status}"]
    fired = []
    for decision in rules.evaluate(event, settings.rules):
        mark = "FIRES" if decision.fires else "no"
        lines.append(f"  {decision.rule.name}: {mark} ({decision.reason.value})")
        if decision.fires:
            fired.append(decision.rule)
    looks = settings.looks()
    for queued in cycle.alerts_for(event, fired):
        alert = render.finish(queued, portal_pattern=looks.portal(queued.account))
        lines += [
            f"-> {alert.channel} [{alert.severity.value}] {alert.title}",
            *(f"     {line}" for line in alert.body.splitlines()),
        ]
    if not fired:
        lines.append("-> no alert")
    # Names and texts are the API's: no control or bidi character reaches the terminal.
    return "\n".join(map(logs.escape_controls, lines))


def explain_series(settings: Settings, template: str | None) -> str:
    """The numbers behind each series' verdicts (of one template, or all): its baseline's
    median, MAD and limit, whether it is regressed, and its recent values; read from the
    store, offline. Thresholds are those of the first rule that takes the template."""
    return asyncio.run(series_report(settings, template))


async def series_report(settings: Settings, template: str | None) -> str:
    """`explain_series` within a running event loop."""
    found = await _series(settings, template)
    if not found:
        return "no series recorded" + (f" for {template}" if template else "")
    lines: list[str] = []
    for account, row in found:
        lines += _series_lines(settings, account, row)
    return "\n".join(map(logs.escape_controls, lines))


async def _series(settings: Settings, template: str | None) -> list[tuple[str, SeriesRow]]:
    store: Store
    if settings.state.url is not None:
        from watcher.store.postgres import PgStore  # psycopg only for PostgreSQL

        store = await PgStore.open(settings.state.url.get_secret_value())
    elif not settings.state.path.exists():
        return []
    else:
        store = SqliteStore(settings.state.path, readonly=True)
    try:
        return [
            (account, row)
            for account in settings.accounts_resolved()
            for row in await store.scoped(account).all_series(template)
        ]
    finally:
        await store.close()


def _series_lines(settings: Settings, account: str, row: SeriesRow) -> list[str]:
    template, page, browser, metric = row.key
    thresholds = regress.series_thresholds(rules.rules_for(settings.rules, account), row.key)
    when = f"{row.updated_at:%Y-%m-%d %H:%M}Z"
    head = f"{template} {page} [{browser}] {metric} ({account}, updated {when})"
    try:
        state = baseline.SeriesState.from_json(row.state)
    except ValueError as exc:
        return [head, f"  unreadable state: {exc}"]
    band = baseline.band(state.baseline, thresholds)
    lines = [head]
    if band is None:
        lines.append(
            f"  no verdict yet: {len(state.baseline)} clean runs of {thresholds.min_runs} needed"
        )
    else:
        lines.append(
            f"  baseline: median {band.median:.4g}, MAD {band.mad:.4g}, limit {band.limit:.4g}"
            f" (set by {band.bound}), from {len(state.baseline)} runs"
        )
    status = "REGRESSED" if state.regressed else "in band"
    lines.append(
        f"  {status}; regressions so far {row.regressions}; flagged in a row"
        f" {len(state.pending)}; since the regression {len(state.since)}"
        f" (back in band {state.clear_streak})"
    )
    if band is not None:
        lines.append("  " + _evidence(state, band, thresholds))
    recent = (state.baseline + state.since + state.pending)[-baseline.RECENT :]
    lines.append("  recent (oldest first): " + ", ".join(f"{v:.4g}" for v in recent))
    return lines


def _evidence(
    state: baseline.SeriesState, band: baseline.Band, thresholds: baseline.Thresholds
) -> str:
    """The evidence a verdict waits on: of a regression, or while regressed of a
    recovery (under its line), in runs' worth against `consecutive`."""
    if not state.regressed:
        found = band.evidence(state.pending)
        return f"evidence of a regression {found:.2f} of {thresholds.consecutive}"
    found, line, _ = band.recovery(state.since, state.recovering)
    return f"evidence of a recovery {found:.2f} of {thresholds.consecutive} (under {line:.4g})"
