"""The watcher's own vocabulary: jobs, events, alerts and the reasons behind decisions.

Values only; nothing here does I/O or knows the API's JSON (that is `client`). `Job`,
`JobState`, `Event` and `Alert` are made once per job or alert of a window (100k in a
large one), so they are not frozen (a frozen dataclass is built four times slower);
nothing changes them after they are made (but the tracker, a streak on its own event).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

KNOWN_STATUSES = frozenset({"pending", "running", "failed", "completed", "cancelled", "expired"})
TERMINAL_STATUSES = frozenset({"failed", "completed", "cancelled", "expired"})
FAILURE_STATUSES = frozenset({"failed", "expired"})
NEW = "new"  # the "previous status" of a job seen for the first time


@dataclass(slots=True)
class Job:
    """One job as the API last described it (unknown fields dropped, unknown statuses kept)."""

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

    @property
    def id(self) -> str:
        return self.sref.rsplit("/", 1)[-1]


@dataclass(slots=True)
class JobState:
    """What the store remembers of a job between polls."""

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
    seq: int = 0  # which reminder (stuck) or which gap (missed)
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """The event's identity: the same key is never alerted twice.

        A transition is once per job and new status; a recovery once per job; a timer
        event once per rule, subject and reminder or gap.
        """
        base = f"{self.kind}:{self.job.sref or self.job.template}:{self.to_status}"
        self.key = f"{base}:{self.rule}:{self.seq}" if self.rule else base


class Severity(enum.StrEnum):
    INFO = "info"
    SUCCESS = "success"
    WARNING = "warning"
    FAILURE = "failure"


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
    STOPPED = "stopped_by_earlier_rule"


class DeliveryOutcome(enum.StrEnum):
    SENT = "sent"
    RETRY = "retry"
    GIVEN_UP = "given_up"
    DRY_RUN = "dry_run"


@dataclass(slots=True)
class Alert:
    """A message bound for one channel, as it is kept in the outbox.

    Queued with its template variables (`variables`, JSON, as of the event) and the
    rule's templates (None: the default for the kind); rendered into `title` and
    `body` when it is sent (`render.finish`). Alerts queued by an older version carry
    their text and no variables.
    """

    event_key: str
    rule: str
    channel: str
    severity: Severity
    title: str = ""
    body: str = ""
    sref: str = ""
    kind: EventKind = EventKind.TRANSITION
    template: str = ""
    resolvable: bool = False  # may be dropped if resolved while held by quiet hours
    variables: str = ""
    title_source: str | None = None
    body_source: str | None = None


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


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything one cycle learned from the API; nothing is stored until it is complete."""

    window: Window
    jobs: tuple[Job, ...]
    pages: int = 0
    requests: int = 0
    skipped: int = 0  # malformed records left out
    unchanged: int = 0  # ended jobs listed again, same status: not parsed, nothing to do
