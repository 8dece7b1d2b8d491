"""What people say back to the watcher, and how an alert is checked against it.

A *silence* covers the alerts that all its matchers match (globs over the rule match
keys) from its start to its end: such an alert is recorded as silenced, not sent. An
*acknowledgement* stops the reminders of one job or template until it recovers or
moves on: a job's ack holds while the job keeps the status it had when acknowledged; a
template's holds until it recovers (its failure streak back to 0) or, if it was not
failing, until a new job of it starts. Pure: the store keeps both; the notifier asks.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from watcher import fast
from watcher.models import Alert, EventKind
from watcher.vocabulary import SILENCE_KEYS

MAX_TEXT = 1000  # characters of an author or a comment
MAX_MATCHERS = 20
_JOB_KEYS = {"name", "type", "run_type", "started_by", "template"}


class Refused(ValueError):
    """What a person asked for cannot be done; the message names the culprit."""


Matchers = tuple[tuple[str, str], ...]


def matchers(pairs: Iterable[tuple[str, str]]) -> Matchers:
    """Checked (key, glob) pairs: known keys, non-empty globs, at least one, in order."""
    found: list[tuple[str, str]] = []
    for key, glob in pairs:
        if key not in SILENCE_KEYS:
            raise Refused(f"matcher {key!r}: unknown key (one of {', '.join(SILENCE_KEYS)})")
        if not isinstance(glob, str) or not glob or len(glob) > MAX_TEXT:
            raise Refused(f"matcher {key!r}: needs a value of 1 to {MAX_TEXT} characters")
        found.append((key, glob))
    if not found:
        raise Refused("a silence needs at least one matcher")
    if len(found) > MAX_MATCHERS:
        raise Refused(f"a silence takes at most {MAX_MATCHERS} matchers")
    return tuple(found)


def parse_matcher(text: str) -> tuple[str, str]:
    """`key=glob` as written on the command line."""
    key, sep, glob = text.partition("=")
    if not sep:
        raise Refused(f"matcher {text!r}: write it as key=value")
    return key.strip(), glob


def checked_text(what: str, value: object) -> str:
    if not isinstance(value, str):
        raise Refused(f"{what}: must be text")
    if len(value) > MAX_TEXT:
        raise Refused(f"{what}: at most {MAX_TEXT} characters")
    return value


@dataclass(frozen=True, slots=True)
class Silence:
    id: int
    matchers: Matchers
    starts_at: datetime
    ends_at: datetime
    author: str = ""
    comment: str = ""
    created_at: datetime | None = None
    expired_at: datetime | None = None  # expired by a person before its end

    @property
    def until(self) -> datetime:
        """When it stops covering alerts."""
        return min(self.ends_at, self.expired_at) if self.expired_at else self.ends_at

    def state(self, now: datetime) -> str:
        if now >= self.until:
            return "expired"
        return "active" if now >= self.starts_at else "pending"

    def covers(self, fields: Mapping[str, str], now: datetime) -> bool:
        """Whether it silences an alert with these `fields` (`alert_fields`) at `now`.
        A key given twice matches either value; different keys must all match."""
        if self.state(now) != "active":
            return False
        wanted: dict[str, list[str]] = {}
        for key, glob in self.matchers:
            wanted.setdefault(key, []).append(glob)
        return all(
            any(fnmatch.fnmatchcase(fields.get(key, ""), glob) for glob in globs)
            for key, globs in wanted.items()
        )

    def report(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": [{"key": k, "value": v} for k, v in self.matchers],
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "author": self.author,
            "comment": self.comment,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "expired_at": self.expired_at.isoformat() if self.expired_at else None,
            "state": self.state(now),
        }


def alert_fields(alert: Alert) -> dict[str, str]:
    """The values of an alert that silences match: its event's and its job's."""
    fields = {
        "account": alert.account,
        "event": str(alert.kind),
        "to": alert.status,
        "template": alert.template,
    }
    job: Mapping[str, Any] = {}
    if alert.variables:
        try:
            job = fast.named_variables(json.loads(alert.variables))["job"]
        except (ValueError, TypeError):  # unreadable: matched on the alert's own fields
            job = {}
    for key in _JOB_KEYS:
        value = job.get(key)
        if isinstance(value, str) and value:
            fields[key] = value
    return fields


@dataclass(frozen=True, slots=True)
class Ack:
    """An acknowledgement of a job (`job` set) or a template (`template` set), with what
    it was when acknowledged and what it is now (`now_*`, read with it)."""

    id: int
    account: str
    job: str = ""
    template: str = ""
    status: str = ""  # the job's status when acknowledged
    streak: int = 0  # the template's failure streak when acknowledged
    last_start: float | None = None  # the template's last job start when acknowledged
    author: str = ""
    comment: str = ""
    created_at: datetime | None = None
    expired_at: datetime | None = None  # withdrawn by a person
    now_status: str | None = None  # the job's status now; None: no longer known
    now_runs: int = 0  # jobs of the template started since its last start when acknowledged
    now_recoveries: int = 0  # of those, the ones that completed

    @property
    def holds(self) -> bool:
        """Still in force: not withdrawn, and what was acknowledged has not moved on. A
        template that failed again after recovering is not covered any more: the
        recovery ended the acknowledgement for good."""
        if self.expired_at is not None:
            return False
        if self.job:
            return self.now_status is not None and self.now_status == self.status
        if self.streak > 0:
            return self.now_recoveries == 0  # until it recovers
        return self.now_runs == 0  # until a job of it starts

    def covers(self, alert: Alert) -> bool:
        """Whether it stops this alert: a job's reminders while it keeps its status; a
        template's alerts (but its recovery) until it recovers or runs again."""
        if not self.holds or alert.account != self.account:
            return False
        if self.job:
            return alert.sref == self.job and alert.status == self.status
        return alert.template == self.template and alert.kind is not EventKind.RECOVERED

    def report(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account": self.account,
            "job": self.job or None,
            "template": self.template or None,
            "status": self.status or None,
            "author": self.author,
            "comment": self.comment,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "expired_at": self.expired_at.isoformat() if self.expired_at else None,
            "holds": self.holds,
        }


@dataclass(frozen=True, slots=True)
class Step:
    """One step of an alert's life after it was queued."""

    at: datetime
    what: str  # held, silenced, acked, attempt, sent, given_up, requeued, resolved
    detail: str = ""


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """An alert, where it stands and its life so far (`history`, the API, the page)."""

    id: int
    alert: Alert
    state: str  # pending, sent, given_up, resolved, silenced, acked
    queued_at: datetime
    done_at: datetime | None
    attempts: int
    last_error: str
    steps: Sequence[Step] = ()
