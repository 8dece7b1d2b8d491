"""Templates: sandboxed Jinja2 over the SPEC's variables, checked before use, output capped."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
import structlog

from watcher import render as render_module
from watcher.cycle import alerts_for
from watcher.models import Alert, Event, EventKind, Severity
from watcher.render import (
    DEFAULT_BODIES,
    DEFAULT_TITLES,
    SAMPLE_EVENT,
    SAMPLE_JOB,
    check,
    context,
    finish,
    render,
    title,
)
from watcher.sandbox import MAX_RENDERED
from watcher.settings import Rule

SPEC_VARIABLES = [
    "job.name",
    "job.url",
    "job.status",
    "job.type",
    "job.run_type",
    "job.started_at",
    "job.updated_at",
    "job.started_by",
    "job.page_count",
    "job.sref",
    "job.id",
    "job.template",
    "job.test_runs_uri",
    "event.kind",
    "event.from",
    "event.to",
    "event.at",
    "event.streak",
    "event.stuck_for",
    "rule.name",
    "rule.severity",
]


def sample() -> dict[str, object]:
    return context(SAMPLE_EVENT, "failures", "failure")


@pytest.mark.parametrize("variable", SPEC_VARIABLES)
def test_check_accepts_every_spec_variable(variable: str) -> None:
    """Each variable the SPEC documents can be used in a template."""
    assert check(f"{{{{ {variable} }}}}") is None


@pytest.mark.parametrize("variable", SPEC_VARIABLES)
def test_context_provides_every_spec_variable(variable: str) -> None:
    """The context handed to templates carries each documented variable."""
    group, name = variable.split(".")
    variables = sample()[group]
    assert isinstance(variables, dict)
    assert name in variables


@pytest.mark.parametrize("kind", list(EventKind))
def test_default_templates_are_valid(kind: EventKind) -> None:
    """The built-in title and body of every event kind pass the check."""
    assert (check(DEFAULT_TITLES[kind]), check(DEFAULT_BODIES[kind])) == (None, None)


def test_check_accepts_filters_and_control_flow() -> None:
    """Ordinary Jinja2 (filters, conditions, loops) is allowed."""
    source = "{{ job.name | upper }}{% if event.streak > 1 %} x{{ event.streak }}{% endif %}"
    assert check(source) is None


@pytest.mark.parametrize(
    "source",
    ["{{ nope }}", "{{ job.colour }}", "{{ event.severity }}", "{{ rule.channel }}", "{{ jobs }}"],
)
def test_check_rejects_unknown_variables(source: str) -> None:
    """An unknown variable is an error, not a blank in the message."""
    problem = check(source)
    assert problem is not None
    assert problem.startswith("invalid template (UndefinedError): ")


@pytest.mark.parametrize(
    "source", ["{{ job.name ", "{% if %}", "{% for x in %}{% endfor %}", "{{ }}", "{% endif %}"]
)
def test_check_rejects_syntax_errors(source: str) -> None:
    """A template that does not parse is named as a syntax error."""
    problem = check(source)
    assert problem is not None
    assert problem.startswith("invalid template (TemplateSyntaxError): ")


@pytest.mark.parametrize(
    "source",
    [
        "{{ job.__class__.__mro__ }}",
        "{{ ''.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ job.items.__self__ }}",
        "{{ lipsum.__globals__ }}",
    ],
)
def test_check_rejects_sandbox_escapes(source: str) -> None:
    """Reaching for Python internals is refused by the sandbox."""
    problem = check(source)
    assert problem is not None
    assert "SecurityError" in problem or "UndefinedError" in problem


def test_sandbox_is_immutable() -> None:
    """A template cannot change the values it was given."""
    problem = check("{{ job.update(name='x') }}")
    assert problem is not None
    assert "SecurityError" in problem


@pytest.mark.parametrize(
    "source",
    ["{{ job.page_count / 0 }}", "{{ job.name + 1 }}", "{{ range(10 ** 7) | list }}"],
    ids=["zero-division", "type-error", "huge-range"],
)
def test_check_reports_render_time_errors(source: str) -> None:
    """A template that parses but fails while rendering is reported, not raised."""
    problem = check(source)
    assert problem is not None
    assert problem.startswith("invalid template")


def test_render_fills_the_variables() -> None:
    """render puts the event's values into the template."""
    source = "{{ job.id }} {{ event.from }}->{{ event.to }} by {{ rule.name }}/{{ rule.severity }}"
    assert render(source, sample()) == "12345 running->failed by failures/failure"


def test_render_dates_are_iso_8601() -> None:
    """Dates reach templates as ISO 8601 text with their offset."""
    assert render("{{ job.started_at }}", sample()) == "2017-02-27T13:19:11+00:00"


def test_render_strips_surrounding_whitespace() -> None:
    """Leading and trailing blank lines of a template do not reach the message."""
    assert render("\n  {{ job.name }}\n\n", sample()) == "Homepage"


def test_render_does_not_escape_html() -> None:
    """Messages are plain text: no HTML escaping of values."""
    assert render("{{ '<a & b>' }}", sample()) == "<a & b>"


def test_render_output_is_capped() -> None:
    """A runaway template is cut to MAX_RENDERED characters, ending with an ellipsis."""
    text = render("{{ 'x' * 100000 }}", sample())
    assert len(text) == MAX_RENDERED
    assert text.endswith("…")


def test_render_output_at_the_cap_is_kept_whole() -> None:
    """Output of exactly MAX_RENDERED characters is not cut."""
    text = render(f"{{{{ 'y' * {MAX_RENDERED} }}}}", sample())
    assert text == "y" * MAX_RENDERED


