"""Message templates: sandboxed Jinja2, the variables they may use, and the defaults.

Templates see plain dicts of strings and numbers, never our objects, so a template
cannot reach beyond its variables; an unknown variable is an error, not a blank.
A title is plain text; a body renders in the format its channel reads (`formats`),
with the values escaped for it, so the defaults are written once for all three.
A rule's template renders in a child process within a budget (`render_worker`); one
that fails or goes over renders the default instead, so the alert still goes. The
defaults are ours and render in-process.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import structlog

from watcher import fast, formats, portal, render_worker
from watcher.formats import Format
from watcher.models import DEFAULT_ACCOUNT, Alert, Event, EventKind, Job

log = structlog.get_logger("watcher.render")

# regressed, improved: values in the metric's unit (seconds for timings)
_PERF_FORMAT = (
    "{% set size = event.metric in ('pageSize', 'objectCount') %}"
    "{% set unit = '%d' if size else '%.2f s' %}"
)
DEFAULT_TITLES: Mapping[EventKind, str] = {
    EventKind.TRANSITION: "{{ job.name }} {{ event.to }}"
    "{% if job.rerun_of %} on its rerun too{% endif %}",
    EventKind.STUCK: "{{ job.name }} stuck {{ event.to }}",
    EventKind.RECOVERED: "{{ job.name }} recovered",
    EventKind.MISSED: "{{ job.name }} did not run",
    EventKind.REGRESSED: _PERF_FORMAT
    + "{{ event.page_title or event.page_url }} {{ event.metric }}"
    "{% if event.percent is not none %} {{ event.percent | round | int }}%{% endif %}"
    " {{ 'larger' if size else 'slower' }} than its baseline"
    " ({{ unit | format(event.value) }} vs {{ unit | format(event.baseline) }})",
    EventKind.IMPROVED: _PERF_FORMAT
    + "{{ event.page_title or event.page_url }} {{ event.metric }} back to its baseline"
    " ({{ unit | format(event.value) }} vs {{ unit | format(event.baseline) }})",
    EventKind.FLAKY: "{{ job.name }} {{ event.from }}, then passed on a rerun",
}
_DETAILS = (
    "Type: {{ job.type }}, run: {{ job.run_type }}, started by {{ job.started_by }}"
    " at {{ job.started_at }}.\n"
    "Template: {{ job.template }}. Pages: {{ job.page_count }}."
    "{% if job.url %}\nURL: {{ link(job.url) }}{% endif %}"
    "{% for run in job.test_runs %}{% if loop.first %}\nTest runs:{% endif %}"
    "\n- {{ run.pageTitle or run.url }} [{{ run.browser }}] result {{ run.resultCode }},"
    " onLoad {{ run.onLoad }}{% endfor %}"
)
# Last in every body: a Markdown link, an HTML <a>, in text the bare address.
_PORTAL = (
    "{% if job.portal_url %}\n"
    "{{ link(job.portal_url, 'Open in the Performance Analyzer portal') }}{% endif %}"
)
_BODIES: Mapping[EventKind, str] = {
    EventKind.TRANSITION: "Job {{ job.name }} ({{ job.sref }}) went from {{ event.from }}"
    " to {{ event.to }} at {{ event.at }}.\n"
    "{% if job.rerun_of %}It reran {{ job.rerun_of }}, which had failed: both runs"
    " failed.\n{% endif %}" + _DETAILS,
    EventKind.STUCK: "Job {{ job.name }} ({{ job.sref }}) has been {{ event.to }} for"
    " {{ (event.stuck_for / 60) | round | int }} minutes.\n" + _DETAILS,
    EventKind.RECOVERED: "Job {{ job.name }} ({{ job.sref }}) completed after"
    " {{ event.streak }} failed run(s) of its template in a row.\n" + _DETAILS,
    # stuck_for: since the last start (every), or since the scheduled time missed (schedule)
    EventKind.MISSED: "No job of template {{ job.template }} ({{ job.name }}) started when"
    " due: none for {{ (event.stuck_for / 3600) | round(1) }} hours; the last one started"
    " {{ job.started_at or 'never, since watching began' }}.",
    EventKind.REGRESSED: _PERF_FORMAT
    + "{{ event.metric }} of {{ event.page_title }} ({{ event.page_url }}, {{ event.browser }})"
    " was {{ unit | format(event.value) }} in job {{ job.name }} ({{ job.sref }}), above its"
    " baseline of {{ unit | format(event.baseline) }} (the median of its last clean runs) by"
    " {{ unit | format(event.delta) }}, in several runs in a row.\n"
    "Recent values, oldest first: {{ event.runs | join(', ') }}.\n"
    "Template: {{ job.template }}.",
    EventKind.FLAKY: "Job {{ job.name }} ({{ job.sref }}) {{ event.from }}, and its rerun"
    " {{ job.rerun }} {{ event.to }} (at {{ event.at }}): a flaky failure, so its failure"
    " alert was not sent.\n" + _DETAILS,
    EventKind.IMPROVED: _PERF_FORMAT
    + "{{ event.metric }} of {{ event.page_title }} ({{ event.page_url }}, {{ event.browser }})"
    " is back within its baseline's band: {{ unit | format(event.value) }} in job"
    " {{ job.name }} ({{ job.sref }}), baseline {{ unit | format(event.baseline) }}.\n"
    "Recent values, oldest first: {{ event.runs | join(', ') }}.\n"
    "Template: {{ job.template }}.",
}
DEFAULT_BODIES: Mapping[EventKind, str] = {kind: body + _PORTAL for kind, body in _BODIES.items()}

SAMPLE_JOB = Job(
    sref="jobs/12345",
    name="Homepage",
    status="failed",
    started_at=datetime(2017, 2, 27, 13, 19, 11, tzinfo=UTC),
    updated_at=datetime(2017, 2, 27, 13, 19, 53, tzinfo=UTC),
    url="https://example.com/",
    type="Single",
    run_type="scheduled",
    started_by="Joe Bloggs",
    page_count=1,
    template="jobTemplates/6789",
    test_runs_uri="testRuns?job=jobs%2F12345",
)
SAMPLE_EVENT = Event(
    kind=EventKind.TRANSITION,
    job=SAMPLE_JOB,
    from_status="running",
    to_status="failed",
    at=datetime(2017, 2, 27, 13, 20, tzinfo=UTC),
    streak=1,
    stuck_for=7200.0,
)


# What `check` gives a template for the variables of regressed and improved, which
# every template sees (None for other events): a rule of those events may format them.
SAMPLE_PERF: Mapping[str, object] = {
    "metric": "onLoad",
    "value": 2.1,
    "baseline": 1.5,
    "delta": 0.6,
    "percent": 40.0,
    "page_title": "Checkout",
    "page_url": "https://example.com/checkout",
    "browser": "Chrome",
    "runs": [1.5, 1.49, 1.52, 2.08, 2.1],
    "limit": 1.65,
}


@dataclasses.dataclass(frozen=True, slots=True)
class Looks:
    """What shapes a message beyond its alert, from the configuration as it is when the
    alert is sent: the body format each rule declares, each account's portal pattern,
    the rules whose alerts go without their chart."""

    formats: Mapping[str, Format] = dataclasses.field(default_factory=dict)
    portals: Mapping[str, str] = dataclasses.field(default_factory=dict)
    chartless: frozenset[str] = frozenset()  # rules that said `chart: false`

    def portal(self, account: str) -> str:
        return self.portals.get(account, "")

    def body_format(self, alert: Alert, channel_reads: Format) -> Format:
        """The rule's format if it declares one; else a rule's own body is plain text
        (as it was written before formats existed), and the default body is written in
        the format the channel reads. A rule gone since the alert was queued declares
        nothing."""
        if (declared := self.formats.get(alert.rule)) is not None:
            return declared
        return Format.TEXT if alert.body_source is not None else channel_reads


# What `check` shows for `job.portal_url` when no pattern is configured.
SAMPLE_PORTAL = "https://portal.example.com/jobs/{id}"


def context(
    event: Event,
    rule_name: str,
    severity: str,
    test_runs: list[dict[str, object]] | None = None,
    portal_pattern: str = "",
) -> dict[str, Any]:
    """All the variables a template sees (SPEC "Templates"): the job's, the event's and
    the rule's, read back from what the outbox would keep, as when the alert is sent;
    `job.test_runs` is empty unless the rule asked for them (`include_test_runs`)."""
    return _read(queued(event, test_runs), rule_name, severity, portal_pattern=portal_pattern)


def _read(
    queued_variables: str,
    rule_name: str,
    severity: str,
    account: str = DEFAULT_ACCOUNT,
    portal_pattern: str = "",
) -> dict[str, Any]:
    found: dict[str, Any] = {**fast.named_variables(json.loads(queued_variables))}
    job = found["job"]
    job["account"] = account  # the alert's, not queued with the job
    # Made when rendered, from the pattern configured now, not queued: a corrected
    # pattern corrects the links of alerts still waiting to go.
    job["portal_url"] = portal.url(portal_pattern, str(job["sref"]), str(job["template"]))
    found["rule"] = {"name": rule_name, "severity": severity}
    return found


def queued(event: Event, test_runs: list[dict[str, object]] | None = None) -> str:
    """The job and event variables as the outbox keeps them until the alert is sent
    (`fast.variable_list`)."""
    return fast.variable_list(event, test_runs)


class RenderError(Exception):
    """A configured template failed on these variables, or went over its budget."""


@functools.lru_cache(maxsize=1024)  # one answer per source: rules often share a template
def check(source: str) -> str | None:
    """Return why `source` cannot be used (syntax, unknown variable, unsafe access,
    unbounded, over budget with the sample job), or None. Bounded in time and memory
    whatever the source (`render_worker`)."""
    sample = context(SAMPLE_EVENT, "rule", "failure", portal_pattern=SAMPLE_PORTAL)
    sample["event"].update(SAMPLE_PERF)
    outcome, text = render_worker.shared().check(source, sample)
    if outcome == "ok":
        return None
    if outcome == "over":
        return f"invalid template (over budget): {text}"
    name, _, message = text.partition(": ")
    return f"invalid template ({name}): {message}"


def render(source: str, variables: Mapping[str, object], to: Format = Format.TEXT) -> str:
    """A configured template's text in format `to` within its budget; RenderError if it
    fails on these variables or goes over budget."""
    outcome, text = render_worker.shared().render(source, dict(variables), to)
    if outcome != "ok":
        raise RenderError(text, outcome)
    return text


def _trusted(source: str, variables: Mapping[str, object], to: Format = Format.TEXT) -> str:
    """A built-in template, rendered in-process: ours, and linear in its variables.
    Written with text's line breaks: in HTML each becomes a <br>."""
    from watcher import sandbox  # deferred: Jinja2 loads with the first alert, not at start

    text = sandbox.render_capped(sandbox.compiled(source, to), dict(variables))
    return text.replace("\n", "<br>\n") if to is Format.HTML else text


