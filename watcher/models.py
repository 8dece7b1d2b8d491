"""The watcher's own vocabulary: jobs, events, alerts and the reasons behind decisions.

Values only; nothing here does I/O or knows the API's JSON (that is `client`). `Job`,
`JobState`, `Event` and `Alert` are made once per job or alert of a window (100k in a
large one), so they are not frozen (a frozen dataclass is built four times slower);
nothing changes them after they are made (but the tracker, a streak on its own event,
and the key each works out once). The hot paths build them in `fast`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime

import msgspec

KNOWN_STATUSES = frozenset({"pending", "running", "failed", "completed", "cancelled", "expired"})
TERMINAL_STATUSES = frozenset({"failed", "completed", "cancelled", "expired"})
FAILURE_STATUSES = frozenset({"failed", "expired"})
NEW = "new"  # the "previous status" of a job seen for the first time
DEFAULT_ACCOUNT = "default"  # the account of a configuration without `accounts:`


class Job(msgspec.Struct, gc=False):
    """One job as the API last described it (unknown fields dropped, unknown statuses kept).

    A struct, not a dataclass: built in C, twice as fast, and untracked by the garbage
    collector (it holds no containers, so no cycles): 16 bytes less each."""

    sref: str
    name: str
    status: str
    started_at: datetime | None = None
    updated_at: datetime | None = None
    url: str = ""
    type: str = ""
    run_type: str = ""
    started_by: str = ""
    page_count: int = 0
    template: str = ""
    test_runs_uri: str = ""
    # The flake filter's links, set by the cycle (never by the API): a rerun's failed
    # job, and a failed job's rerun.
    rerun_of: str = ""
    rerun: str = ""

    @property
    def id(self) -> str:
        return self.sref.rsplit("/", 1)[-1]


class JobState(msgspec.Struct, gc=False):
    """What the store remembers of a job between polls (a struct, like `Job`)."""

    sref: str
    status: str
    status_since: datetime
    first_seen: datetime
    updated_at: datetime | None = None
    started_at: datetime | None = None
    template: str = ""
    name: str = ""

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True, slots=True)
class TemplateState:
    """What the store remembers of a job template: its failure streak and last start."""

    template: str
    watching_since: datetime
    streak: int = 0
    last_start: datetime | None = None
    last_name: str = ""


class EventKind(enum.StrEnum):
    TRANSITION = "transition"
    STUCK = "stuck"
    RECOVERED = "recovered"
    MISSED = "missed"
    REGRESSED = "regressed"
    IMPROVED = "improved"
    FLAKY = "flaky"


TIMER_KINDS = frozenset({EventKind.STUCK, EventKind.MISSED})
# Recorded whether or not a rule acts on them: timer events recur until recorded, and a
# flaky failure is part of its job's history.
ALWAYS_RECORDED = TIMER_KINDS | {EventKind.FLAKY}
# Events of a series of test-run values (template, page URL, browser, metric): their
# new status is the series' id and their `seq` which regression of it they are about.
PERF_KINDS = frozenset({EventKind.REGRESSED, EventKind.IMPROVED})


def event_key(kind: EventKind, subject: str, status: str, rule: str | None, seq: int) -> str:
    """The identity under which an event is recorded, derived from its fields for
    storage only (nothing reads fields back out of it): the same key is never alerted
    twice. A transition is once per job and new status; a recovery once per job; a
    timer event once per rule, subject and reminder or gap; `regressed` and `improved`
    once per series (`status`, whatever job showed it) and regression (`seq`)."""
    if kind in PERF_KINDS:
        return f"{kind}:{status}:{seq}"
    base = f"{kind}:{subject}:{status}"
    return f"{base}:{rule}:{seq}" if kind in TIMER_KINDS else base


@dataclass(slots=True)
class Event:
    kind: EventKind
    job: Job
    from_status: str
    to_status: str
    at: datetime
    streak: int = 0
    stuck_for: float | None = None
    rule: str | None = None  # timer events (stuck, missed) belong to the rule that set them
    seq: int = 0  # which reminder (stuck), gap (missed) or regression (regressed, improved)
    # regressed, improved: the numbers behind the verdict (render.PERF_VARIABLES)
    perf: dict[str, object] | None = None
    _key: str = field(default="", init=False, repr=False, compare=False)

    @property
    def subject(self) -> str:
        """What the event is about: a job, or for `missed` a template."""
        return self.job.sref or self.job.template

    @property
    def key(self) -> str:
        """Worked out once: the commit and the ledger ask for it several times an event."""
        if not self._key:
            self._key = event_key(self.kind, self.subject, self.to_status, self.rule, self.seq)
        return self._key


class Severity(enum.StrEnum):
    INFO = "info"
    SUCCESS = "success"
    WARNING = "warning"
    FAILURE = "failure"


# A rule's severity when it names none: what the event usually means to whoever reads it.
DEFAULT_SEVERITY: dict[EventKind, Severity] = {
    EventKind.TRANSITION: Severity.FAILURE,
    EventKind.STUCK: Severity.WARNING,
    EventKind.RECOVERED: Severity.SUCCESS,
    EventKind.MISSED: Severity.WARNING,
    EventKind.REGRESSED: Severity.WARNING,
    EventKind.IMPROVED: Severity.SUCCESS,
    EventKind.FLAKY: Severity.INFO,
}


class MatchReason(enum.StrEnum):
    """Why a rule did or did not produce alerts for an event."""

    MATCHED = "matched"
    WRONG_EVENT = "event_kind_differs"
    WRONG_TO = "to_status_differs"
    WRONG_FROM = "from_status_differs"
    WRONG_NAME = "name_differs"
    WRONG_TYPE = "type_differs"
    WRONG_RUN_TYPE = "run_type_differs"
    WRONG_TEMPLATE = "template_differs"
    WRONG_STARTED_BY = "started_by_differs"
    WRONG_STREAK = "streak_below_consecutive"
    OTHER_RULE = "timer_of_another_rule"
    WRONG_METRIC = "metric_differs"
    STOPPED = "stopped_by_earlier_rule"


class DeliveryOutcome(enum.StrEnum):
    SENT = "sent"
    RETRY = "retry"
    GIVEN_UP = "given_up"
    DRY_RUN = "dry_run"
    SILENCED = "silenced"  # not sent: a silence covered it
    ACKED = "acked"  # not sent: an acknowledgement covered it


@dataclass(slots=True)
class Alert:
    """A message bound for one channel, as it is kept in the outbox.

    Carries its event's identity as fields (kind, subject: `sref` or `template`,
    `status`, `seq`; `rule` is the rule that fired). Queued with its template variables
    (`variables`, JSON, as of the event) and the rule's templates (None: the default for
    the kind); rendered into `title` and `body` when it is sent (`render.finish`).
    Alerts queued by an older version carry their text and no variables.
    """

    kind: EventKind
    rule: str
    channel: str
    severity: Severity
    sref: str = ""
    template: str = ""
    status: str = ""  # the event's new status ("missed" for a missed run)
    seq: int = 0  # which reminder or gap, for timer events
    resolvable: bool = False  # may be dropped if resolved while held by quiet hours
    variables: str = ""
    title_source: str | None = None
    body_source: str | None = None
    title: str = ""
    body: str = ""
    account: str = DEFAULT_ACCOUNT
    _key: str = field(default="", init=False, repr=False, compare=False)

    @property
    def subject(self) -> str:
        return self.sref or self.template

    @property
    def key(self) -> str:
        """The key of the event that caused it (a timer event's rule is this rule)."""
        if not self._key:
            self._key = event_key(self.kind, self.subject, self.status, self.rule, self.seq)
        return self._key


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    alert: Alert
    created_at: datetime
    attempts: int
    next_attempt_at: datetime
    done_targets: frozenset[int] = frozenset()  # indices of the channel's URLs that accepted
    held: bool = False  # was held back by quiet hours


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime
    bounded: bool = False  # True when max_catch_up cut the window short
    # True when the window ends before now: a catch-up too large for one cycle is read in
    # steps (`poller.stepped`), and the next step follows this one's commit at once
    catching_up: bool = False


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything one cycle learned from the API; nothing is stored until it is complete."""

    window: Window
    jobs: tuple[Job, ...]
    pages: int = 0
    requests: int = 0
    skipped: int = 0  # malformed records left out
    # settled jobs listed again with the same status: not parsed, nothing to do
    unchanged: AbstractSet[str] = frozenset()
    ended: Mapping[str, str] = field(default_factory=dict)  # the other listed ended jobs
    staged: int = 0  # first poll: jobs kept on disk, not in `jobs` (`staging`)
    unfollow: tuple[str, ...] = ()  # gone from the API, or followed for too long
