"""The configuration tree (SPEC "Configuration"): types, defaults and validation only.

Loading (files, `${VAR}`, environment overrides) and error wording live in `config`;
nothing here does I/O except reading a `*_file` secret that the configuration names.
"""

from __future__ import annotations

import math
import os
import re
import socket
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from watcher import cron, files, portal, render, render_worker
from watcher.baseline import (
    DEFAULT_ALLOWANCE,
    DEFAULT_MAD,
    DEFAULT_RUNS,
    SIZE_METRICS,
    TIME_METRICS,
    Thresholds,
)
from watcher.formats import Format
from watcher.models import (
    DEFAULT_ACCOUNT,
    DEFAULT_SEVERITY,
    FAILURE_STATUSES,
    KNOWN_STATUSES,
    NEW,
    TERMINAL_STATUSES,
    EventKind,
    Severity,
)
from watcher.quiet import QuietWindow

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float:
    """Seconds from a number or from text such as `90s`, `5m`, `2h`, `1d`, `1h30m`."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        elif text and re.fullmatch(rf"(?:{_DURATION_PART.pattern}\s*)+", text):
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
        else:
            raise ValueError(f"{value!r} is not a duration (use seconds, or 90s, 5m, 2h, 1d)")
    else:
        raise ValueError(f"{value!r} is not a duration (use seconds, or 90s, 5m, 2h, 1d)")
    if not math.isfinite(seconds):
        raise ValueError(f"{value!r} is not a finite duration")
    if seconds < 0:
        raise ValueError(f"{value!r}: a duration cannot be negative")
    return seconds


def _as_list(value: object) -> object:
    return [value] if isinstance(value, str) else value


Duration = Annotated[float, BeforeValidator(parse_duration)]
StrList = Annotated[list[str], BeforeValidator(_as_list)]


def _statuses(values: list[str], allowed: frozenset[str]) -> list[str]:
    for value in values:
        if value not in allowed:
            raise ValueError(f"{value!r} is not a job status ({', '.join(sorted(allowed))})")
    return values


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


MAX_SECRET_FILE = 64 * files.KIB
MAX_RULES = 1000
MAX_CHANNEL_URLS = 1000


def _read_secret_file(path: Path, key: str) -> SecretStr:
    try:
        text = files.read_text(path, MAX_SECRET_FILE).strip()
    except files.FileProblem as exc:
        raise ValueError(f"{key}: cannot read {path}: {exc}") from None
    if not text:
        raise ValueError(f"{key}: {path} is empty")
    return SecretStr(text)


class ApiSettings(Section):
    base_url: str = "https://api.pa.eggplant.cloud/pa/v1"
    token_url: str = "https://api.pa.eggplant.cloud/authorisation/token"  # noqa: S105 (a URL)
    realm: str
    client_id: str | None = None
    client_secret: SecretStr | None = None
    client_secret_file: Path | None = None
    access_token: SecretStr | None = None
    access_token_file: Path | None = None
    timeout: Duration = 30.0
    page_size: int = Field(100, ge=1, le=10_000)
    page_param: str = "page"
    page_size_param: str = "pageSize"
    max_pages: int = Field(1000, ge=1)
    max_concurrency: int = Field(4, ge=1, le=64)
    retries: int = Field(3, ge=0, le=10)
    # Any one response body (a page, a job, test runs, a token), decompressed: a full
    # page of 10,000 records is about 10 MB, so the default leaves room and still stops
    # an endless or inflating answer long before it matters. `16MB` is 16,000,000
    # bytes, `16MiB` 16,777,216; a plain number is bytes.
    max_response_size: Annotated[ByteSize, Field(ge=1024)] = ByteSize(16_000_000)
    verify_tls: bool = True
    # Where a job is seen in the Performance Analyzer portal, e.g.
    # https://portal.example.com/jobs/{id} (placeholders: portal.PLACEHOLDERS); the
    # portal's addresses are not documented with the API. Empty: messages have no link.
    portal_url: str = ""

    @field_validator("portal_url")
    @classmethod
    def _portal_url(cls, value: str) -> str:
        if value and (problem := portal.problem(value)):
            raise ValueError(problem)
        return value

    @field_validator("base_url", "token_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        # Credentials first, so that a URL carrying them is never echoed. Every request
        # sends its own Authorization header, which aiohttp refuses to combine with them.
        try:
            parts = urlsplit(value)
        except ValueError:
            raise ValueError("not a usable URL (check its brackets and port)") from None
        if "@" in parts.netloc:
            raise ValueError(
                "must not hold credentials (user:password@): the API is given client_id and"
                " client_secret, or access_token"
            )
        if not re.match(r"https?://[^/\s]+", value):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value.rstrip("/")

    @field_validator("realm")
    @classmethod
    def _realm(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> ApiSettings:
        secret = self.client_secret
        if self.client_secret_file is not None:
            if secret is not None:
                raise ValueError("client_secret: set client_secret or client_secret_file, not both")
            secret = _read_secret_file(self.client_secret_file, "client_secret_file")
        token = self.access_token
        if self.access_token_file is not None:
            if token is not None:
                raise ValueError("access_token: set access_token or access_token_file, not both")
            token = _read_secret_file(self.access_token_file, "access_token_file")
        if token is None and (not self.client_id or secret is None):
            raise ValueError(
                "client_id: set client_id and client_secret (or client_secret_file), "
                "or access_token"
            )
        # The files are read once: a block validated again (the shared api block, given
        # to Settings validated) must not find a secret and its file both set.
        for key, value in (("client_secret", secret), ("access_token", token)):
            object.__setattr__(self, key, value)
            object.__setattr__(self, f"{key}_file", None)
        return self


MAX_ACCOUNTS = 100
_ACCOUNT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")  # a metric label and a database key
_CREDENTIALS = frozenset(
    {"client_id", "client_secret", "client_secret_file", "access_token", "access_token_file"}
)
_SECRET_PAIRS = (
    frozenset({"client_secret", "client_secret_file"}),
    frozenset({"access_token", "access_token_file"}),
)
_STAND_IN = "(given by each account)"


def _shared_api(block: dict[str, Any]) -> dict[str, Any]:
    """The top-level api block, when accounts are given, as the `api` field checks it: with
    a stand-in realm and token where it has none, so that only what it says is checked."""
    fill: dict[str, Any] = {}
    if block.get("realm") is None:
        fill["realm"] = _STAND_IN
    if block.get("access_token") is None and block.get("access_token_file") is None:
        fill["access_token"] = _STAND_IN
    return {**block, **fill}


def _invalid_keys(error: ValidationError) -> set[str]:
    """The keys of the top-level api block that are wrong on their own: reported once, at
    `api.<key>`, and not passed on to the accounts, which would report them again."""
    bad: set[str] = set()
    for problem in error.errors():
        if problem["loc"]:
            bad.add(str(problem["loc"][0]))
            continue
        # A problem of the whole block is a secret's, named first in the message
        # ("client_secret_file: cannot read ..."): neither of its forms is passed on.
        named = re.match(r"(?:Value error, )?(\w+):", problem["msg"])
        key = named[1] if named else ""
        bad.update(next((pair for pair in _SECRET_PAIRS if key in pair), _CREDENTIALS))
    return bad


def _account_block(inherited: dict[str, Any], block: dict[str, Any]) -> dict[str, Any]:
    """An account's block laid over the top-level api block: a secret the account gives,
    in either form, replaces the inherited one in both forms."""
    base = dict(inherited)
    for pair in _SECRET_PAIRS:
        if pair & block.keys():
            for key in pair:
                base.pop(key, None)
    return {**base, **block}


def _is_block(value: object) -> bool:
    return value is None or isinstance(value, dict)  # an empty block (`shop-uk:`) is None


def _account_name_problem(name: object) -> str | None:
    if isinstance(name, str) and _ACCOUNT_NAME.fullmatch(name):
        return None
    shown = repr(name) if len(repr(name)) <= 70 else f"a name of {len(str(name))} characters"
    return (
        f"{shown} is not an account name (1 to 63 of a-z, 0-9, _ and -, starting with a"
        " letter or digit)"
    )


class PollSettings(Section):
    interval: Duration = Field(60.0, gt=0)
    lookback: Duration = 3600.0
    overlap: Duration = 120.0
    max_catch_up: Duration = 86400.0
    alert_on_first_run: bool = False
    follow_for: Duration = 172800.0
    # completed jobs whose test runs are read a cycle for `regressed`/`improved` rules;
    # the rest wait, queued in the store, for the next cycles
    test_run_lookups: int = Field(50, ge=1, le=10_000)


POSTGRES_SCHEMES = ("postgresql", "postgres")  # as libpq spells them: lower case


class StateSettings(Section):
    """One store: SQLite at `path` (the default), or PostgreSQL at `url`.

    `path` keeps its default when only `url` is given, so that it is always a Path; which
    store is used is `backend`.
    """

    path: Path = Path("watcher-state.db")
    url: SecretStr | None = None  # its password is a secret; empty is the same as not given
    retention: Duration = Field(30 * 86400.0, gt=0)  # ended jobs, events and sent alerts

    @field_validator("url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # `url: ${DATABASE_URL:-}` switches PostgreSQL on only where the variable is set.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        # Never echoes the URL, nor what stands before "://" (it may be anything).
        if value is None:
            return None
        url = value.get_secret_value().strip()
        scheme, found, _ = url.partition("://")
        if not found or scheme not in POSTGRES_SCHEMES:
            case = " (in lower case)" if found and scheme.lower() in POSTGRES_SCHEMES else ""
            raise ValueError(
                f"not a PostgreSQL URL: it starts with postgresql:// or postgres://{case},"
                " e.g. postgresql://user:password@host:5432/database"
            )
        return SecretStr(url)

    @model_validator(mode="after")
    def _one_store(self) -> StateSettings:
        if self.url is not None and "path" in self.model_fields_set:
            raise ValueError("give path (SQLite) or url (PostgreSQL), not both")
        return self

    @property
    def backend(self) -> Literal["sqlite", "postgresql"]:
        """Which store holds the state: `path` is used only for "sqlite"."""
        return "sqlite" if self.url is None else "postgresql"


MAX_REPLICA = 100


def _default_replica() -> str:
    return f"{socket.gethostname()[:80] or 'watcher'}-{os.getpid()}"


class HaSettings(Section):
    """Replicas sharing a PostgreSQL store; accepted and ignored with SQLite."""

    lease: Duration = 30.0
    replica: str = Field(default_factory=_default_replica)

    @field_validator("lease")
    @classmethod
    def _lease(cls, value: float) -> float:
        if not 3.0 <= value <= 3600.0:
            raise ValueError(f"{value:g}s: must be at least 3s and at most 1h")
        return value

    @field_validator("replica")
    @classmethod
    def _replica(cls, value: str) -> str:
        # Not echoed: it may hold what a terminal should not print raw.
        value = value.strip()
        if not value:
            raise ValueError("must not be empty")
        if len(value) > MAX_REPLICA:
            raise ValueError(f"at most {MAX_REPLICA} characters")
        if not value.isprintable():
            raise ValueError("must be printable (no control characters)")
        return value


def parse_fraction(value: object) -> float:
    """A share: `10%`, or a fraction from 0 to 1 (0.1 is 10%)."""
    if isinstance(value, str) and value.strip().endswith("%"):
        text = value.strip()[:-1].strip()
        try:
            number = float(text) / 100.0
        except ValueError:
            raise ValueError(f"{value!r} is not a percentage (e.g. 10%)") from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        if number > 1:
            raise ValueError(
                f"{value!r}: give a percentage (e.g. 10%) or a fraction from 0 to 1 (0.1)"
            )
    else:
        raise ValueError(f"{value!r} is not a percentage (e.g. 10%) or a fraction (0.1)")
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{value!r}: must be a finite share >= 0")
    return number


def parse_absolute(value: object) -> tuple[float, bool]:
    """An absolute floor: a number, in the metric's own unit (seconds for timings, bytes
    for pageSize, objects for objectCount), or a duration with its unit (`100ms`,
    `0.5s`): (the number, whether it was given as a duration)."""
    if isinstance(value, tuple):  # already parsed (a model copied)
        return value
    if isinstance(value, str) and re.search(r"[a-z]", value.strip().lower()):
        try:
            return parse_duration(value), True
        except ValueError:
            raise ValueError(
                f"{value!r} is neither a number nor a duration (e.g. 100ms, 0.5s)"
            ) from None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{value!r} is not a number or a duration (e.g. 100ms)")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a number or a duration (e.g. 100ms)") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{value!r}: must be a finite number >= 0")
    return number, False


Fraction = Annotated[float, BeforeValidator(parse_fraction)]
Absolute = Annotated[tuple[float, bool], BeforeValidator(parse_absolute)]
PERF_METRICS = TIME_METRICS | SIZE_METRICS  # numeric test-run fields
DEFAULT_METRICS = ("onLoad",)


class ThresholdSettings(Section):
    """The band and the limit above a series' median (SPEC, `baseline.py`): `mad` and
    `allowance` times the robust scale of its log values, each at least `relative` of
    the median and `absolute` (by default 100ms for timings, 0 for sizes and counts)."""

    mad: float = Field(DEFAULT_MAD, ge=0, allow_inf_nan=False)
    allowance: float = Field(DEFAULT_ALLOWANCE, ge=0, allow_inf_nan=False)
    relative: Fraction = 0.10
    absolute: Absolute | None = None


class BaselineSettings(Section):
    runs: int = Field(DEFAULT_RUNS, ge=1, le=1000)  # the last clean runs of the baseline
    min_runs: int = Field(6, ge=1)  # no verdict with fewer

    @model_validator(mode="after")
    def _fits(self) -> BaselineSettings:
        if self.min_runs > self.runs:
            raise ValueError(f"min_runs: {self.min_runs} is more than runs ({self.runs})")
        return self


class RerunSettings(Section):
    """The flake filter of a rule (`flakes`): a failed job is started again once."""

    # Reruns of one failed job. Only 1: a rerun is never rerun, so a second would be a
    # second try of the same question.
    max: int = Field(1, ge=1, le=1)
    delay: Duration = 120.0  # after the failure, before the start request
    per_template_per_hour: int = Field(2, ge=1)


_PERF = frozenset({EventKind.REGRESSED, EventKind.IMPROVED})
# Which matchers make sense for which event; anything else is a configuration error.
_FOR_EVENT: dict[str, frozenset[EventKind]] = {
    "to": frozenset({EventKind.TRANSITION}),
    "from_": frozenset({EventKind.TRANSITION}),
    "consecutive": frozenset({EventKind.TRANSITION}) | _PERF,
    "metric": _PERF,
    "threshold": _PERF,
    "baseline": _PERF,
    "repeat": frozenset({EventKind.TRANSITION}),
    "status": frozenset({EventKind.STUCK}),
    "after": frozenset({EventKind.STUCK}),
    "every": frozenset({EventKind.MISSED}),
    "schedule": frozenset({EventKind.MISSED}),
    "timezone": frozenset({EventKind.MISSED}),
    "grace": frozenset({EventKind.MISSED}),
}


class Match(Section):
    event: EventKind = EventKind.TRANSITION
    to: StrList = Field(default_factory=list)
    from_: StrList = Field(default_factory=list, alias="from")
    name: StrList = Field(default_factory=list)
    type: StrList = Field(default_factory=list)
    run_type: StrList = Field(default_factory=list)
    template: StrList = Field(default_factory=list)
    started_by: StrList = Field(default_factory=list)
    account: StrList = Field(default_factory=list)  # names of configured accounts
    consecutive: int | None = Field(None, ge=1)
    repeat: Literal["once", "every"] = "once"
    status: StrList = Field(default_factory=list)
    after: Duration | None = None
    every: Duration | None = Field(None, gt=0)
    schedule: str | None = None  # 5-field crontab, instead of every (`cron`)
    timezone: str = "UTC"  # the schedule's IANA time zone
    grace: Duration = 0.0
    # regressed, improved: the series of these test-run fields (default onLoad)
    metric: StrList = Field(default_factory=list)
    threshold: ThresholdSettings = Field(default_factory=ThresholdSettings)
    baseline: BaselineSettings = Field(default_factory=BaselineSettings)

    @field_validator("to")
    @classmethod
    def _to(cls, values: list[str]) -> list[str]:
        return _statuses(values, KNOWN_STATUSES)

    @field_validator("from_")
    @classmethod
    def _from(cls, values: list[str]) -> list[str]:
        return _statuses(values, KNOWN_STATUSES | {NEW})

    @field_validator("status")
    @classmethod
    def _status(cls, values: list[str]) -> list[str]:
        return _statuses(values, KNOWN_STATUSES - TERMINAL_STATUSES)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        cron.zone(value)
        return value

    @model_validator(mode="after")
    def _fits_event(self) -> Match:
        for key, kinds in _FOR_EVENT.items():
            if key in self.model_fields_set and self.event not in kinds:
                names = [k.value for k in EventKind if k in kinds]  # in declaration order
                allowed = " or ".join(names) if len(names) < 3 else ", ".join(names)
                label = key.rstrip("_")
                raise ValueError(f"{label}: only for event {allowed}, not {self.event.value}")
        if self.event is EventKind.STUCK and self.after is None:
            raise ValueError("after: required for event stuck (e.g. after: 2h)")
        if self.event is EventKind.MISSED:
            self._missed()
        if self.event is EventKind.STUCK and not self.status:
            object.__setattr__(self, "status", ["pending", "running"])
        if self.event in _PERF:
            self._perf()
        return self

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics of a regressed/improved rule: those given, else onLoad."""
        return tuple(self.metric) or DEFAULT_METRICS

    def thresholds(self, metric: str) -> Thresholds:
        """The statistics' knobs of one of this rule's metrics."""
        absolute = self.threshold.absolute
        return Thresholds.for_metric(
            metric,
            mad_k=self.threshold.mad,
            allowance=self.threshold.allowance,
            relative=self.threshold.relative,
            absolute=None if absolute is None else absolute[0],
            runs=self.baseline.runs,
            min_runs=self.baseline.min_runs,
            consecutive=self.consecutive or 2,
        )

    def _perf(self) -> None:
        for name in self.metric:
            if name not in PERF_METRICS:
                raise ValueError(
                    f"metric: {name!r} is not a numeric test-run field"
                    f" ({', '.join(sorted(PERF_METRICS))})"
                )
        absolute = self.threshold.absolute
        if absolute is not None and absolute[1]:
            untimed = [m for m in self.metrics if m not in TIME_METRICS]
            if untimed:
                raise ValueError(
                    f"threshold.absolute: a duration, but {', '.join(untimed)} is not a"
                    " timing: give a number in its own unit (bytes for pageSize, objects"
                    " for objectCount), or a rule of its own"
                )
        for name in self.metrics:
            try:
                self.thresholds(name)
            except ValueError as exc:
                raise ValueError(f"threshold: {exc}") from None

    def _missed(self) -> None:
        if self.every is not None and self.schedule is not None:
            raise ValueError("schedule: give every or schedule, not both")
        if (self.every is None and self.schedule is None) or not self.template:
            raise ValueError(
                'every: event missed needs every (e.g. 24h) or schedule (e.g. "0 2 * * 1-5"),'
                " and template"
            )
        if self.schedule is None and "timezone" in self.model_fields_set:
            raise ValueError("timezone: only with schedule (every counts from the last start)")
        if self.schedule is not None:
            try:
                cron.trigger(self.schedule, self.timezone)
            except cron.CronError as exc:
                raise ValueError(f"schedule: {exc}") from None