_strikes: Counter[str] = Counter()  # templates over budget, by source, since start
STRIKES = 3  # then a template is not tried again: each try costs its whole budget


def _configured(
    source: str, variables: Mapping[str, object], rule: str, part: str, to: Format
) -> str | None:
    """A rule's template's text, or None (logged) to use the default instead."""
    if _strikes[source] >= STRIKES:
        log.error("template_over_budget", rule=rule, part=part, reason="over budget before")
        return None
    try:
        return render(source, variables, to)
    except RenderError as exc:
        text, outcome = exc.args
        if outcome == "over":
            _strikes[source] += 1
            log.error("template_over_budget", rule=rule, part=part, reason=text)
        else:  # a template that broke on odd data must not lose the alert
            log.error("template_failed", rule=rule, part=part, error=text, using="default")
        return None


def _with_fallback(
    source: str | None,
    default: str,
    variables: Mapping[str, object],
    rule: str,
    part: str,
    to: Format = Format.TEXT,
) -> str:
    if source is not None:
        text = _configured(source, variables, rule, part, to)
        # Channels refuse an empty message, which would be retried until given up.
        if text:
            return text
    return _trusted(default, variables, to)


def _title(alert: Alert, variables: Mapping[str, object]) -> str:
    default = DEFAULT_TITLES[alert.kind]
    return _with_fallback(alert.title_source, default, variables, alert.rule, "title")