def queued_alert(event: Event = SAMPLE_EVENT, **rule: Any) -> Alert:
    """The alert the cycle queues for the event, as the outbox gives it back."""
    settings = Rule.model_validate({"name": "failures", "notify": ["ops"], **rule})
    (alert,) = alerts_for(event, [settings])
    return alert


def test_a_queued_alert_is_rendered_when_finished_with_the_rules_templates() -> None:
    """The outbox keeps variables and templates; finish renders, title alone renders too."""
    alert = queued_alert(title="{{ job.name }} {{ event.to }} ({{ rule.name }})")
    assert (alert.title, alert.body) == ("", "")
    done = finish(alert)
    assert done.title == title(alert) == "Homepage failed (failures)"
    assert done.body.startswith("Job Homepage (jobs/12345) went from running to failed")
    assert finish(done) == done  # rendered once, kept as it is


def test_an_alert_without_variables_keeps_its_text() -> None:
    """Alerts queued before rendering moved to send time carry their own text."""
    old = Alert(
        kind=EventKind.TRANSITION,
        rule="r",
        channel="ops",
        severity=Severity.FAILURE,
        sref="jobs/1",
        status="failed",
        title="T",
        body="B",
    )
    assert (finish(old), title(old)) == (old, "T")


def test_a_template_failing_at_send_time_falls_back_to_the_default() -> None:
    """A template that renders the sample but not this job does not lose the alert."""
    two_pages = dataclasses.replace(
        SAMPLE_EVENT, job=msgspec.structs.replace(SAMPLE_JOB, page_count=2)
    )
    alert = queued_alert(two_pages, body="{{ 1 / (job.page_count - 2) }}")
    with structlog.testing.capture_logs() as logged:
        done = finish(alert)
    assert done.body.startswith("Job Homepage (jobs/12345) went from running to failed")
    assert [e["event"] for e in logged] == ["template_failed"]


def test_unreadable_variables_still_give_a_message() -> None:
    """A damaged outbox row is sent naming its rule and event, not dropped or crashed on."""
    broken = dataclasses.replace(queued_alert(), variables="{not json")
    with structlog.testing.capture_logs() as logged:
        done = finish(broken)
    assert done.title == done.body == f"failures: {SAMPLE_EVENT.key}"
    assert title(broken) == done.title
    assert {e["event"] for e in logged} == {"alert_unrenderable"}


# Fine for the sample job (Homepage); for any other, 2^40 macro calls: lint cannot see it.
FAN_OUT_UNLESS_SAMPLE = (
    "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
    "{% if job.name != 'Homepage' %}{{ f(40) }}{% endif %}{{ job.name }} is down"
)


@pytest.fixture
def fresh_strikes() -> Iterator[None]:
    render_module._strikes.clear()
    yield
    render_module._strikes.clear()


def checkout_event() -> Event:
    return dataclasses.replace(
        SAMPLE_EVENT, job=msgspec.structs.replace(SAMPLE_JOB, name="Checkout")
    )


def test_check_refuses_loops_the_source_shows_unbounded() -> None:
    """The probe's template renders the sample at once, but its loops say 10^10."""
    source = (
        "{% if job.name != 'Homepage' %}{% for a in range(100000) %}{% for b in range(100000) %}"
        "{% endfor %}{% endfor %}{% endif %}{{ job.name }}"
    )
    assert check(source) == (
        "invalid template (Unbounded): loops that may run 10000000000 times (at most 100000)"
    )


@pytest.mark.parametrize(
    "source", ["{{ 'a' * 10**9 }}", "{{ [0] * 10**9 }}", "{{ job.name * 10**8 }}"]
)
def test_check_refuses_bombs_at_once(source: str) -> None:
    assert (check(source) or "").startswith("invalid template (over budget): repetition to")


@pytest.mark.usefixtures("fresh_strikes")
def test_a_title_over_budget_falls_back_to_name_and_status_and_the_alert_goes() -> None:
    """The sample passes check; a real job's name sends it over: the default title
    (job name and status), the rule's body, and template_over_budget naming the rule."""
    assert check(FAN_OUT_UNLESS_SAMPLE) is None
    alert = queued_alert(checkout_event(), title=FAN_OUT_UNLESS_SAMPLE, body="{{ job.sref }}")
    with structlog.testing.capture_logs() as logged:
        done = finish(alert)
    assert (done.title, done.body) == ("Checkout failed", "jobs/12345")
    assert [(e["event"], e["rule"], e["part"]) for e in logged] == [
        ("template_over_budget", "failures", "title")
    ]


@pytest.mark.usefixtures("fresh_strikes")
def test_a_body_over_budget_falls_back_to_the_default_body() -> None:
    alert = queued_alert(checkout_event(), body=FAN_OUT_UNLESS_SAMPLE)
    with structlog.testing.capture_logs() as logged:
        done = finish(alert)
    assert done.body.startswith("Job Checkout (jobs/12345) went from running to failed")
    assert [e["event"] for e in logged] == ["template_over_budget"]


@pytest.mark.usefixtures("fresh_strikes")
def test_a_template_over_budget_three_times_is_not_tried_again() -> None:
    """Each try costs a whole budget: after STRIKES, the fallback comes at once."""
    alert = queued_alert(checkout_event(), title=FAN_OUT_UNLESS_SAMPLE)
    for _ in range(render_module.STRIKES):
        title(alert)
    with structlog.testing.capture_logs() as logged:
        assert title(alert) == "Checkout failed"
    assert [(e["event"], e["reason"]) for e in logged] == [
        ("template_over_budget", "over budget before")
    ]
