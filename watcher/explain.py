"""`watcher check --explain` and `watcher explain`: the routing table, and for one job
change, which rules fire, which do not and why (the reason enum), with the messages
they would send. Offline: sends nothing, reads no state.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from watcher import cycle, files, logs, payload, render, report, rules
from watcher.config import ConfigError
from watcher.models import Event, EventKind
from watcher.settings import Settings


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
    for alert in map(render.finish, cycle.alerts_for(event, fired)):
        lines += [
            f"-> {alert.channel} [{alert.severity.value}] {alert.title}",
            *(f"     {line}" for line in alert.body.splitlines()),
        ]
    if not fired:
        lines.append("-> no alert")
    # Names and texts are the API's: no control or bidi character reaches the terminal.
    return "\n".join(map(logs.escape_controls, lines))
