"""Message templates: sandboxed Jinja2, the variables they may use, and the defaults.

Templates see plain dicts of strings and numbers, never our objects, so a template
cannot reach beyond its variables; an unknown variable is an error, not a blank.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from watcher import fast
from watcher.models import Alert, Event, EventKind, Job

log = structlog.get_logger("watcher.render")

DEFAULT_TITLES: Mapping[EventKind, str] = {
    EventKind.TRANSITION: "{{ job.name }} {{ event.to }}",
    EventKind.STUCK: "{{ job.name }} stuck {{ event.to }}",
    EventKind.RECOVERED: "{{ job.name }} recovered",
    EventKind.MISSED: "{{ job.name }} did not run",
}
_DETAILS = (
    "Type: {{ job.type }}, run: {{ job.run_type }}, started by {{ job.started_by }}"
    " at {{ job.started_at }}.\n"
    "Template: {{ job.template }}. Pages: {{ job.page_count }}."
    "{% if job.url %}\nURL: {{ job.url }}{% endif %}"
    "{% for run in job.test_runs %}{% if loop.first %}\nTest runs:{% endif %}"
    "\n- {{ run.pageTitle or run.url }} [{{ run.browser }}] result {{ run.resultCode }},"
    " onLoad {{ run.onLoad }}{% endfor %}"
)
DEFAULT_BODIES: Mapping[EventKind, str] = {
    EventKind.TRANSITION: "Job {{ job.name }} ({{ job.sref }}) went from {{ event.from }}"
    " to {{ event.to }} at {{ event.at }}.\n" + _DETAILS,
    EventKind.STUCK: "Job {{ job.name }} ({{ job.sref }}) has been {{ event.to }} for"
    " {{ (event.stuck_for / 60) | round | int }} minutes.\n" + _DETAILS,
    EventKind.RECOVERED: "Job {{ job.name }} ({{ job.sref }}) completed after"
    " {{ event.streak }} failed run(s) of its template in a row.\n" + _DETAILS,
    EventKind.MISSED: "No job of template {{ job.template }} ({{ job.name }}) has started"
    " for {{ (event.stuck_for / 3600) | round(1) }} hours; the last one started"
    " {{ job.started_at or 'never, since watching began' }}.",
}
MAX_RENDERED = 4000  # characters; a runaway template must not produce a megabyte message

_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)

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


def context(
    event: Event,
    rule_name: str,
    severity: str,
    test_runs: list[dict[str, object]] | None = None,
) -> dict[str, Any]:
    """All the variables a template sees (SPEC "Templates"): the job's, the event's and
    the rule's, read back from what the outbox would keep, as when the alert is sent;
    `job.test_runs` is empty unless the rule asked for them (`include_test_runs`)."""
    return _read(queued(event, test_runs), rule_name, severity)


def _read(queued_variables: str, rule_name: str, severity: str) -> dict[str, Any]:
    found: dict[str, Any] = {**fast.named_variables(json.loads(queued_variables))}
    found["rule"] = {"name": rule_name, "severity": severity}
    return found


def queued(event: Event, test_runs: list[dict[str, object]] | None = None) -> str:
    """The job and event variables as the outbox keeps them until the alert is sent
    (`fast.variable_list`)."""
    return fast.variable_list(event, test_runs)


@functools.lru_cache(maxsize=256)
def _compiled(source: str) -> Template:
    return _ENV.from_string(source)


def check(source: str) -> str | None:
    """Return why `source` cannot render (syntax, unknown variable, unsafe access), or None."""
    try:
        _compiled(source).render(context(SAMPLE_EVENT, "rule", "failure"))
    except TemplateError as exc:
        return f"invalid template ({type(exc).__name__}): {exc.message or exc}"
    except Exception as exc:  # parses, but fails when rendered: 1/0, "a" + 1, ...
        return f"invalid template ({type(exc).__name__}): {exc}"
    return None


def render(source: str, variables: Mapping[str, object]) -> str:
    text = _compiled(source).render(variables).strip()
    return text if len(text) <= MAX_RENDERED else text[: MAX_RENDERED - 1] + "…"


def _with_fallback(
    source: str | None, default: str, variables: Mapping[str, object], rule: str
) -> str:
    if source is not None:
        try:
            return render(source, variables)
        except Exception as exc:  # a template that broke on odd data must not lose the alert
            log.error("template_failed", rule=rule, error=str(exc), using="default template")
    return render(default, variables)


def _title(alert: Alert, variables: Mapping[str, object]) -> str:
    default = DEFAULT_TITLES[alert.kind]
    # Channels refuse an empty message, which would be retried until given up.
    heading = _with_fallback(alert.title_source, default, variables, alert.rule)
    return heading or render(default, variables)


def _variables(alert: Alert) -> dict[str, Any]:
    return _read(alert.variables, alert.rule, str(alert.severity))


def title(alert: Alert) -> str:
    """The alert's title (what a digest lists), rendered if it is not yet."""
    if not alert.variables:
        return alert.title
    try:
        return _title(alert, _variables(alert))
    except Exception as exc:  # unreadable variables: say what the alert is about
        log.error("alert_unrenderable", event_key=alert.key, error=str(exc))
        return f"{alert.rule}: {alert.key}"


def finish(alert: Alert) -> Alert:
    """The alert with its title and body rendered, from the variables it was queued with."""
    if not alert.variables:
        return alert
    try:
        variables = _variables(alert)
        heading = _title(alert, variables)
        text = _with_fallback(alert.body_source, DEFAULT_BODIES[alert.kind], variables, alert.rule)
    except Exception as exc:
        log.error("alert_unrenderable", event_key=alert.key, error=str(exc))
        heading = text = f"{alert.rule}: {alert.key}"
    return dataclasses.replace(alert, title=heading, body=text or heading, variables="")
