"""Message templates: sandboxed Jinja2, the variables they may use, and the defaults.

Templates see plain dicts of strings and numbers, never our objects, so a template
cannot reach beyond its variables; an unknown variable is an error, not a blank.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, datetime

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from watcher.models import Event, EventKind, Job

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


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def context(
    event: Event,
    rule_name: str,
    severity: str,
    test_runs: list[dict[str, object]] | None = None,
) -> dict[str, object]:
    """The variables a template sees (SPEC "Templates"); `job.test_runs` is empty unless
    the rule asked for them (`include_test_runs`)."""
    job = event.job
    return {
        "job": {
            "name": job.name,
            "url": job.url,
            "status": job.status,
            "type": job.type,
            "run_type": job.run_type,
            "started_at": _iso(job.started_at),
            "updated_at": _iso(job.updated_at),
            "started_by": job.started_by,
            "page_count": job.page_count,
            "sref": job.sref,
            "id": job.id,
            "template": job.template,
            "test_runs_uri": job.test_runs_uri,
            "test_runs": test_runs or [],
        },
        "event": {
            "kind": str(event.kind),
            "from": event.from_status,
            "to": event.to_status,
            "at": _iso(event.at),
            "streak": event.streak,
            "stuck_for": event.stuck_for,
        },
        "rule": {"name": rule_name, "severity": severity},
    }


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