def _variables(alert: Alert, portal_pattern: str) -> dict[str, Any]:
    return _read(alert.variables, alert.rule, str(alert.severity), alert.account, portal_pattern)


def title(alert: Alert) -> str:
    """The alert's title (what a digest lists), rendered if it is not yet: plain text."""
    return line(alert)[0]


def line(alert: Alert, portal_pattern: str = "") -> tuple[str, str]:
    """The alert's title and its job's portal link ("" if none), for a digest's line."""
    if not alert.variables:
        return alert.title, ""
    try:
        variables = _variables(alert, portal_pattern)
        return _title(alert, variables), str(variables["job"]["portal_url"])
    except Exception as exc:  # unreadable variables: say what the alert is about
        log.error("alert_unrenderable", event_key=alert.key, error=str(exc))
        return f"{alert.rule}: {alert.key}", ""


def finish(alert: Alert, to: Format = Format.TEXT, portal_pattern: str = "") -> Alert:
    """The alert with its title (plain text) and body (in format `to`) rendered, from
    the variables it was queued with and the account's portal link pattern."""
    if not alert.variables:
        return alert
    try:
        variables = _variables(alert, portal_pattern)
        heading = _title(alert, variables)
        body = DEFAULT_BODIES[alert.kind]
        text = _with_fallback(alert.body_source, body, variables, alert.rule, "body", to)
    except Exception as exc:
        log.error("alert_unrenderable", event_key=alert.key, error=str(exc))
        heading = f"{alert.rule}: {alert.key}"
        text = formats.escape(heading, to)
    return dataclasses.replace(alert, title=heading, body=text, variables="")
