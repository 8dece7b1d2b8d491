"""The template sandbox: what `lint` refuses from the source, what the guards stop while
rendering, and output cut while it is produced."""

from __future__ import annotations

import pytest

from watcher import sandbox
from watcher.render import SAMPLE_EVENT, context

# The probe's template: fine for the sample job (Homepage), 10^10 iterations otherwise.
DATA_DEPENDENT_LOOPS = (
    "{% if job.name != 'Homepage' %}{% for a in range(100000) %}{% for b in range(100000) %}"
    "{% endfor %}{% endfor %}{% endif %}{{ job.name }}"
)


def lint(source: str) -> str | None:
    return sandbox.lint(sandbox.parse(source))


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        (DATA_DEPENDENT_LOOPS, "loops that may run 10000000000 times"),
        (
            "{% for a in range(job.page_count) %}{% for b in range(9) %}{% endfor %}{% endfor %}",
            "loops that may run 900000 times",
        ),
        (
            "{% for r in job.test_runs %}{% for c in r.url %}{% for x in range(1000) %}"
            "{% endfor %}{% endfor %}{% endfor %}",
            "loops that may run 1000000000 times",
        ),
        (
            "{% for a in range(10) %}{% else %}{% for b in range(200000) %}{% endfor %}"
            "{% endfor %}",
            "loops that may run 200000 times",
        ),
        ("{{ job.name * 1000000000 }}", "repetition 1000000000 times"),
        ("{{ [0] * 200000 }}", "repetition 200000 times"),
        ("{{ 'a' * 10 ** 9 }}", None),  # the guard stops it when rendered: see below
        ("{{ 2 ** job.page_count }}", "a power with a large or data-dependent exponent"),
        ("{{ 10 ** 100 }}", "a power with a large or data-dependent exponent"),
    ],
)
def test_lint_refuses_what_the_source_shows_unbounded(source: str, problem: str | None) -> None:
    """Loops are multiplied through nesting (a variable counts as 1000 items, a range
    of a variable as the most a range may hold); repetition and powers are read off
    their literals."""
    found = lint(source)
    assert found is None if problem is None else (found or "").startswith(problem), found


@pytest.mark.parametrize(
    "source",
    [
        "{{ job.name }} {{ event.to }}",
        "{% for run in job.test_runs %}{{ run.url }}{% endfor %}",
        "{% for a in range(300) %}{% for b in range(300) %}{{ a }}{% endfor %}{% endfor %}",
        "{{ '-' * 40 }}{{ job.page_count ** 2 }}{{ event.stuck_for > 604800 }}",
    ],
)
def test_lint_accepts_ordinary_templates(source: str) -> None:
    assert lint(source) is None


@pytest.mark.parametrize(
    "source",
    [
        "{{ job.name * 10**8 }}",
        "{{ 'a' * 10**9 }}",
        "{{ [0] * 10**9 }}",
        "{{ range(10**7) | list }}",
        "{{ 10 ** 5000 }}",
    ],
)
def test_the_guards_stop_bombs_before_they_take_memory(source: str) -> None:
    """Repetition, ranges and powers raise OverBudget as they are asked for."""
    with pytest.raises(sandbox.OverBudget):
        sandbox.render_capped(sandbox.compiled(source), context(SAMPLE_EVENT, "r", "failure"))


def test_output_is_cut_while_it_is_produced() -> None:
    """A loop that writes far more than a message holds stops early, cut to the cap."""
    source = "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}"
    text = sandbox.render_capped(sandbox.compiled(source), {})
    assert len(text) == sandbox.MAX_RENDERED
    assert text.endswith("…")