def _event_of(match: object) -> EventKind:
    """The event a rule's raw `match` names; transition when it names none, or names none
    that exists (its own validation then says so)."""
    if isinstance(match, Match):
        return match.event
    event = match.get("event") if isinstance(match, dict) else None
    try:
        return EventKind(event) if event is not None else EventKind.TRANSITION
    except (ValueError, TypeError):
        return EventKind.TRANSITION


class Rule(Section):
    name: str = Field(min_length=1)
    match: Match = Field(default_factory=Match)
    notify: StrList = Field(min_length=1)
    # Unset, the event's own (DEFAULT_SEVERITY): filled in by `_severity_of_event`, so
    # that every reader sees a Severity.
    severity: Severity = Severity.FAILURE
    title: str | None = None
    body: str | None = None
    # The body's format on every channel of the rule. Unset: the default body is
    # written in the format each channel reads (formats.for_url), the rule's own body
    # is plain text. Titles are always plain text.
    format: Format | None = None
    stop: bool = False
    repeat_after: Duration | None = Field(None, gt=0)
    include_test_runs: bool = False
    drop_if_resolved: bool = False
    rerun: RerunSettings | None = None
    # regressed, improved: attach the series' chart (SVG) where the channel takes files
    chart: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _severity_of_event(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("severity") is not None:
            return data
        return {**data, "severity": DEFAULT_SEVERITY[_event_of(data.get("match"))]}

    @field_validator("title", "body")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None and (problem := render.check(value)):
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _options_fit_the_event(self) -> Rule:
        if self.repeat_after is not None and self.match.event is not EventKind.STUCK:
            raise ValueError("repeat_after: only for event stuck")
        if self.chart is not None and self.match.event not in _PERF:
            raise ValueError(
                f"chart: only for event regressed or improved, not {self.match.event.value}"
            )
        return self

    @model_validator(mode="after")
    def _rerun_for_failures(self) -> Rule:
        if self.rerun is None:
            return self
        if self.match.event is not EventKind.TRANSITION:
            raise ValueError("rerun: only for event transition (a job that failed)")
        if self.match.to and not set(self.match.to) & FAILURE_STATUSES:
            wanted = ", ".join(sorted(FAILURE_STATUSES))
            raise ValueError(f"rerun: the rule's `to` names no failure ({wanted})")
        return self

    @property
    def charted(self) -> bool:
        """Whether this rule's alerts carry their series' chart: regressed and improved
        ones unless the rule says `chart: false`."""
        return self.match.event in _PERF and self.chart is not False


class DeliverySettings(Section):
    group_wait: Duration = 10.0
    retry_initial: Duration = Field(5.0, gt=0)
    retry_max: Duration = Field(300.0, gt=0)
    give_up_after: Duration = 86400.0
    quiet_hours: list[QuietWindow] = Field(default_factory=list)


MIN_API_TOKEN = 16  # characters: a guessable token would open every write


class ServerSettings(Section):
    listen: str = "127.0.0.1:9464"
    # Writes through the API and the status page's forms need this bearer token; with
    # none, they are refused. Reads are open to whoever reaches `listen`.
    api_token: SecretStr | None = None
    api_token_file: Path | None = None

    @model_validator(mode="after")
    def _token(self) -> ServerSettings:
        token = self.api_token
        if self.api_token_file is not None:
            if token is not None:
                raise ValueError("api_token: set api_token or api_token_file, not both")
            token = _read_secret_file(self.api_token_file, "api_token_file")
        if token is not None and len(token.get_secret_value()) < MIN_API_TOKEN:
            raise ValueError(f"api_token: must be at least {MIN_API_TOKEN} characters")
        object.__setattr__(self, "api_token", token)
        return self

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        if value and not re.fullmatch(r"(\[[0-9a-fA-F:]+\]|[\w.-]*):\d{1,5}", value):
            raise ValueError(f"{value!r} is not HOST:PORT")
        return value


class LogSettings(Section):
    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value


def _templated(rule: object) -> bool:
    return isinstance(rule, dict) and any(rule.get(key) is not None for key in ("title", "body"))


def _channel_problem(url: str) -> str | None:
    from watcher.plugins import target  # deferred: apprise is only needed here

    if target(url):
        return None
    scheme = url.split("://", 1)[0] if "://" in url else ""
    return f"not a valid apprise URL (scheme {scheme!r})" if scheme else "not a URL"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="WATCHER_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
        case_sensitive=False,
    )

    api: ApiSettings
    # name -> its api settings, merged over the top-level api block and validated; empty
    # when not given (then the one account is `api`, named "default": accounts_resolved)
    accounts: dict[str, ApiSettings] = Field(default_factory=dict)
    poll: PollSettings = Field(default_factory=PollSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    ha: HaSettings = Field(default_factory=HaSettings)
    channels: dict[str, StrList] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=list)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    shutdown_timeout: Duration = 20.0
    log: LogSettings = Field(default_factory=LogSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML document arrives as init arguments; WATCHER_* variables win over it.
        return (env_settings, init_settings)

    @model_validator(mode="before")
    @classmethod
    def _merge_accounts(cls, data: Any) -> Any:
        """With `accounts`, each account block is laid over the top-level api block before
        it is validated (so a missing realm is `accounts.<name>.realm`), and the top-level
        block is checked for what it says only; `api` then becomes the first account."""
        if not isinstance(data, dict):
            return data
        accounts, shared = data.get("accounts"), data.get("api") or {}
        if not isinstance(accounts, dict) or not accounts or not isinstance(shared, dict):
            return data
        # Valid, the block is passed on validated; if not, as it is, for pydantic to name
        # its problems at api.<key>.
        api: ApiSettings | dict[str, Any] = _shared_api(shared)
        bad: set[str] = set()
        try:
            api = ApiSettings.model_validate(api)
        except ValidationError as exc:
            bad = _invalid_keys(exc)
        inherited = {k: v for k, v in shared.items() if k not in bad}
        merged = {
            name: _account_block(inherited, block or {}) if _is_block(block) else block
            for name, block in accounts.items()
        }
        return {**data, "accounts": merged, "api": api}

    @model_validator(mode="before")
    @classmethod
    def _start_the_render_worker(cls, data: Any) -> Any:
        """Rules' templates are tried in the render worker (`Rule._template`), a second
        Python process: started before any section is validated, it imports while the
        channels are checked through apprise, instead of after."""
        rules = data.get("rules") if isinstance(data, dict) else None
        if isinstance(rules, list) and any(_templated(rule) for rule in rules):
            render_worker.shared().start()
        return data

    @field_validator("accounts", mode="before")
    @classmethod
    def _account_names(cls, value: object) -> object:
        # Counted before any block is validated: each may read secret files.
        if not isinstance(value, dict):
            return value
        if len(value) > MAX_ACCOUNTS:
            raise ValueError(f"{len(value)} accounts; at most {MAX_ACCOUNTS} are supported")
        for name in value:
            if problem := _account_name_problem(name):
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _api_is_the_first_account(self) -> Settings:
        if "accounts" in self.model_fields_set and not self.accounts:
            raise ValueError(
                "accounts: name at least one account, or leave accounts out (then the"
                f" top-level api block is the one account, {DEFAULT_ACCOUNT!r})"
            )
        # Code that serves one account keeps reading `api`; the stand-in never escapes.
        if self.accounts:
            object.__setattr__(self, "api", next(iter(self.accounts.values())))
        return self

    def accounts_resolved(self) -> dict[str, ApiSettings]:
        """Every account by name, in the configuration's order, with its merged and
        validated api settings: the `accounts` mapping, or {"default": api} without it."""
        return dict(self.accounts) if self.accounts else {DEFAULT_ACCOUNT: self.api}

    def looks(self) -> render.Looks:
        """What messages look like beyond their alerts: rules' formats, portal links, the
        rules whose alerts go without their series' chart (`chart: false`)."""
        return render.Looks(
            formats={rule.name: rule.format for rule in self.rules if rule.format},
            portals={n: a.portal_url for n, a in self.accounts_resolved().items() if a.portal_url},
            chartless=frozenset(rule.name for rule in self.rules if not rule.charted),
        )

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        # Counted before any URL is parsed: each costs apprise's parsing at every start,
        # and its secrets a place in every log line's redaction.
        count = sum(map(len, value.values()))
        if count > MAX_CHANNEL_URLS:
            raise ValueError(f"{count} URLs; at most {MAX_CHANNEL_URLS} are supported")
        for name, urls in value.items():
            if not urls:
                raise ValueError(f"channel {name!r} has no URL")
            for index, url in enumerate(urls):
                if problem := _channel_problem(url):
                    raise ValueError(f"{name}[{index}]: {problem}")
        return value

    @field_validator("rules", mode="before")
    @classmethod
    def _rules_count(cls, value: object) -> object:
        # Before each rule's templates are compiled; every rule is tried on every event.
        if isinstance(value, list) and len(value) > MAX_RULES:
            raise ValueError(f"{len(value)} rules; at most {MAX_RULES} are supported")
        return value

    @model_validator(mode="after")
    def _retention_outlives_windows(self) -> Settings:
        # A pruned job seen again in a window would look new: keep it longer than any
        # window can reach back.
        reach = max(self.poll.lookback, self.poll.max_catch_up) + self.poll.overlap
        if self.state.retention <= reach:
            raise ValueError(
                f"state.retention: must be longer than {reach:g}s, how far a window can reach"
                " back (max of poll.lookback and poll.max_catch_up, plus poll.overlap)"
            )
        return self

    @model_validator(mode="after")
    def _rules_refer_to_channels(self) -> Settings:
        seen: set[str] = set()
        accounts = self.accounts_resolved()
        for index, rule in enumerate(self.rules):
            if rule.name in seen:
                raise ValueError(f"rules[{index}].name: {rule.name!r} is used by an earlier rule")
            seen.add(rule.name)
            for channel in rule.notify:
                if channel not in self.channels:
                    known = ", ".join(sorted(self.channels)) or "none defined"
                    raise ValueError(
                        f"rules[{index}].notify: {channel!r} is not a channel ({known})"
                    )
            for account in rule.match.account:
                if account not in accounts:
                    raise ValueError(
                        f"rules[{index}].match.account: {account!r} is not a configured account"
                        f" ({', '.join(sorted(accounts))})"
                    )
        return self
